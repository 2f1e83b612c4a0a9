/*
 * detector.c - the streaming poison detector.
 *
 * Records land in a ring of `window` step slots (rank x metric values).
 * A step is evaluated once every expected worker reported, or once the
 * highest step seen is `window` steps past it; steps are evaluated strictly
 * in order so each worker's CUSUM sees its own series in time order.
 *
 * Evaluation of one step, per metric: every worker's value is compared
 * with the median of the other workers (leave-one-out, so a poisoned
 * worker never pulls its own reference), the deviation goes into a pooled
 * ring of |deviation| samples whose median (x1.4826, the MAD) is the scale,
 * and z = deviation / scale drives a spike rule on |z| and a two-sided
 * CUSUM on z clipped to +-Z_CLIP (so one spike cannot also trip the CUSUM
 * and heavy tails do not shorten the in-control run length).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "poison_internal.h"

static const char *const metric_names[MLSEC_POISON_M__COUNT] = {
        "global_l2",
        "global_linf",
        "std",
        "mean",
};

const char *mlsec_poison_metric_name(mlsec_poison_metric m)
{
	return (unsigned)m < MLSEC_POISON_M__COUNT ? metric_names[m] : "unknown";
}

static const char *const rule_names[MLSEC_POISON_EV__COUNT] = {
        "POISON-CUSUM-DRIFT",    "POISON-SPIKE",     "POISON-WORKER-SILENT",
        "POISON-WORKER-MISSING", "POISON-NONFINITE",
};

const char *mlsec_poison_event_rule(mlsec_poison_event_kind k)
{
	return (unsigned)k < MLSEC_POISON_EV__COUNT ? rule_names[k] : "POISON-UNKNOWN";
}

int mlsec_poison_event_is_alarm(mlsec_poison_event_kind k)
{
	return k == MLSEC_POISON_EV_CUSUM || k == MLSEC_POISON_EV_SPIKE;
}

void mlsec_poison_config_init(mlsec_poison_config *c)
{
	memset(c, 0, sizeof *c);
	c->spike_z = MLSEC_POISON_DEFAULT_SPIKE_Z;
	c->cusum_h = MLSEC_POISON_DEFAULT_CUSUM_H;
	c->cusum_k = MLSEC_POISON_DEFAULT_CUSUM_K;
	c->window = MLSEC_POISON_DEFAULT_WINDOW;
	c->warmup = MLSEC_POISON_DEFAULT_WARMUP;
	c->silent_steps = MLSEC_POISON_DEFAULT_SILENT;
}

mlsec_err mlsec_poison_config_check(const mlsec_poison_config *c, mlsec_error *err)
{
	if (!(c->spike_z > 0 && c->spike_z <= 1e6))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "threshold must be in (0, 1e6]");
	if (!(c->cusum_h > 0 && c->cusum_h <= 1e6))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "cusum-threshold must be in (0, 1e6]");
	if (!(c->cusum_k >= 0 && c->cusum_k <= 100))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "cusum-drift must be in [0, 100]");
	if (c->window < 1 || c->window > MLSEC_POISON_MAX_WINDOW)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "window must be in [1, %d]",
		                       MLSEC_POISON_MAX_WINDOW);
	if (c->expected_workers > MLSEC_POISON_MAX_RANK + 1)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "expected-workers must be <= %d",
		                       MLSEC_POISON_MAX_RANK + 1);
	if (c->warmup > 1000000)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "warmup must be <= 1000000");
	if (c->silent_steps < 1 || c->silent_steps > 1000000000)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "silent-steps must be in [1, 1e9]");
	return MLSEC_OK;
}

static mlsec_err opt_num(const json_t *o, const char *name, double lo, double hi, double *out,
                         mlsec_error *err)
{
	json_t *v = json_object_get(o, name);
	if (!v)
		return MLSEC_OK;
	if (json_is_string(v)) {
		char *end;
		double d = strtod(json_string_value(v), &end);
		if (end == json_string_value(v) || *end)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "option %s: not a number", name);
		*out = d;
	} else if (json_is_number(v)) {
		*out = json_number_value(v);
	} else {
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "option %s: not a number", name);
	}
	if (!(*out >= lo && *out <= hi))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "option %s: out of range", name);
	return MLSEC_OK;
}

mlsec_err mlsec_poison_config_from_options(mlsec_poison_config *c, const json_t *options,
                                           mlsec_error *err)
{
	if (!options)
		return mlsec_poison_config_check(c, err);
	if (!json_is_object(options))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "options must be an object");
	double v;
	mlsec_err rc;
#define NUM(name, field, lo, hi)                                                                   \
	v = (double)c->field;                                                                      \
	if ((rc = opt_num(options, name, lo, hi, &v, err)))                                        \
		return rc;                                                                         \
	c->field = v
	NUM("threshold", spike_z, 0, 1e6);
	NUM("cusum-threshold", cusum_h, 0, 1e6);
	NUM("cusum-drift", cusum_k, 0, 100);
#undef NUM
#define UNUM(name, field, hi)                                                                      \
	v = (double)c->field;                                                                      \
	if ((rc = opt_num(options, name, 0, hi, &v, err)))                                         \
		return rc;                                                                         \
	if (v != floor(v))                                                                         \
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "option %s: not an integer",    \
		                       name);                                                      \
	c->field = (unsigned)v
	UNUM("expected-workers", expected_workers, MLSEC_POISON_MAX_RANK + 1);
	UNUM("window", window, MLSEC_POISON_MAX_WINDOW);
	UNUM("warmup", warmup, 1000000);
	UNUM("silent-steps", silent_steps, 1e9);
#undef UNUM
	return mlsec_poison_config_check(c, err);
}

/* ---- construction ---- */

mlsec_poison_detector *mlsec_poison_detector_new(const mlsec_poison_config *cfg,
                                                 mlsec_poison_event_fn on_event, void *ctx,
                                                 mlsec_error *err)
{
	if (mlsec_poison_config_check(cfg, err))
		return NULL;
	mlsec_poison_detector *d = mlsec_calloc(1, sizeof *d);
	if (!d)
		goto nomem;
	d->cfg = *cfg;
	d->on_event = on_event;
	d->ev_ctx = ctx;
	d->next_step = 0;
	d->max_step = -1;
	d->first_seen = -1;
	d->first_eval = -1;
	d->last_eval = -1;
	d->slot_step = mlsec_malloc(cfg->window * sizeof *d->slot_step);
	d->slot_count = mlsec_calloc(cfg->window, sizeof *d->slot_count);
	if (!d->slot_step || !d->slot_count)
		goto nomem;
	for (unsigned i = 0; i < cfg->window; i++)
		d->slot_step[i] = -1;
	for (int m = 0; m < MLSEC_POISON_M__COUNT; m++)
		if (!(d->pool[m].v = mlsec_malloc(POISON_POOL * sizeof(double))))
			goto nomem;
	if (!(d->pool_tmp = mlsec_malloc(POISON_POOL * sizeof(double))))
		goto nomem;
	return d;
nomem:
	mlsec_poison_detector_free(d);
	mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	return NULL;
}

void mlsec_poison_detector_free(mlsec_poison_detector *d)
{
	if (!d)
		return;
	mlsec_free(d->slot_step);
	mlsec_free(d->slot_count);
	mlsec_free(d->vals);
	mlsec_free(d->present);
	mlsec_free(d->workers);
	mlsec_free(d->known);
	mlsec_free(d->scratch_z);
	mlsec_free(d->scratch_c);
	mlsec_free(d->scratch_p);
	mlsec_free(d->sorted);
	for (int m = 0; m < MLSEC_POISON_M__COUNT; m++)
		mlsec_free(d->pool[m].v);
	mlsec_free(d->pool_tmp);
	mlsec_free(d);
}

void mlsec_poison_detector_set_step_fn(mlsec_poison_detector *d, mlsec_poison_step_fn fn, void *ctx)
{
	d->on_step = fn;
	d->step_ctx = ctx;
}

const mlsec_poison_config *mlsec_poison_detector_config(const mlsec_poison_detector *d)
{
	return &d->cfg;
}

void mlsec_poison_detector_stats(const mlsec_poison_detector *d, mlsec_poison_stats *out)
{
	*out = d->st;
	out->first_step = d->first_eval;
	out->last_step = d->last_eval;
	out->workers = d->nknown;
}

/* Grows per-rank storage so that rank r fits. Keeps the slot contents. */
mlsec_err poison_grow_ranks(mlsec_poison_detector *d, size_t need)
{
	if (need <= d->rank_cap)
		return MLSEC_OK;
	size_t cap = d->rank_cap ? d->rank_cap : 8;
	while (cap < need)
		cap *= 2;
	if (cap > MLSEC_POISON_MAX_RANK + 1)
		cap = MLSEC_POISON_MAX_RANK + 1;
	if ((size_t)d->cfg.window * cap > POISON_MAX_CELLS)
		return MLSEC_ERR_LIMIT;
	size_t W = d->cfg.window, M = MLSEC_POISON_M__COUNT;
	double *vals = mlsec_calloc(W * cap * M, sizeof *vals);
	unsigned char *present = mlsec_calloc(W * cap, 1);
	poison_worker *workers = mlsec_reallocarray(d->workers, cap, sizeof *workers);
	if (workers)
		d->workers = workers;
	int64_t *known = mlsec_reallocarray(d->known, cap, sizeof *known);
	if (known)
		d->known = known;
	double *sz = mlsec_reallocarray(d->scratch_z, cap * M, sizeof *sz);
	if (sz)
		d->scratch_z = sz;
	double *sc = mlsec_reallocarray(d->scratch_c, cap, sizeof *sc);
	if (sc)
		d->scratch_c = sc;
	unsigned char *sp = mlsec_reallocarray(d->scratch_p, cap, 1);
	if (sp)
		d->scratch_p = sp;
	poison_pair *sorted = mlsec_reallocarray(d->sorted, cap, sizeof *sorted);
	if (sorted)
		d->sorted = sorted;
	if (!vals || !present || !workers || !known || !sz || !sc || !sp || !sorted) {
		mlsec_free(vals);
		mlsec_free(present);
		return MLSEC_ERR_NOMEM;
	}
	for (size_t s = 0; s < W; s++) {
		if (d->rank_cap) {
			memcpy(vals + s * cap * M, d->vals + s * d->rank_cap * M,
			       d->rank_cap * M * sizeof *vals);
			memcpy(present + s * cap, d->present + s * d->rank_cap, d->rank_cap);
		}
	}
	memset(d->workers + d->rank_cap, 0, (cap - d->rank_cap) * sizeof *d->workers);
	mlsec_free(d->vals);
	mlsec_free(d->present);
	d->vals = vals;
	d->present = present;
	d->rank_cap = cap;
	return MLSEC_OK;
}

static void emit_ex(mlsec_poison_detector *d, mlsec_poison_event_kind kind, int64_t rank,
                    int metric, int64_t onset, int64_t at, double stat, int dir, int isolated)
{
	mlsec_poison_event ev = {
	        .kind = kind,
	        .rank = rank,
	        .metric = (mlsec_poison_metric)metric,
	        .onset_step = onset,
	        .alarm_step = at,
	        .statistic = stat,
	        .direction = dir,
	        .isolated = isolated,
	};
	d->st.events++;
	if (mlsec_poison_event_is_alarm(kind))
		d->st.alarms++;
	if (d->on_event)
		d->on_event(d->ev_ctx, &ev);
}

static void emit(mlsec_poison_detector *d, mlsec_poison_event_kind kind, int64_t rank, int metric,
                 int64_t onset, int64_t at, double stat, int dir)
{
	emit_ex(d, kind, rank, metric, onset, at, stat, dir, 0);
}

/* ---- scale ---- */

static void pool_push(poison_pool *p, double v)
{
	p->v[p->head] = v;
	p->head = (p->head + 1) % POISON_POOL;
	if (p->count < POISON_POOL)
		p->count++;
}

/* k-th smallest of a[0..n-1] (reorders a). Hoare's selection. */
static double select_kth(double *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		double pivot = a[lo + (hi - lo) / 2];
		size_t i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				double t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return a[k];
}

static void refresh_scale(mlsec_poison_detector *d, int m)
{
	poison_pool *p = &d->pool[m];
	if (!p->count)
		return;
	memcpy(d->pool_tmp, p->v, p->count * sizeof *p->v);
	size_t n = p->count;
	double med = select_kth(d->pool_tmp, n, n / 2);
	if (n % 2 == 0) {
		/* the lower middle is the max of the lower half */
		double lo = d->pool_tmp[0];
		for (size_t i = 1; i < n / 2; i++)
			if (d->pool_tmp[i] > lo)
				lo = d->pool_tmp[i];
		med = 0.5 * (med + lo);
	}
	double s = POISON_MAD_K * med;
	double floor_ = m == MLSEC_POISON_M_MEAN ? POISON_SCALE_FLOOR_MEAN : POISON_SCALE_FLOOR_LOG;
	d->scale[m] = s > floor_ ? s : floor_;
}

/* ---- evaluation ---- */

static int pair_cmp(const void *a, const void *b)
{
	double x = ((const poison_pair *)a)->x, y = ((const poison_pair *)b)->x;
	return (x > y) - (x < y);
}

static void sort_pairs(poison_pair *a, size_t n)
{
	if (n > 24) {
		qsort(a, n, sizeof *a, pair_cmp);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		poison_pair t = a[i];
		size_t j = i;
		while (j > 0 && a[j - 1].x > t.x) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = t;
	}
}

/* Median of the sorted values without position p. n >= 3. */
static double loo_median(const poison_pair *a, size_t n, size_t p)
{
	size_t len = n - 1;
#define AT(j) a[(j) < p ? (j) : (j) + 1].x
	if (len % 2)
		return AT(len / 2);
	return 0.5 * (AT(len / 2 - 1) + AT(len / 2));
#undef AT
}

static double metric_value(const double *v, int m, int *ok)
{
	double x = v[m];
	if (m == MLSEC_POISON_M_MEAN) {
		*ok = isfinite(x);
		return x;
	}
	*ok = x > 0 && isfinite(x);
	return *ok ? log(x) : 0;
}

static void cusum_side(mlsec_poison_detector *d, poison_worker *w, int64_t rank, int m, int side,
                       double inc, int64_t step)
{
	double *s = side > 0 ? &w->cpos[m] : &w->cneg[m];
	int64_t *start = side > 0 ? &w->spos[m] : &w->sneg[m];
	unsigned char *latched = side > 0 ? &w->lpos[m] : &w->lneg[m];
	double prev = *s;
	double next = prev + inc - d->cfg.cusum_k;
	if (next <= 0) {
		*s = 0;
		*latched = 0; /* re-armed: the next excursion is a new alarm */
		return;
	}
	if (prev == 0)
		*start = step;
	*s = next;
	if (next > d->cfg.cusum_h && !*latched) {
		*latched = 1;
		emit(d, MLSEC_POISON_EV_CUSUM, rank, m, *start, step, next, side);
	}
}

/* Evaluates the slot holding `step` and clears it. */
static void evaluate_slot(mlsec_poison_detector *d, size_t slot, int64_t step)
{
	const size_t M = MLSEC_POISON_M__COUNT, cap = d->rank_cap;
	const double *vals = d->vals + slot * cap * M;
	unsigned char *present = d->present + slot * cap;
	int decide = d->evaluated >= d->cfg.warmup;
	int thin = 1;
	double med_std = NAN;

	for (size_t r = 0; r < cap; r++)
		d->scratch_z[r * M + 0] = d->scratch_z[r * M + 1] = d->scratch_z[r * M + 2] =
		        d->scratch_z[r * M + 3] = NAN;

	for (size_t m = 0; m < M; m++) {
		/* Valid values at this step: a worker that goes dark while its
		 * peers do not is isolated (and leaves every comparison). */
		size_t nvalid = 0;
		for (size_t k = 0; k < d->nknown; k++) {
			int64_t r = d->known[k];
			int ok;
			if (present[r]) {
				metric_value(vals + (size_t)r * M, (int)m, &ok);
				nvalid += (size_t)ok;
			}
		}
		size_t n = 0;
		for (size_t k = 0; k < d->nknown; k++) {
			int64_t r = d->known[k];
			if (!present[r])
				continue;
			int ok;
			double x = metric_value(vals + (size_t)r * M, (int)m, &ok);
			poison_worker *w = &d->workers[r];
			if (!ok) {
				/* Latched: 1 reported with the whole run dark, 2 reported
				 * isolated. Going isolated later is reported again. */
				int isolated = nvalid >= POISON_MIN_WORKERS - 1;
				if (!w->nonfinite[m] || (isolated && w->nonfinite[m] == 1)) {
					w->nonfinite[m] = isolated ? 2 : 1;
					emit_ex(d, MLSEC_POISON_EV_NONFINITE, r, (int)m, step, step,
					        vals[(size_t)r * M + m], 0, isolated);
				}
				continue;
			}
			w->nonfinite[m] = 0;
			d->sorted[n].x = x;
			d->sorted[n].rank = r;
			n++;
		}
		if (n < POISON_MIN_WORKERS)
			continue;
		sort_pairs(d->sorted, n);
		if (m == MLSEC_POISON_M_STD) {
			/* the median std of this step, the unit of the mean metric */
			med_std = exp(n % 2 ? d->sorted[n / 2].x
			                    : 0.5 * (d->sorted[n / 2 - 1].x + d->sorted[n / 2].x));
		} else if (m == MLSEC_POISON_M_MEAN) {
			/* Raw means scale with the gradient magnitude, which moves
			 * with warm-up and decay; in units of the step's median std
			 * they are dimensionless and the run's dynamics cancel. */
			if (!(med_std > 0) || !isfinite(med_std))
				continue;
			for (size_t p = 0; p < n; p++)
				d->sorted[p].x /= med_std;
		}
		thin = 0;
		double scale = d->scale[m];
		for (size_t p = 0; p < n; p++) {
			double dev = d->sorted[p].x - loo_median(d->sorted, n, p);
			pool_push(&d->pool[m], fabs(dev));
			if (decide && scale > 0)
				d->scratch_z[(size_t)d->sorted[p].rank * M + m] = dev / scale;
		}
	}

	if (thin) {
		d->st.steps_thin++;
	} else {
		d->evaluated++;
		/* Re-estimate the scale each step while warming up, then every
		 * POISON_SCALE_REFRESH steps (a selection over the pool). */
		if (d->evaluated <= d->cfg.warmup || d->evaluated % POISON_SCALE_REFRESH == 0)
			for (size_t m = 0; m < M; m++)
				refresh_scale(d, (int)m);
	}

	for (size_t k = 0; k < d->nknown; k++) {
		int64_t r = d->known[k];
		poison_worker *w = &d->workers[r];
		double cmax = 0;
		for (size_t m = 0; m < M && present[r]; m++) {
			double z = d->scratch_z[(size_t)r * M + m];
			if (isnan(z))
				continue;
			/* A spike on a side whose CUSUM already alarmed adds nothing:
			 * one sustained shift is reported once, not at every step. */
			int sustained = z > 0 ? w->lpos[m] : w->lneg[m];
			if (fabs(z) > d->cfg.spike_z) {
				if (!w->spike[m] && !sustained) {
					w->spike[m] = 1;
					emit(d, MLSEC_POISON_EV_SPIKE, r, (int)m, step, step, z,
					     z > 0 ? 1 : -1);
				}
			} else {
				w->spike[m] = 0;
			}
			double zc = z > POISON_Z_CLIP ? POISON_Z_CLIP
			                              : (z < -POISON_Z_CLIP ? -POISON_Z_CLIP : z);
			cusum_side(d, w, r, (int)m, 1, zc, step);
			cusum_side(d, w, r, (int)m, -1, -zc, step);
		}
		for (size_t m = 0; m < M; m++) {
			if (w->cpos[m] > cmax)
				cmax = w->cpos[m];
			if (w->cneg[m] > cmax)
				cmax = w->cneg[m];
		}
		d->scratch_c[r] = cmax;
		if (!present[r] && !w->silent &&
		    step - w->last_seen >= (int64_t)d->cfg.silent_steps) {
			w->silent = 1;
			emit(d, MLSEC_POISON_EV_SILENT, r, 0, w->last_seen, step,
			     (double)(step - w->last_seen), 0);
		}
	}

	if (!thin) {
		d->st.steps++;
		if (d->first_eval < 0)
			d->first_eval = step;
		d->last_eval = step;
		if (d->on_step) {
			for (size_t r = 0; r < cap; r++)
				d->scratch_p[r] = present[r];
			d->on_step(d->step_ctx, step, cap, d->scratch_p, d->scratch_z,
			           d->scratch_c);
		}
	}
	memset(present, 0, cap);
	d->slot_step[slot] = -1;
	d->slot_count[slot] = 0;
}

static unsigned expected_now(const mlsec_poison_detector *d)
{
	if (d->cfg.expected_workers)
		return d->cfg.expected_workers;
	/* Learning who the workers are: until a full window of steps went by,
	 * a step closes by the window only, so that workers which start a
	 * little later are not taken for absent. */
	if (d->first_seen < 0 || d->max_step - d->first_seen < (int64_t)d->cfg.window)
		return 0;
	unsigned n = 0;
	for (size_t k = 0; k < d->nknown; k++)
		n += !d->workers[d->known[k]].silent;
	return n;
}

/* Evaluates steps below `upto` (exclusive) in order; at most `window`
 * slots can be occupied, so gaps are skipped in O(window). */
static void close_below(mlsec_poison_detector *d, int64_t upto)
{
	const int64_t W = d->cfg.window;
	int64_t stop = upto;
	if (stop > d->next_step + W)
		stop = d->next_step + W;
	for (int64_t s = d->next_step; s < stop; s++) {
		size_t slot = (size_t)(s % W);
		if (d->slot_step[slot] == s)
			evaluate_slot(d, slot, s);
	}
	if (upto > d->next_step)
		d->next_step = upto;
}

static void close_complete(mlsec_poison_detector *d)
{
	const int64_t W = d->cfg.window;
	unsigned want = expected_now(d);
	if (!want)
		return;
	for (;;) {
		size_t slot = (size_t)(d->next_step % W);
		if (d->slot_step[slot] != d->next_step || d->slot_count[slot] < want)
			return;
		evaluate_slot(d, slot, d->next_step);
		d->next_step++;
	}
}

static void add_known(mlsec_poison_detector *d, int64_t rank)
{
	/* keep known[] sorted so iteration order (and event order) is by rank */
	size_t i = d->nknown;
	while (i > 0 && d->known[i - 1] > rank) {
		d->known[i] = d->known[i - 1];
		i--;
	}
	d->known[i] = rank;
	d->nknown++;
	d->workers[rank].known = 1;
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The highest step that more than half of the known workers have sent. */
static int64_t majority_step(mlsec_poison_detector *d)
{
	double *c = d->scratch_c; /* rank_cap entries, free between evaluations */
	for (size_t k = 0; k < d->nknown; k++)
		c[k] = (double)d->workers[d->known[k]].claim; /* exact: steps < 2^53 */
	qsort(c, d->nknown, sizeof *c, cmp_desc);
	return (int64_t)c[d->nknown / 2];
}

mlsec_err mlsec_poison_detector_feed(mlsec_poison_detector *d, const mlsec_poison_record *r,
                                     mlsec_error *err)
{
	if (r->rank < 0 || r->rank > MLSEC_POISON_MAX_RANK || r->step < 0 ||
	    r->step > MLSEC_POISON_MAX_STEP) {
		d->st.rejected++;
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "rank or step out of range");
	}
	const int64_t W = d->cfg.window;
	const size_t M = MLSEC_POISON_M__COUNT;
	if (r->step < d->next_step) {
		d->st.late++;
		return MLSEC_OK;
	}
	if ((size_t)r->rank >= d->rank_cap) {
		mlsec_err rc = poison_grow_ranks(d, (size_t)r->rank + 1);
		if (rc) {
			d->st.rejected++;
			return mlsec_error_set(err, rc, "no room for rank %lld",
			                       (long long)r->rank);
		}
	}
	if (!d->workers[r->rank].known) {
		add_known(d, r->rank);
		d->workers[r->rank].claim = -1;
	}
	if (r->step > d->workers[r->rank].claim)
		d->workers[r->rank].claim = r->step;
	if (r->step >= d->next_step + W) {
		/* A record past the open window closes every step below it. A
		 * jump far beyond both the accepted records and where most
		 * workers are (a buggy step counter, a stray datagram) must not
		 * do that alone: every later record would be late and nothing
		 * checked again. A real jump is followed once most workers made it. */
		if (d->max_step >= 0 && r->step > d->max_step + W &&
		    r->step > majority_step(d) + W) {
			d->st.rejected++;
			return MLSEC_OK;
		}
		close_below(d, r->step - W + 1);
	}
	if (d->first_seen < 0 || r->step < d->first_seen)
		d->first_seen = r->step;
	if (r->step < d->max_step)
		d->st.out_of_order++;
	else
		d->max_step = r->step;

	size_t slot = (size_t)(r->step % W);
	if (d->slot_step[slot] != r->step) {
		d->slot_step[slot] = r->step;
		d->slot_count[slot] = 0;
	}
	unsigned char *pres = d->present + slot * d->rank_cap + r->rank;
	if (*pres) {
		d->st.duplicates++;
		return MLSEC_OK;
	}
	*pres = 1;
	d->slot_count[slot]++;
	double *v = d->vals + (slot * d->rank_cap + (size_t)r->rank) * M;
	v[MLSEC_POISON_M_L2] = r->global_l2;
	v[MLSEC_POISON_M_LINF] = r->global_linf;
	v[MLSEC_POISON_M_STD] = r->std;
	v[MLSEC_POISON_M_MEAN] = r->mean;
	poison_worker *w = &d->workers[r->rank];
	if (r->step > w->last_seen || !w->seen_any)
		w->last_seen = r->step;
	w->seen_any = 1;
	w->silent = 0;
	d->st.records++;
	close_complete(d);
	return MLSEC_OK;
}

mlsec_err mlsec_poison_detector_flush(mlsec_poison_detector *d, mlsec_error *err)
{
	(void)err;
	if (d->max_step >= d->next_step)
		close_below(d, d->max_step + 1);
	/* A worker that stopped well before the end is silent even if the run
	 * ended before silent_steps more steps were evaluated for it. */
	for (size_t k = 0; k < d->nknown; k++) {
		poison_worker *w = &d->workers[d->known[k]];
		if (!w->silent && d->last_eval - w->last_seen >= (int64_t)d->cfg.silent_steps) {
			w->silent = 1;
			emit(d, MLSEC_POISON_EV_SILENT, d->known[k], 0, w->last_seen, d->last_eval,
			     (double)(d->last_eval - w->last_seen), 0);
		}
	}
	if (d->cfg.expected_workers && !d->missing_reported) {
		d->missing_reported = 1;
		for (int64_t r = 0; r < (int64_t)d->cfg.expected_workers; r++)
			if ((size_t)r >= d->rank_cap || !d->workers[r].known)
				emit(d, MLSEC_POISON_EV_MISSING, r, 0, -1, d->last_eval, 0, 0);
	}
	return MLSEC_OK;
}

json_t *mlsec_poison_event_to_json(const mlsec_poison_event *ev)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = 0;
	bad |= json_object_set_new(o, "rule", json_string(mlsec_poison_event_rule(ev->kind)));
	bad |= json_object_set_new(o, "rank", json_integer(ev->rank));
	if (ev->kind == MLSEC_POISON_EV_CUSUM || ev->kind == MLSEC_POISON_EV_SPIKE ||
	    ev->kind == MLSEC_POISON_EV_NONFINITE)
		bad |= json_object_set_new(o, "metric",
		                           json_string(mlsec_poison_metric_name(ev->metric)));
	bad |= json_object_set_new(o, "onset_step", json_integer(ev->onset_step));
	bad |= json_object_set_new(o, "alarm_step", json_integer(ev->alarm_step));
	bad |= json_object_set_new(
	        o, "statistic", isfinite(ev->statistic) ? json_real(ev->statistic) : json_null());
	bad |= json_object_set_new(o, "direction",
	                           json_string(ev->direction > 0   ? "up"
	                                       : ev->direction < 0 ? "down"
	                                                           : "none"));
	if (ev->kind == MLSEC_POISON_EV_NONFINITE)
		bad |= json_object_set_new(o, "isolated", json_boolean(ev->isolated));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
