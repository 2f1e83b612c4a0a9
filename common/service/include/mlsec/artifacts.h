/*
 * artifacts.h - how a service turns request artifacts into paths it may
 * read: confinement under the artifact root, size limits, sha256
 * verification. Shared by the stage services and the orchestrator.
 */
#ifndef MLSEC_ARTIFACTS_H
#define MLSEC_ARTIFACTS_H

#include <stdint.h>

#include "mlsec/err.h"
#include "mlsec/sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default per-artifact size limit (bytes). */
#define MLSEC_ARTIFACT_MAX_BYTES_DEFAULT (4ull << 30)
/* Longest artifact uri accepted from a request. */
#define MLSEC_ARTIFACT_MAX_URI 4096

/*
 * Resolves uri (relative to root, or absolute) to a real path that lies
 * under root, is a regular file and is at most max_bytes long. When
 * want_sha256 is a non-empty string it must match the file's digest
 * (MLSEC_ERR_INTEGRITY otherwise). On success *resolved (mlsec_free) and,
 * when not NULL, sha256_out/size_out describe the file.
 * Errors: MLSEC_ERR_INVALID_ARG (empty/NUL/overlong uri), _PERMISSION
 * (escapes root), _NOT_FOUND, _LIMIT (too large / not a regular file),
 * _INTEGRITY, _IO.
 */
mlsec_err mlsec_artifact_resolve(const char *root, const char *uri, uint64_t max_bytes,
                                 const char *want_sha256, char **resolved,
                                 char sha256_out[MLSEC_SHA256_HEX_LEN], uint64_t *size_out,
                                 mlsec_error *err);

/*
 * What a file was when it was hashed: its identity and change times, taken
 * with fstat on the descriptor that was hashed. A later
 * mlsec_artifact_stamp_check on the path shows whether the bytes an engine
 * read since (by reopening the path) can differ from the verified ones: a
 * rename swap changes the inode, any write changes the ctime, which no
 * unprivileged process can set back.
 */
typedef struct mlsec_artifact_stamp {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
} mlsec_artifact_stamp;

/* mlsec_artifact_resolve, also filling *stamp (may be NULL). The file is
 * hashed through one descriptor; a file changing while it is hashed is
 * MLSEC_ERR_INTEGRITY. */
mlsec_err mlsec_artifact_resolve_stamped(const char *root, const char *uri, uint64_t max_bytes,
                                         const char *want_sha256, char **resolved,
                                         char sha256_out[MLSEC_SHA256_HEX_LEN], uint64_t *size_out,
                                         mlsec_artifact_stamp *stamp, mlsec_error *err);

/* MLSEC_OK when path is still the file stamped, MLSEC_ERR_INTEGRITY when it
 * was replaced or modified (or is gone). */
mlsec_err mlsec_artifact_stamp_check(const char *path, const mlsec_artifact_stamp *stamp,
                                     mlsec_error *err);

/* 1 when uri has a ".." path component (refused before any lookup, so
 * that probing outside the root always reads "permission denied"). */
int mlsec_artifact_uri_has_dotdot(const char *uri);

/* The form of a resolved path stored in messages: relative to root. */
const char *mlsec_artifact_relative(const char *root_resolved, const char *path);

#ifdef __cplusplus
}
#endif
#endif
