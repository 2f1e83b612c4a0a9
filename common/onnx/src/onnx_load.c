/*
 * onnx_load.c - reads a model file, bounds it with a schema-driven pre-scan
 * of the protobuf wire format (depth, message count, estimated decoded
 * heap) so that protobuf-c never recurses or allocates without limit, then
 * unpacks it and validates every tensor and external-data reference.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "onnx_internal.h"

void mlsec_onnx_limits_default(mlsec_onnx_limits *l)
{
	l->max_file_bytes = (size_t)1 << 30;
	l->max_messages = (size_t)4 << 20;
	l->max_decoded_bytes = (uint64_t)4 << 30;
	l->max_message_depth = 64;
	l->max_graph_depth = 8;
	l->max_nodes = (size_t)1 << 20;
	l->max_initializers = (size_t)1 << 20;
	l->max_tensor_elems = (uint64_t)1 << 31;
	l->max_external_bytes = (uint64_t)16 << 30;
}

/* ---- wire pre-scan ---- */

typedef struct scan_ctx {
	const mlsec_onnx_limits *lim;
	size_t messages;
	uint64_t heap; /* rough upper estimate of what protobuf-c will allocate */
	mlsec_error *err;
	const uint8_t *base;
} scan_ctx;

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return -1;
		uint8_t b = p[(*pos)++];
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Per-allocation overhead assumed for the heap estimate. */
#define SCAN_ALLOC_OVERHEAD 32

static mlsec_err scan_message(scan_ctx *c, const uint8_t *p, size_t len,
                              const ProtobufCMessageDescriptor *d, size_t depth)
{
	if (depth > c->lim->max_message_depth)
		return mlsec_error_set_at(c->err, MLSEC_ERR_LIMIT, NULL, 0, 0, p - c->base,
		                          "protobuf nesting deeper than %zu",
		                          c->lim->max_message_depth);
	if (++c->messages > c->lim->max_messages)
		return mlsec_error_set_at(c->err, MLSEC_ERR_LIMIT, NULL, 0, 0, p - c->base,
		                          "more than %zu protobuf messages", c->lim->max_messages);
	c->heap += d->sizeof_message + SCAN_ALLOC_OVERHEAD + sizeof(void *);
	size_t pos = 0;
	while (pos < len) {
		size_t at = pos;
		uint64_t tag, v;
		if (read_varint(p, len, &pos, &tag) != 0 || (tag >> 3) == 0 ||
		    (tag >> 3) > 536870911u)
			return mlsec_error_set_at(c->err, MLSEC_ERR_PARSE, NULL, 0, 0,
			                          p + at - c->base, "bad protobuf field tag");
		uint32_t id = (uint32_t)(tag >> 3);
		const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, id);
		switch (tag & 7) {
		case 0:
			if (read_varint(p, len, &pos, &v) != 0)
				goto truncated;
			c->heap += 8;
			break;
		case 1:
			if (len - pos < 8)
				goto truncated;
			pos += 8;
			c->heap += 8;
			break;
		case 5:
			if (len - pos < 4)
				goto truncated;
			pos += 4;
			c->heap += 8;
			break;
		case 2:
			if (read_varint(p, len, &pos, &v) != 0 || v > len - pos)
				goto truncated;
			if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
				mlsec_err rc = scan_message(c, p + pos, (size_t)v, fd->descriptor,
				                            depth + 1);
				if (rc)
					return rc;
			} else if (fd && fd->label == PROTOBUF_C_LABEL_REPEATED &&
			           fd->type != PROTOBUF_C_TYPE_STRING &&
			           fd->type != PROTOBUF_C_TYPE_BYTES) {
				c->heap += 8 * v; /* packed scalars: at most 8 bytes each */
			} else {
				c->heap += v + 1 + SCAN_ALLOC_OVERHEAD + 16;
			}
			pos += (size_t)v;
			break;
		default: /* groups (3, 4) are not used by ONNX; 6, 7 do not exist */
			return mlsec_error_set_at(
			        c->err, MLSEC_ERR_PARSE, NULL, 0, 0, p + at - c->base,
			        "unsupported protobuf wire type %u", (unsigned)(tag & 7));
		}
		if (c->heap > c->lim->max_decoded_bytes)
			return mlsec_error_set(c->err, MLSEC_ERR_LIMIT,
			                       "decoded model would exceed %llu bytes",
			                       (unsigned long long)c->lim->max_decoded_bytes);
	}
	return MLSEC_OK;
truncated:
	return mlsec_error_set_at(c->err, MLSEC_ERR_PARSE, NULL, 0, 0, p + pos - c->base,
	                          "truncated protobuf field");
}

/* ---- protobuf-c allocator through mlsec_malloc (failure injection) ---- */

/* allocator_data points at an int set when an allocation fails, so that
 * out-of-memory is not reported as a malformed model. */
static void *pb_alloc(void *ud, size_t n)
{
	void *p = mlsec_malloc(n ? n : 1);
	if (!p && ud)
		*(int *)ud = 1;
	return p;
}

static void pb_free(void *ud, void *p)
{
	(void)ud;
	mlsec_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

/* ---- validation ---- */

typedef struct val_ctx {
	const mlsec_onnx_model *m;
	mlsec_error *err;
	mlsec_err rc;
	size_t nodes, initializers;
	uint64_t external_bytes;
} val_ctx;

static int val_graph(const Onnx__GraphProto *g, size_t depth, const char *where, void *ctx)
{
	val_ctx *c = ctx;
	c->nodes += g->n_node;
	c->initializers += g->n_initializer + g->n_sparse_initializer;
	if (c->nodes > c->m->limits.max_nodes) {
		c->rc = mlsec_error_set(c->err, MLSEC_ERR_LIMIT, "%s: more than %zu nodes", where,
		                        c->m->limits.max_nodes);
		return 1;
	}
	if (c->initializers > c->m->limits.max_initializers) {
		c->rc = mlsec_error_set(c->err, MLSEC_ERR_LIMIT, "%s: more than %zu initializers",
		                        where, c->m->limits.max_initializers);
		return 1;
	}
	return 0;
}

/* Number of typed-array elements present for data type dt, and how many
 * the tensor needs per element (complex types use two). */
static size_t typed_count(const Onnx__TensorProto *t, int32_t dt, unsigned *per)
{
	*per = 1;
	switch (dt) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
		*per = 2;
		/* fall through */
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		return t->n_float_data;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
		return t->n_int64_data;
	case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
		return t->n_string_data;
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
		*per = 2;
		/* fall through */
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		return t->n_double_data;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		return t->n_uint64_data;
	default:
		return t->n_int32_data;
	}
}

static int val_tensor(const Onnx__TensorProto *t, size_t depth, const char *where, void *ctx)
{
	val_ctx *c = ctx;
	const char *name = t->name ? t->name : "";
	uint64_t numel;
	mlsec_err rc = mlsec_onnx_tensor_numel(t, c->m->limits.max_tensor_elems, &numel, c->err);
	if (rc)
		goto fail_prefix;
	int32_t dt = t->has_data_type ? t->data_type : 0;
	size_t es = mlsec_onnx_dtype_size(dt);
	if (mlsec_onnx_tensor_is_external(t)) {
		char *path = NULL;
		uint64_t off, len;
		rc = mlsec_onnx__external_locate(c->m, t, &path, &off, &len, c->err);
		mlsec_free(path);
		if (rc)
			goto fail_prefix;
		if (es && len != numel * es) {
			c->rc = mlsec_error_set(
			        c->err, MLSEC_ERR_PARSE,
			        "%s: tensor '%s': external length %llu, dims need %llu", where,
			        name, (unsigned long long)len, (unsigned long long)(numel * es));
			return 1;
		}
		c->external_bytes += len;
		if (c->external_bytes > c->m->limits.max_external_bytes) {
			c->rc = mlsec_error_set(
			        c->err, MLSEC_ERR_LIMIT, "%s: external data over %llu bytes", where,
			        (unsigned long long)c->m->limits.max_external_bytes);
			return 1;
		}
		return 0;
	}
	if (t->has_raw_data && (t->raw_data.len > 0 || numel == 0)) {
		if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__STRING) {
			c->rc = mlsec_error_set(c->err, MLSEC_ERR_PARSE,
			                        "%s: tensor '%s': STRING data in raw_data", where,
			                        name);
			return 1;
		}
		uint64_t want = es ? numel * es : (numel + 1) / 2; /* 4-bit types */
		if (t->raw_data.len != want) {
			c->rc = mlsec_error_set(c->err, MLSEC_ERR_PARSE,
			                        "%s: tensor '%s': raw_data has %zu bytes, dims and "
			                        "type %s need %llu",
			                        where, name, t->raw_data.len,
			                        mlsec_onnx_dtype_name(dt),
			                        (unsigned long long)want);
			return 1;
		}
		return 0;
	}
	unsigned per;
	size_t have = typed_count(t, dt, &per);
	if (have != numel * per) {
		c->rc = mlsec_error_set(c->err, MLSEC_ERR_PARSE,
		                        "%s: tensor '%s': %zu stored values, dims declare %llu",
		                        where, name, have, (unsigned long long)(numel * per));
		return 1;
	}
	return 0;
fail_prefix:
	c->rc = rc;
	if (c->err) {
		char tmp[sizeof c->err->text];
		memcpy(tmp, c->err->text, sizeof tmp);
		tmp[sizeof tmp - 1] = '\0';
		snprintf(c->err->text, sizeof c->err->text, "%.200s: tensor '%.100s': %.200s",
		         where, name, tmp);
	}
	return 1;
}

static mlsec_err validate(mlsec_onnx_model *m, mlsec_error *err)
{
	val_ctx c = {.m = m, .err = err};
	mlsec_onnx_visitor v = {.graph = val_graph, .tensor = val_tensor};
	int r = mlsec_onnx_model_walk(m->proto, &v, m->limits.max_graph_depth, &c);
	if (r == -1)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "subgraphs nested deeper than %zu",
		                       m->limits.max_graph_depth);
	if (r)
		return c.rc ? c.rc : MLSEC_ERR_PARSE;
	for (size_t i = 0; i < m->proto->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = m->proto->opset_import[i];
		if (o->has_version && (o->version < 0 || o->version > 10000))
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "opset_import[%zu]: version %lld", i,
			                       (long long)o->version);
	}
	return MLSEC_OK;
}

/* ---- entry points ---- */

static mlsec_err parse_owned(const uint8_t *data, size_t len, char *dir,
                             const mlsec_onnx_limits *limits, mlsec_onnx_model **out,
                             mlsec_error *err)
{
	*out = NULL;
	mlsec_onnx_model *m = mlsec_calloc(1, sizeof *m);
	if (!m) {
		mlsec_free(dir);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	m->dir = dir;
	if (limits)
		m->limits = *limits;
	else
		mlsec_onnx_limits_default(&m->limits);
	mlsec_err rc;
	if (len > m->limits.max_file_bytes) {
		rc = mlsec_error_set(err, MLSEC_ERR_LIMIT, "model is %zu bytes, limit %zu", len,
		                     m->limits.max_file_bytes);
		goto fail;
	}
	if (len == 0) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "empty model file");
		goto fail;
	}
	scan_ctx sc = {.lim = &m->limits, .err = err, .base = data};
	rc = scan_message(&sc, data, len, &onnx__model_proto__descriptor, 0);
	if (rc)
		goto fail;
	int oom = 0;
	ProtobufCAllocator unpack_alloc = {pb_alloc, pb_free, &oom};
	m->proto = onnx__model_proto__unpack(&unpack_alloc, len, data);
	if (!m->proto && oom) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory decoding the model");
		goto fail;
	}
	if (!m->proto) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
		                     "not a valid ONNX ModelProto (protobuf decoding failed)");
		goto fail;
	}
	rc = validate(m, err);
	if (rc)
		goto fail;
	*out = m;
	return MLSEC_OK;
fail:
	mlsec_onnx_model_free(m);
	return rc;
}

mlsec_err mlsec_onnx_model_parse(const void *data, size_t len, const char *base_dir,
                                 const mlsec_onnx_limits *limits, mlsec_onnx_model **out,
                                 mlsec_error *err)
{
	char *dir = NULL;
	if (base_dir) {
		dir = realpath(base_dir, NULL);
		if (!dir)
			return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "%s: %s", base_dir,
			                       strerror(errno));
		/* realpath allocates with malloc; keep ownership uniform. */
		char *d2 = mlsec_strdup(dir);
		free(dir);
		if (!d2)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		dir = d2;
	}
	return parse_owned(data, len, dir, limits, out, err);
}

mlsec_err mlsec_onnx_model_load(const char *path, const mlsec_onnx_limits *limits,
                                mlsec_onnx_model **out, mlsec_error *err)
{
	*out = NULL;
	mlsec_onnx_limits def;
	if (!limits) {
		mlsec_onnx_limits_default(&def);
		limits = &def;
	}
	char *buf = NULL;
	size_t len = 0;
	mlsec_err rc = mlsec_file_read_all(path, limits->max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	char *real = realpath(path, NULL);
	if (!real) {
		mlsec_free(buf);
		return mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", path, strerror(errno));
	}
	char *slash = strrchr(real, '/');
	char *dir = slash == real ? mlsec_strdup("/") : mlsec_strndup(real, (size_t)(slash - real));
	free(real);
	if (!dir) {
		mlsec_free(buf);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	rc = parse_owned((const uint8_t *)buf, len, dir, limits, out, err);
	mlsec_free(buf);
	if (rc && err && !err->file[0])
		snprintf(err->file, sizeof err->file, "%s", path);
	return rc;
}

void mlsec_onnx_model_free(mlsec_onnx_model *m)
{
	if (!m)
		return;
	if (m->proto)
		onnx__model_proto__free_unpacked(m->proto, &pb_allocator);
	mlsec_free(m->dir);
	mlsec_free(m);
}

const Onnx__ModelProto *mlsec_onnx_model_proto(const mlsec_onnx_model *m)
{
	return m->proto;
}

const char *mlsec_onnx_model_dir(const mlsec_onnx_model *m)
{
	return m->dir;
}

int64_t mlsec_onnx_model_opset(const mlsec_onnx_model *m, const char *domain)
{
	int def = !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0;
	for (size_t i = 0; i < m->proto->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = m->proto->opset_import[i];
		const char *d = o->domain ? o->domain : "";
		int odef = !d[0] || strcmp(d, "ai.onnx") == 0;
		if (def ? odef : strcmp(d, domain) == 0)
			return o->has_version ? o->version : 0;
	}
	return -1;
}
