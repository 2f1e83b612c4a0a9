/*
 * state_dict.c - the canonical state-dict digest of a safetensors
 * checkpoint, so that a checkpoint re-saved with another tensor order or
 * header layout keeps its digest while any weight byte change does not.
 *
 * safetensors: u64 little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data block; offsets are relative to the data block.
 *
 * Digest stream, names in bytewise order:
 *   "mlsec-state-dict-v1\n" then per tensor
 *   u64le(len(name)) name u64le(len(dtype)) dtype u64le(ndim) u64le(dim)...
 *   u64le(nbytes) bytes
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"

#define ST_MAX_HEADER ((uint64_t)100u << 20) /* the format's own cap */
#define ST_MAX_TENSORS 1000000
#define ST_MAX_NDIM 32
#define ST_MAX_NAME 4096
#define ST_COPY_CHUNK 65536

typedef struct st_tensor {
	const char *name;
	const char *dtype;
	uint64_t dims[ST_MAX_NDIM];
	size_t ndim;
	uint64_t begin, end;
} st_tensor;

static int st_dtype_size(const char *d)
{
	static const struct {
		const char *n;
		int s;
	} t[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
	         {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
	         {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!strcmp(t[i].n, d))
			return t[i].s;
	return 0;
}

static int st_cmp(const void *a, const void *b)
{
	return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static void put_u64(mlsec_sha256 *h, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	mlsec_sha256_update(h, b, 8);
}

static void put_str(mlsec_sha256 *h, const char *s)
{
	size_t n = strlen(s);
	put_u64(h, n);
	mlsec_sha256_update(h, s, n);
}

static mlsec_err parse_tensor(const char *name, json_t *v, uint64_t data_len, st_tensor *t,
                              mlsec_error *err)
{
	json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
	       *off = json_object_get(v, "data_offsets");
	if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(sh) ||
	    !json_is_array(off) || json_array_size(off) != 2 || json_array_size(sh) > ST_MAX_NDIM ||
	    strlen(name) > ST_MAX_NAME)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%.200s': bad header entry",
		                       name);
	t->name = name;
	t->dtype = json_string_value(dt);
	int es = st_dtype_size(t->dtype);
	if (!es)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%.200s': unknown dtype",
		                       name);
	uint64_t numel = 1;
	t->ndim = json_array_size(sh);
	for (size_t i = 0; i < t->ndim; i++) {
		json_t *d = json_array_get(sh, i);
		if (!json_is_integer(d) || json_integer_value(d) < 0)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%.200s': bad shape",
			                       name);
		t->dims[i] = (uint64_t)json_integer_value(d);
		if (t->dims[i] && numel > UINT64_MAX / t->dims[i])
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "tensor '%.200s': shape overflows", name);
		numel *= t->dims[i];
	}
	json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
	if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
	    json_integer_value(e) < json_integer_value(b))
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%.200s': bad offsets", name);
	t->begin = (uint64_t)json_integer_value(b);
	t->end = (uint64_t)json_integer_value(e);
	if (t->end > data_len || numel > UINT64_MAX / (uint64_t)es ||
	    t->end - t->begin != numel * (uint64_t)es)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "tensor '%.200s': data range disagrees with shape/dtype",
		                       name);
	return MLSEC_OK;
}

mlsec_err mlsec_export_state_dict_digest(const char *path, char hex[65], size_t *ntensors,
                                         mlsec_error *err)
{
	switch (mlsec_format_sniff(path)) {
	case MLSEC_FMT_PYTORCH_ZIP:
		return export_pt_state_dict_digest(path, hex, ntensors, err);
	case MLSEC_FMT_PYTORCH_LEGACY:
	case MLSEC_FMT_PICKLE:
		return mlsec_error_set(
		        err, MLSEC_ERR_UNSUPPORTED,
		        "%s: legacy/pickle checkpoints have no state-dict digest yet", path);
	default:
		return export_st_state_dict_digest(path, hex, ntensors, err);
	}
}

mlsec_err export_st_state_dict_digest(const char *path, char hex[65], size_t *ntensors,
                                      mlsec_error *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	mlsec_err rc = MLSEC_OK;
	char *hdr = NULL;
	json_t *root = NULL;
	st_tensor *ts = NULL;
	mlsec_sha256 *h = NULL;
	unsigned char *chunk = NULL;
	struct stat st;
	unsigned char lb[8];
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || fread(lb, 1, 8, f) != 8) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "%s: not a safetensors file", path);
		goto out;
	}
	uint64_t hlen = 0;
	for (int i = 0; i < 8; i++)
		hlen |= (uint64_t)lb[i] << (8 * i);
	uint64_t fsize = (uint64_t)st.st_size;
	if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > fsize - 8) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "%s: header length %llu out of range",
		                     path, (unsigned long long)hlen);
		goto out;
	}
	hdr = mlsec_malloc((size_t)hlen);
	if (!hdr) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (fread(hdr, 1, (size_t)hlen, f) != hlen) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "%s: truncated header", path);
		goto out;
	}
	json_error_t je;
	root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(root)) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "%s: header JSON: %s", path,
		                     root ? "not an object" : je.text);
		goto out;
	}
	size_t n = json_object_size(root);
	if (n > ST_MAX_TENSORS) {
		rc = mlsec_error_set(err, MLSEC_ERR_LIMIT, "%s: too many tensors", path);
		goto out;
	}
	ts = mlsec_calloc(n ? n : 1, sizeof *ts);
	if (!ts) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	uint64_t data_len = fsize - 8 - hlen;
	size_t k = 0;
	const char *name;
	json_t *v;
	json_object_foreach(root, name, v)
	{
		if (!strcmp(name, "__metadata__"))
			continue;
		rc = parse_tensor(name, v, data_len, &ts[k], err);
		if (rc != MLSEC_OK)
			goto out;
		k++;
	}
	qsort(ts, k, sizeof *ts, st_cmp);
	h = mlsec_sha256_new();
	chunk = mlsec_malloc(ST_COPY_CHUNK);
	if (!h || !chunk) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	static const char tag[] = "mlsec-state-dict-v1\n";
	mlsec_sha256_update(h, tag, sizeof tag - 1);
	for (size_t i = 0; i < k; i++) {
		put_str(h, ts[i].name);
		put_str(h, ts[i].dtype);
		put_u64(h, ts[i].ndim);
		for (size_t d = 0; d < ts[i].ndim; d++)
			put_u64(h, ts[i].dims[d]);
		uint64_t left = ts[i].end - ts[i].begin;
		put_u64(h, left);
		if (fseeko(f, (off_t)(8 + hlen + ts[i].begin), SEEK_SET) != 0) {
			rc = mlsec_error_set(err, MLSEC_ERR_IO, "%s: seek failed", path);
			goto out;
		}
		while (left) {
			size_t want = left < ST_COPY_CHUNK ? (size_t)left : ST_COPY_CHUNK;
			if (fread(chunk, 1, want, f) != want) {
				rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "%s: truncated data",
				                     path);
				goto out;
			}
			mlsec_sha256_update(h, chunk, want);
			left -= want;
		}
	}
	mlsec_sha256_final(h, NULL, hex);
	h = NULL;
	if (ntensors)
		*ntensors = k;
out:
	if (h)
		mlsec_sha256_final(h, NULL, NULL);
	mlsec_free(chunk);
	mlsec_free(ts);
	json_decref(root);
	mlsec_free(hdr);
	fclose(f);
	return rc;
}
