/*
 * attest.c - builds the provenance attestation: an in-toto Statement v1
 * whose predicate lists the export stages in order (checkpoint -> ONNX ->
 * TensorRT plan), each record linked to the previous one by digest, wrapped
 * in a DSSE envelope and signed with Ed25519 when a key is given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"

static const char *source_format(const char *path)
{
	switch (mlsec_format_sniff(path)) {
	case MLSEC_FMT_SAFETENSORS:
		return "safetensors";
	case MLSEC_FMT_PYTORCH_ZIP:
		return "pytorch-zip";
	case MLSEC_FMT_PYTORCH_LEGACY:
		return "pytorch-legacy";
	default:
		break;
	}
	/* Sniffing is the authority; the extension is only a fallback for
	 * files the core sniffer does not know (e.g. raw pickles). */
	size_t n = strlen(path);
	if (n > 12 && !strcmp(path + n - 12, ".safetensors"))
		return "safetensors";
	return "unknown";
}

/* Common part of every stage record; hex/size when already known. */
static json_t *record_with(const char *stage, const char *path, const char *format, const char *ts,
                           const char *hex, uint64_t size, mlsec_error *err)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:I, s:s, s:o}", "stage", stage,
	                      "name", export_basename(path), "path", path, "format", format,
	                      "digest", "sha256", hex, "size", (json_int_t)size, "timestamp", ts,
	                      "tools", export_tool_versions());
	if (!r)
		mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	return r;
}

static json_t *record_new(const char *stage, const char *path, const char *format, const char *ts,
                          mlsec_error *err)
{
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size = 0;
	if (mlsec_sha256_file(path, hex, &size, err) != MLSEC_OK)
		return NULL;
	return record_with(stage, path, format, ts, hex, size, err);
}

json_t *export_stage_checkpoint(const char *path, const char *ts, mlsec_error *err)
{
	const char *fmt = source_format(path);
	json_t *r = record_new("checkpoint", path, fmt, ts, err);
	if (!r)
		return NULL;
	char hex[MLSEC_SHA256_HEX_LEN];
	size_t n = 0;
	mlsec_error derr;
	mlsec_error_clear(&derr);
	mlsec_err rc = mlsec_export_state_dict_digest(path, hex, &n, &derr);
	if (rc == MLSEC_OK) {
		json_object_set_new(r, "stateDict",
		                    json_pack("{s:s, s:s, s:I}", "algorithm", "mlsec-state-dict-v1",
		                              "sha256", hex, "tensors", (json_int_t)n));
	} else if (rc == MLSEC_ERR_UNSUPPORTED) {
		/* Legacy torch files stack several pickles and raw pickles
		 * have no storages; only the file digest binds them. */
		json_object_set_new(r, "stateDict",
		                    json_pack("{s:s, s:s}", "algorithm", "none", "note",
		                              "no state-dict digest for this checkpoint format; "
		                              "the file sha256 binds this stage"));
	} else {
		json_decref(r);
		/* The path leads the text: the CLI uses it to name the stage. */
		if (strncmp(derr.text, path, strlen(path)))
			mlsec_error_set(err, rc, "%s: %s", path, derr.text);
		else
			mlsec_error_set(err, rc, "%s", derr.text);
		return NULL;
	}
	return r;
}

json_t *export_stage_onnx(const char *path, const mlsec_artifact *lint, const mlsec_export_opts *o,
                          const char *ts, mlsec_error *err)
{
	/* Prefer what the lint computed from its single read of the file. */
	const char *fhex = lint ? mlsec_artifact_sha256(lint) : "";
	const char *ghex =
	        lint ? json_string_value(json_object_get(
	                       mlsec_artifact_details((mlsec_artifact *)lint), "graph_sha256"))
	             : NULL;
	json_t *r;
	char hex[MLSEC_SHA256_HEX_LEN];
	if (lint && !strcmp(mlsec_artifact_path(lint), path) && mlsec_sha256_hex_valid(fhex) &&
	    ghex) {
		r = record_with("onnx", path, "onnx", ts, fhex, mlsec_artifact_size(lint), err);
		if (!r)
			return NULL;
		snprintf(hex, sizeof hex, "%s", ghex);
	} else {
		r = record_new("onnx", path, "onnx", ts, err);
		if (!r)
			return NULL;
		if (mlsec_export_graph_digest(path, hex, err) != MLSEC_OK) {
			json_decref(r);
			return NULL;
		}
	}
	json_object_set_new(
	        r, "graph",
	        json_pack("{s:s, s:s}", "algorithm", "mlsec-onnx-graph-v1", "sha256", hex));
	json_t *doms = json_array();
	for (size_t i = 0; o && i < o->nallowed; i++)
		json_array_append_new(doms, json_string(o->allowed_domains[i]));
	/* The threshold is kept as text: records carry no reals, so that
	 * their canonical encoding is unambiguous. */
	char thr[64];
	snprintf(thr, sizeof thr, "%.17g",
	         o && o->constant_threshold > 0 ? o->constant_threshold
	                                        : MLSEC_EXPORT_DEFAULT_CONSTANT_THRESHOLD);
	json_t *summary = lint ? export_lint_summary(lint) : json_object();
	json_object_set_new(
	        summary, "options",
	        json_pack("{s:o, s:s}", "allowedDomains", doms, "constantThreshold", thr));
	json_object_set_new(r, "lint", summary);
	return r;
}

json_t *export_stage_tensorrt(const char *path, const char *ts, mlsec_error *err)
{
	json_t *r = record_new("tensorrt", path, "tensorrt-plan", ts, err);
	if (!r)
		return NULL;
	json_object_set_new(r, "ftrtHeader", json_boolean(export_plan_has_ftrt(path)));
	return r;
}

/* Links r to the previous record digest and seals it with its own. */
mlsec_err export_record_seal(json_t *r, size_t index, const char *prev)
{
	json_object_set_new(r, "index", json_integer((json_int_t)index));
	json_object_set_new(r, "previousRecord", prev ? json_string(prev) : json_null());
	json_object_del(r, "recordDigest");
	char hex[MLSEC_SHA256_HEX_LEN];
	mlsec_err rc = export_json_digest(r, hex);
	if (rc != MLSEC_OK)
		return rc;
	return json_object_set_new(r, "recordDigest", json_string(hex)) ? MLSEC_ERR_NOMEM
	                                                                : MLSEC_OK;
}

/* Envelope around a statement; signs it when key is not NULL. */
static mlsec_err envelope_build(const json_t *stmt, const export_key *key, char **out, size_t *len,
                                mlsec_error *err)
{
	char *body = json_dumps(stmt, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (!body)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t blen = strlen(body);
	char *b64 = export_b64_encode((unsigned char *)body, blen);
	json_t *sigs = json_array();
	mlsec_err rc = MLSEC_OK;
	if (!b64 || !sigs) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (key) {
		size_t plen = 0;
		unsigned char *pae =
		        export_pae(MLSEC_EXPORT_PAYLOAD_TYPE, (unsigned char *)body, blen, &plen);
		unsigned char *sig = NULL;
		size_t slen = 0;
		if (!pae) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			goto out;
		}
		rc = export_key_sign(key, pae, plen, &sig, &slen, err);
		mlsec_free(pae);
		if (rc != MLSEC_OK)
			goto out;
		char *s64 = export_b64_encode(sig, slen);
		mlsec_free(sig);
		if (!s64) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			goto out;
		}
		json_array_append_new(
		        sigs, json_pack("{s:s, s:s}", "keyid", export_key_id(key), "sig", s64));
		mlsec_free(s64);
	}
	json_t *env = json_pack("{s:s, s:s, s:O}", "payloadType", MLSEC_EXPORT_PAYLOAD_TYPE,
	                        "payload", b64, "signatures", sigs);
	char *text = env ? json_dumps(env, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;
	json_decref(env);
	if (!text) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Hand the caller an mlsec_malloc'd copy so one free works. */
	*len = strlen(text);
	*out = mlsec_malloc(*len + 2);
	if (*out) {
		memcpy(*out, text, *len);
		(*out)[(*len)++] = '\n';
		(*out)[*len] = '\0';
	} else {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	free(text);
out:
	json_decref(sigs);
	mlsec_free(b64);
	free(body);
	return rc;
}

mlsec_err mlsec_export_attest(const mlsec_export_attest_req *req, char **out, size_t *len,
                              mlsec_error *err)
{
	*out = NULL;
	*len = 0;
	if (!req || !req->onnx)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "an ONNX file is required");
	char ts[32];
	if (req->timestamp)
		snprintf(ts, sizeof ts, "%s", req->timestamp);
	else
		export_timestamp(ts);

	export_key *key = NULL;
	mlsec_err rc = MLSEC_OK;
	if (req->sign_key_path &&
	    (rc = export_key_load(req->sign_key_path, 1, &key, err)) != MLSEC_OK)
		return rc;

	json_t *stages = json_array(), *subject = json_array();
	json_t *recs[3] = {NULL, NULL, NULL};
	size_t n = 0;
	if (req->source && !(recs[n++] = export_stage_checkpoint(req->source, ts, err)))
		goto fail;
	if (!(recs[n++] = export_stage_onnx(req->onnx, req->onnx_lint, req->opts, ts, err)))
		goto fail;
	if (req->engine && !(recs[n++] = export_stage_tensorrt(req->engine, ts, err)))
		goto fail;

	const char *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		if ((rc = export_record_seal(recs[i], i, prev)) != MLSEC_OK) {
			mlsec_error_set(err, rc, "out of memory");
			goto fail;
		}
		prev = json_string_value(json_object_get(recs[i], "recordDigest"));
		json_array_append_new(subject,
		                      json_pack("{s:s, s:O}", "name",
		                                json_string_value(json_object_get(recs[i], "name")),
		                                "digest", json_object_get(recs[i], "digest")));
		json_array_append(stages, recs[i]);
	}
	json_t *stmt = json_pack("{s:s, s:O, s:s, s:{s:{s:s, s:s}, s:s, s:O}}", "_type",
	                         MLSEC_EXPORT_STATEMENT_TYPE, "subject", subject, "predicateType",
	                         MLSEC_EXPORT_PREDICATE_TYPE, "predicate", "builder", "id",
	                         "mlsec export-guard", "version", MLSEC_VERSION, "createdOn", ts,
	                         "stages", stages);
	if (!stmt) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = envelope_build(stmt, key, out, len, err);
	json_decref(stmt);
	goto done;
fail:
	rc = err && err->code != MLSEC_OK ? err->code : MLSEC_ERR_INTERNAL;
done:
	for (size_t i = 0; i < 3; i++)
		json_decref(recs[i]);
	json_decref(stages);
	json_decref(subject);
	export_key_free(key);
	return rc;
}
