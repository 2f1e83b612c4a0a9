/*
 * artifacts.c - artifact uri -> confined, size-checked, digest-verified
 * path (see artifacts.h). Confinement itself is the core's
 * mlsec_path_confine (realpath of both, prefix check).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

#define ARTIFACT_HASH_CHUNK (256 * 1024)

static void stamp_of(const struct stat *st, mlsec_artifact_stamp *s)
{
	s->dev = (uint64_t)st->st_dev;
	s->ino = (uint64_t)st->st_ino;
	s->size = (uint64_t)st->st_size;
	s->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	s->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static int stamp_eq(const mlsec_artifact_stamp *a, const mlsec_artifact_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* Hashes through one descriptor and stamps it: a change while hashing
 * (size, mtime or ctime moved) is MLSEC_ERR_INTEGRITY. */
static mlsec_err hash_stamped(const char *path, uint64_t max_bytes, char hex[MLSEC_SHA256_HEX_LEN],
                              uint64_t *size, mlsec_artifact_stamp *stamp, mlsec_error *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return mlsec_error_set(err, MLSEC_ERR_IO, "open: %s", strerror(errno));
	struct stat st;
	mlsec_artifact_stamp before, after;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return mlsec_error_set(err, MLSEC_ERR_IO, "fstat: %s", strerror(errno));
	}
	stamp_of(&st, &before);
	unsigned char *buf = mlsec_malloc(ARTIFACT_HASH_CHUNK);
	mlsec_sha256 *h = mlsec_sha256_new();
	if (!buf || !h) {
		mlsec_free(buf);
		if (h)
			mlsec_sha256_final(h, NULL, NULL); /* frees it */
		close(fd);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	uint64_t total = 0;
	mlsec_err e = MLSEC_OK;
	for (;;) {
		ssize_t n = read(fd, buf, ARTIFACT_HASH_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = mlsec_error_set(err, MLSEC_ERR_IO, "read: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max_bytes) {
			e = mlsec_error_set(err, MLSEC_ERR_LIMIT, "larger than %llu bytes",
			                    (unsigned long long)max_bytes);
			break;
		}
		mlsec_sha256_update(h, buf, (size_t)n);
	}
	unsigned char raw[32];
	mlsec_sha256_final(h, raw, hex);
	mlsec_free(buf);
	if (e == MLSEC_OK && fstat(fd, &st) != 0)
		e = mlsec_error_set(err, MLSEC_ERR_IO, "fstat: %s", strerror(errno));
	close(fd);
	if (e != MLSEC_OK)
		return e;
	stamp_of(&st, &after);
	if (!stamp_eq(&before, &after) || total != after.size)
		return mlsec_error_set(err, MLSEC_ERR_INTEGRITY, "modified while it was verified");
	*size = total;
	if (stamp)
		*stamp = after;
	return MLSEC_OK;
}

mlsec_err mlsec_artifact_stamp_check(const char *path, const mlsec_artifact_stamp *stamp,
                                     mlsec_error *err)
{
	struct stat st;
	mlsec_artifact_stamp now;
	if (lstat(path, &st) != 0)
		return mlsec_error_set(err, MLSEC_ERR_INTEGRITY,
		                       "artifact %.256s disappeared during the analysis", path);
	stamp_of(&st, &now);
	if (!S_ISREG(st.st_mode) || !stamp_eq(&now, stamp))
		return mlsec_error_set(err, MLSEC_ERR_INTEGRITY,
		                       "artifact %.256s was replaced or modified during the "
		                       "analysis: the result would not describe the verified file",
		                       path);
	return MLSEC_OK;
}

mlsec_err mlsec_artifact_resolve(const char *root, const char *uri, uint64_t max_bytes,
                                 const char *want_sha256, char **resolved,
                                 char sha256_out[MLSEC_SHA256_HEX_LEN], uint64_t *size_out,
                                 mlsec_error *err)
{
	return mlsec_artifact_resolve_stamped(root, uri, max_bytes, want_sha256, resolved,
	                                      sha256_out, size_out, NULL, err);
}

mlsec_err mlsec_artifact_resolve_stamped(const char *root, const char *uri, uint64_t max_bytes,
                                         const char *want_sha256, char **resolved,
                                         char sha256_out[MLSEC_SHA256_HEX_LEN], uint64_t *size_out,
                                         mlsec_artifact_stamp *stamp, mlsec_error *err)
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
	e = hash_stamped(real, max_bytes, hex, &size, stamp, &cerr);
	if (e == MLSEC_ERR_LIMIT) { /* grew between stat and hashing */
		mlsec_free(real);
		return mlsec_error_set(err, e, "artifact %.256s is too large", uri);
	}
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
