/*
 * engine.c - the checkpoint engine's entry points: options from the
 * request JSON, target expansion, and mlsec_engine_checkpoint.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/checkpoint.h"
#include "mlsec/fsutil.h"
#include "mlsec/npy.h"
#include "mlsec/pickle.h"
#include "mlsec/safetensors.h"

void mlsec_ckpt_opts_init(mlsec_ckpt_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->threshold = MLSEC_CKPT_DEFAULT_THRESHOLD;
	o->kl_threshold = MLSEC_CKPT_DEFAULT_KL;
	o->gate = MLSEC_SEV_HIGH;
}

static mlsec_err num_opt(const json_t *j, const char *key, double *out, mlsec_error *err)
{
	json_t *v = json_object_get(j, key);
	if (!v)
		return MLSEC_OK;
	double d;
	if (json_is_number(v)) {
		d = json_number_value(v);
	} else if (json_is_string(v)) {
		char *end;
		d = strtod(json_string_value(v), &end);
		if (end == json_string_value(v) || *end)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "--%s: not a number",
			                       key);
	} else {
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "--%s: not a number", key);
	}
	if (!(d > 0) || d > 1e300)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "--%s must be a positive number",
		                       key);
	*out = d;
	return MLSEC_OK;
}

mlsec_err mlsec_ckpt_opts_from_json(const json_t *j, mlsec_ckpt_opts *o, mlsec_error *err)
{
	mlsec_ckpt_opts_init(o);
	if (!j)
		return MLSEC_OK;
	if (!json_is_object(j))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "options must be a JSON object");
	static const char *const known[] = {
	        "threshold",    "write-fingerprint",   "reference", "reference-fingerprint",
	        "kl-threshold", "convert-safetensors", "overwrite", "fail-on",
	        "no-hash"};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		size_t i = 0;
		while (i < sizeof known / sizeof known[0] && strcmp(known[i], k))
			i++;
		if (i == sizeof known / sizeof known[0])
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "unknown option '%s'",
			                       k);
	}
	mlsec_err rc = num_opt(j, "threshold", &o->threshold, err);
	if (rc == MLSEC_OK)
		rc = num_opt(j, "kl-threshold", &o->kl_threshold, err);
	if (rc != MLSEC_OK)
		return rc;
	json_t *s = json_object_get(j, "write-fingerprint");
	if (s && !(o->write_fingerprint = json_string_value(s)))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "--write-fingerprint: not a string");
	s = json_object_get(j, "reference");
	if (!s)
		s = json_object_get(j, "reference-fingerprint");
	if (s && !(o->reference = json_string_value(s)))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "--reference: not a string");
	o->convert = json_is_true(json_object_get(j, "convert-safetensors"));
	o->overwrite = json_is_true(json_object_get(j, "overwrite"));
	o->no_hash = json_is_true(json_object_get(j, "no-hash"));
	s = json_object_get(j, "fail-on");
	if (s && (!json_is_string(s) ||
	          mlsec_severity_parse(json_string_value(s), &o->gate) != MLSEC_OK))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "--fail-on: unknown severity");
	return MLSEC_OK;
}

/*
 * Directory walks take files whose extension is strongly tied to
 * checkpoints, and any other file whose first bytes look like a zip,
 * pickle, npy or safetensors file (so a renamed payload is still found,
 * and unrelated .bin/.model files do not fail the walk as MALFORMED).
 * Files named explicitly are always scanned.
 */
int mlsec_checkpoint_filter(const char *path, const char *base, void *ctx)
{
	(void)ctx;
	static const char *const ext[] = {".pt",     ".pth", ".pkl", ".pickle",     ".ckpt",
	                                  ".joblib", ".npy", ".npz", ".safetensors"};
	const char *dot = strrchr(base, '.');
	for (size_t i = 0; dot && i < sizeof ext / sizeof ext[0]; i++)
		if (!strcmp(dot, ext[i]))
			return 1;
	uint8_t h[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, h, sizeof h);
	close(fd);
	if (n < 4)
		return 0;
	return !memcmp(h, "PK\3\4", 4) || mlsec_pickle_sniff(h, (size_t)n) ||
	       mlsec_npy_sniff(h, (size_t)n) || (n > 8 && h[8] == '{' && h[6] == 0 && h[7] == 0);
}

static mlsec_err analyze(const mlsec_engine_request *req, mlsec_report *rep, mlsec_error *err)
{
	mlsec_ckpt_opts o;
	mlsec_err rc = mlsec_ckpt_opts_from_json(req->options, &o, err);
	if (rc != MLSEC_OK)
		return rc;
	o.cancel = req->cancel;
	o.progress = req->progress;
	o.progress_ctx = req->progress_ctx;
	if (!req->npaths)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no checkpoint paths given");
	mlsec_strlist files = {0};
	const char **confined = NULL;
	const char *const *paths = req->paths;
	if (req->artifact_root) {
		confined = mlsec_calloc(req->npaths, sizeof(char *));
		if (!confined)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < req->npaths && rc == MLSEC_OK; i++)
			rc = mlsec_path_confine(req->artifact_root, req->paths[i],
			                        (char **)&confined[i], err);
		paths = confined;
	}
	if (rc == MLSEC_OK)
		rc = mlsec_targets_expand(paths, req->npaths, mlsec_checkpoint_filter, NULL, &files,
		                          err);
	for (size_t i = 0; rc == MLSEC_OK && i < files.count; i++) {
		if (req->cancel && *req->cancel)
			rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
		else
			rc = mlsec_checkpoint_scan_file(files.items[i], &o, rep, err);
	}
	mlsec_strlist_free(&files);
	if (confined) {
		for (size_t i = 0; i < req->npaths; i++)
			mlsec_free((void *)confined[i]);
		mlsec_free(confined);
	}
	return rc;
}

const mlsec_engine mlsec_engine_checkpoint = {
        .stage = "checkpoint",
        .rule_prefix = "CKPT",
        .summary = "triage checkpoints: pickles, NaN/Inf, anomalies, drift",
        .analyze = analyze,
};
