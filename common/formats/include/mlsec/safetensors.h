/*
 * safetensors.h - reader for the safetensors layout: an 8-byte
 * little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data. Validation follows the reference implementation: the
 * header must be bounded and valid JSON without duplicate keys, offsets
 * must match dtype x shape, stay inside the data, not overlap and cover it
 * completely. Any violation is an error: the caller reports MALFORMED.
 */
#ifndef MLSEC_SAFETENSORS_H
#define MLSEC_SAFETENSORS_H

#include <jansson.h>

#include "mlsec/bytesrc.h"
#include "mlsec/tensorref.h"

#define MLSEC_ST_MAX_HEADER (100u * 1024 * 1024)

/* 1 if the first bytes look like safetensors (length + '{'). */
int mlsec_safetensors_sniff(const uint8_t *b, size_t n, uint64_t file_size);

/*
 * Appends the file's tensors to out (located: file offsets set). On
 * success *metadata (may be NULL) gets a new reference to the
 * "__metadata__" object or NULL.
 */
mlsec_err mlsec_safetensors_read(const mlsec_src *src, mlsec_tensor_list *out, json_t **metadata,
                                 mlsec_error *err);

/*
 * Builds the header for tensors whose byte sizes are given (same order):
 * data_offsets are assigned sequentially. The result is padded with
 * spaces to a multiple of 8 bytes and prefixed by its 8-byte length;
 * caller mlsec_free()s *out.
 */
mlsec_err mlsec_safetensors_header(const mlsec_tensor_list *l, const json_t *metadata,
                                   uint8_t **out, size_t *len, mlsec_error *err);

#endif
