/*
 * fingerprint.c - per-tensor fingerprints (shape, dtype, range, moments,
 * 64-bin histogram over finite values) written as
 * <dir>/<stem>.fingerprint.json, and the comparison against a reference
 * fingerprint: missing/unexpected tensors, shape and dtype changes, and KL
 * divergence of the histograms on a common binning.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"

#define FP_MAX_BYTES (256u * 1024 * 1024)
#define FP_KL_EPS 1e-6
#define FP_VERSION 1

char *ckpt_stem_path(const char *dir, const char *path, const char *suffix)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strrchr(base, '.');
	size_t sl = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	if (!dir) {
		return mlsec_sprintf("%.*s%.*s%s", (int)(base - path), path, (int)sl, base, suffix);
	}
	return mlsec_sprintf("%s/%.*s%s", dir, (int)sl, base, suffix);
}

static json_t *fp_tensor(const ckpt_scan *s, size_t i)
{
	const mlsec_tensor_ref *t = &s->tl.t[i];
	json_t *shape = json_array();
	for (int d = 0; d < t->ndim; d++)
		json_array_append_new(shape, json_integer(t->shape[d]));
	json_t *o = json_pack("{s:s, s:o, s:I}", "dtype", mlsec_dtype_name(t->dtype), "shape",
	                      shape, "numel", (json_int_t)t->numel);
	if (!o || !s->have[i])
		return o;
	const mlsec_tstats_summary *m = &s->sum[i];
	json_t *h = json_array();
	for (int b = 0; b < MLSEC_TS_BINS; b++)
		json_array_append_new(h, json_real(m->hist[b]));
	json_object_set_new(o, "finite", json_integer((json_int_t)m->finite));
	json_object_set_new(o, "nan", json_integer((json_int_t)m->nan));
	json_object_set_new(o, "inf", json_integer((json_int_t)(m->posinf + m->neginf)));
	json_object_set_new(o, "min", json_real(m->min));
	json_object_set_new(o, "max", json_real(m->max));
	json_object_set_new(o, "mean", json_real(m->mean));
	json_object_set_new(o, "std", json_real(m->std));
	json_object_set_new(o, "median", json_real(m->median));
	json_object_set_new(o, "mad", json_real(m->mad));
	json_object_set_new(o, "hist_lo", json_real(m->hist_lo));
	json_object_set_new(o, "hist_hi", json_real(m->hist_hi));
	json_object_set_new(o, "hist", h);
	return o;
}

mlsec_err ckpt_fingerprint_write(ckpt_scan *s, mlsec_error *err)
{
	const char *dir = s->o->write_fingerprint;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return mlsec_error_set(err, MLSEC_ERR_IO, "cannot create %s: %s", dir,
		                       strerror(errno));
	json_t *tensors = json_object();
	for (size_t i = 0; i < s->tl.n; i++)
		json_object_set_new(tensors, s->tl.t[i].name, fp_tensor(s, i));
	json_t *root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "fingerprint_version",
	                         FP_VERSION, "tool", MLSEC_TOOL_NAME " " MLSEC_VERSION, "source",
	                         s->path, "sha256", mlsec_artifact_sha256(s->a), "format",
	                         mlsec_artifact_format(s->a), "tensors", tensors);
	char *out = ckpt_stem_path(dir, s->path, ".fingerprint.json");
	char *text =
	        root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17))
	             : NULL;
	json_decref(root);
	mlsec_err rc;
	if (!out || !text)
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	else
		rc = mlsec_file_write_atomic(out, text, strlen(text), 0644, err);
	if (rc == MLSEC_OK)
		json_object_set_new(s->det, "fingerprint", json_string(out));
	free(text);
	mlsec_free(out);
	return rc;
}

static int hist_of(const json_t *o, double *h, double *lo, double *hi)
{
	json_t *a = json_object_get(o, "hist");
	if (!json_is_array(a) || json_array_size(a) != MLSEC_TS_BINS)
		return -1;
	for (size_t b = 0; b < MLSEC_TS_BINS; b++) {
		json_t *v = json_array_get(a, b);
		if (!json_is_number(v))
			return -1;
		h[b] = json_number_value(v);
		if (!(h[b] >= 0) || !isfinite(h[b]))
			return -1;
	}
	json_t *l = json_object_get(o, "hist_lo"), *r = json_object_get(o, "hist_hi");
	if (!json_is_number(l) || !json_is_number(r))
		return -1;
	*lo = json_number_value(l);
	*hi = json_number_value(r);
	return isfinite(*lo) && isfinite(*hi) && *hi >= *lo ? 0 : -1;
}

static mlsec_finding *fp_finding(ckpt_scan *s, const char *rule, mlsec_severity sev,
                                 const char *name, const char *title, const char *detail)
{
	mlsec_finding *f = mlsec_artifact_add_finding(s->a, rule, sev, title, "%s", detail);
	if (f)
		mlsec_finding_set_location(f, NULL, 0, 0, name);
	return f;
}

static int shape_equal(const json_t *a, const mlsec_tensor_ref *t)
{
	if (!json_is_array(a) || json_array_size(a) != (size_t)t->ndim)
		return 0;
	for (int d = 0; d < t->ndim; d++) {
		json_t *v = json_array_get(a, (size_t)d);
		if (!json_is_integer(v) || json_integer_value(v) != t->shape[d])
			return 0;
	}
	return 1;
}

mlsec_err ckpt_fingerprint_compare(ckpt_scan *s, mlsec_error *err)
{
	char *text;
	size_t len;
	mlsec_err rc = mlsec_file_read_all(s->o->reference, FP_MAX_BYTES, &text, &len, err);
	if (rc != MLSEC_OK)
		return rc;
	json_error_t je;
	json_t *root = json_loadb(text, len, 0, &je);
	mlsec_free(text);
	json_t *ref = root ? json_object_get(root, "tensors") : NULL;
	if (!json_is_object(ref)) {
		json_decref(root);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "%s: not an mlsec fingerprint (%s)",
		                       s->o->reference, root ? "no tensors object" : je.text);
	}
	size_t compared = 0, drifted = 0;
	double max_kl = 0;
	const char *name;
	json_t *rv;
	char detail[256];
	json_object_foreach(ref, name, rv)
	{
		size_t i = 0;
		while (i < s->tl.n && strcmp(s->tl.t[i].name, name))
			i++;
		if (i == s->tl.n) {
			fp_finding(s, "CKPT-FP-MISSING", MLSEC_SEV_MEDIUM, name,
			           "tensor of the reference is missing",
			           "present in the reference fingerprint only");
			continue;
		}
		const mlsec_tensor_ref *t = &s->tl.t[i];
		if (!shape_equal(json_object_get(rv, "shape"), t)) {
			fp_finding(s, "CKPT-FP-SHAPE", MLSEC_SEV_HIGH, name,
			           "tensor shape differs from the reference", "shape changed");
			continue;
		}
		json_t *dt = json_object_get(rv, "dtype");
		if (!json_is_string(dt) ||
		    strcmp(json_string_value(dt), mlsec_dtype_name(t->dtype))) {
			snprintf(detail, sizeof detail, "reference %s, now %s",
			         json_is_string(dt) ? json_string_value(dt) : "?",
			         mlsec_dtype_name(t->dtype));
			fp_finding(s, "CKPT-FP-DTYPE", MLSEC_SEV_MEDIUM, name,
			           "tensor dtype differs from the reference", detail);
		}
		double rh[MLSEC_TS_BINS], rlo, rhi;
		if (!s->have[i] || hist_of(rv, rh, &rlo, &rhi) < 0)
			continue;
		const mlsec_tstats_summary *m = &s->sum[i];
		double lo = m->finite ? fmin(rlo, m->hist_lo) : rlo;
		double hi = m->finite ? fmax(rhi, m->hist_hi) : rhi;
		double a[MLSEC_TS_BINS], b[MLSEC_TS_BINS];
		mlsec_hist_rebin(rh, MLSEC_TS_BINS, rlo, rhi, a, MLSEC_TS_BINS, lo, hi);
		mlsec_hist_rebin(m->hist, MLSEC_TS_BINS, m->hist_lo, m->hist_hi, b, MLSEC_TS_BINS,
		                 lo, hi);
		double kl = mlsec_hist_kl(a, b, MLSEC_TS_BINS, FP_KL_EPS);
		compared++;
		if (kl < 0) {
			drifted++;
			fp_finding(s, "CKPT-FP-KL", MLSEC_SEV_MEDIUM, name,
			           "tensor distribution differs from the reference",
			           "one side has no finite values");
			continue;
		}
		max_kl = kl > max_kl ? kl : max_kl;
		if (kl > s->o->kl_threshold) {
			drifted++;
			snprintf(detail, sizeof detail, "KL(reference || current) = %.4g > %.4g",
			         kl, s->o->kl_threshold);
			mlsec_finding *f = fp_finding(
			        s, "CKPT-FP-KL", MLSEC_SEV_MEDIUM, name,
			        "tensor distribution drifted from the reference", detail);
			if (f)
				mlsec_finding_set_evidence_json(f, "kl", json_real(kl));
		}
	}
	for (size_t i = 0; i < s->tl.n; i++)
		if (!json_object_get(ref, s->tl.t[i].name))
			fp_finding(s, "CKPT-FP-UNEXPECTED", MLSEC_SEV_MEDIUM, s->tl.t[i].name,
			           "tensor not present in the reference (inserted?)",
			           "absent from the reference fingerprint");
	json_object_set_new(s->det, "reference",
	                    json_pack("{s:s, s:I, s:I, s:f}", "file", s->o->reference, "compared",
	                              (json_int_t)compared, "drifted", (json_int_t)drifted,
	                              "max_kl", max_kl));
	json_decref(root);
	return MLSEC_OK;
}
