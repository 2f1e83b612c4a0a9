/*
 * service_state.c - per-key engine state kept in Redis between jobs (see
 * mlsec_engine_state in engine.h and service_state.h).
 */
#include "service_state.h"

#include <stdio.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"

int mlsec_service_state_key_ok(const char *k)
{
	size_t n = k ? strlen(k) : 0;
	if (n == 0 || n > MLSEC_SERVICE_STATE_MAX_KEY || k[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int mlsec_service_state_redis_key(const char *name, const char *key, char *buf, size_t size)
{
	int n = snprintf(buf, size, "mlsec:%s:%s", name, key);
	return n > 0 && (size_t)n < size && mlsec_service_state_key_ok(key) ? 0 : -1;
}

/* "dir/model.v2.onnx" -> "model.v2" */
static void stem(const char *uri, char *buf, size_t size)
{
	const char *base = strrchr(uri, '/');
	base = base ? base + 1 : uri;
	snprintf(buf, size, "%s", base);
	char *dot = strrchr(buf, '.');
	if (dot && dot != buf)
		*dot = '\0';
}

mlsec_err service_state_load(const mlsec_engine *eng, mlsec_store *st,
                             const Mlsec__V1__StageRequest *req, json_t **options, char *key,
                             size_t keysz, mlsec_error *err)
{
	key[0] = '\0';
	const mlsec_engine_state *s = eng->state;
	if (!s || !st)
		return MLSEC_OK;
	json_t *kv = *options ? json_object_get(*options, s->key_option) : NULL;
	int update = s->update_option && *options &&
	             json_is_true(json_object_get(*options, s->update_option));
	if (kv && !json_is_string(kv))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "option %s: string expected",
		                       s->key_option);
	if (kv)
		snprintf(key, keysz, "%s", json_string_value(kv));
	else if (req->n_artifacts == 1 && req->artifacts[0]->uri)
		stem(req->artifacts[0]->uri, key, keysz);
	if (!key[0]) {
		if (update)
			return mlsec_error_set(
			        err, MLSEC_ERR_INVALID_ARG,
			        "option %s is required to keep the %s (several artifacts)",
			        s->key_option, s->name);
		return MLSEC_OK;
	}
	if (!mlsec_service_state_key_ok(key)) {
		key[0] = '\0';
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "%s name must match [A-Za-z0-9._-]{1,%d}", s->name,
		                       MLSEC_SERVICE_STATE_MAX_KEY);
	}
	json_t *own = *options ? json_object_get(*options, s->in_option) : NULL;
	if (own && !json_is_object(own)) /* e.g. a path: never on the service's disk */
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "option %s must be an inline JSON object on the cluster",
		                       s->in_option);
	if (own)
		return MLSEC_OK; /* the request brings its own */
	char rk[MLSEC_SERVICE_STATE_MAX_KEY + 64];
	mlsec_service_state_redis_key(s->name, key, rk, sizeof(rk));
	char *doc = NULL;
	size_t len = 0;
	mlsec_err e = mlsec_store_get(st, rk, &doc, &len, err);
	if (e == MLSEC_ERR_NOT_FOUND)
		return MLSEC_OK;
	if (e != MLSEC_OK)
		return MLSEC_ERR_UNAVAILABLE; /* transient: the job is retried */
	json_error_t je;
	json_t *j = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &je);
	mlsec_free(doc);
	if (!json_is_object(j)) {
		json_decref(j);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "stored %s %s is not a JSON object",
		                       s->name, key);
	}
	if (!*options && !(*options = json_object())) {
		json_decref(j);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	if (json_object_set_new(*options, s->in_option, j))
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	MLSEC_LOGD("%s %s loaded from Redis", s->name, key);
	return MLSEC_OK;
}

mlsec_err service_state_save(const mlsec_engine *eng, mlsec_store *st, const char *key,
                             mlsec_report *rep, mlsec_error *err)
{
	const mlsec_engine_state *s = eng->state;
	if (!s || !st || !key || !key[0] || !rep)
		return MLSEC_OK;
	for (size_t i = 0; i < mlsec_report_artifact_count(rep); i++) {
		json_t *d = mlsec_artifact_details(mlsec_report_artifact(rep, i));
		json_t *u = d ? json_object_get(d, s->out_detail) : NULL;
		if (!json_is_object(u))
			continue;
		/* Only this key's entry when the document is keyed like the
		 * state (the adversarial baseline is {"<model>": ...}): other
		 * entries an inline option carried are not this key's to keep. */
		json_t *mine = json_object_get(u, key);
		json_t *one = mine ? json_object() : json_incref(u);
		if (!one || (mine && json_object_set(one, key, mine))) {
			json_decref(one);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
		char *doc = json_dumps(one, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(one);
		if (!doc)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		char rk[MLSEC_SERVICE_STATE_MAX_KEY + 64];
		mlsec_service_state_redis_key(s->name, key, rk, sizeof(rk));
		mlsec_err e = mlsec_store_set(st, rk, doc, strlen(doc), 0, err);
		free(doc);
		if (e != MLSEC_OK)
			return e;
		MLSEC_LOGI("%s %s stored", s->name, key);
		return MLSEC_OK;
	}
	return MLSEC_OK;
}
