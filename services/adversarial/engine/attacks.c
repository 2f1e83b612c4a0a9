/*
 * attacks.c - FGSM, PGD (L-inf, random restarts, early stop per sample)
 * and Carlini-Wagner L2 (tanh box, Adam, binary search over c) on top of
 * the tensor engine's forward/backward.
 *
 * Work is done in batches of the compiled size; a short last batch is
 * padded with copies of its first sample whose results are ignored (the
 * padding's gradients never touch real samples: rows are independent).
 * All scratch buffers are allocated once per runner.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "attacks.h"
#include "mlsec/alloc.h"

struct adv_runner {
	mlsec_tensor_graph *g;
	const mlsec_adv_opts *o;
	size_t batch, numel, classes;
	mlsec_tensor_shape in_shape; /* without the batch dim */
	float *in;                   /* graph input 0 (borrowed from g) */
	/* scratch, batch * numel unless noted */
	float *xadv, *best, *w, *m, *v, *gx;
	float *dout;                   /* batch * classes */
	int64_t *labels;               /* batch */
	int64_t *pred;                 /* batch */
	unsigned char *done;           /* batch */
	double *c, *lo, *hi, *best_l2; /* batch */
	uint64_t rng;
};

static uint64_t next_u64(uint64_t *s)
{
	/* splitmix64: fast, seedable, good enough for random starts. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float uniform(uint64_t *s, float lo, float hi)
{
	return lo + (hi - lo) * (float)((next_u64(s) >> 40) * (1.0 / 16777216.0));
}

mlsec_err adv_runner_new(const mlsec_onnx_model *m, const mlsec_adv_opts *o, adv_runner **out,
                         mlsec_error *err)
{
	*out = NULL;
	adv_runner *r = mlsec_calloc(1, sizeof *r);
	if (!r)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	r->o = o;
	r->batch = o->batch ? o->batch : 64;
	if (r->batch > MLSEC_ADV_MAX_BATCH)
		r->batch = MLSEC_ADV_MAX_BATCH;
	r->rng = o->seed ^ 0x6d6c736563ull;
	mlsec_tensor_opts to;
	mlsec_tensor_opts_default(&to);
	to.threads = o->threads > 0 ? o->threads : 1;
	to.batch = (int64_t)r->batch;
	to.grad = 1;
	to.fuse = 1; /* no activation hooks here: Relu may run inside its Conv */
	mlsec_err rc = mlsec_tensor_graph_compile(m, &to, &r->g, err);
	if (rc != MLSEC_OK)
		goto fail;
	if (mlsec_tensor_graph_input_count(r->g) != 1) {
		rc = mlsec_error_set(
		        err, MLSEC_ERR_UNSUPPORTED,
		        "the model has %zu inputs; adversarial testing needs exactly one "
		        "float input",
		        mlsec_tensor_graph_input_count(r->g));
		goto fail;
	}
	mlsec_tensor_shape is, os;
	mlsec_tensor_graph_input_name(r->g, 0, &is);
	mlsec_tensor_graph_output_name(r->g, 0, &os);
	if (is.ndim < 2 || is.dims[0] != (int64_t)r->batch) {
		rc = mlsec_error_set(
		        err, MLSEC_ERR_UNSUPPORTED,
		        "the model's input must be [batch, ...] with a dynamic batch "
		        "dimension (export with dynamic_axes={'input': {0: 'batch'}})");
		goto fail;
	}
	if (os.ndim != 2 || os.dims[0] != (int64_t)r->batch || os.dims[1] < 2) {
		rc = mlsec_error_set(
		        err, MLSEC_ERR_UNSUPPORTED,
		        "the model's first output must be logits [batch, classes >= 2]");
		goto fail;
	}
	r->numel = is.numel / r->batch;
	r->classes = (size_t)os.dims[1];
	r->in_shape.ndim = is.ndim - 1;
	r->in_shape.numel = r->numel;
	for (size_t i = 1; i < is.ndim; i++)
		r->in_shape.dims[i - 1] = is.dims[i];
	r->in = mlsec_tensor_graph_input(r->g, 0);
	size_t bn = r->batch * r->numel;
	r->xadv = mlsec_reallocarray(NULL, bn, sizeof(float));
	r->best = mlsec_reallocarray(NULL, bn, sizeof(float));
	r->w = mlsec_reallocarray(NULL, bn, sizeof(float));
	r->m = mlsec_reallocarray(NULL, bn, sizeof(float));
	r->v = mlsec_reallocarray(NULL, bn, sizeof(float));
	r->gx = mlsec_reallocarray(NULL, bn, sizeof(float));
	r->dout = mlsec_reallocarray(NULL, r->batch * r->classes, sizeof(float));
	r->labels = mlsec_reallocarray(NULL, r->batch, sizeof(int64_t));
	r->pred = mlsec_reallocarray(NULL, r->batch, sizeof(int64_t));
	r->done = mlsec_calloc(r->batch, 1);
	r->c = mlsec_reallocarray(NULL, r->batch, sizeof(double));
	r->lo = mlsec_reallocarray(NULL, r->batch, sizeof(double));
	r->hi = mlsec_reallocarray(NULL, r->batch, sizeof(double));
	r->best_l2 = mlsec_reallocarray(NULL, r->batch, sizeof(double));
	if (!r->xadv || !r->best || !r->w || !r->m || !r->v || !r->gx || !r->dout || !r->labels ||
	    !r->pred || !r->done || !r->c || !r->lo || !r->hi || !r->best_l2) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory for attack buffers");
		goto fail;
	}
	*out = r;
	return MLSEC_OK;
fail:
	adv_runner_free(r);
	return rc;
}

void adv_runner_free(adv_runner *r)
{
	if (!r)
		return;
	mlsec_tensor_graph_free(r->g);
	mlsec_free(r->xadv);
	mlsec_free(r->best);
	mlsec_free(r->w);
	mlsec_free(r->m);
	mlsec_free(r->v);
	mlsec_free(r->gx);
	mlsec_free(r->dout);
	mlsec_free(r->labels);
	mlsec_free(r->pred);
	mlsec_free(r->done);
	mlsec_free(r->c);
	mlsec_free(r->lo);
	mlsec_free(r->hi);
	mlsec_free(r->best_l2);
	mlsec_free(r);
}

size_t adv_runner_sample_numel(const adv_runner *r)
{
	return r->numel;
}

size_t adv_runner_classes(const adv_runner *r)
{
	return r->classes;
}

const mlsec_tensor_shape *adv_runner_input_shape(const adv_runner *r)
{
	return &r->in_shape;
}

/* Copies nb samples into the graph input, padding the batch with sample 0. */
static void load_input(adv_runner *r, const float *x, size_t nb)
{
	memcpy(r->in, x, nb * r->numel * sizeof(float));
	for (size_t i = nb; i < r->batch; i++)
		memcpy(r->in + i * r->numel, x, r->numel * sizeof(float));
}

static void load_labels(adv_runner *r, const int64_t *y, size_t nb)
{
	for (size_t i = 0; i < r->batch; i++)
		r->labels[i] = y[i < nb ? i : 0];
}

/* argmax of each row of the last forward's logits; NaN rows get -1. */
static size_t argmax_rows(adv_runner *r, size_t nb, int64_t *pred)
{
	const float *z = mlsec_tensor_graph_output(r->g, 0);
	size_t nonfinite = 0;
	for (size_t i = 0; i < nb; i++) {
		const float *row = z + i * r->classes;
		int64_t best = 0;
		int bad = 0;
		for (size_t k = 0; k < r->classes; k++) {
			if (!isfinite(row[k]))
				bad = 1;
			else if (row[k] > row[best] || !isfinite(row[best]))
				best = (int64_t)k;
		}
		pred[i] = bad ? -1 : best;
		nonfinite += (size_t)bad;
	}
	return nonfinite;
}

static int cancelled(const adv_runner *r)
{
	return r->o->cancel && *r->o->cancel;
}

static void progress(const adv_runner *r, const char *what, double done, double total)
{
	if (r->o->progress)
		r->o->progress(r->o->progress_ctx, what, done, total);
}

mlsec_err adv_predict(adv_runner *r, const float *x, size_t n, int64_t *pred, size_t *nonfinite,
                      mlsec_error *err)
{
	*nonfinite = 0;
	for (size_t s = 0; s < n; s += r->batch) {
		size_t nb = n - s < r->batch ? n - s : r->batch;
		load_input(r, x + s * r->numel, nb);
		mlsec_err rc = mlsec_tensor_graph_forward(r->g, err);
		if (rc != MLSEC_OK)
			return rc;
		*nonfinite += argmax_rows(r, nb, pred + s);
	}
	return MLSEC_OK;
}

static float clampf(float v, float lo, float hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static float signf(float g)
{
	return g > 0 ? 1.0f : g < 0 ? -1.0f : 0.0f; /* NaN -> 0: never poison x */
}

/* Records gradient health of the initially-correct samples (first step only). */
static void check_grad(adv_runner *r, size_t nb, const unsigned char *correct, adv_stats *st)
{
	const float *g = mlsec_tensor_graph_input_grad(r->g, 0);
	for (size_t i = 0; i < nb; i++) {
		if (!correct[i])
			continue;
		const float *gi = g + i * r->numel;
		int zero = 1, bad = 0;
		for (size_t k = 0; k < r->numel; k++) {
			if (!isfinite(gi[k]))
				bad = 1;
			else if (gi[k] != 0.0f)
				zero = 0;
		}
		st->nonfinite_grad += (size_t)bad;
		st->zero_grad += (size_t)(zero && !bad);
	}
}

/* Accumulates final statistics of a batch: xadv vs x, predictions of xadv. */
static mlsec_err finish_batch(adv_runner *r, const float *x, const int64_t *y, size_t nb,
                              const unsigned char *correct, adv_stats *st, mlsec_error *err)
{
	load_input(r, r->xadv, nb);
	mlsec_err rc = mlsec_tensor_graph_forward(r->g, err);
	if (rc != MLSEC_OK)
		return rc;
	argmax_rows(r, nb, r->pred);
	for (size_t i = 0; i < nb; i++) {
		st->n++;
		int ok = r->pred[i] == y[i];
		st->adv_correct += (size_t)ok;
		if (!correct[i])
			continue;
		st->clean_correct++;
		st->successes += (size_t)!ok;
		double linf = 0, l2 = 0;
		for (size_t k = 0; k < r->numel; k++) {
			double d = (double)r->xadv[i * r->numel + k] - (double)x[i * r->numel + k];
			linf = fabs(d) > linf ? fabs(d) : linf;
			l2 += d * d;
		}
		l2 = sqrt(l2);
		st->perturbed += (size_t)(linf > 0);
		st->sum_linf += linf;
		st->sum_l2 += l2;
		st->max_linf = linf > st->max_linf ? linf : st->max_linf;
		st->max_l2 = l2 > st->max_l2 ? l2 : st->max_l2;
		if (!ok)
			st->sum_success_l2 += l2;
	}
	return MLSEC_OK;
}

/* Clean predictions of a batch -> correct[] (1 = correctly classified). */
static mlsec_err clean_batch(adv_runner *r, const float *x, const int64_t *y, size_t nb,
                             unsigned char *correct, mlsec_error *err)
{
	load_input(r, x, nb);
	mlsec_err rc = mlsec_tensor_graph_forward(r->g, err);
	if (rc != MLSEC_OK)
		return rc;
	argmax_rows(r, nb, r->pred);
	for (size_t i = 0; i < nb; i++)
		correct[i] = r->pred[i] == y[i];
	return MLSEC_OK;
}

mlsec_err adv_fgsm(adv_runner *r, const float *x, const int64_t *y, size_t n, double eps,
                   adv_stats *st, mlsec_error *err)
{
	const float lo = r->o->clip_min, hi = r->o->clip_max;
	for (size_t s = 0; s < n; s += r->batch) {
		if (cancelled(r))
			return mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
		size_t nb = n - s < r->batch ? n - s : r->batch;
		const float *xb = x + s * r->numel;
		load_input(r, xb, nb);
		load_labels(r, y + s, nb);
		mlsec_err rc = mlsec_tensor_graph_loss_grad(r->g, MLSEC_LOSS_CROSS_ENTROPY,
		                                            r->labels, 0, NULL, err);
		if (rc != MLSEC_OK)
			return rc;
		st->steps_run++;
		/* The gradient's forward pass is the clean prediction. */
		argmax_rows(r, nb, r->pred);
		for (size_t i = 0; i < nb; i++)
			r->done[i] = r->pred[i] == y[s + i];
		check_grad(r, nb, r->done, st);
		const float *g = mlsec_tensor_graph_input_grad(r->g, 0);
		for (size_t k = 0; k < nb * r->numel; k++)
			r->xadv[k] = clampf(xb[k] + (float)eps * signf(g[k]), lo, hi);
		if ((rc = finish_batch(r, xb, y + s, nb, r->done, st, err)) != MLSEC_OK)
			return rc;
		progress(r, "fgsm", (double)(s + nb), (double)n);
	}
	return MLSEC_OK;
}

/*
 * PGD for one batch and one start: iterates from r->w (the start point),
 * freezing samples as soon as they are misclassified (their adversarial
 * example is kept in r->best). broken[i] is set for those.
 */
static mlsec_err pgd_run(adv_runner *r, const float *xb, size_t nb, double eps, double alpha,
                         unsigned char *broken, const unsigned char *correct, adv_stats *st,
                         int first_start, mlsec_error *err)
{
	const float lo = r->o->clip_min, hi = r->o->clip_max;
	float *cur = r->w;
	for (int step = 0; step <= r->o->pgd_steps; step++) {
		load_input(r, cur, nb);
		/* The last iterate is only checked, not stepped: forward only. */
		int last = step == r->o->pgd_steps;
		mlsec_err rc = last ? mlsec_tensor_graph_forward(r->g, err)
		                    : mlsec_tensor_graph_loss_grad(r->g, MLSEC_LOSS_CROSS_ENTROPY,
		                                                   r->labels, 0, NULL, err);
		if (rc != MLSEC_OK)
			return rc;
		st->steps_run += (size_t)!last;
		if (step == 0 && first_start && !last)
			check_grad(r, nb, correct, st);
		argmax_rows(r, nb, r->pred);
		int active = 0;
		for (size_t i = 0; i < nb; i++) {
			if (broken[i])
				continue;
			if (r->pred[i] != r->labels[i]) {
				/* Early stop: this start broke the sample. */
				broken[i] = 1;
				memcpy(r->best + i * r->numel, cur + i * r->numel,
				       r->numel * sizeof(float));
				continue;
			}
			active = 1;
		}
		if (!active || step == r->o->pgd_steps)
			break;
		const float *g = mlsec_tensor_graph_input_grad(r->g, 0);
		for (size_t i = 0; i < nb; i++) {
			if (broken[i])
				continue;
			for (size_t k = i * r->numel; k < (i + 1) * r->numel; k++) {
				float v = cur[k] + (float)alpha * signf(g[k]);
				v = clampf(v, xb[k] - (float)eps, xb[k] + (float)eps);
				cur[k] = clampf(v, lo, hi);
			}
		}
	}
	return MLSEC_OK;
}

mlsec_err adv_pgd(adv_runner *r, const float *x, const int64_t *y, size_t n, double eps,
                  adv_stats *st, mlsec_error *err)
{
	const float lo = r->o->clip_min, hi = r->o->clip_max;
	int steps = r->o->pgd_steps > 0 ? r->o->pgd_steps : 1;
	double alpha = r->o->pgd_alpha > 0 ? r->o->pgd_alpha : 2.5 * eps / steps;
	int starts = r->o->pgd_restarts > 0 ? r->o->pgd_restarts : 1;
	unsigned char *correct = r->done;
	unsigned char bk[MLSEC_ADV_MAX_BATCH];
	mlsec_err rc = MLSEC_OK;
	for (size_t s = 0; s < n && rc == MLSEC_OK; s += r->batch) {
		if (cancelled(r)) {
			rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
			break;
		}
		size_t nb = n - s < r->batch ? n - s : r->batch;
		const float *xb = x + s * r->numel;
		if ((rc = clean_batch(r, xb, y + s, nb, correct, err)) != MLSEC_OK)
			break;
		load_labels(r, y + s, nb);
		/* Unbroken samples end at their clean input (robust); broken ones
		 * at the example that broke them. Initially wrong samples are
		 * "broken" at step 0 with no perturbation. */
		memcpy(r->best, xb, nb * r->numel * sizeof(float));
		/* Initially wrong samples are already "broken", unperturbed. */
		for (size_t i = 0; i < r->batch; i++)
			bk[i] = i >= nb || !correct[i];
		for (int start = 0; start < starts && rc == MLSEC_OK; start++) {
			for (size_t k = 0; k < nb * r->numel; k++) {
				float v = xb[k];
				if (r->o->pgd_restarts > 0)
					v = clampf(v + uniform(&r->rng, (float)-eps, (float)eps),
					           lo, hi);
				r->w[k] = v;
			}
			rc = pgd_run(r, xb, nb, eps, alpha, bk, correct, st, start == 0, err);
		}
		if (rc != MLSEC_OK)
			break;
		/* For robust samples report the last iterate's perturbation. */
		for (size_t i = 0; i < nb; i++)
			if (!bk[i])
				memcpy(r->best + i * r->numel, r->w + i * r->numel,
				       r->numel * sizeof(float));
		memcpy(r->xadv, r->best, nb * r->numel * sizeof(float));
		rc = finish_batch(r, xb, y + s, nb, correct, st, err);
		progress(r, "pgd", (double)(s + nb), (double)n);
	}
	return rc;
}

static float to_w(float x, float lo, float hi)
{
	float t = (x - lo) / (hi - lo) * 2.0f - 1.0f;
	t = clampf(t, -0.999999f, 0.999999f);
	return atanhf(t);
}

mlsec_err adv_cw(adv_runner *r, const float *x, const int64_t *y, size_t n, adv_stats *st,
                 mlsec_error *err)
{
	const mlsec_adv_opts *o = r->o;
	const float lo = o->clip_min, hi = o->clip_max;
	const double b1 = 0.9, b2 = 0.999, kappa = o->cw_confidence;
	const size_t C = r->classes;
	int rounds = o->cw_binary_search > 0 ? o->cw_binary_search : 1;
	unsigned char *correct = r->done;
	for (size_t s = 0; s < n; s += r->batch) {
		if (cancelled(r))
			return mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
		size_t nb = n - s < r->batch ? n - s : r->batch;
		const float *xb = x + s * r->numel;
		mlsec_err rc = clean_batch(r, xb, y + s, nb, correct, err);
		if (rc != MLSEC_OK)
			return rc;
		load_labels(r, y + s, nb);
		memcpy(r->best, xb, nb * r->numel * sizeof(float));
		for (size_t i = 0; i < r->batch; i++) {
			r->c[i] = o->cw_c > 0 ? o->cw_c : 1.0;
			r->lo[i] = 0;
			r->hi[i] = 1e10;
			r->best_l2[i] = INFINITY;
		}
		for (int round = 0; round < rounds; round++) {
			unsigned char succeeded[MLSEC_ADV_MAX_BATCH] = {0};
			for (size_t k = 0; k < nb * r->numel; k++) {
				r->w[k] = to_w(xb[k], lo, hi);
				r->m[k] = r->v[k] = 0;
			}
			double p1 = 1, p2 = 1;
			for (int step = 0; step < o->cw_steps; step++) {
				/* gx holds tanh(w) for the update below (one tanh per element). */
				for (size_t k = 0; k < nb * r->numel; k++) {
					float t = tanhf(r->w[k]);
					r->gx[k] = t;
					r->xadv[k] = (t + 1.0f) * 0.5f * (hi - lo) + lo;
				}
				load_input(r, r->xadv, nb);
				if ((rc = mlsec_tensor_graph_forward(r->g, err)) != MLSEC_OK)
					return rc;
				const float *z = mlsec_tensor_graph_output(r->g, 0);
				memset(r->dout, 0, r->batch * C * sizeof(float));
				for (size_t i = 0; i < nb; i++) {
					if (!correct[i])
						continue;
					const float *zi = z + i * C;
					size_t yi = (size_t)r->labels[i], jmax = yi == 0 ? 1 : 0;
					for (size_t k = 0; k < C; k++)
						if (k != yi && zi[k] > zi[jmax])
							jmax = k;
					double margin = (double)zi[yi] - (double)zi[jmax];
					if (margin < 0 && isfinite(margin)) {
						/* misclassified: keep the smallest L2 */
						double l2 = 0;
						for (size_t k = i * r->numel;
						     k < (i + 1) * r->numel; k++) {
							double d =
							        (double)r->xadv[k] - (double)xb[k];
							l2 += d * d;
						}
						if (l2 < r->best_l2[i] * r->best_l2[i] ||
						    !isfinite(r->best_l2[i])) {
							r->best_l2[i] = sqrt(l2);
							memcpy(r->best + i * r->numel,
							       r->xadv + i * r->numel,
							       r->numel * sizeof(float));
						}
						succeeded[i] = 1;
					}
					if (margin > -kappa) {
						r->dout[i * C + yi] = (float)r->c[i];
						r->dout[i * C + jmax] = (float)-r->c[i];
					}
				}
				const float *dout[1] = {r->dout};
				if ((rc = mlsec_tensor_graph_backward(r->g, dout, err)) != MLSEC_OK)
					return rc;
				st->steps_run++;
				if (round == 0 && step == 0)
					check_grad(r, nb, correct, st);
				const float *g = mlsec_tensor_graph_input_grad(r->g, 0);
				p1 *= b1;
				p2 *= b2;
				/* Adam with the bias corrections folded into two scalars. */
				const float fb1 = (float)b1, fb2 = (float)b2;
				const float lr_t = (float)(o->cw_lr / (1 - p1));
				const float vscale = (float)(1.0 / sqrt(1 - p2));
				const float half_range = 0.5f * (hi - lo);
				for (size_t i = 0; i < nb; i++) {
					if (!correct[i])
						continue;
					for (size_t k = i * r->numel; k < (i + 1) * r->numel; k++) {
						float t = r->gx[k];
						float gxk = 2.0f * (r->xadv[k] - xb[k]) + g[k];
						float gw = gxk * (1.0f - t * t) * half_range;
						if (!isfinite(gw))
							continue;
						r->m[k] = fb1 * r->m[k] + (1 - fb1) * gw;
						r->v[k] = fb2 * r->v[k] + (1 - fb2) * gw * gw;
						r->w[k] -= lr_t * r->m[k] /
						           (sqrtf(r->v[k]) * vscale + 1e-8f);
					}
				}
			}
			/* Binary search on c per sample. */
			for (size_t i = 0; i < nb; i++) {
				int ok = succeeded[i];
				if (ok) {
					r->hi[i] = r->c[i] < r->hi[i] ? r->c[i] : r->hi[i];
					r->c[i] = (r->lo[i] + r->hi[i]) / 2;
				} else {
					r->lo[i] = r->c[i] > r->lo[i] ? r->c[i] : r->lo[i];
					r->c[i] = r->hi[i] < 1e9 ? (r->lo[i] + r->hi[i]) / 2
					                         : r->c[i] * 10;
				}
			}
			progress(r, "cw", (double)s + (double)nb * (round + 1) / rounds, (double)n);
		}
		memcpy(r->xadv, r->best, nb * r->numel * sizeof(float));
		if ((rc = finish_batch(r, xb, y + s, nb, correct, st, err)) != MLSEC_OK)
			return rc;
	}
	return MLSEC_OK;
}
