/*
 * npy.c - NumPy .npy header parsing (a tiny reader for the dict literal
 * numpy.lib.format writes; anything else is rejected).
 */
#include <stdlib.h>
#include <string.h>

#include "mlsec/npy.h"

int mlsec_npy_sniff(const uint8_t *b, size_t n)
{
	return n >= 10 && !memcmp(b, "\x93NUMPY", 6);
}

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == ','))
		p++;
	return p;
}

mlsec_err mlsec_npy_parse(const uint8_t *b, size_t n, mlsec_npy_info *info, mlsec_error *err)
{
	memset(info, 0, sizeof(*info));
	if (!mlsec_npy_sniff(b, n))
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "not an .npy file");
	uint8_t major = b[6];
	uint64_t hl, at;
	if (major == 1) {
		hl = (uint64_t)b[8] | (uint64_t)b[9] << 8;
		at = 10;
	} else if (major == 2 || major == 3) {
		if (n < 12)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "truncated .npy header");
		hl = (uint64_t)b[8] | (uint64_t)b[9] << 8 | (uint64_t)b[10] << 16 |
		     (uint64_t)b[11] << 24;
		at = 12;
	} else {
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "unsupported .npy version %u", major);
	}
	if (hl > MLSEC_NPY_MAX_HEADER || hl > n - at)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "truncated or oversized .npy header");
	const char *p = (const char *)b + at, *e = p + hl;
	info->data_offset = at + hl;
	p = skip_ws(p, e);
	if (p >= e || *p != '{')
		return mlsec_error_set(err, MLSEC_ERR_PARSE, ".npy header is not a dict");
	p++;
	/* numpy writes each key once and its parser keeps the last one: a
	 * repeated key is an attempt to show us one header and numpy another. */
	int have_descr = 0, have_shape = 0, have_fortran = 0;
	while (1) {
		p = skip_ws(p, e);
		if (p < e && *p == '}')
			break;
		if (p >= e || (*p != '\'' && *p != '"'))
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad .npy header key");
		char q = *p++;
		const char *k = p;
		while (p < e && *p != q)
			p++;
		if (p >= e)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad .npy header key");
		size_t kl = (size_t)(p - k);
		p = skip_ws(p + 1, e);
		if (p >= e || *p != ':')
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad .npy header");
		p = skip_ws(p + 1, e);
		if (kl == 5 && !memcmp(k, "descr", 5)) {
			if (have_descr)
				return mlsec_error_set(err, MLSEC_ERR_PARSE, "repeated descr key");
			if (p < e && (*p == '\'' || *p == '"')) {
				char dq = *p++;
				const char *d = p;
				while (p < e && *p != dq)
					p++;
				if (p >= e || (size_t)(p - d) >= sizeof info->descr)
					return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad descr");
				memcpy(info->descr, d, (size_t)(p - d));
				info->descr[p - d] = '\0';
				p++;
			} else if (p < e && *p == '[') {
				/* structured dtype: treat as opaque; objects inside make
				 * the data a pickle */
				int depth = 0;
				const char *s0 = p;
				for (; p < e; p++) {
					if (*p == '[' || *p == '(')
						depth++;
					else if (*p == ']' || *p == ')') {
						if (--depth == 0) {
							p++;
							break;
						}
					}
				}
				for (const char *c = s0; c + 1 < p; c++)
					if ((c[0] == '\'' || c[0] == '"') &&
					    (c[1] == 'O' || (c + 2 < p && c[2] == 'O' &&
					                     (c[1] == '|' || c[1] == '<'))))
						info->is_object = 1;
				strcpy(info->descr, "structured");
			} else {
				return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad descr");
			}
			have_descr = 1;
		} else if (kl == 13 && !memcmp(k, "fortran_order", 13)) {
			if (have_fortran++)
				return mlsec_error_set(err, MLSEC_ERR_PARSE,
				                       "repeated fortran_order key");
			if ((size_t)(e - p) >= 4 && !memcmp(p, "True", 4)) {
				info->fortran_order = 1;
				p += 4;
			} else if ((size_t)(e - p) >= 5 && !memcmp(p, "False", 5)) {
				p += 5;
			} else {
				return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad fortran_order");
			}
		} else if (kl == 5 && !memcmp(k, "shape", 5)) {
			if (have_shape)
				return mlsec_error_set(err, MLSEC_ERR_PARSE, "repeated shape key");
			if (p >= e || *p != '(')
				return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad shape");
			p++;
			info->numel = 1;
			while (1) {
				p = skip_ws(p, e);
				if (p < e && *p == ')') {
					p++;
					break;
				}
				if (p >= e || *p < '0' || *p > '9' ||
				    info->ndim >= MLSEC_TENSOR_MAX_DIMS)
					return mlsec_error_set(err, MLSEC_ERR_PARSE, "bad shape");
				uint64_t d = 0;
				while (p < e && *p >= '0' && *p <= '9') {
					if (d > (INT64_MAX - 9) / 10)
						return mlsec_error_set(err, MLSEC_ERR_PARSE,
						                       "bad shape");
					d = d * 10 + (uint64_t)(*p++ - '0');
				}
				if (p < e && *p == 'L')
					p++;
				if (d && info->numel > UINT64_MAX / d)
					return mlsec_error_set(err, MLSEC_ERR_PARSE,
					                       "shape overflows");
				info->numel *= d;
				info->shape[info->ndim++] = (int64_t)d;
			}
			have_shape = 1;
		} else {
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "unknown .npy header key");
		}
	}
	if (!have_descr || !have_shape)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, ".npy header lacks descr or shape");
	/* Object arrays are pickles: 'O', '|O', '<O8'... (fail closed on any
	 * byte-order prefix or item size numpy might accept). */
	const char *dk = info->descr;
	if (*dk == '|' || *dk == '<' || *dk == '>' || *dk == '=')
		dk++;
	if (*dk == 'O')
		info->is_object = 1;
	info->dtype = info->is_object ? MLSEC_DT_UNKNOWN : mlsec_dtype_from_npy(info->descr);
	return MLSEC_OK;
}
