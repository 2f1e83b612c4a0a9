/*
 * err.h - the one error enum of mlsec, and the detail struct that goes with it.
 *
 * Every fallible function returns an mlsec_err (MLSEC_OK == 0) and, where it
 * can say more, fills a caller-provided mlsec_error which may be NULL.
 * The enum is append-only: values are stable across versions.
 * Mapping to exit codes and gRPC status codes happens only at the edges.
 */
#ifndef MLSEC_ERR_H
#define MLSEC_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mlsec_err {
	MLSEC_OK = 0,
	MLSEC_ERR_NOMEM,       /* allocation failed */
	MLSEC_ERR_IO,          /* read/write/open failed (errno in detail) */
	MLSEC_ERR_INVALID_ARG, /* caller error: bad flag, option or request */
	MLSEC_ERR_NOT_FOUND,   /* path, key or job does not exist */
	MLSEC_ERR_PARSE,       /* artifact or message does not parse */
	MLSEC_ERR_LIMIT,       /* a size/count/depth/time limit was hit */
	MLSEC_ERR_UNSUPPORTED, /* well-formed but not something we handle */
	MLSEC_ERR_PERMISSION,  /* outside the artifact root, or denied */
	MLSEC_ERR_TIMEOUT,     /* a deadline passed */
	MLSEC_ERR_UNAVAILABLE, /* a peer (Redis, Kafka, gRPC) is unreachable */
	MLSEC_ERR_AUTH,        /* missing or wrong credentials */
	MLSEC_ERR_INTERNAL,    /* a bug: an invariant did not hold */
	MLSEC_ERR_INTEGRITY,   /* a digest or signature does not match */
	MLSEC_ERR__COUNT       /* keep last */
} mlsec_err;

/* Static, never NULL, e.g. "parse error". */
const char *mlsec_strerror(mlsec_err code);

/*
 * Rich error detail. All fields are optional except code and text.
 * line/column are 1-based, 0 when unknown; offset is -1 when unknown.
 */
typedef struct mlsec_error {
	mlsec_err code;
	char file[512];
	long line;
	long column;
	long long offset;
	char text[512];
} mlsec_error;

/* Reset to MLSEC_OK with empty fields. err may be NULL. */
void mlsec_error_clear(mlsec_error *err);

/*
 * Fill err (may be NULL) with code and a printf-style message; returns code
 * so that callers can write `return mlsec_error_set(err, MLSEC_ERR_IO, ...)`.
 * file/line/column/offset are left untouched: set them directly if known.
 */
mlsec_err mlsec_error_set(mlsec_error *err, mlsec_err code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Same, and records the location too. file may be NULL. */
mlsec_err mlsec_error_set_at(mlsec_error *err, mlsec_err code, const char *file, long line,
                             long column, long long offset, const char *fmt, ...)
        __attribute__((format(printf, 7, 8)));

/* "file:line:col: text" (parts omitted when unknown) into buf. */
const char *mlsec_error_format(const mlsec_error *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
