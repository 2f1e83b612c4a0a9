/*
 * artifacts.c - artifact uri -> confined, size-checked, digest-verified
 * path (see artifacts.h). Confinement itself is the core's
 * mlsec_path_confine (realpath of both, prefix check).
 */
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mlsec/alloc.h"
#include "mlsec/artifacts.h"
#include "mlsec/fsutil.h"

int mlsec_artifact_uri_has_dotdot(const char *uri)
{
	for (const char *p = uri; (p = strstr(p, "..")) != NULL; p += 2) {
		int start = p == uri || p[-1] == '/';
		int end = p[2] == '\0' || p[2] == '/';
		if (start && end)
			return 1;
	}
	return 0;
}

mlsec_err mlsec_artifact_resolve(const char *root, const char *uri, uint64_t max_bytes,
                                 const char *want_sha256, char **resolved,
                                 char sha256_out[MLSEC_SHA256_HEX_LEN], uint64_t *size_out,
                                 mlsec_error *err)
{
	*resolved = NULL;
	if (!root || !*root)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no artifact root configured");
	if (!uri || !*uri)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "artifact uri is empty");
	size_t ulen = strnlen(uri, MLSEC_ARTIFACT_MAX_URI + 1);
	if (ulen > MLSEC_ARTIFACT_MAX_URI)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "artifact uri longer than %d",
		                       MLSEC_ARTIFACT_MAX_URI);
	if (!strncmp(uri, "file://", 7))
		uri += 7;
	else if (strstr(uri, "://"))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "artifact uri scheme not supported: %.64s", uri);
	if (mlsec_artifact_uri_has_dotdot(uri))
		return mlsec_error_set(err, MLSEC_ERR_PERMISSION,
		                       "artifact %.256s: '..' is not allowed in artifact paths",
		                       uri);
	if (want_sha256 && *want_sha256 && !mlsec_sha256_hex_valid(want_sha256))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "artifact %.256s: sha256 is not 64 hex characters", uri);
	char *path = uri[0] == '/' ? mlsec_strdup(uri) : mlsec_sprintf("%s/%s", root, uri);
	if (!path)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	char *real = NULL;
	mlsec_error cerr;
	mlsec_error_clear(&cerr);
	mlsec_err e = mlsec_path_confine(root, path, &real, &cerr);
	mlsec_free(path);
	if (e == MLSEC_ERR_PERMISSION)
		return mlsec_error_set(err, e, "artifact %.256s is outside the artifact root", uri);
	if (e == MLSEC_ERR_NOT_FOUND)
		return mlsec_error_set(err, e, "artifact %.256s not found", uri);
	if (e != MLSEC_OK)
		return mlsec_error_set(err, e, "artifact %.256s: %s", uri, cerr.text);
	struct stat st;
	if (stat(real, &st) != 0) {
		mlsec_free(real);
		return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "artifact %.256s not found", uri);
	}
	if (!S_ISREG(st.st_mode)) {
		mlsec_free(real);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "artifact %.256s is not a regular file", uri);
	}
	if ((uint64_t)st.st_size > max_bytes) {
		mlsec_free(real);
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "artifact %.256s is larger than %llu bytes", uri,
		                       (unsigned long long)max_bytes);
	}
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size = 0;
	e = mlsec_sha256_file(real, hex, &size, &cerr);
	if (e != MLSEC_OK) {
		mlsec_free(real);
		return mlsec_error_set(err, e, "artifact %.256s: %s", uri, cerr.text);
	}
	if (want_sha256 && *want_sha256 && strcasecmp(want_sha256, hex) != 0) {
		mlsec_free(real);
		return mlsec_error_set(
		        err, MLSEC_ERR_INTEGRITY,
		        "artifact %.256s: sha256 mismatch (expected %.64s, file has %s)", uri,
		        want_sha256, hex);
	}
	if (size > max_bytes) { /* grew between stat and hashing */
		mlsec_free(real);
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "artifact %.256s is too large", uri);
	}
	if (sha256_out)
		memcpy(sha256_out, hex, MLSEC_SHA256_HEX_LEN);
	if (size_out)
		*size_out = size;
	*resolved = real;
	return MLSEC_OK;
}

const char *mlsec_artifact_relative(const char *root_resolved, const char *path)
{
	size_t n = strlen(root_resolved);
	while (n > 1 && root_resolved[n - 1] == '/')
		n--;
	if (!strncmp(path, root_resolved, n) && path[n] == '/' && path[n + 1])
		return path + n + 1;
	return path;
}
