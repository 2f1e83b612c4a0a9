/*
 * safetensors.c - safetensors header validation and writing.
 */
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/safetensors.h"

int mlsec_safetensors_sniff(const uint8_t *b, size_t n, uint64_t size)
{
	if (n < 9)
		return 0;
	uint64_t h = 0;
	for (int i = 7; i >= 0; i--)
		h = h << 8 | b[i];
	return b[8] == '{' && h >= 2 && h <= size - 8;
}

typedef struct span {
	uint64_t b, e;
	size_t idx;
} span;

static int cmp_span(const void *x, const void *y)
{
	const span *a = x, *b = y;
	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	return (a->e > b->e) - (a->e < b->e);
}

static int json_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

mlsec_err mlsec_safetensors_read(const mlsec_src *src, mlsec_tensor_list *out, json_t **metadata,
                                 mlsec_error *err)
{
	if (metadata)
		*metadata = NULL;
	uint8_t lb[8];
	mlsec_err rc = mlsec_src_read(src, 0, lb, 8, err);
	if (rc != MLSEC_OK)
		return rc;
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | lb[i];
	if (hl > MLSEC_ST_MAX_HEADER)
		return mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, 0, 0, 0,
		                          "header length %llu exceeds %u bytes",
		                          (unsigned long long)hl, MLSEC_ST_MAX_HEADER);
	if (hl > src->size - 8)
		return mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, 0, 0, 0,
		                          "header length %llu exceeds the file",
		                          (unsigned long long)hl);
	char *h = mlsec_malloc((size_t)hl + 1);
	if (!h)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	rc = mlsec_src_read(src, 8, h, (size_t)hl, err);
	if (rc != MLSEC_OK) {
		mlsec_free(h);
		return rc;
	}
	h[hl] = 0;
	json_error_t je;
	json_t *root = json_loadb(h, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
	mlsec_free(h);
	if (!root)
		return mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, 0, 0, 8 + je.position,
		                          "header JSON: %s", je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "header is not a JSON object");
	}
	uint64_t base = 8 + hl, dsize = src->size - base;
	size_t n = json_object_size(root), k = 0, first = out->n;
	span *sp = mlsec_calloc(n ? n : 1, sizeof(*sp));
	if (!sp) {
		json_decref(root);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (!strcmp(key, "__metadata__")) {
			const char *mk;
			json_t *mv;
			if (!json_is_object(v)) {
				rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
				                     "__metadata__ is not an object");
				break;
			}
			json_object_foreach(v, mk, mv) if (!json_is_string(mv))
			{
				rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
				                     "__metadata__ value '%s' is not a string", mk);
				break;
			}
			if (rc != MLSEC_OK)
				break;
			if (metadata)
				*metadata = json_incref(v);
			continue;
		}
		json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
		json_t *of = json_object_get(v, "data_offsets");
		mlsec_tensor_ref t;
		memset(&t, 0, sizeof t);
		t.pickle_offset = -1;
		if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(sh) ||
		    !json_is_array(of) || json_array_size(of) != 2) {
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': malformed entry",
			                     key);
			break;
		}
		t.dtype = mlsec_dtype_from_st(json_string_value(dt));
		if (t.dtype == MLSEC_DT_UNKNOWN) {
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
			                     "tensor '%s': unknown dtype '%s'", key,
			                     json_string_value(dt));
			break;
		}
		if (json_array_size(sh) > MLSEC_TENSOR_MAX_DIMS) {
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
			                     "tensor '%s': too many dimensions", key);
			break;
		}
		uint64_t numel = 1, d, b, e;
		int bad = 0;
		t.ndim = (int)json_array_size(sh);
		for (int i = 0; i < t.ndim && !bad; i++) {
			if (json_u64(json_array_get(sh, (size_t)i), &d) < 0 || d > INT64_MAX ||
			    (d && numel > UINT64_MAX / d))
				bad = 1;
			else {
				numel *= d;
				t.shape[i] = (int64_t)d;
			}
		}
		int64_t st = 1;
		for (int i = t.ndim - 1; i >= 0; i--) {
			t.stride[i] = st;
			st *= t.shape[i] ? t.shape[i] : 1;
		}
		uint64_t es = mlsec_dtype_size(t.dtype);
		if (bad || json_u64(json_array_get(of, 0), &b) < 0 ||
		    json_u64(json_array_get(of, 1), &e) < 0 || b > e || e > dsize ||
		    numel > UINT64_MAX / es || e - b != numel * es) {
			rc = mlsec_error_set(
			        err, MLSEC_ERR_PARSE,
			        "tensor '%s': data_offsets do not match dtype and shape "
			        "or leave the data area",
			        key);
			break;
		}
		t.numel = numel;
		t.storage_numel = numel;
		t.located = 1;
		t.file_offset = base + b;
		t.file_len = e - b;
		t.name = mlsec_strdup(key);
		if (!t.name || mlsec_tensor_list_push(out, &t) != MLSEC_OK) {
			mlsec_free(t.name);
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			break;
		}
		sp[k++] = (span){b, e, out->n - 1};
	}
	json_decref(root);
	if (rc == MLSEC_OK) {
		qsort(sp, k, sizeof(*sp), cmp_span);
		uint64_t end = 0;
		for (size_t i = 0; i < k && rc == MLSEC_OK; i++) {
			if (sp[i].b < end)
				rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
				                     "tensor '%s' overlaps another",
				                     out->t[sp[i].idx].name);
			else if (sp[i].b > end)
				rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
				                     "%llu unreferenced bytes before tensor '%s'",
				                     (unsigned long long)(sp[i].b - end),
				                     out->t[sp[i].idx].name);
			end = sp[i].e > end ? sp[i].e : end;
		}
		if (rc == MLSEC_OK && end != dsize)
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
			                     "%llu bytes after the last tensor are not referenced",
			                     (unsigned long long)(dsize - end));
	}
	mlsec_free(sp);
	if (rc != MLSEC_OK && metadata && *metadata) {
		json_decref(*metadata);
		*metadata = NULL;
	}
	(void)first;
	return rc;
}

mlsec_err mlsec_safetensors_header(const mlsec_tensor_list *l, const json_t *metadata,
                                   uint8_t **out, size_t *len, mlsec_error *err)
{
	*out = NULL;
	json_t *root = json_object();
	if (!root)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (metadata && json_object_set(root, "__metadata__", (json_t *)metadata) < 0)
		goto oom;
	uint64_t off = 0;
	for (size_t i = 0; i < l->n; i++) {
		const mlsec_tensor_ref *t = &l->t[i];
		const char *st = mlsec_dtype_st_name(t->dtype);
		if (!st) {
			json_decref(root);
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                       "tensor '%s': dtype %s has no safetensors name",
			                       t->name, mlsec_dtype_name(t->dtype));
		}
		json_t *shape = json_array();
		for (int d = 0; shape && d < t->ndim; d++)
			json_array_append_new(shape, json_integer(t->shape[d]));
		uint64_t bytes = t->numel * mlsec_dtype_size(t->dtype);
		json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", st, "shape", shape,
		                      "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
		if (!e || json_object_set_new(root, t->name, e) < 0)
			goto oom;
		off += bytes;
	}
	char *s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!s)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t sl = strlen(s), padded = (sl + 7) & ~(size_t)7;
	uint8_t *b = mlsec_malloc(8 + padded);
	if (!b) {
		free(s);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)padded >> (8 * i));
	memcpy(b + 8, s, sl);
	memset(b + 8 + sl, ' ', padded - sl);
	free(s);
	*out = b;
	*len = 8 + padded;
	return MLSEC_OK;
oom:
	json_decref(root);
	return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
}
