/*
 * adversarial.h - robustness regression testing of ONNX classifiers under
 * FGSM, PGD and Carlini-Wagner L2, against a stored baseline.
 *
 * The engine runs the user's model through the tensor engine (common/tensor)
 * and differentiates through it; it never touches Kafka, Redis or gRPC.
 * Results land in the artifact's details (clean_accuracy, attacks[]) and as
 * findings: ADV-REGRESSION (high) when robust accuracy drops more than the
 * tolerance below the baseline, ADV-ATTACK-INEFFECTIVE (high) when an attack
 * provably did nothing (zero/NaN gradients, zero perturbation), ADV-MALFORMED
 * (high) for a model or data file that does not parse.
 */
#ifndef MLSEC_ADVERSARIAL_H
#define MLSEC_ADVERSARIAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mlsec/engine.h"
#include "mlsec/err.h"
#include "mlsec/report.h"

#define MLSEC_ADV_MAX_EPS 16
#define MLSEC_ADV_MAX_SAMPLES 1000000
#define MLSEC_ADV_MAX_STEPS 100000
#define MLSEC_ADV_MAX_BATCH 4096

enum {
	MLSEC_ADV_FGSM = 1 << 0,
	MLSEC_ADV_PGD = 1 << 1,
	MLSEC_ADV_CW = 1 << 2,
};

typedef struct mlsec_adv_opts {
	unsigned attacks;              /* MLSEC_ADV_* bits (default FGSM|PGD) */
	double eps[MLSEC_ADV_MAX_EPS]; /* L-inf budgets for FGSM/PGD */
	size_t neps;
	const char *data_path;     /* .npz or .safetensors with x, y; NULL = synthetic */
	const char *baseline_path; /* baseline JSON file, NULL = none */
	const json_t *baseline;    /* or the baseline document itself (borrowed) */
	int update_baseline;       /* write this run's accuracies to baseline_path */
	const char *model_name;    /* baseline key; NULL = the model file's stem */
	double tolerance;          /* allowed accuracy drop (default 0.05) */
	size_t samples;            /* 0 = all samples of the data set */
	size_t batch;              /* default 64 */
	int pgd_steps;             /* default 20 */
	double pgd_alpha;          /* <= 0: 2.5 * eps / steps */
	int pgd_restarts;          /* random starts; 0 = one deterministic start */
	int cw_steps;              /* Adam steps per binary-search round (default 100) */
	double cw_lr;              /* default 0.01 */
	double cw_confidence;      /* kappa, default 0 */
	double cw_c;               /* initial c, default 1 */
	int cw_binary_search;      /* rounds, default 5 */
	float clip_min, clip_max;  /* input domain, default [0, 1] */
	uint64_t seed;             /* default 0 */
	int threads;               /* BLAS threads, default 1 */
	size_t synthetic_samples;  /* without data (default 256) */
	/* Polled between batches; non-zero stops with MLSEC_ERR_TIMEOUT. */
	const volatile int *cancel;
	void (*progress)(void *ctx, const char *what, double done, double total);
	void *progress_ctx;
} mlsec_adv_opts;

void mlsec_adv_opts_default(mlsec_adv_opts *o);

/*
 * Reads options from a JSON object whose keys are the CLI flag names
 * ("attack": "fgsm,pgd" or ["fgsm"], "epsilon": 0.1 or "0.05,0.1" or [..],
 * "pgd-steps": 20, ...). Unknown keys are MLSEC_ERR_INVALID_ARG. String
 * values inside o point into json, which must outlive o.
 */
mlsec_err mlsec_adv_opts_from_json(const json_t *json, mlsec_adv_opts *o, mlsec_error *err);

/* Parses "fgsm,pgd,cw" into MLSEC_ADV_* bits. */
mlsec_err mlsec_adv_parse_attacks(const char *s, unsigned *out, mlsec_error *err);
/* Parses "0.01,0.03" into o->eps. */
mlsec_err mlsec_adv_parse_eps(const char *s, mlsec_adv_opts *o, mlsec_error *err);

/*
 * Attacks the model at model_path and adds one artifact with the results
 * to rep. Returns non-OK only when the run could not be made (bad options,
 * missing file, unsupported operator, not an ONNX model); a model or data
 * file that does not parse is an ADV-MALFORMED finding.
 */
mlsec_err mlsec_adv_run(const char *model_path, const mlsec_adv_opts *o, mlsec_report *rep,
                        mlsec_error *err);

extern const mlsec_engine mlsec_engine_adversarial;

/* ---- internals shared by the engine's files and its tests ---- */

/* A labelled data set: x is n * sample_numel floats, y is n labels. */
typedef struct mlsec_adv_data {
	float *x;
	int64_t *y;
	size_t n;
	size_t sample_numel;
	int64_t shape[8]; /* per-sample shape as stored (without the leading n) */
	size_t ndim;
} mlsec_adv_data;

/* Loads x and y from .npz or .safetensors; MLSEC_ERR_PARSE for a file that
 * is not one of them or lacks x/y. */
mlsec_err mlsec_adv_data_load(const char *path, mlsec_adv_data *d, mlsec_error *err);
void mlsec_adv_data_free(mlsec_adv_data *d);

#endif
