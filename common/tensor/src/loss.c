/*
 * loss.c - classification losses on logits and their gradients, the two
 * adversarial attacks optimise: mean cross-entropy and the Carlini-Wagner
 * margin. Numerically stable (log-sum-exp with the max subtracted).
 */
#include <math.h>

#include "tensor_internal.h"

mlsec_err mlsec_tensor_loss_eval(mlsec_tensor_loss kind, const float *logits, int64_t batch,
                                 int64_t classes, const int64_t *labels, float kappa, float *loss,
                                 float *dlogits, mlsec_error *err)
{
	if (batch < 1 || classes < 2)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "loss needs batch >= 1 and classes >= 2");
	for (int64_t b = 0; b < batch; b++)
		if (labels[b] < 0 || labels[b] >= classes)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "label %lld of sample %lld outside [0, %lld)",
			                       (long long)labels[b], (long long)b,
			                       (long long)classes);
	double total = 0;
	const float inv = 1.0f / (float)batch;
	for (int64_t b = 0; b < batch; b++) {
		const float *z = logits + b * classes;
		float *dz = dlogits ? dlogits + b * classes : NULL;
		int64_t y = labels[b];
		if (kind == MLSEC_LOSS_CROSS_ENTROPY) {
			float mx = z[0];
			for (int64_t c = 1; c < classes; c++)
				mx = z[c] > mx ? z[c] : mx;
			double s = 0;
			for (int64_t c = 0; c < classes; c++)
				s += exp((double)(z[c] - mx));
			double lse = log(s) + mx;
			total += lse - z[y];
			if (dz) {
				for (int64_t c = 0; c < classes; c++)
					dz[c] = (float)(exp((double)z[c] - lse)) * inv;
				dz[y] -= inv;
			}
		} else {
			int64_t j = y == 0 ? 1 : 0;
			for (int64_t c = 0; c < classes; c++)
				if (c != y && z[c] > z[j])
					j = c;
			float margin = z[y] - z[j];
			int clamped = margin < -kappa;
			total += clamped ? -kappa : margin;
			if (dz) {
				for (int64_t c = 0; c < classes; c++)
					dz[c] = 0;
				if (!clamped) {
					dz[y] = inv;
					dz[j] = -inv;
				}
			}
		}
	}
	*loss = (float)(total / (double)batch);
	return MLSEC_OK;
}
