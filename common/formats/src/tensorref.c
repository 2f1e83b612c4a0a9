/*
 * tensorref.c - dtype tables and tensor-list helpers.
 */
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/tensorref.h"

static const struct {
	const char *name, *st, *storage, *npy;
	size_t size;
	int is_float;
} dt[MLSEC_DT__COUNT] = {
        [MLSEC_DT_UNKNOWN] = {"unknown", NULL, NULL, NULL, 0, 0},
        [MLSEC_DT_F32] = {"float32", "F32", "FloatStorage", "<f4", 4, 1},
        [MLSEC_DT_F64] = {"float64", "F64", "DoubleStorage", "<f8", 8, 1},
        [MLSEC_DT_F16] = {"float16", "F16", "HalfStorage", "<f2", 2, 1},
        [MLSEC_DT_BF16] = {"bfloat16", "BF16", "BFloat16Storage", NULL, 2, 1},
        [MLSEC_DT_I64] = {"int64", "I64", "LongStorage", "<i8", 8, 0},
        [MLSEC_DT_I32] = {"int32", "I32", "IntStorage", "<i4", 4, 0},
        [MLSEC_DT_I16] = {"int16", "I16", "ShortStorage", "<i2", 2, 0},
        [MLSEC_DT_I8] = {"int8", "I8", "CharStorage", "|i1", 1, 0},
        [MLSEC_DT_U8] = {"uint8", "U8", "ByteStorage", "|u1", 1, 0},
        [MLSEC_DT_BOOL] = {"bool", "BOOL", "BoolStorage", "|b1", 1, 0},
        [MLSEC_DT_C64] = {"complex64", "C64", "ComplexFloatStorage", "<c8", 8, 0},
        [MLSEC_DT_C128] = {"complex128", "C128", "ComplexDoubleStorage", "<c16", 16, 0},
        [MLSEC_DT_U16] = {"uint16", "U16", NULL, "<u2", 2, 0},
        [MLSEC_DT_U32] = {"uint32", "U32", NULL, "<u4", 4, 0},
        [MLSEC_DT_U64] = {"uint64", "U64", NULL, "<u8", 8, 0},
};

size_t mlsec_dtype_size(mlsec_dtype d)
{
	return (unsigned)d < MLSEC_DT__COUNT ? dt[d].size : 0;
}
const char *mlsec_dtype_name(mlsec_dtype d)
{
	return (unsigned)d < MLSEC_DT__COUNT ? dt[d].name : "unknown";
}
const char *mlsec_dtype_st_name(mlsec_dtype d)
{
	return (unsigned)d < MLSEC_DT__COUNT ? dt[d].st : NULL;
}
int mlsec_dtype_is_float(mlsec_dtype d)
{
	return (unsigned)d < MLSEC_DT__COUNT && dt[d].is_float;
}
mlsec_dtype mlsec_dtype_from_st(const char *s)
{
	for (int i = 1; i < MLSEC_DT__COUNT; i++)
		if (dt[i].st && !strcmp(dt[i].st, s))
			return (mlsec_dtype)i;
	return MLSEC_DT_UNKNOWN;
}
mlsec_dtype mlsec_dtype_from_storage(const char *cls)
{
	for (int i = 1; i < MLSEC_DT__COUNT; i++)
		if (dt[i].storage && !strcmp(dt[i].storage, cls))
			return (mlsec_dtype)i;
	return MLSEC_DT_UNKNOWN;
}
mlsec_dtype mlsec_dtype_from_npy(const char *d)
{
	char buf[8];
	if (strlen(d) >= sizeof buf)
		return MLSEC_DT_UNKNOWN;
	strcpy(buf, d);
	/* one-byte types may be written with any byte-order mark */
	if ((buf[0] == '<' || buf[0] == '>' || buf[0] == '=') && buf[2] == '1' && !buf[3])
		buf[0] = '|';
	if (buf[0] == '=')
		buf[0] = '<'; /* native = little-endian on every platform we build for */
	for (int i = 1; i < MLSEC_DT__COUNT; i++)
		if (dt[i].npy && !strcmp(dt[i].npy, buf))
			return (mlsec_dtype)i;
	return MLSEC_DT_UNKNOWN;
}

void mlsec_tensor_list_free(mlsec_tensor_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		mlsec_free(l->t[i].name);
		mlsec_free(l->t[i].storage_key);
		mlsec_free(l->t[i].owned);
	}
	mlsec_free(l->t);
	mlsec_free(l->wrapper);
	memset(l, 0, sizeof(*l));
}

mlsec_err mlsec_tensor_list_push(mlsec_tensor_list *l, mlsec_tensor_ref *t)
{
	if (l->n >= MLSEC_TENSOR_MAX_COUNT)
		return MLSEC_ERR_LIMIT;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		mlsec_tensor_ref *n = mlsec_reallocarray(l->t, nc, sizeof(*n));
		if (!n)
			return MLSEC_ERR_NOMEM;
		l->t = n;
		l->cap = nc;
	}
	l->t[l->n++] = *t;
	return MLSEC_OK;
}

int mlsec_tensor_ref_contiguous(const mlsec_tensor_ref *t)
{
	int64_t expect = 1;
	for (int i = t->ndim - 1; i >= 0; i--) {
		if (t->shape[i] != 1 && t->stride[i] != expect)
			return 0;
		expect *= t->shape[i];
	}
	return 1;
}

mlsec_err mlsec_tensor_ref_check_bounds(const mlsec_tensor_ref *t, mlsec_error *err)
{
	uint64_t numel = 1, last = t->offset;
	for (int i = 0; i < t->ndim; i++) {
		if (t->shape[i] < 0 || t->stride[i] < 0)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "negative size or stride");
		if (t->shape[i] == 0)
			return MLSEC_OK; /* empty: touches nothing */
		uint64_t s = (uint64_t)t->shape[i];
		if (numel > UINT64_MAX / s)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "element count overflows");
		numel *= s;
		uint64_t span;
		if (__builtin_mul_overflow(s - 1, (uint64_t)t->stride[i], &span) ||
		    __builtin_add_overflow(last, span, &last))
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "view extent overflows");
	}
	if (numel != t->numel)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "element count mismatch");
	if (numel && last >= t->storage_numel)
		return mlsec_error_set(
		        err, MLSEC_ERR_PARSE, "view reaches element %llu of a %llu-element storage",
		        (unsigned long long)last, (unsigned long long)t->storage_numel);
	return MLSEC_OK;
}
