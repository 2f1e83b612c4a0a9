/*
 * export_onnx.h - ONNX helpers private to the export guard: the raw decode
 * (onnx_raw.c) and tensor accessors shared by the lint and the graph
 * digest (onnx_tensor.c).
 */
#ifndef MLSEC_EXPORT_ONNX_H
#define MLSEC_EXPORT_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"
#include "onnx/onnx.pb-c.h"

/* Bounded read + depth-checked decode; caller frees with
 * onnx__model_proto__free_unpacked(*out, NULL). MLSEC_ERR_PARSE/LIMIT for
 * bad input (the lint turns them into EXPORT-MALFORMED). */
mlsec_err export_onnx_load(const char *path, Onnx__ModelProto **out, mlsec_error *err);
mlsec_err export_onnx_decode(const uint8_t *data, size_t len, Onnx__ModelProto **out,
                             mlsec_error *err);

/* Canonical graph digest of a decoded model (graph_digest.c). */
mlsec_err export_graph_digest_model(const Onnx__ModelProto *mp, char hex[65], mlsec_error *err);

#define EXPORT_ONNX_MAX_RANK 32

/* Element size in bytes of a data type; 0 for STRING/unknown. */
size_t export_dtype_size(int32_t dt);
const char *export_dtype_name(int32_t dt);
int export_dtype_is_float(int32_t dt);

/* Product of dims into *numel; 0 on a negative dim, rank above the limit
 * or overflow. */
int export_tensor_numel(const Onnx__TensorProto *t, uint64_t *numel);

/* Elements physically stored in t (raw bytes / typed array / strings),
 * and the element count that storage implies, or -1 when unknown
 * (external, or no data). */
int64_t export_tensor_stored_elems(const Onnx__TensorProto *t);

/* Value i of an inline numeric tensor as a double; stored-count checked by
 * the caller. */
double export_tensor_value(const Onnx__TensorProto *t, size_t i);

/* Little-endian bytes of inline tensor values in the dtype's own width,
 * whichever field holds them; fresh buffer (NULL + *n = 0 when empty). */
uint8_t *export_tensor_le_bytes(const Onnx__TensorProto *t, size_t *n);

/* The external_data value for key, or NULL. */
const char *export_tensor_ext(const Onnx__TensorProto *t, const char *key);
int export_tensor_is_external(const Onnx__TensorProto *t);

#endif
