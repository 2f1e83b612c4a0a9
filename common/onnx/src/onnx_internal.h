/* onnx_internal.h - the model struct shared by the loader's source files. */
#ifndef MLSEC_ONNX_INTERNAL_H
#define MLSEC_ONNX_INTERNAL_H

#include "mlsec/onnx.h"

struct mlsec_onnx_model {
	Onnx__ModelProto *proto;
	char *dir; /* resolved model directory, NULL for in-memory models */
	mlsec_onnx_limits limits;
};

/* Resolves an external-data location of t inside m->dir; fills the file
 * path (fresh string), offset and length. Shared by validation and reads. */
mlsec_err mlsec_onnx__external_locate(const mlsec_onnx_model *m, const Onnx__TensorProto *t,
                                      char **path, uint64_t *offset, uint64_t *length,
                                      mlsec_error *err);

#endif
