/*
 * onnx_data.c - tensor payload access (typed arrays, raw_data, external
 * files confined to the model directory), attribute helpers and the
 * generic model walk used by validation and by lint passes.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "onnx_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian; big-endian hosts need byte swapping here"
#endif

#define DT(x) ONNX__TENSOR_PROTO__DATA_TYPE__##x

size_t mlsec_onnx_dtype_size(int32_t dt)
{
	switch (dt) {
	case DT(FLOAT):
	case DT(INT32):
	case DT(UINT32):
		return 4;
	case DT(UINT8):
	case DT(INT8):
	case DT(BOOL):
		return 1;
	case DT(FLOAT8E4M3FN):
	case DT(FLOAT8E4M3FNUZ):
	case DT(FLOAT8E5M2):
	case DT(FLOAT8E5M2FNUZ):
		return 1;
	case DT(UINT16):
	case DT(INT16):
	case DT(FLOAT16):
	case DT(BFLOAT16):
		return 2;
	case DT(INT64):
	case DT(UINT64):
	case DT(DOUBLE):
	case DT(COMPLEX64):
		return 8;
	case DT(COMPLEX128):
		return 16;
	default:
		return 0;
	}
}

const char *mlsec_onnx_dtype_name(int32_t dt)
{
	static const char *const names[] = {
	        "UNDEFINED",      "FLOAT",    "UINT8",        "INT8",           "UINT16",
	        "INT16",          "INT32",    "INT64",        "STRING",         "BOOL",
	        "FLOAT16",        "DOUBLE",   "UINT32",       "UINT64",         "COMPLEX64",
	        "COMPLEX128",     "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
	        "FLOAT8E5M2FNUZ", "UINT4",    "INT4",         "FLOAT4E2M1"};
	if (dt < 0 || (size_t)dt >= sizeof names / sizeof names[0])
		return "?";
	return names[dt];
}

mlsec_err mlsec_onnx_tensor_numel(const Onnx__TensorProto *t, uint64_t max_elems, uint64_t *numel,
                                  mlsec_error *err)
{
	if (t->n_dims > MLSEC_ONNX_MAX_RANK)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "rank %zu over %d", t->n_dims,
		                       MLSEC_ONNX_MAX_RANK);
	uint64_t n = 1;
	for (size_t i = 0; i < t->n_dims; i++) {
		int64_t d = t->dims[i];
		if (d < 0)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "negative dim %lld",
			                       (long long)d);
		if (d != 0 && n > max_elems / (uint64_t)d)
			return mlsec_error_set(err, MLSEC_ERR_LIMIT,
			                       "dims product over %llu elements",
			                       (unsigned long long)max_elems);
		n *= (uint64_t)d;
	}
	/* The loop bounded n only while no dim was 0; recheck the total. */
	if (n > max_elems)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "dims product over %llu elements",
		                       (unsigned long long)max_elems);
	*numel = n;
	return MLSEC_OK;
}

int mlsec_onnx_tensor_is_external(const Onnx__TensorProto *t)
{
	return (t->has_data_location &&
	        t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
	       t->n_external_data > 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	if (!s || !*s || strlen(s) > 19)
		return -1;
	uint64_t r = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		r = r * 10 + (uint64_t)(*s - '0');
	}
	*v = r;
	return 0;
}

/* A location is acceptable when it is relative, has no "..", empty or
 * Windows-style components: anything else is how CVE-2022-25882 and
 * CVE-2024-27318 escaped the model directory. */
static int location_ok(const char *loc)
{
	if (!loc || !*loc || loc[0] == '/' || strchr(loc, '\\') || strchr(loc, ':'))
		return 0;
	const char *p = loc;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/')
			p++;
		if (e && !*p)
			return 0; /* trailing slash */
	}
	return 1;
}

mlsec_err mlsec_onnx__external_locate(const mlsec_onnx_model *m, const Onnx__TensorProto *t,
                                      char **path, uint64_t *offset, uint64_t *length,
                                      mlsec_error *err)
{
	*path = NULL;
	const char *loc = NULL;
	uint64_t off = 0, len = 0;
	int have_len = 0;
	for (size_t i = 0; i < t->n_external_data; i++) {
		const Onnx__StringStringEntryProto *e = t->external_data[i];
		const char *k = e->key ? e->key : "";
		if (strcmp(k, "location") == 0) {
			loc = e->value;
		} else if (strcmp(k, "offset") == 0) {
			if (parse_u64(e->value, &off))
				return mlsec_error_set(err, MLSEC_ERR_PARSE,
				                       "external data: bad offset");
		} else if (strcmp(k, "length") == 0) {
			if (parse_u64(e->value, &len))
				return mlsec_error_set(err, MLSEC_ERR_PARSE,
				                       "external data: bad length");
			have_len = 1;
		}
	}
	if (!m->dir)
		return mlsec_error_set(err, MLSEC_ERR_PERMISSION,
		                       "external data not allowed for in-memory models");
	if (!loc)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "external data without location");
	if (!location_ok(loc))
		return mlsec_error_set(
		        err, MLSEC_ERR_PERMISSION,
		        "external data location '%.200s' escapes the model directory", loc);
	char *joined = mlsec_sprintf("%s/%s", m->dir, loc);
	if (!joined)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	char *resolved = NULL;
	mlsec_err rc = mlsec_path_confine(m->dir, joined, &resolved, err);
	mlsec_free(joined);
	if (rc) {
		if (rc == MLSEC_ERR_PERMISSION)
			mlsec_error_set(
			        err, rc,
			        "external data location '%.200s' resolves outside the model "
			        "directory",
			        loc);
		return rc;
	}
	struct stat st;
	if (stat(resolved, &st) != 0 || !S_ISREG(st.st_mode)) {
		mlsec_free(resolved);
		return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND,
		                       "external data '%.200s' is not a regular file", loc);
	}
	uint64_t size = (uint64_t)st.st_size;
	if (off > size || (have_len && len > size - off)) {
		mlsec_free(resolved);
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "external data '%.200s': range beyond the file's %llu bytes",
		                       loc, (unsigned long long)size);
	}
	*path = resolved;
	*offset = off;
	*length = have_len ? len : size - off;
	return MLSEC_OK;
}

/* ---- element conversion ---- */

static float half_to_float(uint16_t h)
{
	uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, f = h & 0x3ff;
	float v;
	if (e == 0)
		v = ldexpf((float)f, -24);
	else if (e == 31)
		v = f ? NAN : INFINITY;
	else
		v = ldexpf((float)(f | 0x400), (int)e - 25);
	return s ? -v : v;
}

static double elem_from_bytes(const uint8_t *p, int32_t dt)
{
	union {
		float f;
		double d;
		int16_t i16;
		uint16_t u16;
		int32_t i32;
		uint32_t u32;
		int64_t i64;
		uint64_t u64;
	} u;
	switch (dt) {
	case DT(FLOAT):
		memcpy(&u.f, p, 4);
		return u.f;
	case DT(DOUBLE):
		memcpy(&u.d, p, 8);
		return u.d;
	case DT(INT8):
		return (int8_t)p[0];
	case DT(UINT8):
		return p[0];
	case DT(BOOL):
		return p[0] != 0;
	case DT(INT16):
		memcpy(&u.i16, p, 2);
		return u.i16;
	case DT(UINT16):
		memcpy(&u.u16, p, 2);
		return u.u16;
	case DT(FLOAT16):
		memcpy(&u.u16, p, 2);
		return half_to_float(u.u16);
	case DT(BFLOAT16): {
		memcpy(&u.u16, p, 2);
		u.u32 = (uint32_t)u.u16 << 16;
		return u.f;
	}
	case DT(INT32):
		memcpy(&u.i32, p, 4);
		return u.i32;
	case DT(UINT32):
		memcpy(&u.u32, p, 4);
		return u.u32;
	case DT(INT64):
		memcpy(&u.i64, p, 8);
		return (double)u.i64;
	case DT(UINT64):
		memcpy(&u.u64, p, 8);
		return (double)u.u64;
	default:
		return 0;
	}
}

static int numeric_type(int32_t dt)
{
	switch (dt) {
	case DT(FLOAT):
	case DT(DOUBLE):
	case DT(INT8):
	case DT(UINT8):
	case DT(BOOL):
	case DT(INT16):
	case DT(UINT16):
	case DT(FLOAT16):
	case DT(BFLOAT16):
	case DT(INT32):
	case DT(UINT32):
	case DT(INT64):
	case DT(UINT64):
		return 1;
	default:
		return 0;
	}
}

/* Reads element i of a typed-array tensor (no raw data). */
static double typed_elem(const Onnx__TensorProto *t, int32_t dt, size_t i)
{
	switch (dt) {
	case DT(FLOAT):
		return t->float_data[i];
	case DT(DOUBLE):
		return t->double_data[i];
	case DT(INT64):
		return (double)t->int64_data[i];
	case DT(UINT32):
	case DT(UINT64):
		return (double)t->uint64_data[i];
	case DT(FLOAT16):
		return half_to_float((uint16_t)t->int32_data[i]);
	case DT(BFLOAT16): {
		union {
			uint32_t u;
			float f;
		} u = {.u = (uint32_t)(t->int32_data[i] & 0xffff) << 16};
		return u.f;
	}
	default:
		return t->int32_data[i];
	}
}

/* Exact int64 read of typed arrays (doubles would lose precision). */
static int64_t typed_elem_i64(const Onnx__TensorProto *t, int32_t dt, size_t i)
{
	switch (dt) {
	case DT(INT64):
		return t->int64_data[i];
	case DT(UINT32):
	case DT(UINT64):
		return (int64_t)t->uint64_data[i];
	case DT(FLOAT):
	case DT(DOUBLE):
	case DT(FLOAT16):
	case DT(BFLOAT16):
		return (int64_t)typed_elem(t, dt, i);
	default:
		return t->int32_data[i];
	}
}

/* Reads the payload (raw or external) into a fresh buffer, or points at
 * raw_data directly; *owned tells the caller to free it. */
static mlsec_err payload_bytes(const mlsec_onnx_model *m, const Onnx__TensorProto *t, size_t want,
                               const uint8_t **bytes, uint8_t **owned, mlsec_error *err)
{
	*owned = NULL;
	*bytes = NULL;
	if (!mlsec_onnx_tensor_is_external(t)) {
		if (t->has_raw_data && (t->raw_data.len > 0 || want == 0)) {
			if (t->raw_data.len != want)
				return mlsec_error_set(err, MLSEC_ERR_PARSE,
				                       "tensor '%s': raw_data size mismatch",
				                       t->name ? t->name : "");
			*bytes = t->raw_data.data;
		}
		return MLSEC_OK;
	}
	if (!m)
		return mlsec_error_set(err, MLSEC_ERR_PERMISSION, "external data needs a model");
	char *path;
	uint64_t off, len;
	mlsec_err rc = mlsec_onnx__external_locate(m, t, &path, &off, &len, err);
	if (rc)
		return rc;
	if (len != want) {
		mlsec_free(path);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': external size mismatch",
		                       t->name ? t->name : "");
	}
	uint8_t *buf = mlsec_malloc(want ? want : 1);
	int fd = buf ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	rc = MLSEC_OK;
	if (!buf) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	} else if (fd < 0) {
		rc = mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", path, strerror(errno));
	} else {
		size_t got = 0;
		while (got < want) {
			ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + got));
			if (r <= 0) {
				rc = mlsec_error_set(err, MLSEC_ERR_IO, "%s: short read", path);
				break;
			}
			got += (size_t)r;
		}
	}
	if (fd >= 0)
		close(fd);
	mlsec_free(path);
	if (rc) {
		mlsec_free(buf);
		return rc;
	}
	*bytes = *owned = buf;
	return MLSEC_OK;
}

static mlsec_err read_common(const mlsec_onnx_model *m, const Onnx__TensorProto *t, float *fdst,
                             int64_t *idst, size_t n, mlsec_error *err)
{
	const char *name = t->name ? t->name : "";
	int32_t dt = t->has_data_type ? t->data_type : 0;
	if (!numeric_type(dt))
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "tensor '%s': data type %s",
		                       name, mlsec_onnx_dtype_name(dt));
	uint64_t numel;
	mlsec_err rc = mlsec_onnx_tensor_numel(t, (uint64_t)1 << 40, &numel, err);
	if (rc)
		return rc;
	if (numel != n)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "tensor '%s': %llu elements, %zu wanted", name,
		                       (unsigned long long)numel, n);
	size_t es = mlsec_onnx_dtype_size(dt);
	const uint8_t *bytes;
	uint8_t *owned;
	rc = payload_bytes(m, t, n * es, &bytes, &owned, err);
	if (rc)
		return rc;
	if (bytes) {
		if (fdst && dt == DT(FLOAT)) {
			memcpy(fdst, bytes, n * 4);
		} else if (idst && dt == DT(INT64)) {
			memcpy(idst, bytes, n * 8);
		} else {
			for (size_t i = 0; i < n; i++) {
				double v = elem_from_bytes(bytes + i * es, dt);
				if (fdst)
					fdst[i] = (float)v;
				else
					idst[i] = (int64_t)v;
			}
		}
		mlsec_free(owned);
		return MLSEC_OK;
	}
	unsigned per = 1;
	size_t have;
	switch (dt) {
	case DT(FLOAT):
		have = t->n_float_data;
		break;
	case DT(DOUBLE):
		have = t->n_double_data;
		break;
	case DT(INT64):
		have = t->n_int64_data;
		break;
	case DT(UINT32):
	case DT(UINT64):
		have = t->n_uint64_data;
		break;
	default:
		have = t->n_int32_data;
		break;
	}
	if (have != n * per)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': %zu values, %zu wanted",
		                       name, have, n);
	for (size_t i = 0; i < n; i++) {
		if (fdst)
			fdst[i] = (float)typed_elem(t, dt, i);
		else
			idst[i] = typed_elem_i64(t, dt, i);
	}
	return MLSEC_OK;
}

mlsec_err mlsec_onnx_tensor_read_float(const mlsec_onnx_model *m, const Onnx__TensorProto *t,
                                       float *dst, size_t n, mlsec_error *err)
{
	return read_common(m, t, dst, NULL, n, err);
}

mlsec_err mlsec_onnx_tensor_read_int64(const mlsec_onnx_model *m, const Onnx__TensorProto *t,
                                       int64_t *dst, size_t n, mlsec_error *err)
{
	return read_common(m, t, NULL, dst, n, err);
}

/* ---- attributes ---- */

const Onnx__AttributeProto *mlsec_onnx_node_attr(const Onnx__NodeProto *n, const char *name)
{
	for (size_t i = 0; i < n->n_attribute; i++)
		if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
			return n->attribute[i];
	return NULL;
}

#define AT(x) ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__##x

int64_t mlsec_onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
	const Onnx__AttributeProto *a = mlsec_onnx_node_attr(n, name);
	if (!a || !a->has_i || (a->has_type && a->type != AT(INT)))
		return def;
	return a->i;
}

float mlsec_onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def)
{
	const Onnx__AttributeProto *a = mlsec_onnx_node_attr(n, name);
	if (!a || !a->has_f || (a->has_type && a->type != AT(FLOAT)))
		return def;
	return a->f;
}

const char *mlsec_onnx_attr_string(const Onnx__NodeProto *n, const char *name, const char *def,
                                   size_t *len)
{
	const Onnx__AttributeProto *a = mlsec_onnx_node_attr(n, name);
	if (!a || !a->has_s || (a->has_type && a->type != AT(STRING))) {
		if (len)
			*len = def ? strlen(def) : 0;
		return def;
	}
	if (len)
		*len = a->s.len;
	return (const char *)a->s.data;
}

const int64_t *mlsec_onnx_attr_ints(const Onnx__NodeProto *n, const char *name, size_t *count)
{
	const Onnx__AttributeProto *a = mlsec_onnx_node_attr(n, name);
	*count = 0;
	if (!a || (a->has_type && a->type != AT(INTS)))
		return NULL;
	*count = a->n_ints;
	return a->ints ? a->ints : (const int64_t *)"";
}

/* ---- walk ---- */

typedef struct walker {
	const mlsec_onnx_visitor *v;
	size_t max_depth;
	void *ctx;
} walker;

static int walk_graph(walker *w, const Onnx__GraphProto *g, size_t depth, const char *where);

static int walk_tensor(walker *w, const Onnx__TensorProto *t, size_t depth, const char *where)
{
	return (t && w->v->tensor) ? w->v->tensor(t, depth, where, w->ctx) : 0;
}

static int walk_sparse(walker *w, const Onnx__SparseTensorProto *s, size_t depth, const char *where)
{
	if (!s)
		return 0;
	int r = walk_tensor(w, s->values, depth, where);
	return r ? r : walk_tensor(w, s->indices, depth, where);
}

static int walk_node(walker *w, const Onnx__NodeProto *n, size_t depth, const char *where)
{
	int r;
	if (w->v->node && (r = w->v->node(n, depth, where, w->ctx)))
		return r;
	char sub[1024];
	for (size_t i = 0; i < n->n_attribute; i++) {
		const Onnx__AttributeProto *a = n->attribute[i];
		snprintf(sub, sizeof sub, "%.700s/attr[%.200s]", where, a->name ? a->name : "");
		if ((r = walk_tensor(w, a->t, depth, sub)) ||
		    (r = walk_sparse(w, a->sparse_tensor, depth, sub)))
			return r;
		for (size_t k = 0; k < a->n_tensors; k++)
			if ((r = walk_tensor(w, a->tensors[k], depth, sub)))
				return r;
		for (size_t k = 0; k < a->n_sparse_tensors; k++)
			if ((r = walk_sparse(w, a->sparse_tensors[k], depth, sub)))
				return r;
		if (a->g && (r = walk_graph(w, a->g, depth + 1, sub)))
			return r;
		for (size_t k = 0; k < a->n_graphs; k++)
			if ((r = walk_graph(w, a->graphs[k], depth + 1, sub)))
				return r;
	}
	return 0;
}

static int walk_graph(walker *w, const Onnx__GraphProto *g, size_t depth, const char *where)
{
	if (depth > w->max_depth)
		return -1;
	int r;
	if (w->v->graph && (r = w->v->graph(g, depth, where, w->ctx)))
		return r;
	char sub[1024];
	for (size_t i = 0; i < g->n_initializer; i++) {
		snprintf(sub, sizeof sub, "%.800s/initializer[%zu]", where, i);
		if ((r = walk_tensor(w, g->initializer[i], depth, sub)))
			return r;
	}
	for (size_t i = 0; i < g->n_sparse_initializer; i++) {
		snprintf(sub, sizeof sub, "%.800s/sparse_initializer[%zu]", where, i);
		if ((r = walk_sparse(w, g->sparse_initializer[i], depth, sub)))
			return r;
	}
	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		snprintf(sub, sizeof sub, "%.700s/node[%zu:%.200s]", where, i,
		         n->name ? n->name : "");
		if ((r = walk_node(w, n, depth, sub)))
			return r;
	}
	return 0;
}

int mlsec_onnx_model_walk(const Onnx__ModelProto *mp, const mlsec_onnx_visitor *v, size_t max_depth,
                          void *ctx)
{
	walker w = {v, max_depth, ctx};
	int r;
	if (mp->graph && (r = walk_graph(&w, mp->graph, 0, "graph")))
		return r;
	char sub[512];
	for (size_t i = 0; i < mp->n_functions; i++) {
		const Onnx__FunctionProto *f = mp->functions[i];
		snprintf(sub, sizeof sub, "functions[%zu:%.200s]", i, f->name ? f->name : "");
		if (v->function && (r = v->function(f, sub, ctx)))
			return r;
		char nsub[1024];
		for (size_t k = 0; k < f->n_node; k++) {
			snprintf(nsub, sizeof nsub, "%s/node[%zu]", sub, k);
			if ((r = walk_node(&w, f->node[k], 0, nsub)))
				return r;
		}
	}
	for (size_t i = 0; i < mp->n_training_info; i++) {
		const Onnx__TrainingInfoProto *ti = mp->training_info[i];
		snprintf(sub, sizeof sub, "training_info[%zu]/initialization", i);
		if (ti->initialization && (r = walk_graph(&w, ti->initialization, 0, sub)))
			return r;
		snprintf(sub, sizeof sub, "training_info[%zu]/algorithm", i);
		if (ti->algorithm && (r = walk_graph(&w, ti->algorithm, 0, sub)))
			return r;
	}
	return 0;
}
