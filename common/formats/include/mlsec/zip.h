/*
 * zip.h - a bounded, read-only zip reader that never extracts to disk.
 *
 * It reads the central directory (zip64 included), checks every local
 * header against it and records anomalies per entry instead of refusing
 * the archive, because PyTorch's loader (miniz) tolerates several of them
 * and an attacker can rely on that: duplicate names, traversal or absolute
 * names, local/central mismatches, overlapping data, odd flags, bad CRCs
 * (found while streaming a member). Only a missing or unusable central
 * directory is an error.
 *
 * Ownership: mlsec_zip borrows the byte source (fd or buffer), which must
 * outlive it; entries and their names belong to the mlsec_zip.
 */
#ifndef MLSEC_ZIP_H
#define MLSEC_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/bytesrc.h"
#include "mlsec/err.h"

#define MLSEC_ZIP_MAX_ENTRIES 100000u
#define MLSEC_ZIP_MAX_CD (64u * 1024 * 1024) /* central directory bytes */
#define MLSEC_ZIP_MAX_NAME 4096u
#define MLSEC_ZIP_MAX_INFLATE_RATIO 1000u /* deflate output / input */
/* A stored member is streamed to its sink in pieces of this size, each
 * CRC-checked just before the sink sees it (so it is read from cache). */
#define MLSEC_ZIP_CRC_PIECE (256u * 1024)

/* Entry problems (bit flags). */
#define MLSEC_ZIP_P_DUPLICATE 0x001      /* another entry has the same name */
#define MLSEC_ZIP_P_TRAVERSAL 0x002      /* a ".." path component */
#define MLSEC_ZIP_P_ABSOLUTE 0x004       /* "/x", "\\x" or "C:x" */
#define MLSEC_ZIP_P_ENCRYPTED 0x008      /* general-purpose flag bit 0 */
#define MLSEC_ZIP_P_LOCAL_MISMATCH 0x010 /* local header disagrees with the central one */
#define MLSEC_ZIP_P_BAD_LOCAL 0x020      /* local header missing or out of range */
#define MLSEC_ZIP_P_METHOD 0x040         /* neither stored nor deflate */
#define MLSEC_ZIP_P_OVERLAP 0x080        /* data overlaps another entry's */
#define MLSEC_ZIP_P_BAD_NAME 0x100       /* NUL, control characters or backslashes */
#define MLSEC_ZIP_P_CRC 0x200            /* CRC-32 mismatch (set by streaming) */
#define MLSEC_ZIP_P_SIZE 0x400           /* stored entry with csize != usize, or bomb */
#define MLSEC_ZIP_P_FLAGS 0x800          /* unusual general-purpose flags */

typedef struct mlsec_zip_entry {
	const char *name; /* NUL-terminated copy (embedded NULs cut it short) */
	size_t name_len;  /* raw length */
	uint16_t method, flags;
	uint32_t crc;
	uint64_t csize, usize;
	uint64_t local_offset; /* of the local header */
	uint64_t data_offset;  /* of the member's data; 0 when BAD_LOCAL */
	unsigned problems;     /* MLSEC_ZIP_P_* */
} mlsec_zip_entry;

typedef struct mlsec_zip mlsec_zip;

/* Opens the archive in src. On error (no/invalid central directory) *out is
 * NULL and err says why. */
mlsec_err mlsec_zip_open(const mlsec_src *src, mlsec_zip **out, mlsec_error *err);
void mlsec_zip_free(mlsec_zip *z);

size_t mlsec_zip_count(const mlsec_zip *z);
mlsec_zip_entry *mlsec_zip_entry_at(mlsec_zip *z, size_t i);
/* Index of the first entry (central-directory order) named name, or -1. */
long mlsec_zip_find(const mlsec_zip *z, const char *name);
/* Bytes before the first local header (prepended data), 0 normally. */
uint64_t mlsec_zip_prefix_len(const mlsec_zip *z);
/* Bytes after the end-of-central-directory record + comment. */
uint64_t mlsec_zip_trailing_len(const mlsec_zip *z);

/*
 * Streams member i's uncompressed bytes to sink (stored: straight from the
 * source; deflate: inflated in bounded chunks), verifying the CRC-32:
 * *crc_ok = 1 match, 0 mismatch (and MLSEC_ZIP_P_CRC is set), -1 not
 * checked because the sink stopped early. Output is capped at the declared
 * size and MLSEC_ZIP_MAX_INFLATE_RATIO. Errors: MLSEC_ERR_PARSE for
 * corrupt data, MLSEC_ERR_UNSUPPORTED for methods/encryption.
 */
mlsec_err mlsec_zip_member_stream(mlsec_zip *z, size_t i, mlsec_sink sink, void *ctx, int *crc_ok,
                                  mlsec_error *err);

/*
 * Reads member i into a fresh buffer (caller mlsec_free()s *out); fails with
 * MLSEC_ERR_LIMIT when its size exceeds max. crc_ok as above.
 */
mlsec_err mlsec_zip_member_read(mlsec_zip *z, size_t i, size_t max, uint8_t **out, size_t *len,
                                int *crc_ok, mlsec_error *err);

/* CRC-32 (zip/gzip polynomial) update, as zlib's crc32(). */
uint32_t mlsec_crc32(uint32_t crc, const void *buf, size_t len);

#endif
