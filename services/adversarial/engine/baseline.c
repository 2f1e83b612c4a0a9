/* baseline.c - robustness baselines (see baseline.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "baseline.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"

#define BASELINE_MAX_BYTES (16u << 20)

void adv_baseline_key(double eps, char *buf, size_t size)
{
	if (isinf(eps)) {
		snprintf(buf, size, "epsilon=inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, size, "epsilon=%.*g", prec, eps);
		if (strtod(buf + 8, NULL) == eps)
			return;
	}
}

mlsec_err adv_baseline_load(const char *path, json_t **out, mlsec_error *err)
{
	*out = NULL;
	struct stat st;
	if (stat(path, &st) != 0 && errno == ENOENT)
		return MLSEC_OK;
	char *buf;
	size_t len;
	mlsec_err rc = mlsec_file_read_all(path, BASELINE_MAX_BYTES, &buf, &len, err);
	if (rc != MLSEC_OK)
		return rc;
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	mlsec_free(buf);
	if (!j)
		return mlsec_error_set_at(err, MLSEC_ERR_PARSE, path, je.line, je.column, -1,
		                          "baseline is not valid JSON: %s", je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "%s: a baseline is a JSON object of models", path);
	}
	*out = j;
	return MLSEC_OK;
}

mlsec_err adv_baseline_check(const json_t *b, const char *model, mlsec_error *err)
{
	const json_t *m = json_object_get(b, model);
	if (!m)
		return MLSEC_OK;
	if (!json_is_object(m))
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "baseline entry '%s' must be an object of attacks", model);
	const char *attack;
	const json_t *a;
	json_object_foreach((json_t *)m, attack, a)
	{
		if (!json_is_object(a))
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "baseline '%s'.'%s' must be an object of "
			                       "\"epsilon=<eps>\": accuracy",
			                       model, attack);
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)a, key, v)
		{
			char *end = NULL;
			double k = strncmp(key, "epsilon=", 8) ? NAN : strtod(key + 8, &end);
			if (isnan(k) || !end || *end || !(k >= 0))
				return mlsec_error_set(err, MLSEC_ERR_PARSE,
				                       "baseline '%s'.'%s': key '%s' is not "
				                       "\"epsilon=<eps>\"",
				                       model, attack, key);
			double acc = json_is_number(v) ? json_number_value(v) : NAN;
			if (!(acc >= 0 && acc <= 1))
				return mlsec_error_set(err, MLSEC_ERR_PARSE,
				                       "baseline '%s'.'%s'.'%s' must be an "
				                       "accuracy in [0, 1]",
				                       model, attack, key);
		}
	}
	return MLSEC_OK;
}

double adv_baseline_lookup(const json_t *b, const char *model, const char *attack, double eps)
{
	const json_t *a = json_object_get(json_object_get(b, model), attack);
	if (!json_is_object(a))
		return -1;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)a, key, v)
	{
		if (strncmp(key, "epsilon=", 8) != 0 || !json_is_number(v))
			continue;
		char *end;
		double k = strtod(key + 8, &end);
		if (*end != '\0')
			continue;
		int same = isinf(eps) ? isinf(k)
		                      : fabs(k - eps) <= 1e-9 * (fabs(eps) > 1 ? fabs(eps) : 1);
		if (same) {
			double acc = json_number_value(v);
			return acc >= 0 && acc <= 1 ? acc : -1;
		}
	}
	return -1;
}

static json_t *child(json_t *parent, const char *key)
{
	json_t *c = json_object_get(parent, key);
	if (json_is_object(c))
		return c;
	c = json_object();
	if (!c || json_object_set_new(parent, key, c) != 0)
		return NULL;
	return c;
}

mlsec_err adv_baseline_set(json_t *b, const char *model, const char *attack, double eps, double acc)
{
	json_t *a = child(child(b, model), attack);
	char key[64];
	adv_baseline_key(eps, key, sizeof key);
	if (!a || json_object_set_new(a, key, json_real(acc)) != 0)
		return MLSEC_ERR_NOMEM;
	return MLSEC_OK;
}

mlsec_err adv_baseline_save(const json_t *b, const char *path, mlsec_error *err)
{
	char *s = json_dumps(b, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
	if (!s)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t n = strlen(s);
	char *t = mlsec_malloc(n + 2);
	mlsec_err rc = MLSEC_ERR_NOMEM;
	if (t) {
		memcpy(t, s, n);
		t[n] = '\n';
		rc = mlsec_file_write_atomic(path, t, n + 1, 0644, err);
		mlsec_free(t);
	}
	free(s);
	return rc;
}
