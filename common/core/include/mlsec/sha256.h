/*
 * sha256.h - SHA-256 of buffers and files (OpenSSL EVP underneath).
 * Hex digests are 64 lowercase characters plus NUL.
 */
#ifndef MLSEC_SHA256_H
#define MLSEC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

#define MLSEC_SHA256_HEX_LEN 65

typedef struct mlsec_sha256 mlsec_sha256;

/* Incremental hashing. _new returns NULL on allocation failure. */
mlsec_sha256 *mlsec_sha256_new(void);
void mlsec_sha256_update(mlsec_sha256 *h, const void *data, size_t len);
/* Writes 32 raw bytes to out (if not NULL) and hex to hex (if not NULL), frees h. */
void mlsec_sha256_final(mlsec_sha256 *h, unsigned char out[32], char hex[MLSEC_SHA256_HEX_LEN]);

void mlsec_sha256_buf(const void *data, size_t len, char hex[MLSEC_SHA256_HEX_LEN]);
mlsec_err mlsec_sha256_file(const char *path, char hex[MLSEC_SHA256_HEX_LEN], uint64_t *size,
                            mlsec_error *err);
/* 1 if s is 64 hex characters (either case), else 0. */
int mlsec_sha256_hex_valid(const char *s);
void mlsec_hex_encode(const unsigned char *in, size_t n, char *out /* 2n+1 */);

#endif
