/*
 * tensorref.h - tensors found in checkpoints, described without loading
 * them: dtype, shape, stride and where their bytes are (a storage of a
 * PyTorch archive, a range of a safetensors/npy file). Shared by the
 * PyTorch, safetensors and npy readers.
 */
#ifndef MLSEC_TENSORREF_H
#define MLSEC_TENSORREF_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

#define MLSEC_TENSOR_MAX_DIMS 16
#define MLSEC_TENSOR_MAX_COUNT 1000000u /* tensors per checkpoint */

typedef enum mlsec_dtype {
	MLSEC_DT_UNKNOWN = 0,
	MLSEC_DT_F32,
	MLSEC_DT_F64,
	MLSEC_DT_F16,
	MLSEC_DT_BF16,
	MLSEC_DT_I64,
	MLSEC_DT_I32,
	MLSEC_DT_I16,
	MLSEC_DT_I8,
	MLSEC_DT_U8,
	MLSEC_DT_BOOL,
	MLSEC_DT_C64,
	MLSEC_DT_C128,
	MLSEC_DT_U16,
	MLSEC_DT_U32,
	MLSEC_DT_U64,
	MLSEC_DT__COUNT
} mlsec_dtype;

size_t mlsec_dtype_size(mlsec_dtype d);                /* bytes per element, 0 unknown */
const char *mlsec_dtype_name(mlsec_dtype d);           /* "float32", ... */
const char *mlsec_dtype_st_name(mlsec_dtype d);        /* safetensors: "F32", NULL if none */
mlsec_dtype mlsec_dtype_from_st(const char *s);        /* "F32" -> F32 */
mlsec_dtype mlsec_dtype_from_storage(const char *cls); /* "FloatStorage" -> F32 */
mlsec_dtype mlsec_dtype_from_npy(const char *descr);   /* "<f4" -> F32 (little-endian only) */
int mlsec_dtype_is_float(mlsec_dtype d);

typedef struct mlsec_tensor_ref {
	char *name; /* dotted path, owned */
	mlsec_dtype dtype;
	int ndim;
	int64_t shape[MLSEC_TENSOR_MAX_DIMS];
	int64_t stride[MLSEC_TENSOR_MAX_DIMS]; /* in elements */
	uint64_t offset;                       /* storage offset, in elements */
	uint64_t numel;
	char *storage_key;      /* PyTorch persistent-id key, owned; NULL otherwise */
	uint64_t storage_numel; /* as declared by the persistent id */
	mlsec_dtype storage_dtype;
	/* Where the storage/tensor bytes are in the file; set by the reader
	 * that resolves storages. file_len is in bytes. */
	int located;
	uint64_t file_offset, file_len;
	size_t zip_index; /* PyTorch zip: the member holding the storage */
	int in_zip;
	/* Inline data (a NumPy array inside a pickle): file_len bytes at mem,
	 * borrowed from the pickle VM (must outlive the list's use) unless
	 * owned is set, in which case the list frees it. */
	const uint8_t *mem;
	uint8_t *owned;
	long long pickle_offset; /* of the rebuild call, -1 if none */
} mlsec_tensor_ref;

typedef struct mlsec_tensor_list {
	mlsec_tensor_ref *t;
	size_t n, cap;
	char *wrapper;      /* "state_dict" etc. when names were taken inside it */
	size_t bad_rebuild; /* rebuild calls whose arguments did not make sense */
} mlsec_tensor_list;

void mlsec_tensor_list_free(mlsec_tensor_list *l); /* leaves l empty */
/* Appends a copy of *t, taking ownership of t->name and t->storage_key. */
mlsec_err mlsec_tensor_list_push(mlsec_tensor_list *l, mlsec_tensor_ref *t);

/* 1 if the tensor's elements are one contiguous row-major run. */
int mlsec_tensor_ref_contiguous(const mlsec_tensor_ref *t);
/*
 * Checks shape/stride/offset against the storage size (storage_numel):
 * MLSEC_ERR_PARSE with a reason when an element would fall outside.
 * Overflow-safe.
 */
mlsec_err mlsec_tensor_ref_check_bounds(const mlsec_tensor_ref *t, mlsec_error *err);

#endif
