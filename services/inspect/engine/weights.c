/*
 * weights.c - weight anomalies. Per tensor: the checkpoint stage's
 * statistics (common/tensorstats) and its decisions (NaN/Inf, magnitude
 * above --threshold, robust outliers with the checkpoint thresholds). Per
 * layer, the tampering signs a single tensor's histogram cannot show:
 *   - a layer whose scale is far from its siblings' (scale = std x
 *     sqrt(fan-in), the quantity weight initialisation and training keep
 *     within a small factor across the layers of one network),
 *   - dead output units (all-zero filters/rows) and whole dead layers,
 *   - duplicated units (identical rows/filters),
 *   - sparsity far above the rest of the network,
 *   - a final-layer bias that pins one class.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/checkpoint.h"
#include "mlsec/tensorstats.h"

#define SCALE_MIN_SIBLINGS 3    /* layers needed to call one of them an outlier */
#define SCALE_RATIO_MEDIUM 10.0 /* x or / median sibling scale */
#define SCALE_RATIO_HIGH 50.0
#define DUP_MIN_FAN 4          /* units this small repeat by chance */
#define SPARSITY_HIGH 0.5      /* zero fraction of a tensor ... */
#define SPARSITY_SIBLINGS 0.05 /* ... while the median layer has less than this */
#define PIN_ROBUST_Z 20.0      /* top bias vs the others, in robust deviations */
#define PIN_GAP_ROW_L1 0.5     /* and its lead vs the mean L1 norm of a weight row */
#define MAX_LISTED_UNITS 16    /* unit indices quoted in evidence */

typedef struct layer_stats {
	mlsec_tstats_summary s;
	double zero_frac;
	size_t units, fan, dead, dup;
	double gain;  /* std * sqrt(fan), 0 when not a weight */
	double ratio; /* gain / median sibling gain, 0 when not compared */
} layer_stats;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* outer x units x inner view of a weight around its unit axis. */
static void unit_dims(const insp_tensor *t, size_t *outer, size_t *units, size_t *inner)
{
	size_t o = 1, in = 1;
	for (int d = 0; d < t->unit_axis; d++)
		o *= (size_t)t->shape[d];
	for (int d = t->unit_axis + 1; d < t->ndim; d++)
		in *= (size_t)t->shape[d];
	*outer = o;
	*units = (size_t)t->shape[t->unit_axis];
	*inner = in;
}

static float unit_elem(const insp_tensor *t, size_t units, size_t inner, size_t u, size_t k)
{
	size_t o = k / inner, i = k % inner;
	return t->data[(o * units + u) * inner + i];
}

typedef struct unit_hash {
	uint64_t h;
	size_t u;
} unit_hash;

static int cmp_hash(const void *a, const void *b)
{
	const unit_hash *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->u < y->u ? -1 : x->u > y->u;
}

static int units_equal(const insp_tensor *t, size_t units, size_t inner, size_t fan, size_t a,
                       size_t b)
{
	for (size_t k = 0; k < fan; k++)
		if (unit_elem(t, units, inner, a, k) != unit_elem(t, units, inner, b, k))
			return 0;
	return 1;
}

/* Dead and duplicated units of a weight; lists the first dead/dup indices. */
static mlsec_err unit_checks(const insp_tensor *t, layer_stats *ls, json_t *dead_idx,
                             json_t *dup_idx, mlsec_error *err)
{
	size_t outer, units, inner;
	unit_dims(t, &outer, &units, &inner);
	size_t fan = outer * inner;
	ls->units = units;
	ls->fan = fan;
	if (!units || !fan)
		return MLSEC_OK;
	unit_hash *hs = mlsec_reallocarray(NULL, units, sizeof *hs);
	if (!hs)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t nh = 0;
	for (size_t u = 0; u < units; u++) {
		uint64_t h = 1469598103934665603ull;
		int zero = 1;
		for (size_t k = 0; k < fan; k++) {
			float v = unit_elem(t, units, inner, u, k);
			uint32_t bits;
			memcpy(&bits, &v, 4);
			zero &= v == 0.0f;
			h = (h ^ bits) * 1099511628211ull;
		}
		if (zero) {
			if (ls->dead++ < MAX_LISTED_UNITS)
				json_array_append_new(dead_idx, json_integer((json_int_t)u));
		} else {
			hs[nh].h = h;
			hs[nh++].u = u;
		}
	}
	if (fan >= DUP_MIN_FAN && nh > 1) {
		qsort(hs, nh, sizeof *hs, cmp_hash);
		for (size_t i = 1; i < nh; i++) {
			/* a unit equal to any earlier unit of its hash run */
			for (size_t j = i; j-- > 0 && hs[j].h == hs[i].h;) {
				if (units_equal(t, units, inner, fan, hs[i].u, hs[j].u)) {
					if (ls->dup++ < MAX_LISTED_UNITS)
						json_array_append_new(
						        dup_idx,
						        json_pack("[I,I]", (json_int_t)hs[j].u,
						                  (json_int_t)hs[i].u));
					break;
				}
			}
		}
	}
	mlsec_free(hs);
	return MLSEC_OK;
}

static mlsec_finding *finding(mlsec_artifact *a, const char *rule, mlsec_severity sev,
                              const insp_tensor *t, const char *title)
{
	mlsec_finding *f = mlsec_artifact_add_finding(a, rule, sev, title, NULL);
	if (f)
		mlsec_finding_set_location(f, NULL, 0, 0, t->name);
	return f;
}

/* The checkpoint stage's per-tensor decisions, under INSPECT-WEIGHT-*. */
static void tensor_findings(const insp_tensor *t, const mlsec_tstats_summary *m, double zero_frac,
                            double thr, mlsec_artifact *a)
{
	mlsec_finding *f;
	if (m->nan && (f = finding(a, INSP_PREFIX "-WEIGHT-NAN", MLSEC_SEV_HIGH, t,
	                           "weight tensor contains NaN"))) {
		mlsec_finding_set_evidence_json(f, "nan", json_integer((json_int_t)m->nan));
		mlsec_finding_set_evidence_json(f, "count", json_integer((json_int_t)m->count));
	}
	if ((m->posinf || m->neginf) && (f = finding(a, INSP_PREFIX "-WEIGHT-INF", MLSEC_SEV_HIGH,
	                                             t, "weight tensor contains Inf")))
		mlsec_finding_set_evidence_json(f, "inf",
		                                json_integer((json_int_t)(m->posinf + m->neginf)));
	if (m->finite && m->absmax > thr &&
	    (f = finding(a, INSP_PREFIX "-WEIGHT-MAGNITUDE",
	                 m->absmax > thr * 100 ? MLSEC_SEV_HIGH : MLSEC_SEV_MEDIUM, t,
	                 "weight magnitude above the threshold"))) {
		mlsec_finding_set_evidence_json(f, "absmax", json_real(m->absmax));
		mlsec_finding_set_evidence_json(f, "threshold", json_real(thr));
	}
	/* In a mostly-zero tensor the median and MAD are 0 and every non-zero
	 * weight looks infinitely far: sparsity is judged per layer instead. */
	if (zero_frac < SPARSITY_HIGH && m->finite >= MLSEC_CKPT_OUTLIER_MIN_ELEMS &&
	    m->robust_z >= MLSEC_CKPT_OUTLIER_Z_MEDIUM &&
	    (f = finding(a, INSP_PREFIX "-WEIGHT-OUTLIER",
	                 m->robust_z >= MLSEC_CKPT_OUTLIER_Z_HIGH ? MLSEC_SEV_HIGH
	                                                          : MLSEC_SEV_MEDIUM,
	                 t, "weight far outside its tensor's own distribution"))) {
		mlsec_finding_set_evidence_json(f, "robust_z", json_real(m->robust_z));
		mlsec_finding_set_evidence_json(f, "median", json_real(m->median));
	}
}

/* The final bias pins a class when its lead over the runner-up is far
 * outside the spread of the other biases AND larger than what a weight row
 * typically contributes, so that the class wins whatever the input. */
static void class_pin(const insp_weights *w, mlsec_artifact *a)
{
	if (w->final_b < 0)
		return;
	const insp_tensor *b = &w->t[w->final_b];
	size_t n = b->numel;
	if (n < 2)
		return;
	double *v = mlsec_reallocarray(NULL, n, sizeof *v);
	if (!v)
		return;
	size_t top = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(b->data[i])) {
			mlsec_free(v);
			return; /* reported as NaN/Inf */
		}
		v[i] = b->data[i];
		if (b->data[i] > b->data[top])
			top = i;
	}
	double second = -INFINITY;
	for (size_t i = 0; i < n; i++)
		if (i != top && v[i] > second)
			second = v[i];
	double med = median(v, n);
	for (size_t i = 0; i < n; i++)
		v[i] = fabs(v[i] - med);
	double mad = 1.4826 * median(v, n);
	mlsec_free(v);
	double lead = b->data[top] - second;
	double z = mad > 0 ? (b->data[top] - med) / mad : (lead > 0 ? INFINITY : 0);
	double row_l1 = 0;
	if (w->final_w >= 0) {
		const insp_tensor *wt = &w->t[w->final_w];
		size_t outer, units, inner;
		unit_dims(wt, &outer, &units, &inner);
		if (units == n && units) {
			for (size_t k = 0; k < wt->numel; k++)
				row_l1 += isfinite(wt->data[k]) ? fabs(wt->data[k]) : 0;
			row_l1 /= (double)units;
		}
	}
	if (z < PIN_ROBUST_Z || lead <= PIN_GAP_ROW_L1 * row_l1)
		return;
	mlsec_finding *f = mlsec_artifact_add_finding(
	        a, INSP_PREFIX "-CLASS-PIN", MLSEC_SEV_HIGH, "final-layer bias pins one class",
	        "bias of class %zu leads the next class by %.4g, %.3g robust deviations above the "
	        "median bias and more than a weight row typically contributes (mean |row| %.4g)",
	        top, lead, z, row_l1);
	if (f) {
		mlsec_finding_set_location(f, NULL, 0, 0, b->name);
		mlsec_finding_set_evidence_json(f, "class", json_integer((json_int_t)top));
		mlsec_finding_set_evidence_json(f, "lead", json_real(lead));
		mlsec_finding_set_evidence_json(f, "robust_z",
		                                isinf(z) ? json_null() : json_real(z));
		mlsec_finding_set_evidence_json(f, "row_l1", json_real(row_l1));
		mlsec_finding_set_remediation(
		        f, "A backdoored or sabotaged classifier: compare with the "
		           "publisher's original weights before use.");
	}
}

static const char *role_name(insp_role r)
{
	return r == INSP_ROLE_WEIGHT ? "weight" : r == INSP_ROLE_BIAS ? "bias" : "other";
}

static json_t *tensor_json(const insp_tensor *t, const layer_stats *ls)
{
	json_t *shape = json_array();
	for (int d = 0; d < t->ndim; d++)
		json_array_append_new(shape, json_integer(t->shape[d]));
	const mlsec_tstats_summary *m = &ls->s;
	json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:f}", "name", t->name, "role",
	                      role_name(t->role), "shape", shape, "numel", (json_int_t)t->numel,
	                      "nan", (json_int_t)m->nan, "inf", (json_int_t)(m->posinf + m->neginf),
	                      "zero_fraction", ls->zero_frac);
	if (!o)
		return NULL;
	if (m->finite) {
		json_object_set_new(o, "min", json_real(m->min));
		json_object_set_new(o, "max", json_real(m->max));
		json_object_set_new(o, "mean", json_real(m->mean));
		json_object_set_new(o, "std", json_real(m->std));
	}
	if (t->role == INSP_ROLE_WEIGHT) {
		json_object_set_new(o, "units", json_integer((json_int_t)ls->units));
		json_object_set_new(o, "scale", json_real(ls->gain));
		if (ls->ratio > 0)
			json_object_set_new(o, "scale_ratio", json_real(ls->ratio));
		json_object_set_new(o, "dead_units", json_integer((json_int_t)ls->dead));
		json_object_set_new(o, "duplicate_units", json_integer((json_int_t)ls->dup));
	}
	return o;
}

mlsec_err insp_weight_checks(const insp_weights *w, const mlsec_inspect_opts *o, mlsec_artifact *a,
                             mlsec_error *err)
{
	size_t n = w->n;
	layer_stats *ls = mlsec_calloc(n ? n : 1, sizeof *ls);
	double *gains = mlsec_calloc(n ? n : 1, sizeof *gains);
	double *sparse = mlsec_calloc(n ? n : 1, sizeof *sparse);
	mlsec_tstats *ts = mlsec_malloc(sizeof *ts);
	json_t **dead_idx = mlsec_calloc(n ? n : 1, sizeof *dead_idx);
	json_t **dup_idx = mlsec_calloc(n ? n : 1, sizeof *dup_idx);
	mlsec_err rc = MLSEC_OK;
	if (!ls || !gains || !sparse || !ts || !dead_idx || !dup_idx)
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t ngain = 0, nsparse = 0;
	for (size_t i = 0; rc == MLSEC_OK && i < n; i++) {
		const insp_tensor *t = &w->t[i];
		mlsec_tstats_init(ts, MLSEC_TS_F32);
		mlsec_tstats_update(ts, t->data, t->numel * sizeof(float));
		mlsec_tstats_finish(ts, &ls[i].s);
		size_t zeros = 0;
		for (size_t k = 0; k < t->numel; k++)
			zeros += t->data[k] == 0.0f;
		ls[i].zero_frac = t->numel ? (double)zeros / (double)t->numel : 0;
		tensor_findings(t, &ls[i].s, ls[i].zero_frac, o->threshold, a);
		if (t->role != INSP_ROLE_WEIGHT)
			continue;
		dead_idx[i] = json_array();
		dup_idx[i] = json_array();
		rc = unit_checks(t, &ls[i], dead_idx[i], dup_idx[i], err);
		if (rc != MLSEC_OK)
			break;
		if (ls[i].s.finite && ls[i].fan)
			ls[i].gain = ls[i].s.std * sqrt((double)ls[i].fan);
		if (ls[i].gain > 0 && isfinite(ls[i].gain))
			gains[ngain++] = ls[i].gain;
		if (ls[i].dead < ls[i].units)
			sparse[nsparse++] = ls[i].zero_frac;
	}
	double gmed = ngain >= SCALE_MIN_SIBLINGS ? median(gains, ngain) : 0;
	double smed = nsparse >= SCALE_MIN_SIBLINGS ? median(sparse, nsparse) : 1;
	json_t *arr = json_array();
	for (size_t i = 0; rc == MLSEC_OK && i < n; i++) {
		const insp_tensor *t = &w->t[i];
		layer_stats *l = &ls[i];
		mlsec_finding *f;
		if (t->role == INSP_ROLE_WEIGHT) {
			if (gmed > 0 && l->gain > 0) {
				l->ratio = l->gain / gmed;
				double far = l->ratio >= 1 ? l->ratio : 1 / l->ratio;
				if (far >= SCALE_RATIO_MEDIUM &&
				    (f = mlsec_artifact_add_finding(
				             a, INSP_PREFIX "-LAYER-SCALE",
				             far >= SCALE_RATIO_HIGH ? MLSEC_SEV_HIGH
				                                     : MLSEC_SEV_MEDIUM,
				             "layer scale far from its sibling layers'",
				             "scale (std x sqrt(fan-in)) %.4g is %.3gx the median "
				             "%.4g of %zu "
				             "layers",
				             l->gain, l->ratio, gmed, ngain))) {
					mlsec_finding_set_location(f, NULL, 0, 0, t->name);
					mlsec_finding_set_evidence_json(f, "scale",
					                                json_real(l->gain));
					mlsec_finding_set_evidence_json(f, "ratio",
					                                json_real(l->ratio));
					mlsec_finding_set_evidence_json(f, "median_scale",
					                                json_real(gmed));
					mlsec_finding_set_remediation(
					        f, "Weights rescaled after training are a "
					           "tampering sign: compare with the original "
					           "release.");
				}
			}
			if (l->units && l->dead == l->units) {
				f = mlsec_artifact_add_finding(
				        a, INSP_PREFIX "-DEAD-LAYER", MLSEC_SEV_HIGH,
				        "every unit of the layer is all-zero",
				        "all %zu units (filters/rows) of %zu weights are zero",
				        l->units, l->fan);
				if (f) {
					mlsec_finding_set_location(f, NULL, 0, 0, t->name);
					mlsec_finding_set_evidence_json(
					        f, "units", json_integer((json_int_t)l->units));
				}
			} else if (l->dead) {
				f = mlsec_artifact_add_finding(
				        a, INSP_PREFIX "-DEAD-UNITS", MLSEC_SEV_MEDIUM,
				        "all-zero filters/rows in a layer",
				        "%zu of %zu units are all-zero", l->dead, l->units);
				if (f) {
					mlsec_finding_set_location(f, NULL, 0, 0, t->name);
					mlsec_finding_set_evidence_json(
					        f, "dead", json_integer((json_int_t)l->dead));
					mlsec_finding_set_evidence_json(f, "units",
					                                json_incref(dead_idx[i]));
				}
			}
			if (l->dup) {
				f = mlsec_artifact_add_finding(
				        a, INSP_PREFIX "-DUPLICATE-UNITS", MLSEC_SEV_MEDIUM,
				        "identical filters/rows in a layer",
				        "%zu of %zu units duplicate another unit exactly", l->dup,
				        l->units);
				if (f) {
					mlsec_finding_set_location(f, NULL, 0, 0, t->name);
					mlsec_finding_set_evidence_json(
					        f, "duplicates", json_integer((json_int_t)l->dup));
					mlsec_finding_set_evidence_json(f, "pairs",
					                                json_incref(dup_idx[i]));
				}
			}
			if (l->dead < l->units && l->zero_frac >= SPARSITY_HIGH &&
			    smed < SPARSITY_SIBLINGS) {
				f = mlsec_artifact_add_finding(
				        a, INSP_PREFIX "-SPARSITY", MLSEC_SEV_LOW,
				        "layer far sparser than the rest of the model",
				        "%.1f%% of the weights are zero; the median layer has "
				        "%.1f%%",
				        100 * l->zero_frac, 100 * smed);
				if (f) {
					mlsec_finding_set_location(f, NULL, 0, 0, t->name);
					mlsec_finding_set_evidence_json(f, "zero_fraction",
					                                json_real(l->zero_frac));
				}
			}
		}
		if (i < MLSEC_INSPECT_MAX_NODE_DETAILS)
			json_array_append_new(arr, tensor_json(t, l));
	}
	if (rc == MLSEC_OK && n == 0) {
		/* Nothing inspected must not read as nothing found. */
		mlsec_finding *f = mlsec_artifact_add_finding(
		        a, INSP_PREFIX "-NO-WEIGHTS", MLSEC_SEV_LOW,
		        "no float weight tensor: the weights check inspected nothing",
		        "the model holds no float32/float16/bfloat16/float64 tensors (integer or "
		        "quantised weights are not checked)");
		if (f)
			mlsec_finding_set_location(f, NULL, 0, 0, "weights");
	}
	if (rc == MLSEC_OK) {
		class_pin(w, a);
		json_t *wd = json_pack("{s:I,s:I,s:o}", "tensors", (json_int_t)n, "bytes",
		                       (json_int_t)w->bytes, "list", arr);
		if (wd && w->final_w >= 0)
			json_object_set_new(wd, "final_weight", json_string(w->t[w->final_w].name));
		if (wd && w->final_b >= 0)
			json_object_set_new(wd, "final_bias", json_string(w->t[w->final_b].name));
		if (wd && gmed > 0)
			json_object_set_new(wd, "median_layer_scale", json_real(gmed));
		json_object_set_new(mlsec_artifact_details(a), "weights", wd);
	} else {
		json_decref(arr);
	}
	for (size_t i = 0; dead_idx && dup_idx && i < n; i++) {
		json_decref(dead_idx[i]);
		json_decref(dup_idx[i]);
	}
	mlsec_free(dead_idx);
	mlsec_free(dup_idx);
	mlsec_free(ls);
	mlsec_free(gains);
	mlsec_free(sparse);
	mlsec_free(ts);
	return rc;
}
