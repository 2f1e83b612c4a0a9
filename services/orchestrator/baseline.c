/*
 * baseline.c - mlsec.v1.Baselines/Get and /Set: export and import the
 * engine state the stage services keep in Redis (the adversarial
 * baselines, "mlsec:baseline:<model>"), as the same JSON document the
 * `mlsec adversarial --baseline FILE` CLI reads and writes:
 *   {"<model>": {"<attack>": {"<eps>": accuracy, ...}, ...}, ...}
 * Both messages are google.protobuf.StringValue (field 1, a string):
 *   Get: the model name -> the document holding that model
 *        (NOT_FOUND when none is stored)
 *   Set: a document -> "N" (the number of models stored, each under its
 *        own key; existing models are replaced, others are kept)
 * Both need the bearer token like every other method.
 */
#include <string.h>

#include <jansson.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"
#include "mlsec/service.h"
#include "orchestrator.h"

#define BASELINE_MAX_DOC (4u * 1024 * 1024)
#define BASELINE_MAX_MODELS 1000

/* google.protobuf.StringValue: field 1, length-delimited. */
static int sv_decode(const uint8_t *in, size_t len, const uint8_t **s, size_t *n)
{
	*s = (const uint8_t *)"";
	*n = 0;
	size_t i = 0;
	while (i < len) {
		uint64_t tag = 0, l = 0;
		int shift = 0;
		do {
			if (i >= len || shift > 63)
				return -1;
			tag |= (uint64_t)(in[i] & 0x7f) << shift;
			shift += 7;
		} while (in[i++] & 0x80);
		if ((tag & 7) != 2)
			return -1; /* only length-delimited fields are expected */
		shift = 0;
		do {
			if (i >= len || shift > 63)
				return -1;
			l |= (uint64_t)(in[i] & 0x7f) << shift;
			shift += 7;
		} while (in[i++] & 0x80);
		if (l > len - i)
			return -1;
		if ((tag >> 3) == 1) {
			*s = in + i;
			*n = (size_t)l;
		}
		i += (size_t)l;
	}
	return 0;
}

static uint8_t *sv_encode(const char *s, size_t n, size_t *out_len)
{
	uint8_t *b = mlsec_malloc(n + 11);
	if (!b)
		return NULL;
	size_t i = 0;
	b[i++] = 0x0a;
	size_t v = n;
	do {
		b[i++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	memcpy(b + i, s, n);
	*out_len = i + n;
	return b;
}

grpc_status_code orch_baseline_get(mlsec_rpc_call *c, const uint8_t *req, size_t len,
                                   uint8_t **resp, size_t *resp_len, void *ctx)
{
	orch *o = ctx;
	const uint8_t *s;
	size_t n;
	char model[MLSEC_SERVICE_STATE_MAX_KEY + 1];
	if (sv_decode(req, len, &s, &n) != 0 || n == 0 || n > MLSEC_SERVICE_STATE_MAX_KEY) {
		mlsec_rpc_call_set_message(c, "a model name is required");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	memcpy(model, s, n);
	model[n] = '\0';
	char key[MLSEC_SERVICE_STATE_MAX_KEY + 64];
	if (strlen(model) != n ||
	    mlsec_service_state_redis_key("baseline", model, key, sizeof(key))) {
		mlsec_rpc_call_set_message(c, "model names match [A-Za-z0-9._-]{1,%d}",
		                           MLSEC_SERVICE_STATE_MAX_KEY);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	mlsec_store *st = orch_store_get(o);
	if (!st)
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	char *doc = NULL;
	size_t dl = 0;
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_err e = mlsec_store_get(st, key, &doc, &dl, &err);
	orch_store_put(o, st);
	if (e == MLSEC_ERR_NOT_FOUND) {
		mlsec_rpc_call_set_message(c, "no baseline stored for %s", model);
		return GRPC_STATUS_NOT_FOUND;
	}
	if (e != MLSEC_OK) {
		mlsec_rpc_call_set_message(c, "%s", err.text);
		return mlsec_rpc_status_from_err(e);
	}
	*resp = sv_encode(doc, dl, resp_len);
	mlsec_free(doc);
	return *resp ? GRPC_STATUS_OK : GRPC_STATUS_RESOURCE_EXHAUSTED;
}

grpc_status_code orch_baseline_set(mlsec_rpc_call *c, const uint8_t *req, size_t len,
                                   uint8_t **resp, size_t *resp_len, void *ctx)
{
	orch *o = ctx;
	const uint8_t *s;
	size_t n;
	if (sv_decode(req, len, &s, &n) != 0 || n == 0 || n > BASELINE_MAX_DOC) {
		mlsec_rpc_call_set_message(c, "a baseline JSON document is required");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	json_error_t je;
	json_t *doc = json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, &je);
	const char *model;
	json_t *entry;
	size_t count = 0;
	int ok = json_is_object(doc) && json_object_size(doc) > 0 &&
	         json_object_size(doc) <= BASELINE_MAX_MODELS;
	json_object_foreach(ok ? doc : NULL, model, entry)
	{
		if (!mlsec_service_state_key_ok(model) || !json_is_object(entry))
			ok = 0;
	}
	if (!ok) {
		json_decref(doc);
		mlsec_rpc_call_set_message(c,
		                           "expected {\"<model>\": {...}, ...} with model names "
		                           "[A-Za-z0-9._-]{1,%d}",
		                           MLSEC_SERVICE_STATE_MAX_KEY);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	mlsec_store *st = orch_store_get(o);
	if (!st) {
		json_decref(doc);
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_err e = MLSEC_OK;
	json_object_foreach(doc, model, entry)
	{
		json_t *one = json_object();
		char *txt = NULL;
		char key[MLSEC_SERVICE_STATE_MAX_KEY + 64];
		mlsec_service_state_redis_key("baseline", model, key, sizeof(key));
		if (!one || json_object_set(one, model, entry) ||
		    !(txt = json_dumps(one, JSON_COMPACT | JSON_SORT_KEYS)))
			e = mlsec_error_set(&err, MLSEC_ERR_NOMEM, "out of memory");
		else
			e = mlsec_store_set(st, key, txt, strlen(txt), 0, &err);
		free(txt);
		json_decref(one);
		if (e != MLSEC_OK)
			break;
		count++;
	}
	orch_store_put(o, st);
	json_decref(doc);
	if (e != MLSEC_OK) {
		mlsec_rpc_call_set_message(c, "%s (%zu model(s) stored)", err.text, count);
		return mlsec_rpc_status_from_err(e);
	}
	MLSEC_LOGI("baselines imported for %zu model(s)", count);
	char num[32];
	int nn = snprintf(num, sizeof(num), "%zu", count);
	*resp = sv_encode(num, (size_t)nn, resp_len);
	return *resp ? GRPC_STATUS_OK : GRPC_STATUS_RESOURCE_EXHAUSTED;
}
