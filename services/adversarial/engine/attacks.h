/*
 * attacks.h - FGSM, PGD and CW-L2 over a compiled tensor graph, batched,
 * with statistics that prove each attack actually ran. Internal to the
 * adversarial engine.
 */
#ifndef MLSEC_ADV_ATTACKS_H
#define MLSEC_ADV_ATTACKS_H

#include "mlsec/adversarial.h"
#include "mlsec/onnx.h"
#include "mlsec/tensor.h"

typedef struct adv_runner adv_runner;

/* Per attack (and epsilon) accumulated over batches. Norms are of the
 * perturbation actually applied to initially-correct samples. */
typedef struct adv_stats {
	size_t n;              /* samples */
	size_t clean_correct;  /* correct before the attack */
	size_t adv_correct;    /* correct after the attack */
	size_t successes;      /* initially correct, then wrong */
	size_t perturbed;      /* initially correct with a non-zero perturbation */
	size_t zero_grad;      /* initially correct whose first gradient is all zero */
	size_t nonfinite_grad; /* ... or holds NaN/Inf */
	double sum_linf, sum_l2, max_linf, max_l2;
	double sum_success_l2; /* CW: over successful samples */
	size_t steps_run;      /* gradient evaluations (proves the loop ran) */
} adv_stats;

/* Compiles the model for o->batch; checks it is a classifier with one float
 * input. *out is owned by the caller (adv_runner_free). */
mlsec_err adv_runner_new(const mlsec_onnx_model *m, const mlsec_adv_opts *o, adv_runner **out,
                         mlsec_error *err);
void adv_runner_free(adv_runner *r);
size_t adv_runner_sample_numel(const adv_runner *r);
size_t adv_runner_classes(const adv_runner *r);
/* The model's input shape without the batch dim, for messages. */
const mlsec_tensor_shape *adv_runner_input_shape(const adv_runner *r);

/* Predicted classes for n samples; *nonfinite counts samples whose logits
 * hold NaN/Inf. */
mlsec_err adv_predict(adv_runner *r, const float *x, size_t n, int64_t *pred, size_t *nonfinite,
                      mlsec_error *err);

mlsec_err adv_fgsm(adv_runner *r, const float *x, const int64_t *y, size_t n, double eps,
                   adv_stats *st, mlsec_error *err);
mlsec_err adv_pgd(adv_runner *r, const float *x, const int64_t *y, size_t n, double eps,
                  adv_stats *st, mlsec_error *err);
mlsec_err adv_cw(adv_runner *r, const float *x, const int64_t *y, size_t n, adv_stats *st,
                 mlsec_error *err);

#endif
