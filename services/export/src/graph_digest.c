/*
 * graph_digest.c - the canonical digest of an ONNX model's computation:
 * what the model computes, independent of how the protobuf was laid out
 * (field order, packed or not, raw_data vs typed arrays) and of text that
 * does not change the computation (doc strings, producer, metadata).
 *
 * Stream (every string and byte run is u64le length-prefixed):
 *   "mlsec-onnx-graph-v1\n", ir_version, opsets sorted by domain,
 *   graph, then functions in order. graph = inputs/outputs (name, elem
 *   type, dims or dim params), initializers sorted by name (name, dtype,
 *   dims, little-endian value bytes or external-data key/values), nodes in
 *   order (op, domain, inputs, outputs, attributes sorted by name with
 *   their typed values; subgraphs recursively).
 */
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"
#include "export_onnx.h"
#include "mlsec/alloc.h"
#include "mlsec/sha256.h"

#define GD_MAX_DEPTH 16

typedef struct gd {
	mlsec_sha256 *h;
	int oom;
} gd;

static void u64(gd *g, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	mlsec_sha256_update(g->h, b, 8);
}

static void bytes(gd *g, const void *p, size_t n)
{
	u64(g, n);
	if (n)
		mlsec_sha256_update(g->h, p, n);
}

static void str(gd *g, const char *s)
{
	bytes(g, s ? s : "", s ? strlen(s) : 0);
}

static void tensor(gd *g, const Onnx__TensorProto *t)
{
	str(g, t->name);
	u64(g, (uint64_t)t->data_type);
	u64(g, t->n_dims);
	for (size_t i = 0; i < t->n_dims; i++)
		u64(g, (uint64_t)t->dims[i]);
	if (export_tensor_is_external(t)) {
		u64(g, 1);
		u64(g, t->n_external_data);
		for (size_t i = 0; i < t->n_external_data; i++) {
			str(g, t->external_data[i]->key);
			str(g, t->external_data[i]->value);
		}
		return;
	}
	u64(g, 0);
	if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__STRING) {
		u64(g, t->n_string_data);
		for (size_t i = 0; i < t->n_string_data; i++)
			bytes(g, t->string_data[i].data, t->string_data[i].len);
		return;
	}
	size_t n = 0;
	uint8_t *b = export_tensor_le_bytes(t, &n);
	if (!b && n)
		g->oom = 1;
	bytes(g, b, n);
	mlsec_free(b);
}

static void vinfo(gd *g, const Onnx__ValueInfoProto *v)
{
	str(g, v->name);
	const Onnx__TypeProto *tp = v->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
		u64(g, tp ? (uint64_t)tp->value_case : 0);
		return;
	}
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	u64(g, (uint64_t)tt->elem_type);
	size_t nd = tt->shape ? tt->shape->n_dim : 0;
	u64(g, tt->shape ? nd + 1 : 0);
	for (size_t i = 0; i < nd; i++) {
		const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
		if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
			u64(g, 1);
			u64(g, (uint64_t)d->dim_value);
		} else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
			u64(g, 2);
			str(g, d->dim_param);
		} else {
			u64(g, 0);
		}
	}
}

static int cmp_tensor(const void *a, const void *b)
{
	const char *x = (*(Onnx__TensorProto *const *)a)->name;
	const char *y = (*(Onnx__TensorProto *const *)b)->name;
	return strcmp(x ? x : "", y ? y : "");
}

static int cmp_attr(const void *a, const void *b)
{
	const char *x = (*(Onnx__AttributeProto *const *)a)->name;
	const char *y = (*(Onnx__AttributeProto *const *)b)->name;
	return strcmp(x ? x : "", y ? y : "");
}

static void graph(gd *g, const Onnx__GraphProto *gr, int depth);

static void node(gd *g, const Onnx__NodeProto *n, int depth)
{
	str(g, n->op_type);
	str(g, n->domain);
	u64(g, n->n_input);
	for (size_t i = 0; i < n->n_input; i++)
		str(g, n->input[i]);
	u64(g, n->n_output);
	for (size_t i = 0; i < n->n_output; i++)
		str(g, n->output[i]);
	Onnx__AttributeProto **at =
	        mlsec_reallocarray(NULL, n->n_attribute ? n->n_attribute : 1, sizeof *at);
	if (!at) {
		g->oom = 1;
		return;
	}
	if (n->n_attribute)
		memcpy(at, n->attribute, n->n_attribute * sizeof *at);
	qsort(at, n->n_attribute, sizeof *at, cmp_attr);
	u64(g, n->n_attribute);
	for (size_t k = 0; k < n->n_attribute; k++) {
		const Onnx__AttributeProto *a = at[k];
		str(g, a->name);
		str(g, a->ref_attr_name);
		u64(g, (uint64_t)a->type);
		uint32_t fb;
		memcpy(&fb, &a->f, 4);
		u64(g, a->has_f ? fb : 0);
		u64(g, a->has_i ? (uint64_t)a->i : 0);
		bytes(g, a->has_s ? a->s.data : NULL, a->has_s ? a->s.len : 0);
		u64(g, a->n_floats);
		for (size_t i = 0; i < a->n_floats; i++) {
			memcpy(&fb, &a->floats[i], 4);
			u64(g, fb);
		}
		u64(g, a->n_ints);
		for (size_t i = 0; i < a->n_ints; i++)
			u64(g, (uint64_t)a->ints[i]);
		u64(g, a->n_strings);
		for (size_t i = 0; i < a->n_strings; i++)
			bytes(g, a->strings[i].data, a->strings[i].len);
		u64(g, a->t ? 1 : 0);
		if (a->t)
			tensor(g, a->t);
		u64(g, a->n_tensors);
		for (size_t i = 0; i < a->n_tensors; i++)
			tensor(g, a->tensors[i]);
		u64(g, a->g ? 1 : 0);
		if (a->g)
			graph(g, a->g, depth + 1);
		u64(g, a->n_graphs);
		for (size_t i = 0; i < a->n_graphs; i++)
			graph(g, a->graphs[i], depth + 1);
	}
	mlsec_free(at);
}

static void graph(gd *g, const Onnx__GraphProto *gr, int depth)
{
	if (depth > GD_MAX_DEPTH) {
		g->oom = 2;
		return;
	}
	u64(g, gr->n_input);
	for (size_t i = 0; i < gr->n_input; i++)
		vinfo(g, gr->input[i]);
	u64(g, gr->n_output);
	for (size_t i = 0; i < gr->n_output; i++)
		vinfo(g, gr->output[i]);
	Onnx__TensorProto **ts =
	        mlsec_reallocarray(NULL, gr->n_initializer ? gr->n_initializer : 1, sizeof *ts);
	if (!ts) {
		g->oom = 1;
		return;
	}
	if (gr->n_initializer)
		memcpy(ts, gr->initializer, gr->n_initializer * sizeof *ts);
	qsort(ts, gr->n_initializer, sizeof *ts, cmp_tensor);
	u64(g, gr->n_initializer);
	for (size_t i = 0; i < gr->n_initializer; i++)
		tensor(g, ts[i]);
	mlsec_free(ts);
	u64(g, gr->n_sparse_initializer);
	for (size_t i = 0; i < gr->n_sparse_initializer; i++) {
		const Onnx__SparseTensorProto *sp = gr->sparse_initializer[i];
		u64(g, sp->n_dims);
		for (size_t k = 0; k < sp->n_dims; k++)
			u64(g, (uint64_t)sp->dims[k]);
		if (sp->values)
			tensor(g, sp->values);
		if (sp->indices)
			tensor(g, sp->indices);
	}
	u64(g, gr->n_node);
	for (size_t i = 0; i < gr->n_node; i++)
		node(g, gr->node[i], depth);
}

static int cmp_opset(const void *a, const void *b)
{
	const Onnx__OperatorSetIdProto *x = *(Onnx__OperatorSetIdProto *const *)a;
	const Onnx__OperatorSetIdProto *y = *(Onnx__OperatorSetIdProto *const *)b;
	int c = strcmp(x->domain ? x->domain : "", y->domain ? y->domain : "");
	return c ? c : (x->version > y->version) - (x->version < y->version);
}

mlsec_err export_graph_digest_model(const Onnx__ModelProto *mp, char hex[65], mlsec_error *err)
{
	gd g = {mlsec_sha256_new(), 0};
	if (!g.h)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	static const char tag[] = "mlsec-onnx-graph-v1\n";
	mlsec_sha256_update(g.h, tag, sizeof tag - 1);
	u64(&g, (uint64_t)mp->ir_version);
	Onnx__OperatorSetIdProto **os =
	        mlsec_reallocarray(NULL, mp->n_opset_import ? mp->n_opset_import : 1, sizeof *os);
	if (!os) {
		mlsec_sha256_final(g.h, NULL, NULL);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	if (mp->n_opset_import)
		memcpy(os, mp->opset_import, mp->n_opset_import * sizeof *os);
	qsort(os, mp->n_opset_import, sizeof *os, cmp_opset);
	u64(&g, mp->n_opset_import);
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		str(&g, os[i]->domain);
		u64(&g, (uint64_t)os[i]->version);
	}
	mlsec_free(os);
	graph(&g, mp->graph, 0);
	u64(&g, mp->n_functions);
	for (size_t i = 0; i < mp->n_functions; i++) {
		const Onnx__FunctionProto *f = mp->functions[i];
		str(&g, f->name);
		str(&g, f->domain);
		u64(&g, f->n_input);
		for (size_t k = 0; k < f->n_input; k++)
			str(&g, f->input[k]);
		u64(&g, f->n_output);
		for (size_t k = 0; k < f->n_output; k++)
			str(&g, f->output[k]);
		u64(&g, f->n_node);
		for (size_t k = 0; k < f->n_node; k++)
			node(&g, f->node[k], 0);
	}
	mlsec_sha256_final(g.h, NULL, hex);
	if (g.oom == 1)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (g.oom == 2)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "subgraphs nested too deep");
	return MLSEC_OK;
}

mlsec_err mlsec_export_graph_digest(const char *path, char hex[65], mlsec_error *err)
{
	Onnx__ModelProto *mp = NULL;
	mlsec_err rc = export_onnx_load(path, &mp, err);
	if (rc != MLSEC_OK)
		return rc;
	rc = export_graph_digest_model(mp, hex, err);
	onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}
