/*
 * fgsm.c - the quick robustness probe: one FGSM step
 *   x' = clip(x + eps * sign(grad_x CE(f(x), y)), input_min, input_max)
 * with y the data labels, or the model's own clean predictions without
 * labels. Reports the fraction of predictions that flip (and accuracies
 * with labels). A model most of whose predictions flip at a tiny epsilon
 * is flagged: it is either very brittle or masking something. The full
 * attack suite (PGD, CW, baselines) is `mlsec adversarial`.
 */
#include <math.h>
#include <string.h>

#include "inspect_internal.h"
#include "mlsec/alloc.h"

#define FRAGILE_FLIP 0.5 /* fraction of flipped predictions ... */
#define TINY_EPS 0.03    /* ... at an epsilon up to this fraction of the input range */

mlsec_err insp_fgsm(mlsec_tensor_graph *g, const insp_inputs *in, size_t classes,
                    const mlsec_inspect_opts *o, mlsec_artifact *a, mlsec_error *err)
{
	mlsec_tensor_shape is;
	mlsec_tensor_graph_input_name(g, 0, &is);
	size_t batch = (size_t)is.dims[0], numel = in->numel;
	int64_t *clean = mlsec_calloc(batch, sizeof *clean);
	int64_t *adv = mlsec_calloc(batch, sizeof *adv);
	int64_t *labels = mlsec_calloc(batch, sizeof *labels);
	float *xb = mlsec_reallocarray(NULL, batch * numel, sizeof(float));
	mlsec_err rc = clean && adv && labels && xb
	                       ? MLSEC_OK
	                       : mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t n = 0, flips = 0, clean_ok = 0, adv_ok = 0, zero_grad = 0, bad = 0;
	float eps = (float)o->epsilon;
	for (size_t off = 0; rc == MLSEC_OK && off < in->n; off += batch) {
		if (insp_cancelled(o)) {
			rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
			break;
		}
		size_t nb = in->n - off < batch ? in->n - off : batch;
		const float *x = in->x + off * numel;
		insp_load_batch(g, x, nb, numel);
		if ((rc = mlsec_tensor_graph_forward(g, err)) != MLSEC_OK)
			break;
		insp_argmax(g, nb, classes, clean);
		for (size_t i = 0; i < batch; i++) {
			size_t s = i < nb ? i : 0;
			int64_t y = in->y ? in->y[off + s] : clean[s];
			labels[i] = y >= 0 ? y : 0; /* non-finite rows are skipped below */
		}
		if ((rc = mlsec_tensor_graph_loss_grad(g, MLSEC_LOSS_CROSS_ENTROPY, labels, 0, NULL,
		                                       err)) != MLSEC_OK)
			break;
		const float *gx = mlsec_tensor_graph_input_grad(g, 0);
		for (size_t i = 0; i < nb; i++) {
			int zero = 1;
			for (size_t k = 0; k < numel; k++) {
				float gk = gx[i * numel + k];
				float sg = gk > 0 ? 1.0f : gk < 0 ? -1.0f : 0.0f;
				zero &= gk == 0;
				float v = x[i * numel + k] + eps * sg;
				v = v < o->input_min   ? o->input_min
				    : v > o->input_max ? o->input_max
				                       : v;
				xb[i * numel + k] = v;
			}
			zero_grad += (size_t)zero;
		}
		insp_load_batch(g, xb, nb, numel);
		if ((rc = mlsec_tensor_graph_forward(g, err)) != MLSEC_OK)
			break;
		insp_argmax(g, nb, classes, adv);
		for (size_t i = 0; i < nb; i++) {
			if (clean[i] < 0) {
				bad++;
				continue;
			}
			n++;
			flips += adv[i] != clean[i];
			if (in->y) {
				clean_ok += clean[i] == in->y[off + i];
				adv_ok += adv[i] == in->y[off + i];
			}
		}
		if (o->progress)
			o->progress(o->progress_ctx, "fgsm", (double)(off + nb), (double)in->n);
	}
	if (rc == MLSEC_OK) {
		double flip = n ? (double)flips / (double)n : 0;
		json_t *d = json_pack("{s:f,s:I,s:I,s:f,s:I,s:I}", "epsilon", o->epsilon, "samples",
		                      (json_int_t)n, "flipped", (json_int_t)flips, "flip_rate",
		                      flip, "zero_gradient", (json_int_t)zero_grad, "nonfinite",
		                      (json_int_t)bad);
		if (d && in->y) {
			json_object_set_new(d, "clean_accuracy",
			                    json_real(n ? (double)clean_ok / n : 0));
			json_object_set_new(d, "adversarial_accuracy",
			                    json_real(n ? (double)adv_ok / n : 0));
		}
		json_object_set_new(mlsec_artifact_details(a), "fgsm", d);
		double range = (double)o->input_max - (double)o->input_min;
		if (n && zero_grad >= n) {
			mlsec_finding *f = mlsec_artifact_add_finding(
			        a, INSP_PREFIX "-FGSM-NO-GRADIENT", MLSEC_SEV_LOW,
			        "the input gradient is zero for every sample: FGSM cannot probe "
			        "this model",
			        "%zu of %zu samples have an all-zero input gradient (dead layers, "
			        "saturation or a non-differentiable graph mask the gradient)",
			        zero_grad, n);
			if (f)
				mlsec_finding_set_location(f, NULL, 0, 0, "fgsm");
		}
		if (n && flip > FRAGILE_FLIP && o->epsilon <= TINY_EPS * range) {
			mlsec_finding *f = mlsec_artifact_add_finding(
			        a, INSP_PREFIX "-FGSM-FRAGILE", MLSEC_SEV_MEDIUM,
			        "most predictions flip under a tiny FGSM perturbation",
			        "%.1f%% of %zu predictions change at epsilon %g (%.2g%% of the "
			        "input range)",
			        100 * flip, n, o->epsilon, 100 * o->epsilon / range);
			if (f) {
				mlsec_finding_set_location(f, NULL, 0, 0, "fgsm");
				mlsec_finding_set_evidence_json(f, "flip_rate", json_real(flip));
				mlsec_finding_set_evidence_json(f, "epsilon",
				                                json_real(o->epsilon));
				mlsec_finding_set_remediation(
				        f, "Run `mlsec adversarial` for PGD/CW numbers and "
				           "check that --input-min/--input-max match the "
				           "model's preprocessing.");
			}
		}
	}
	mlsec_free(clean);
	mlsec_free(adv);
	mlsec_free(labels);
	mlsec_free(xb);
	return rc;
}
