/*
 * state.c - the detector's state to and from JSON, so a service that
 * keeps it in Redis resumes after a restart exactly where it stopped.
 * The input of from_json is treated as untrusted: every field is checked.
 */
#include <math.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "poison_internal.h"

#define STATE_VERSION 1
#define M MLSEC_POISON_M__COUNT

static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *dvec(const double *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, num(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *ivec(const int64_t *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *bvec(const unsigned char *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* Appends, stealing v; returns nonzero on failure. */
static int put(json_t *o, const char *k, json_t *v)
{
	return !v || json_object_set_new(o, k, v);
}

json_t *mlsec_poison_detector_to_json(const mlsec_poison_detector *d)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = 0;
	const mlsec_poison_config *c = &d->cfg;
	bad |= put(o, "version", json_integer(STATE_VERSION));
	bad |= put(o, "config",
	           json_pack("{s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "threshold", c->spike_z,
	                     "cusum_threshold", c->cusum_h, "cusum_drift", c->cusum_k,
	                     "expected_workers", (json_int_t)c->expected_workers, "window",
	                     (json_int_t)c->window, "warmup", (json_int_t)c->warmup, "silent_steps",
	                     (json_int_t)c->silent_steps));
	bad |= put(o, "next_step", json_integer(d->next_step));
	bad |= put(o, "max_step", json_integer(d->max_step));
	bad |= put(o, "first_seen", json_integer(d->first_seen));
	bad |= put(o, "first_eval", json_integer(d->first_eval));
	bad |= put(o, "last_eval", json_integer(d->last_eval));
	bad |= put(o, "evaluated", json_integer((json_int_t)d->evaluated));
	bad |= put(o, "missing_reported", json_integer(d->missing_reported));
	const mlsec_poison_stats *s = &d->st;
	bad |= put(o, "stats",
	           json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "records",
	                     (json_int_t)s->records, "steps", (json_int_t)s->steps, "steps_thin",
	                     (json_int_t)s->steps_thin, "duplicates", (json_int_t)s->duplicates,
	                     "late", (json_int_t)s->late, "out_of_order",
	                     (json_int_t)s->out_of_order, "rejected", (json_int_t)s->rejected,
	                     "alarms", (json_int_t)s->alarms, "events", (json_int_t)s->events));
	bad |= put(o, "scale", dvec(d->scale, M));
	json_t *pools = json_array();
	bad |= put(o, "pools", pools);
	for (size_t m = 0; !bad && m < M; m++) {
		const poison_pool *p = &d->pool[m];
		json_t *a = json_array();
		bad |= !a || json_array_append_new(pools, a);
		/* oldest first */
		size_t start = p->count < POISON_POOL ? 0 : p->head;
		for (size_t i = 0; !bad && i < p->count; i++)
			bad |= json_array_append_new(a, num(p->v[(start + i) % POISON_POOL]));
	}
	json_t *ws = json_array();
	bad |= put(o, "workers", ws);
	for (size_t k = 0; !bad && k < d->nknown; k++) {
		const poison_worker *w = &d->workers[d->known[k]];
		json_t *wj = json_object();
		bad |= !wj || json_array_append_new(ws, wj);
		if (bad)
			break;
		bad |= put(wj, "rank", json_integer(d->known[k]));
		bad |= put(wj, "last_seen", json_integer(w->last_seen));
		bad |= put(wj, "silent", json_integer(w->silent));
		bad |= put(wj, "nonfinite", bvec(w->nonfinite, M));
		bad |= put(wj, "spike", bvec(w->spike, M));
		bad |= put(wj, "lpos", bvec(w->lpos, M));
		bad |= put(wj, "lneg", bvec(w->lneg, M));
		bad |= put(wj, "cpos", dvec(w->cpos, M));
		bad |= put(wj, "cneg", dvec(w->cneg, M));
		bad |= put(wj, "spos", ivec(w->spos, M));
		bad |= put(wj, "sneg", ivec(w->sneg, M));
	}
	json_t *pend = json_array();
	bad |= put(o, "pending", pend);
	for (size_t slot = 0; !bad && slot < d->cfg.window; slot++) {
		if (d->slot_step[slot] < 0)
			continue;
		json_t *sj = json_object(), *recs = json_array();
		bad |= !sj || json_array_append_new(pend, sj);
		bad |= put(sj, "step", json_integer(d->slot_step[slot]));
		bad |= put(sj, "records", recs);
		for (size_t r = 0; !bad && r < d->rank_cap; r++) {
			if (!d->present[slot * d->rank_cap + r])
				continue;
			const double *v = d->vals + (slot * d->rank_cap + r) * M;
			json_t *rj = json_array();
			bad |= !rj || json_array_append_new(recs, rj);
			bad |= !rj || json_array_append_new(rj, json_integer((json_int_t)r));
			for (size_t m = 0; !bad && m < M; m++)
				bad |= json_array_append_new(rj, num(v[m]));
		}
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- restore ---- */

typedef struct rd {
	mlsec_error *err;
	const char *where;
	int bad;
} rd;

static void bad_field(rd *r, const char *field)
{
	if (!r->bad)
		mlsec_error_set(r->err, MLSEC_ERR_PARSE, "poison state: bad field %s%s%s",
		                r->where ? r->where : "", r->where ? "." : "", field);
	r->bad = 1;
}

static int64_t get_int(rd *r, const json_t *o, const char *k, int64_t lo, int64_t hi)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		bad_field(r, k);
		return lo;
	}
	return json_integer_value(v);
}

static double get_num(rd *r, const json_t *v, const char *k, int allow_null)
{
	if (allow_null && json_is_null(v))
		return NAN;
	if (!json_is_number(v) || !isfinite(json_number_value(v))) {
		bad_field(r, k);
		return 0;
	}
	return json_number_value(v);
}

static const json_t *get_arr(rd *r, const json_t *o, const char *k, size_t n)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_array(v) || (n && json_array_size(v) != n)) {
		bad_field(r, k);
		return NULL;
	}
	return v;
}

static void get_dvec(rd *r, const json_t *o, const char *k, double *out, double lo)
{
	const json_t *a = get_arr(r, o, k, M);
	for (size_t i = 0; a && i < M; i++) {
		out[i] = get_num(r, json_array_get(a, i), k, 0);
		if (out[i] < lo)
			bad_field(r, k);
	}
}

static void get_ivec(rd *r, const json_t *o, const char *k, int64_t *out)
{
	const json_t *a = get_arr(r, o, k, M);
	for (size_t i = 0; a && i < M; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) < -1 ||
		    json_integer_value(v) > MLSEC_POISON_MAX_STEP)
			bad_field(r, k);
		else
			out[i] = json_integer_value(v);
	}
}

static void get_bvec(rd *r, const json_t *o, const char *k, unsigned char *out)
{
	const json_t *a = get_arr(r, o, k, M);
	for (size_t i = 0; a && i < M; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1)
			bad_field(r, k);
		else
			out[i] = (unsigned char)json_integer_value(v);
	}
}

mlsec_poison_detector *mlsec_poison_detector_from_json(const json_t *state,
                                                       mlsec_poison_event_fn on_event, void *ctx,
                                                       mlsec_error *err)
{
	rd r = {err, NULL, 0};
	if (!json_is_object(state) ||
	    get_int(&r, state, "version", STATE_VERSION, STATE_VERSION) != STATE_VERSION || r.bad) {
		mlsec_error_set(err, MLSEC_ERR_PARSE, "poison state: not a version %d state",
		                STATE_VERSION);
		return NULL;
	}
	const json_t *cj = json_object_get(state, "config");
	mlsec_poison_config cfg;
	mlsec_poison_config_init(&cfg);
	r.where = "config";
	if (!json_is_object(cj)) {
		bad_field(&r, "");
		return NULL;
	}
	cfg.spike_z = get_num(&r, json_object_get(cj, "threshold"), "threshold", 0);
	cfg.cusum_h = get_num(&r, json_object_get(cj, "cusum_threshold"), "cusum_threshold", 0);
	cfg.cusum_k = get_num(&r, json_object_get(cj, "cusum_drift"), "cusum_drift", 0);
	cfg.expected_workers =
	        (unsigned)get_int(&r, cj, "expected_workers", 0, MLSEC_POISON_MAX_RANK + 1);
	cfg.window = (unsigned)get_int(&r, cj, "window", 1, MLSEC_POISON_MAX_WINDOW);
	cfg.warmup = (unsigned)get_int(&r, cj, "warmup", 0, 1000000);
	cfg.silent_steps = (unsigned)get_int(&r, cj, "silent_steps", 1, 1000000000);
	if (r.bad)
		return NULL;
	mlsec_poison_detector *d = mlsec_poison_detector_new(&cfg, on_event, ctx, err);
	if (!d)
		return NULL;
	r.where = NULL;
	d->next_step = get_int(&r, state, "next_step", 0, MLSEC_POISON_MAX_STEP + 1);
	d->max_step = get_int(&r, state, "max_step", -1, MLSEC_POISON_MAX_STEP);
	d->first_seen = get_int(&r, state, "first_seen", -1, MLSEC_POISON_MAX_STEP);
	d->first_eval = get_int(&r, state, "first_eval", -1, MLSEC_POISON_MAX_STEP);
	d->last_eval = get_int(&r, state, "last_eval", -1, MLSEC_POISON_MAX_STEP);
	d->evaluated = (uint64_t)get_int(&r, state, "evaluated", 0, INT64_MAX);
	d->missing_reported = (int)get_int(&r, state, "missing_reported", 0, 1);
	const json_t *sj = json_object_get(state, "stats");
	r.where = "stats";
	if (!json_is_object(sj))
		bad_field(&r, "");
	else {
#define S(name) d->st.name = (uint64_t)get_int(&r, sj, #name, 0, INT64_MAX)
		S(records);
		S(steps);
		S(steps_thin);
		S(duplicates);
		S(late);
		S(out_of_order);
		S(rejected);
		S(alarms);
		S(events);
#undef S
	}
	r.where = NULL;
	get_dvec(&r, state, "scale", d->scale, 0);
	const json_t *pools = get_arr(&r, state, "pools", M);
	for (size_t m = 0; pools && m < M; m++) {
		const json_t *a = json_array_get(pools, m);
		if (!json_is_array(a) || json_array_size(a) > POISON_POOL) {
			bad_field(&r, "pools");
			break;
		}
		for (size_t i = 0; i < json_array_size(a); i++) {
			double v = get_num(&r, json_array_get(a, i), "pools", 0);
			if (v < 0)
				bad_field(&r, "pools");
			d->pool[m].v[d->pool[m].head] = v;
			d->pool[m].head = (d->pool[m].head + 1) % POISON_POOL;
			d->pool[m].count++;
		}
	}
	const json_t *ws = get_arr(&r, state, "workers", 0);
	r.where = "workers";
	for (size_t k = 0; ws && !r.bad && k < json_array_size(ws); k++) {
		const json_t *wj = json_array_get(ws, k);
		if (!json_is_object(wj)) {
			bad_field(&r, "[]");
			break;
		}
		int64_t rank = get_int(&r, wj, "rank", 0, MLSEC_POISON_MAX_RANK);
		if (r.bad)
			break;
		if (poison_grow_ranks(d, (size_t)rank + 1)) {
			mlsec_error_set(err, MLSEC_ERR_LIMIT, "poison state: no room for rank");
			r.bad = 1;
			break;
		}
		poison_worker *w = &d->workers[rank];
		if (w->known) {
			bad_field(&r, "rank (duplicate)");
			break;
		}
		d->known[d->nknown++] = rank;
		if (d->nknown > 1 && d->known[d->nknown - 2] > rank) {
			bad_field(&r, "rank (unsorted)");
			break;
		}
		w->known = w->seen_any = 1;
		w->last_seen = get_int(&r, wj, "last_seen", 0, MLSEC_POISON_MAX_STEP);
		w->silent = (unsigned char)get_int(&r, wj, "silent", 0, 1);
		get_bvec(&r, wj, "nonfinite", w->nonfinite);
		get_bvec(&r, wj, "spike", w->spike);
		get_bvec(&r, wj, "lpos", w->lpos);
		get_bvec(&r, wj, "lneg", w->lneg);
		get_dvec(&r, wj, "cpos", w->cpos, 0);
		get_dvec(&r, wj, "cneg", w->cneg, 0);
		get_ivec(&r, wj, "spos", w->spos);
		get_ivec(&r, wj, "sneg", w->sneg);
	}
	r.where = "pending";
	const json_t *pend = r.bad ? NULL : get_arr(&r, state, "pending", 0);
	for (size_t i = 0; pend && !r.bad && i < json_array_size(pend); i++) {
		const json_t *pj = json_array_get(pend, i);
		if (!json_is_object(pj)) {
			bad_field(&r, "[]");
			break;
		}
		int64_t step = get_int(&r, pj, "step", d->next_step, d->next_step + cfg.window - 1);
		const json_t *recs = get_arr(&r, pj, "records", 0);
		if (r.bad)
			break;
		size_t slot = (size_t)(step % cfg.window);
		if (d->slot_step[slot] >= 0) {
			bad_field(&r, "step (duplicate)");
			break;
		}
		d->slot_step[slot] = step;
		for (size_t j = 0; j < json_array_size(recs); j++) {
			const json_t *rj = json_array_get(recs, j);
			json_t *rk = json_array_get(rj, 0);
			if (!json_is_array(rj) || json_array_size(rj) != 1 + M ||
			    !json_is_integer(rk) || json_integer_value(rk) < 0 ||
			    (size_t)json_integer_value(rk) >= d->rank_cap ||
			    !d->workers[json_integer_value(rk)].known) {
				bad_field(&r, "records");
				break;
			}
			size_t rank = (size_t)json_integer_value(rk);
			unsigned char *pres = d->present + slot * d->rank_cap + rank;
			if (*pres) {
				bad_field(&r, "records (duplicate rank)");
				break;
			}
			*pres = 1;
			d->slot_count[slot]++;
			double *v = d->vals + (slot * d->rank_cap + rank) * M;
			for (size_t m = 0; m < M; m++)
				v[m] = get_num(&r, json_array_get(rj, 1 + m), "records", 1);
		}
	}
	if (r.bad) {
		mlsec_poison_detector_free(d);
		return NULL;
	}
	return d;
}
