/*
 * npy.h - NumPy .npy headers: "\x93NUMPY", version, header length, then a
 * Python dict literal {'descr': '<f4', 'fortran_order': False,
 * 'shape': (3, 4), }. Object arrays ('|O') hold a pickle after the header.
 */
#ifndef MLSEC_NPY_H
#define MLSEC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"
#include "mlsec/tensorref.h"

#define MLSEC_NPY_MAX_HEADER (1u << 20)

typedef struct mlsec_npy_info {
	char descr[32];
	int fortran_order;
	int is_object; /* descr 'O' or a structured dtype holding objects */
	int ndim;
	int64_t shape[MLSEC_TENSOR_MAX_DIMS];
	uint64_t numel;
	uint64_t data_offset; /* header end */
	mlsec_dtype dtype;    /* UNKNOWN for objects/structured/big-endian */
} mlsec_npy_info;

int mlsec_npy_sniff(const uint8_t *b, size_t n);

/* Parses the header from the first bytes of the file (give at least
 * min(file size, MLSEC_NPY_MAX_HEADER + 12) bytes). */
mlsec_err mlsec_npy_parse(const uint8_t *b, size_t n, mlsec_npy_info *info, mlsec_error *err);

#endif
