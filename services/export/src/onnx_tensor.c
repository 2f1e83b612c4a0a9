/*
 * onnx_tensor.c - reading TensorProto values whichever field holds them
 * (raw_data little-endian bytes, or one of the typed arrays the spec
 * assigns to each data type), for the lint and the canonical graph digest.
 */
#include <math.h>
#include <string.h>

#include "export_onnx.h"
#include "mlsec/alloc.h"

enum {
	DT_FLOAT = 1,
	DT_UINT8,
	DT_INT8,
	DT_UINT16,
	DT_INT16,
	DT_INT32,
	DT_INT64,
	DT_STRING,
	DT_BOOL,
	DT_FLOAT16,
	DT_DOUBLE,
	DT_UINT32,
	DT_UINT64,
	DT_COMPLEX64,
	DT_COMPLEX128,
	DT_BFLOAT16,
	DT_F8A,
	DT_F8B,
	DT_F8C,
	DT_F8D
};

size_t export_dtype_size(int32_t dt)
{
	static const unsigned char sz[] = {0, 4, 1, 1, 2,  2, 4, 8, 0, 1, 2,
	                                   8, 4, 8, 8, 16, 2, 1, 1, 1, 1};
	return dt > 0 && (size_t)dt < sizeof sz ? sz[dt] : 0;
}

const char *export_dtype_name(int32_t dt)
{
	static const char *n[] = {"UNDEFINED",     "FLOAT",        "UINT8",          "INT8",
	                          "UINT16",        "INT16",        "INT32",          "INT64",
	                          "STRING",        "BOOL",         "FLOAT16",        "DOUBLE",
	                          "UINT32",        "UINT64",       "COMPLEX64",      "COMPLEX128",
	                          "BFLOAT16",      "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
	                          "FLOAT8E5M2FNUZ"};
	return dt >= 0 && (size_t)dt < sizeof n / sizeof n[0] ? n[dt] : "?";
}

int export_dtype_is_float(int32_t dt)
{
	return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16;
}

int export_tensor_numel(const Onnx__TensorProto *t, uint64_t *numel)
{
	uint64_t n = 1;
	if (t->n_dims > EXPORT_ONNX_MAX_RANK)
		return 0;
	for (size_t i = 0; i < t->n_dims; i++) {
		if (t->dims[i] < 0)
			return 0;
		uint64_t d = (uint64_t)t->dims[i];
		if (d && n > UINT64_MAX / d)
			return 0;
		n *= d;
	}
	*numel = n;
	return 1;
}

int export_tensor_is_external(const Onnx__TensorProto *t)
{
	return t->has_data_location &&
	       t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

const char *export_tensor_ext(const Onnx__TensorProto *t, const char *key)
{
	for (size_t i = 0; i < t->n_external_data; i++)
		if (t->external_data[i]->key && !strcmp(t->external_data[i]->key, key))
			return t->external_data[i]->value;
	return NULL;
}

int64_t export_tensor_stored_elems(const Onnx__TensorProto *t)
{
	int32_t dt = t->data_type;
	if (export_tensor_is_external(t))
		return -1;
	if (t->has_raw_data) {
		size_t es = export_dtype_size(dt);
		if (!es || t->raw_data.len % es)
			return -2;
		return (int64_t)(t->raw_data.len / es);
	}
	switch (dt) {
	case DT_FLOAT:
		return (int64_t)t->n_float_data;
	case DT_COMPLEX64:
		return t->n_float_data % 2 ? -2 : (int64_t)t->n_float_data / 2;
	case DT_INT64:
		return (int64_t)t->n_int64_data;
	case DT_DOUBLE:
		return (int64_t)t->n_double_data;
	case DT_COMPLEX128:
		return t->n_double_data % 2 ? -2 : (int64_t)t->n_double_data / 2;
	case DT_UINT32:
	case DT_UINT64:
		return (int64_t)t->n_uint64_data;
	case DT_STRING:
		return (int64_t)t->n_string_data;
	case DT_INT32:
	case DT_INT16:
	case DT_INT8:
	case DT_UINT16:
	case DT_UINT8:
	case DT_BOOL:
	case DT_FLOAT16:
	case DT_BFLOAT16:
	case DT_F8A:
	case DT_F8B:
	case DT_F8C:
	case DT_F8D:
		return (int64_t)t->n_int32_data;
	default:
		return -1;
	}
}

static double half_to_double(uint16_t h)
{
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double v;
	if (e == 0)
		v = ldexp(m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp(m | 0x400, e - 25);
	return (h & 0x8000) ? -v : v;
}

static double bf16_to_double(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint64_t le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

double export_tensor_value(const Onnx__TensorProto *t, size_t i)
{
	int32_t dt = t->data_type;
	if (t->has_raw_data) {
		size_t es = export_dtype_size(dt);
		const uint8_t *p = t->raw_data.data + i * es;
		uint64_t u = le(p, es);
		switch (dt) {
		case DT_FLOAT: {
			uint32_t w = (uint32_t)u;
			float f;
			memcpy(&f, &w, 4);
			return f;
		}
		case DT_DOUBLE: {
			double d;
			memcpy(&d, &u, 8);
			return d;
		}
		case DT_FLOAT16:
			return half_to_double((uint16_t)u);
		case DT_BFLOAT16:
			return bf16_to_double((uint16_t)u);
		case DT_INT8:
			return (int8_t)u;
		case DT_INT16:
			return (int16_t)u;
		case DT_INT32:
			return (int32_t)u;
		case DT_INT64:
			return (double)(int64_t)u;
		default:
			return (double)u;
		}
	}
	switch (dt) {
	case DT_FLOAT:
		return t->float_data[i];
	case DT_DOUBLE:
		return t->double_data[i];
	case DT_INT64:
		return (double)t->int64_data[i];
	case DT_UINT32:
	case DT_UINT64:
		return (double)t->uint64_data[i];
	case DT_FLOAT16:
		return half_to_double((uint16_t)t->int32_data[i]);
	case DT_BFLOAT16:
		return bf16_to_double((uint16_t)t->int32_data[i]);
	default:
		return t->int32_data[i];
	}
}

uint8_t *export_tensor_le_bytes(const Onnx__TensorProto *t, size_t *n)
{
	*n = 0;
	if (t->has_raw_data) {
		if (!t->raw_data.len)
			return NULL;
		uint8_t *b = mlsec_malloc(t->raw_data.len);
		if (b) {
			memcpy(b, t->raw_data.data, t->raw_data.len);
			*n = t->raw_data.len;
		}
		return b;
	}
	int64_t cnt = export_tensor_stored_elems(t);
	size_t es = export_dtype_size(t->data_type);
	if (cnt <= 0 || !es)
		return NULL;
	uint8_t *b = mlsec_reallocarray(NULL, (size_t)cnt, es);
	if (!b)
		return NULL;
	int32_t dt = t->data_type;
	for (size_t i = 0; i < (size_t)cnt; i++) {
		uint64_t u;
		if (dt == DT_FLOAT || dt == DT_COMPLEX64) {
			/* complex64 stores 2 floats per element */
			if (dt == DT_COMPLEX64) {
				uint32_t w0, w1;
				memcpy(&w0, &t->float_data[2 * i], 4);
				memcpy(&w1, &t->float_data[2 * i + 1], 4);
				u = (uint64_t)w0 | ((uint64_t)w1 << 32);
			} else {
				uint32_t w;
				memcpy(&w, &t->float_data[i], 4);
				u = w;
			}
		} else if (dt == DT_DOUBLE) {
			memcpy(&u, &t->double_data[i], 8);
		} else if (dt == DT_COMPLEX128) {
			/* 16 bytes: write both halves here and skip the common path */
			uint64_t a, c;
			memcpy(&a, &t->double_data[2 * i], 8);
			memcpy(&c, &t->double_data[2 * i + 1], 8);
			for (size_t k = 0; k < 8; k++) {
				b[i * 16 + k] = (uint8_t)(a >> (8 * k));
				b[i * 16 + 8 + k] = (uint8_t)(c >> (8 * k));
			}
			continue;
		} else if (dt == DT_INT64) {
			u = (uint64_t)t->int64_data[i];
		} else if (dt == DT_UINT32 || dt == DT_UINT64) {
			u = t->uint64_data[i];
		} else {
			u = (uint64_t)(uint32_t)t->int32_data[i];
		}
		for (size_t k = 0; k < es; k++)
			b[i * es + k] = (uint8_t)(u >> (8 * k));
	}
	*n = (size_t)cnt * es;
	return b;
}
