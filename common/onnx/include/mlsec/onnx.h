/*
 * onnx.h - reading and validating ONNX model files (layer 1 of the tensor
 * engine). Exposes the raw protobuf-c message so that lint passes (the
 * export guard) can walk graphs, subgraphs, attributes and metadata even for
 * operators the executor (mlsec/tensor.h) does not run.
 *
 * What mlsec_onnx_model_load() guarantees once it returns MLSEC_OK:
 *  - the file is at most limits.max_file_bytes and decodes as a ModelProto;
 *    message nesting depth and the number of messages were bounded BEFORE
 *    protobuf-c allocated anything (a schema-driven pre-scan of the wire
 *    format), so hostile nesting cannot exhaust the stack or the heap;
 *  - every TensorProto reachable from the model (initializers, sparse
 *    initializers, Constant/attribute tensors, subgraphs, functions,
 *    training graphs) has at most MLSEC_ONNX_MAX_RANK dims, each >= 0, whose
 *    product fits limits.max_tensor_elems without overflow, and its stored
 *    payload (raw_data, typed arrays or external range) has exactly the
 *    size the dims and data type declare;
 *  - every external-data location is a relative path without "..", absolute
 *    or empty components, that resolves (symlinks followed) to a regular
 *    file inside the model's own directory, with offset+length inside that
 *    file (CVE-2022-25882 / CVE-2024-27318 shapes are rejected);
 *  - subgraph nesting (If/Loop/Scan bodies) is at most limits.max_graph_depth
 *    and node/initializer counts are within limits.
 * It does NOT check that the graph is executable (topology, op support):
 * that is mlsec_tensor_graph_compile()'s job.
 *
 * Thread-safety: a loaded model is immutable; reading it from several
 * threads is safe.
 */
#ifndef MLSEC_ONNX_H
#define MLSEC_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"
#include "onnx/onnx.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_ONNX_MAX_RANK 32 /* dims per tensor accepted by the loader */

typedef struct mlsec_onnx_limits {
	size_t max_file_bytes;       /* model file size (default 1 GiB) */
	size_t max_messages;         /* protobuf messages in the file (default 4M) */
	uint64_t max_decoded_bytes;  /* estimated heap of the decoded message (default 4 GiB) */
	size_t max_message_depth;    /* protobuf nesting depth (default 64) */
	size_t max_graph_depth;      /* subgraph nesting depth (default 8) */
	size_t max_nodes;            /* nodes over all graphs (default 1M) */
	size_t max_initializers;     /* initializers over all graphs (default 1M) */
	uint64_t max_tensor_elems;   /* elements of one tensor (default 2^31) */
	uint64_t max_external_bytes; /* sum of external data (default 16 GiB) */
} mlsec_onnx_limits;

/* Fills l with the defaults above. */
void mlsec_onnx_limits_default(mlsec_onnx_limits *l);

typedef struct mlsec_onnx_model mlsec_onnx_model;

/*
 * Loads and validates the model at path. limits may be NULL (defaults).
 * On success *out is a new model the caller frees with mlsec_onnx_model_free().
 * Errors: MLSEC_ERR_IO / NOT_FOUND (file), MLSEC_ERR_PARSE (not a valid
 * ModelProto, inconsistent tensor), MLSEC_ERR_LIMIT (a limit was hit),
 * MLSEC_ERR_PERMISSION (external data escaping the model directory),
 * MLSEC_ERR_NOMEM. err (may be NULL) names the tensor/node at fault.
 */
mlsec_err mlsec_onnx_model_load(const char *path, const mlsec_onnx_limits *limits,
                                mlsec_onnx_model **out, mlsec_error *err);

/*
 * Same for a model already in memory (the bytes are copied). base_dir is the
 * directory external data resolves against; NULL means external data is
 * rejected (MLSEC_ERR_PERMISSION), which is what fuzzers and network
 * callers want.
 */
mlsec_err mlsec_onnx_model_parse(const void *data, size_t len, const char *base_dir,
                                 const mlsec_onnx_limits *limits, mlsec_onnx_model **out,
                                 mlsec_error *err);

void mlsec_onnx_model_free(mlsec_onnx_model *m); /* NULL is fine */

/* The decoded message; borrowed, lives as long as m. Never NULL; graph may be. */
const Onnx__ModelProto *mlsec_onnx_model_proto(const mlsec_onnx_model *m);

/* The model's directory (resolved), or NULL for parsed in-memory models. */
const char *mlsec_onnx_model_dir(const mlsec_onnx_model *m);

/*
 * Opset version imported for domain ("" or "ai.onnx" = default domain);
 * -1 when the model does not import it.
 */
int64_t mlsec_onnx_model_opset(const mlsec_onnx_model *m, const char *domain);

/* ---- tensors ---- */

/* Size in bytes of one element of ONNX data type dt; 0 for strings/unknown/sub-byte. */
size_t mlsec_onnx_dtype_size(int32_t dt);
const char *mlsec_onnx_dtype_name(int32_t dt); /* "FLOAT", "INT64", "?" */

/*
 * Number of elements of t, overflow-checked (the loader already validated
 * every tensor it reached; this re-checks for tensors built by callers).
 */
mlsec_err mlsec_onnx_tensor_numel(const Onnx__TensorProto *t, uint64_t max_elems, uint64_t *numel,
                                  mlsec_error *err);

/* 1 when t's data lives in an external file. */
int mlsec_onnx_tensor_is_external(const Onnx__TensorProto *t);

/*
 * Copies the n elements of t into dst converted to float (from FLOAT,
 * DOUBLE, FLOAT16, BFLOAT16, the integer types and BOOL). n must equal the
 * tensor's element count. External data is read from the model's
 * directory (re-confined at read time). Errors: MLSEC_ERR_UNSUPPORTED
 * (strings, complex), MLSEC_ERR_PARSE (size mismatch), MLSEC_ERR_IO.
 */
mlsec_err mlsec_onnx_tensor_read_float(const mlsec_onnx_model *m, const Onnx__TensorProto *t,
                                       float *dst, size_t n, mlsec_error *err);

/* Same converted to int64 (integer types, BOOL; floats are truncated). */
mlsec_err mlsec_onnx_tensor_read_int64(const mlsec_onnx_model *m, const Onnx__TensorProto *t,
                                       int64_t *dst, size_t n, mlsec_error *err);

/* ---- nodes and attributes ---- */

/* The attribute called name, or NULL. */
const Onnx__AttributeProto *mlsec_onnx_node_attr(const Onnx__NodeProto *n, const char *name);
/* Attribute values with a default when absent or of another type. */
int64_t mlsec_onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
float mlsec_onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def);
/* String attribute (NUL-terminated copy not made: returns data/len), or def. */
const char *mlsec_onnx_attr_string(const Onnx__NodeProto *n, const char *name, const char *def,
                                   size_t *len);
/* INTS attribute: *count elements at the returned pointer, NULL when absent. */
const int64_t *mlsec_onnx_attr_ints(const Onnx__NodeProto *n, const char *name, size_t *count);

/* ---- walking ---- */

/*
 * What mlsec_onnx_model_walk() reports. where is a path such as
 * "graph/node[3:If_0]/attr[then_branch]" (valid during the callback only).
 */
typedef struct mlsec_onnx_visitor {
	/* each graph (main graph, subgraphs, training graphs), depth 0 = main */
	int (*graph)(const Onnx__GraphProto *g, size_t depth, const char *where, void *ctx);
	/* each node of each graph and function */
	int (*node)(const Onnx__NodeProto *n, size_t depth, const char *where, void *ctx);
	/* each tensor (initializers, sparse parts, attribute tensors) */
	int (*tensor)(const Onnx__TensorProto *t, size_t depth, const char *where, void *ctx);
	/* each function (model-local) */
	int (*function)(const Onnx__FunctionProto *f, const char *where, void *ctx);
} mlsec_onnx_visitor;

/*
 * Depth-first walk of everything in the model. Any callback may be NULL.
 * A callback returning non-zero stops the walk; that value is returned.
 * Subgraph depth is bounded by max_depth (deeper graphs are not entered and
 * the walk returns -1).
 */
int mlsec_onnx_model_walk(const Onnx__ModelProto *mp, const mlsec_onnx_visitor *v, size_t max_depth,
                          void *ctx);

#ifdef __cplusplus
}
#endif
#endif
