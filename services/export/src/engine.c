/*
 * engine.c - the export guard behind the generic engine interface used by
 * the stage service and the orchestrator: every ONNX path is linted; a
 * JSON path is taken as an attestation and verified against the other
 * paths of the request.
 *
 * Options (JSON object, names as the CLI flags): "allowed-domain" (string
 * or array of strings), "constant-threshold" (number), "verify-key"
 * (path of an Ed25519 public key PEM).
 */
#include <string.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"

static mlsec_err read_opts(const json_t *opt, mlsec_export_opts *o, const char **doms,
                           const char **vkey, mlsec_error *err)
{
	mlsec_export_opts_init(o);
	*vkey = NULL;
	if (!opt)
		return MLSEC_OK;
	if (!json_is_object(opt))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "options must be an object");
	json_t *d = json_object_get(opt, "allowed-domain");
	if (json_is_string(d)) {
		doms[o->nallowed++] = json_string_value(d);
	} else if (json_is_array(d)) {
		if (json_array_size(d) > MLSEC_EXPORT_MAX_ALLOWED_DOMAINS)
			return mlsec_error_set(err, MLSEC_ERR_LIMIT, "too many allowed domains");
		for (size_t i = 0; i < json_array_size(d); i++) {
			if (!json_is_string(json_array_get(d, i)))
				return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                       "allowed-domain must hold strings");
			doms[o->nallowed++] = json_string_value(json_array_get(d, i));
		}
	} else if (d) {
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "allowed-domain must be a string or an array");
	}
	o->allowed_domains = doms;
	json_t *t = json_object_get(opt, "constant-threshold");
	if (t) {
		if (!json_is_number(t) || !(json_number_value(t) > 0))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "constant-threshold must be a positive number");
		o->constant_threshold = json_number_value(t);
	}
	json_t *k = json_object_get(opt, "verify-key");
	if (k && !json_is_string(k))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "verify-key must be a path");
	*vkey = json_string_value(k);
	return MLSEC_OK;
}

static mlsec_err engine_analyze(const mlsec_engine_request *req, mlsec_report *rep,
                                mlsec_error *err)
{
	const char *doms[MLSEC_EXPORT_MAX_ALLOWED_DOMAINS];
	mlsec_export_opts o;
	const char *vkey = NULL;
	mlsec_err rc = read_opts(req->options, &o, doms, &vkey, err);
	if (rc != MLSEC_OK)
		return rc;
	if (!req->npaths)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no artifact given");
	char **paths = mlsec_calloc(req->npaths, sizeof *paths);
	if (!paths)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < req->npaths && rc == MLSEC_OK; i++) {
		if (req->artifact_root)
			rc = mlsec_path_confine(req->artifact_root, req->paths[i], &paths[i], err);
		else if (!(paths[i] = mlsec_strdup(req->paths[i])))
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	/* With an attestation in the request, the checkpoint and plan are
	 * chain members, not ONNX files to lint. */
	int has_att = 0;
	for (size_t i = 0; i < req->npaths && rc == MLSEC_OK; i++)
		has_att |= mlsec_format_sniff(paths[i]) == MLSEC_FMT_JSON;
	char *vkey_real = NULL;
	if (rc == MLSEC_OK && vkey && req->artifact_root)
		rc = mlsec_path_confine(req->artifact_root, vkey, &vkey_real, err);
	if (vkey_real)
		vkey = vkey_real;
	for (size_t i = 0; i < req->npaths && rc == MLSEC_OK; i++) {
		if (req->cancel && *req->cancel) {
			rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
			break;
		}
		mlsec_format fmt = mlsec_format_sniff(paths[i]);
		if (has_att && fmt != MLSEC_FMT_JSON && fmt != MLSEC_FMT_ONNX)
			continue; /* a chain member: verify checks its digests */
		if (fmt == MLSEC_FMT_JSON) {
			const char **others = mlsec_calloc(req->npaths, sizeof *others);
			if (!others) {
				rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
				break;
			}
			size_t no = 0;
			for (size_t k = 0; k < req->npaths; k++)
				if (k != i)
					others[no++] = paths[k];
			mlsec_export_verify_req vr = {paths[i], vkey, others, no,
			                              req->artifact_root};
			rc = mlsec_export_verify(&vr, rep, err);
			mlsec_free(others);
		} else {
			rc = mlsec_export_lint_onnx(paths[i], &o, rep, NULL, err);
		}
		if (req->progress)
			req->progress(req->progress_ctx, paths[i], (double)(i + 1),
			              (double)req->npaths);
	}
	for (size_t i = 0; i < req->npaths; i++)
		mlsec_free(paths[i]);
	mlsec_free(paths);
	mlsec_free(vkey_real);
	return rc;
}

const mlsec_engine mlsec_engine_export = {
        .stage = "export",
        .rule_prefix = EXPORT_PREFIX,
        .summary = "lint ONNX exports; verify signed provenance chains",
        .analyze = engine_analyze,
};
