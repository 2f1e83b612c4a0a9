/*
 * bytesrc.h - random access to an artifact's bytes, either a file
 * descriptor or a memory buffer, with bounded streaming.
 *
 * Streaming a file maps it in windows (MLSEC_SRC_WINDOW bytes at a time,
 * unmapped after use), so resident memory stays bounded whatever the size
 * of the artifact; the page cache is used directly, without copies.
 */
#ifndef MLSEC_BYTESRC_H
#define MLSEC_BYTESRC_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

#define MLSEC_SRC_WINDOW (8u * 1024 * 1024)

typedef struct mlsec_src {
	int fd;             /* -1 for a memory source */
	const uint8_t *mem; /* borrowed; NULL for a file source */
	uint64_t size;
} mlsec_src;

void mlsec_src_init_fd(mlsec_src *s, int fd, uint64_t size);
void mlsec_src_init_mem(mlsec_src *s, const uint8_t *buf, size_t len);

/* Reads exactly len bytes at off into buf; MLSEC_ERR_PARSE if past the end. */
mlsec_err mlsec_src_read(const mlsec_src *s, uint64_t off, void *buf, size_t len, mlsec_error *err);

/*
 * Sink for streamed bytes: data[0..len) are the bytes at position `pos`
 * of the streamed range. Return 0 to continue, non-zero to stop (the
 * stream then returns MLSEC_ERR_TIMEOUT when *cancel-like, else the value
 * is passed back through *stopped).
 */
typedef int (*mlsec_sink)(void *ctx, const uint8_t *data, size_t len, uint64_t pos);

/*
 * Streams [off, off+len) to sink in chunks of at most MLSEC_SRC_WINDOW.
 * *stopped (may be NULL) receives the sink's non-zero return, if any.
 */
mlsec_err mlsec_src_stream(const mlsec_src *s, uint64_t off, uint64_t len, mlsec_sink sink,
                           void *ctx, int *stopped, mlsec_error *err);

#endif
