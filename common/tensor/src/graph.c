/*
 * graph.c - compiles an ONNX graph into a schedule of kernels: name
 * resolution, topological sort (cycles and missing inputs are errors),
 * operator lookup (all unsupported ops are named at once), per-batch
 * planning (shape inference, constant folding, arena layout) and the
 * forward/backward drivers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mlsec/alloc.h"
#include "tensor_internal.h"

#define ALIGN_FLOATS 16          /* 64-byte aligned buffers inside the arena */
#define UNSUPPORTED_LIST_MAX 400 /* characters of the unsupported-op list */

void mlsec_tensor_opts_default(mlsec_tensor_opts *o)
{
	o->threads = 1;
	o->batch = 1;
	o->grad = 1;
	o->max_arena_bytes = (uint64_t)4 << 30;
	o->max_flops = 4e12;
	o->fuse = 0;
}

/* Rough multiply-add count of a runtime node (2 per MAC), else one
 * operation per output element: enough to refuse absurd graphs. */
static double node_flops(G *g, tnode *n)
{
	const char *op = n->op->name;
	if (strcmp(op, "Conv") == 0 || strcmp(op, "ConvTranspose") == 0) {
		const conv_params *p = &n->u.conv;
		return 2.0 * (double)p->n * (double)p->m * (double)(p->oh * p->ow) *
		       (double)(p->c / (p->group ? p->group : 1)) * (double)(p->kh * p->kw);
	}
	if (strcmp(op, "Gemm") == 0)
		return 2.0 * (double)n->u.gemm.m * (double)n->u.gemm.n * (double)n->u.gemm.k;
	if (strcmp(op, "MatMul") == 0)
		return 2.0 * (double)OUT(g, n, 0)->sh.numel * (double)n->u.iv[1];
	if (strcmp(op, "pool") == 0)
		return (double)OUT(g, n, 0)->sh.numel * (double)(n->u.pool.kh * n->u.pool.kw);
	double s = 0;
	for (int k = 0; k < n->nin; k++)
		if (IN(g, n, k))
			s += (double)IN(g, n, k)->sh.numel;
	return s + (double)(n->out[0] >= 0 ? OUT(g, n, 0)->sh.numel : 0);
}

double mlsec_tensor_graph_flops(const mlsec_tensor_graph *g)
{
	return g->flops;
}

const char *mlsec_tensor_blas_core_hint(void)
{
	const char *core = mlsec_tensor_blas_core();
	static const char *const generic[] = {"Prescott", "Core2",  "Penryn",     "Dunnington",
	                                      "Nehalem",  "Katmai", "Coppermine", "Northwood"};
	int is_generic = 0;
	for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
		if (core && strcasecmp(core, generic[i]) == 0)
			is_generic = 1;
	if (!is_generic)
		return NULL;
	return tensor_blas_core_for_cpu();
}

/* ---- small helpers shared with the ops ---- */

size_t shape_numel(const mlsec_tensor_shape *s)
{
	size_t n = 1;
	for (size_t i = 0; i < s->ndim; i++)
		n *= (size_t)s->dims[i];
	return n;
}

void shape_set(mlsec_tensor_shape *s, size_t ndim, const int64_t *dims)
{
	s->ndim = ndim;
	for (size_t i = 0; i < ndim; i++)
		s->dims[i] = dims[i];
	shape_finish(s);
}

/* Shapes are bounded so that every byte offset fits comfortably. */
#define SHAPE_MAX_ELEMS ((uint64_t)1 << 34)

int shape_finish(mlsec_tensor_shape *s)
{
	uint64_t n = 1;
	for (size_t i = 0; i < s->ndim; i++) {
		if (s->dims[i] < 0)
			return -1;
		if (s->dims[i] && n > SHAPE_MAX_ELEMS / (uint64_t)s->dims[i])
			return -1;
		n *= (uint64_t)s->dims[i];
	}
	s->numel = (size_t)n;
	return 0;
}

int64_t node_opset(G *g)
{
	return g->opset;
}

mlsec_err op_error(mlsec_error *err, mlsec_err code, tnode *n, const char *fmt, ...)
{
	if (!err)
		return code;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return mlsec_error_set(err, code, "node '%.60s' (%.40s): %s", n->p->name ? n->p->name : "",
	                       n->p->op_type ? n->p->op_type : "", msg);
}

const int64_t *const_i64(G *g, tnode *n, int k, size_t *count)
{
	tval *v = IN(g, n, k);
	if (!v || v->kind != VK_CONST || v->dtype != TD_I64)
		return NULL;
	*count = v->sh.numel;
	return v->i ? v->i : (const int64_t *)"";
}

int shape_broadcast(const mlsec_tensor_shape *a, const mlsec_tensor_shape *b,
                    mlsec_tensor_shape *out)
{
	size_t nd = a->ndim > b->ndim ? a->ndim : b->ndim;
	out->ndim = nd;
	for (size_t i = 0; i < nd; i++) {
		int64_t da = i < nd - a->ndim ? 1 : a->dims[i - (nd - a->ndim)];
		int64_t db = i < nd - b->ndim ? 1 : b->dims[i - (nd - b->ndim)];
		if (da != db && da != 1 && db != 1)
			return -1;
		out->dims[i] = da == 1 ? db : da;
	}
	return shape_finish(out);
}

void bcast_strides(const mlsec_tensor_shape *x, const mlsec_tensor_shape *out, int64_t *st)
{
	size_t off = out->ndim - x->ndim;
	int64_t s = 1;
	for (size_t i = out->ndim; i-- > 0;) {
		if (i < off) {
			st[i] = 0;
			continue;
		}
		int64_t d = x->dims[i - off];
		st[i] = (d == 1 && out->dims[i] != 1) ? 0 : s;
		s *= d;
	}
}

/* ---- name table ---- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int ht_find(G *g, const char *name)
{
	size_t mask = g->htcap - 1;
	for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
		int k = g->ht[i];
		if (k < 0)
			return -1;
		if (strcmp(g->v[k].name, name) == 0)
			return k;
	}
}

/* Adds a value; returns its index, or -1 when the name already exists. */
static int value_add(G *g, const char *name)
{
	size_t mask = g->htcap - 1;
	size_t i = hash_str(name) & mask;
	for (;; i = (i + 1) & mask) {
		int k = g->ht[i];
		if (k < 0)
			break;
		if (strcmp(g->v[k].name, name) == 0)
			return -1;
	}
	int idx = (int)g->nv++;
	tval *v = &g->v[idx];
	memset(v, 0, sizeof *v);
	v->name = name;
	v->producer = -1;
	v->alias = -1;
	v->off = v->goff = (size_t)-1;
	g->ht[i] = idx;
	return idx;
}

/* ---- constants ---- */

static int onnx_is_float(int32_t dt)
{
	return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
	       dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

/* Loads an ONNX tensor into value v as a constant (float or int64). */
mlsec_err tensor_load_const(G *g, tval *v, const Onnx__TensorProto *t, mlsec_error *err);
mlsec_err tensor_load_const(G *g, tval *v, const Onnx__TensorProto *t, mlsec_error *err)
{
	if (t->n_dims > MAXR)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "tensor '%.100s': rank %zu over %d", v->name, t->n_dims,
		                       MAXR);
	v->sh.ndim = t->n_dims;
	for (size_t i = 0; i < t->n_dims; i++)
		v->sh.dims[i] = t->dims[i];
	if (shape_finish(&v->sh))
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "tensor '%.100s': too large", v->name);
	int32_t dt = t->has_data_type ? t->data_type : 0;
	size_t n = v->sh.numel;
	v->kind = VK_CONST;
	if (onnx_is_float(dt)) {
		v->dtype = TD_F32;
		v->owned = v->f = mlsec_malloc((n ? n : 1) * sizeof(float));
		if (!v->f)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		return mlsec_onnx_tensor_read_float(g->m, t, v->f, n, err);
	}
	v->dtype = TD_I64;
	v->owned = v->i = mlsec_malloc((n ? n : 1) * sizeof(int64_t));
	if (!v->i)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	return mlsec_onnx_tensor_read_int64(g->m, t, v->i, n, err);
}

static void value_drop_data(tval *v)
{
	mlsec_free(v->owned);
	v->owned = NULL;
	v->f = NULL;
	v->i = NULL;
	v->g = NULL;
}

/* ---- compile ---- */

static int is_default_domain(const char *d)
{
	return !d || !d[0] || strcmp(d, "ai.onnx") == 0;
}

static mlsec_err build_values(G *g, mlsec_error *err)
{
	const Onnx__GraphProto *gp = g->gp;
	size_t cap = gp->n_initializer + gp->n_input;
	for (size_t i = 0; i < gp->n_node; i++)
		cap += gp->node[i]->n_output;
	g->v = mlsec_calloc(cap ? cap : 1, sizeof *g->v);
	g->htcap = 16;
	while (g->htcap < 2 * cap + 2)
		g->htcap <<= 1;
	g->ht = mlsec_malloc(g->htcap * sizeof *g->ht);
	if (!g->v || !g->ht)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	memset(g->ht, 0xff, g->htcap * sizeof *g->ht);
	for (size_t i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *t = gp->initializer[i];
		const char *nm = t->name ? t->name : "";
		if (!nm[0])
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "initializer %zu has no name",
			                       i);
		int k = value_add(g, nm);
		if (k < 0)
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "initializer '%.100s' defined twice", nm);
		mlsec_err rc = tensor_load_const(g, &g->v[k], t, err);
		if (rc)
			return rc;
	}
	g->inputs = mlsec_calloc(gp->n_input + 1, sizeof(int));
	g->outputs = mlsec_calloc(gp->n_output + 1, sizeof(int));
	if (!g->inputs || !g->outputs)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vi = gp->input[i];
		const char *nm = vi->name ? vi->name : "";
		if (!nm[0])
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "graph input %zu has no name",
			                       i);
		if (ht_find(g, nm) >= 0) {
			if (g->v[ht_find(g, nm)].kind == VK_CONST)
				continue; /* old exports list initializers as inputs */
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "graph input '%.100s' twice",
			                       nm);
		}
		int k = value_add(g, nm);
		tval *v = &g->v[k];
		v->kind = VK_INPUT;
		v->dtype = TD_F32;
		const Onnx__TypeProto *tp = vi->type;
		if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
		    !tp->tensor_type)
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                       "graph input '%.100s' is not a tensor", nm);
		const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
		if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                       "graph input '%.100s' has type %s (only FLOAT runs)",
			                       nm, mlsec_onnx_dtype_name(tt->elem_type));
		if (!tt->shape)
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                       "graph input '%.100s' has no shape", nm);
		if (tt->shape->n_dim > MAXR)
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                       "graph input '%.100s': rank %zu over %d", nm,
			                       tt->shape->n_dim, MAXR);
		v->sh.ndim = tt->shape->n_dim;
		for (size_t d = 0; d < tt->shape->n_dim; d++) {
			const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
			int known = dim->value_case ==
			                    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			            dim->dim_value > 0;
			if (known) {
				v->sh.dims[d] = dim->dim_value;
			} else if (d == 0) {
				v->sh.dims[d] = -1; /* bound to the batch at plan time */
			} else {
				return mlsec_error_set(
				        err, MLSEC_ERR_UNSUPPORTED,
				        "graph input '%.100s': dynamic dim '%.60s' at axis %zu "
				        "(only "
				        "axis 0 may be dynamic)",
				        nm,
				        dim->value_case ==
				                        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
				                ? dim->dim_param
				                : "?",
				        d);
			}
		}
		g->inputs[g->ninputs++] = k;
	}
	return MLSEC_OK;
}

/* Appends "op" to the unsupported list once. */
static void note_unsupported(char *list, size_t cap, const char *what, size_t *count)
{
	size_t len = strlen(list);
	char item[160];
	snprintf(item, sizeof item, "%.150s", what);
	/* de-duplicate by op name */
	const char *p = list;
	size_t il = strcspn(item, " ");
	while ((p = strstr(p, item)) != NULL) {
		if ((p == list || p[-1] == ' ') && (p[il] == ' ' || p[il] == '\0'))
			return;
		p++;
	}
	(*count)++;
	if (len + strlen(item) + 3 < cap)
		snprintf(list + len, cap - len, "%s%s", len ? ", " : "", item);
}

static mlsec_err build_nodes(G *g, mlsec_error *err)
{
	const Onnx__GraphProto *gp = g->gp;
	tnode *tmp = mlsec_calloc(gp->n_node + 1, sizeof *tmp);
	g->n = mlsec_calloc(gp->n_node + 1, sizeof *g->n);
	g->sched = mlsec_calloc(gp->n_node + 1, sizeof(int));
	if (!tmp || !g->n || !g->sched) {
		mlsec_free(tmp);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	char unsup[UNSUPPORTED_LIST_MAX] = "";
	size_t nunsup = 0;
	mlsec_err rc = MLSEC_OK;
	/* outputs first, so inputs can refer to values produced later */
	for (size_t i = 0; i < gp->n_node && !rc; i++) {
		const Onnx__NodeProto *p = gp->node[i];
		tnode *n = &tmp[i];
		n->p = p;
		const char *op = p->op_type ? p->op_type : "";
		n->op = is_default_domain(p->domain) ? tensor_op_find(op) : NULL;
		if (!n->op) {
			char what[160];
			if (is_default_domain(p->domain))
				snprintf(what, sizeof what, "%.60s (node '%.60s')", op,
				         p->name ? p->name : "");
			else
				snprintf(what, sizeof what, "%.40s:%.60s (node '%.40s')", p->domain,
				         op, p->name ? p->name : "");
			note_unsupported(unsup, sizeof unsup, what, &nunsup);
		}
		if (p->n_input > NODE_MAX_IN || p->n_output > NODE_MAX_OUT) {
			rc = mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                     "node '%.60s' (%.40s): %zu inputs / %zu outputs",
			                     p->name ? p->name : "", op, p->n_input, p->n_output);
			break;
		}
		n->nin = (int)p->n_input;
		n->nout = (int)p->n_output;
		for (size_t k = 0; k < p->n_output; k++) {
			const char *nm = p->output[k] ? p->output[k] : "";
			if (!nm[0]) {
				n->out[k] = -1;
				continue;
			}
			int idx = value_add(g, nm);
			if (idx < 0) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_PARSE,
				        "value '%.100s' is defined twice (node '%.60s')", nm,
				        p->name ? p->name : "");
				break;
			}
			g->v[idx].producer = (int)i;
			n->out[k] = idx;
		}
	}
	if (!rc && nunsup)
		rc = mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "%zu unsupported operator%s: %s",
		                     nunsup, nunsup > 1 ? "s" : "", unsup);
	for (size_t i = 0; i < gp->n_node && !rc; i++) {
		tnode *n = &tmp[i];
		for (int k = 0; k < n->nin; k++) {
			const char *nm = n->p->input[k] ? n->p->input[k] : "";
			if (!nm[0]) {
				n->in[k] = -1;
				continue;
			}
			int idx = ht_find(g, nm);
			if (idx < 0) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_PARSE,
				        "node '%.60s' (%.40s): input '%.100s' is not "
				        "produced by any node, initializer or graph input",
				        n->p->name ? n->p->name : "", n->p->op_type, nm);
				break;
			}
			n->in[k] = idx;
		}
	}
	if (rc) {
		mlsec_free(tmp);
		return rc;
	}
	/* Kahn's algorithm, keeping the file order among ready nodes. */
	size_t nn = gp->n_node;
	int *indeg = mlsec_calloc(nn + 1, sizeof(int));
	int *queue = mlsec_calloc(nn + 1, sizeof(int));
	int *newpos = mlsec_calloc(nn + 1, sizeof(int));
	/* consumers adjacency in CSR form */
	size_t nedges = 0;
	for (size_t i = 0; i < nn; i++)
		nedges += (size_t)tmp[i].nin;
	int *cstart = mlsec_calloc(nn + 2, sizeof(int));
	int *cons = mlsec_calloc(nedges + 1, sizeof(int));
	if (!indeg || !queue || !newpos || !cstart || !cons) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nn; i++)
		for (int k = 0; k < tmp[i].nin; k++)
			if (tmp[i].in[k] >= 0 && g->v[tmp[i].in[k]].producer >= 0) {
				indeg[i]++;
				cstart[g->v[tmp[i].in[k]].producer + 1]++;
			}
	for (size_t i = 0; i < nn; i++)
		cstart[i + 1] += cstart[i];
	{
		int *fill = newpos; /* reuse as cursor, reset below */
		for (size_t i = 0; i < nn; i++)
			fill[i] = cstart[i];
		for (size_t i = 0; i < nn; i++)
			for (int k = 0; k < tmp[i].nin; k++)
				if (tmp[i].in[k] >= 0 && g->v[tmp[i].in[k]].producer >= 0)
					cons[fill[g->v[tmp[i].in[k]].producer]++] = (int)i;
	}
	size_t qh = 0, qt = 0;
	for (size_t i = 0; i < nn; i++)
		if (indeg[i] == 0)
			queue[qt++] = (int)i;
	while (qh < qt) {
		int i = queue[qh++];
		for (int e = cstart[i]; e < cstart[i + 1]; e++)
			if (--indeg[cons[e]] == 0)
				queue[qt++] = cons[e];
	}
	if (qt != nn) {
		for (size_t i = 0; i < nn; i++)
			if (indeg[i] > 0) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_PARSE,
				        "graph has a cycle through node '%.60s' (%.40s)",
				        tmp[i].p->name ? tmp[i].p->name : "",
				        tmp[i].p->op_type ? tmp[i].p->op_type : "");
				break;
			}
		goto out;
	}
	for (size_t q = 0; q < nn; q++) {
		g->n[q] = tmp[queue[q]];
		newpos[queue[q]] = (int)q;
	}
	g->nn = nn;
	for (size_t i = 0; i < g->nv; i++)
		if (g->v[i].producer >= 0)
			g->v[i].producer = newpos[g->v[i].producer];
out:
	mlsec_free(indeg);
	mlsec_free(queue);
	mlsec_free(newpos);
	mlsec_free(cstart);
	mlsec_free(cons);
	mlsec_free(tmp);
	return rc;
}

static mlsec_err build_outputs(G *g, mlsec_error *err)
{
	for (size_t i = 0; i < g->gp->n_output; i++) {
		const char *nm = g->gp->output[i]->name ? g->gp->output[i]->name : "";
		int k = ht_find(g, nm);
		if (k < 0)
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "graph output '%.100s' is never produced", nm);
		g->outputs[g->noutputs++] = k;
		g->v[k].is_output = 1;
	}
	if (!g->noutputs)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "graph has no outputs");
	return MLSEC_OK;
}

/* ---- planning ---- */

static size_t align_up(size_t n)
{
	return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static int root_of(G *g, int k)
{
	while (g->v[k].alias >= 0)
		k = g->v[k].alias;
	return k;
}

/* Runs a node on constant inputs at plan time. */
static mlsec_err fold_node(G *g, tnode *n, mlsec_error *err)
{
	/* Folded constants and the temporaries of folding come out of the same
	 * budget as the arena: a hostile ConstantOfShape/Expand cannot make
	 * the planner allocate without bound. */
	uint64_t need = ((uint64_t)n->aux_floats + n->scratch_floats) * sizeof(float);
	for (int k = 0; k < n->nout; k++)
		if (n->out[k] >= 0)
			need += (uint64_t)OUT(g, n, k)->sh.numel * vesize(OUT(g, n, k));
	if (need > g->opts.max_arena_bytes || g->folded_bytes > g->opts.max_arena_bytes - need)
		return op_error(err, MLSEC_ERR_LIMIT, n,
		                "constant folding needs more than the %llu-byte budget",
		                (unsigned long long)g->opts.max_arena_bytes);
	g->folded_bytes += need;
	for (int k = 0; k < n->nout; k++) {
		if (n->out[k] < 0)
			continue;
		tval *o = OUT(g, n, k);
		size_t bytes = (o->sh.numel ? o->sh.numel : 1) * vesize(o);
		o->owned = mlsec_calloc(1, bytes);
		if (!o->owned)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		if (o->dtype == TD_I64)
			o->i = o->owned;
		else
			o->f = o->owned;
		o->kind = VK_CONST;
	}
	if (n->op->fold)
		return n->op->fold(g, n, err);
	for (int k = 0; k < n->nin; k++) {
		tval *x = IN(g, n, k);
		if (x && x->dtype != TD_F32)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
			                "constant folding on int64 inputs is not supported");
	}
	/* float kernels may need aux/scratch: give them temporary ones */
	float *aux = n->aux_floats ? mlsec_calloc(n->aux_floats, sizeof(float)) : NULL;
	float *scr = n->scratch_floats ? mlsec_calloc(n->scratch_floats, sizeof(float)) : NULL;
	float *saved = g->scratch;
	if ((n->aux_floats && !aux) || (n->scratch_floats && !scr)) {
		mlsec_free(aux);
		mlsec_free(scr);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	n->aux = aux;
	if (scr)
		g->scratch = scr;
	tensor_pool *pool = g->pool;
	g->pool = NULL; /* folding runs on the temporary single scratch */
	if (n->op->alias) {
		memcpy(OUT(g, n, 0)->f, IN(g, n, 0)->f, OUT(g, n, 0)->sh.numel * sizeof(float));
	} else {
		n->op->fwd(g, n);
	}
	g->scratch = saved;
	g->pool = pool;
	n->aux = NULL;
	mlsec_free(aux);
	mlsec_free(scr);
	return MLSEC_OK;
}

static void reset_plan(G *g)
{
	for (size_t i = 0; i < g->nv; i++) {
		tval *v = &g->v[i];
		if (v->producer >= 0) {
			value_drop_data(v);
			v->kind = VK_UNSET;
			v->dtype = TD_F32;
			memset(&v->sh, 0, sizeof v->sh);
		} else if (v->kind == VK_INPUT) {
			v->f = NULL;
		}
		v->g = NULL;
		v->needs_grad = 0;
		v->alias = -1;
		v->last_use = -1;
		v->off = v->goff = (size_t)-1;
	}
	free(g->arena);
	g->arena = NULL;
	g->folded_bytes = 0;
	g->scratch = NULL;
	g->dlogits = NULL;
	g->nsched = 0;
}

/*
 * opts.fuse: Relu node r can run inside the Conv that produces its input
 * when it is that value's only reader and the value is not a graph output
 * (nobody else sees the values before the ReLU, and the ReLU's gradient
 * can be taken from its output).
 */
static int fusable_relu(G *g, const tnode *r)
{
	if (!tensor_node_is_relu(r) || r->nin < 1 || r->in[0] < 0)
		return 0;
	const tval *x = &g->v[r->in[0]];
	if (x->kind != VK_RUNTIME || x->alias >= 0 || x->is_output || x->producer < 0)
		return 0;
	const tnode *p = &g->n[x->producer];
	if ((p->op != &tensor_op_conv && !tensor_node_fuses_relu(p)) || !p->runtime ||
	    p->fuse_relu || p->out[0] != r->in[0])
		return 0;
	int readers = 0;
	for (size_t i = 0; i < g->nn; i++)
		for (int k = 0; k < g->n[i].nin; k++)
			readers += g->n[i].in[k] == r->in[0];
	return readers == 1;
}

static mlsec_err plan(G *g, int64_t batch, mlsec_error *err)
{
	reset_plan(g);
	for (size_t i = 0; i < g->nn; i++)
		g->n[i].fuse_relu = g->n[i].fused = 0;
	if (batch < 1 || batch > (int64_t)1 << 24)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "batch %lld out of range",
		                       (long long)batch);
	for (size_t i = 0; i < g->ninputs; i++) {
		tval *v = &g->v[g->inputs[i]];
		const Onnx__ValueInfoProto *vi = NULL;
		for (size_t k = 0; k < g->gp->n_input; k++)
			if (g->gp->input[k]->name && strcmp(g->gp->input[k]->name, v->name) == 0)
				vi = g->gp->input[k];
		const Onnx__TensorShapeProto *sp = vi->type->tensor_type->shape;
		for (size_t d = 0; d < v->sh.ndim; d++) {
			const Onnx__TensorShapeProto__Dimension *dim = sp->dim[d];
			int known = dim->value_case ==
			                    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			            dim->dim_value > 0;
			v->sh.dims[d] = known ? dim->dim_value : batch;
		}
		if (shape_finish(&v->sh))
			return mlsec_error_set(err, MLSEC_ERR_LIMIT, "input '%.100s' too large",
			                       v->name);
		v->needs_grad = g->opts.grad;
	}
	for (size_t ni = 0; ni < g->nn; ni++) {
		tnode *n = &g->n[ni];
		int all_const = 1, any_grad = 0;
		for (int k = 0; k < n->nin; k++) {
			tval *x = IN(g, n, k);
			if (!x)
				continue;
			if (x->kind == VK_UNSET)
				return op_error(err, MLSEC_ERR_INTERNAL, n, "input '%s' not ready",
				                x->name);
			if (x->kind != VK_CONST)
				all_const = 0;
			any_grad |= x->needs_grad;
		}
		n->aux_floats = n->scratch_floats = 0;
		for (int k = 0; k < n->nout; k++)
			if (n->out[k] >= 0)
				OUT(g, n, k)->dtype = TD_F32;
		mlsec_err rc = n->op->infer(g, n, err);
		if (rc)
			return rc;
		for (int k = 0; k < n->nout; k++)
			if (n->out[k] >= 0 && shape_finish(&OUT(g, n, k)->sh))
				return op_error(err, MLSEC_ERR_LIMIT, n, "output too large");
		n->runtime = !(all_const || n->op->folds_always);
		if (!n->runtime) {
			rc = fold_node(g, n, err);
			if (rc)
				return rc;
			continue;
		}
		for (int k = 0; k < n->nin; k++) {
			tval *x = IN(g, n, k);
			if (x && x->kind != VK_CONST && x->dtype != TD_F32)
				return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
				                "int64 tensors computed at run time");
			if (x)
				x->last_use = (int)g->nsched;
		}
		for (int k = 0; k < n->nout; k++) {
			if (n->out[k] < 0)
				continue;
			tval *o = OUT(g, n, k);
			if (o->dtype != TD_F32)
				return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
				                "int64 outputs computed at run time");
			o->kind = VK_RUNTIME;
			o->needs_grad = any_grad && g->opts.grad;
		}
		if (g->opts.fuse && fusable_relu(g, n)) {
			g->n[IN(g, n, 0)->producer].fuse_relu = 1;
			n->fused = 1;
		}
		if (n->op->alias || n->fused) {
			tval *x = IN(g, n, 0);
			if (x->kind == VK_RUNTIME || x->kind == VK_INPUT)
				OUT(g, n, 0)->alias = root_of(g, n->in[0]);
		}
		if (any_grad && g->opts.grad && !n->op->bwd && !n->op->alias)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
			                "no gradient for this operator");
		n->sched = (int)g->nsched;
		g->sched[g->nsched++] = (int)ni;
	}
	g->flops = 0;
	for (size_t si = 0; si < g->nsched; si++)
		g->flops += node_flops(g, &g->n[g->sched[si]]);
	if (!(g->flops <= g->opts.max_flops))
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "one forward pass needs ~%.3g operations, limit %.3g",
		                       g->flops, g->opts.max_flops);
	for (size_t i = 0; i < g->noutputs; i++) {
		tval *o = &g->v[g->outputs[i]];
		if (o->kind == VK_CONST)
			return mlsec_error_set(
			        err, MLSEC_ERR_UNSUPPORTED,
			        "graph output '%.100s' does not depend on the inputs", o->name);
		if (o->dtype != TD_F32)
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
			                       "graph output '%.100s' is not FLOAT", o->name);
		o->last_use = (int)g->nsched; /* outputs live to the end */
	}
	/* Arena layout: values, gradients, aux, loss gradient, scratch. With
	 * gradients every activation is kept; forward-only plans reuse a
	 * buffer once its last reader has run (first-fit over live ranges). */
	size_t total = 0;
	size_t nv = g->nv;
	if (g->opts.grad) {
		for (size_t i = 0; i < nv; i++) {
			tval *v = &g->v[i];
			if ((v->kind == VK_RUNTIME || v->kind == VK_INPUT) && v->alias < 0) {
				v->off = total;
				total += align_up(v->sh.numel);
			}
		}
	} else {
		/* live range of a root = [def, max last_use over its aliases] */
		for (size_t i = 0; i < nv; i++) {
			tval *v = &g->v[i];
			if (v->kind == VK_RUNTIME && v->alias >= 0) {
				tval *r = &g->v[v->alias];
				if (v->last_use > r->last_use)
					r->last_use = v->last_use;
				if (v->is_output)
					r->last_use = (int)g->nsched;
			}
		}
		/* simple interval allocator: list of (off, size, free_after) */
		typedef struct blk {
			size_t off, size;
			int busy_until;
		} blk;
		blk *bl = mlsec_calloc(nv + 1, sizeof *bl);
		size_t nb = 0;
		if (!bl)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < nv; i++) {
			tval *v = &g->v[i];
			if (v->kind == VK_INPUT && v->alias < 0) {
				v->off = total;
				total += align_up(v->sh.numel);
			}
		}
		for (size_t si = 0; si < g->nsched; si++) {
			tnode *n = &g->n[g->sched[si]];
			for (int k = 0; k < n->nout; k++) {
				if (n->out[k] < 0)
					continue;
				tval *v = OUT(g, n, k);
				if (v->alias >= 0)
					continue;
				size_t need = align_up(v->sh.numel);
				int end = v->last_use < 0 ? (int)si : v->last_use;
				size_t best = nb;
				for (size_t b = 0; b < nb; b++)
					if (bl[b].busy_until < (int)si && bl[b].size >= need &&
					    (best == nb || bl[b].size < bl[best].size))
						best = b;
				if (best == nb) {
					bl[nb].off = total;
					bl[nb].size = need;
					total += need;
					nb++;
				}
				bl[best].busy_until = end;
				v->off = bl[best].off;
			}
		}
		mlsec_free(bl);
	}
	size_t grad_start = total;
	if (g->opts.grad) {
		for (size_t i = 0; i < nv; i++) {
			tval *v = &g->v[i];
			if (v->needs_grad && v->alias < 0 &&
			    (v->kind == VK_RUNTIME || v->kind == VK_INPUT)) {
				v->goff = total;
				total += align_up(v->sh.numel);
			}
		}
	}
	size_t grad_end = total;
	size_t max_scratch = 0;
	for (size_t si = 0; si < g->nsched; si++) {
		tnode *n = &g->n[g->sched[si]];
		if (n->aux_floats) {
			n->aux_off = total;
			total += align_up(n->aux_floats);
		}
		if (n->scratch_floats > max_scratch)
			max_scratch = n->scratch_floats;
	}
	size_t dl_off = total;
	total += align_up(g->v[g->outputs[0]].sh.numel);
	size_t scr_off = total;
	total += align_up(max_scratch) * (size_t)tensor_threads(g);
	if ((uint64_t)total * sizeof(float) > g->opts.max_arena_bytes)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "arena of %llu bytes over the %llu limit",
		                       (unsigned long long)total * sizeof(float),
		                       (unsigned long long)g->opts.max_arena_bytes);
	if (posix_memalign((void **)&g->arena, 64, (total ? total : 1) * sizeof(float)) != 0)
		g->arena = NULL;
	/* posix_memalign bypasses the allocation hook; keep the fault
	 * injection meaningful by asking the hook for a token too. */
	void *token = mlsec_malloc(1);
	if (!g->arena || !token) {
		free(g->arena);
		g->arena = NULL;
		mlsec_free(token);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory (arena %zu floats)",
		                       total);
	}
	mlsec_free(token);
	memset(g->arena, 0, total * sizeof(float));
	g->arena_bytes = (uint64_t)total * sizeof(float);
	for (size_t i = 0; i < nv; i++) {
		tval *v = &g->v[i];
		if (v->off != (size_t)-1)
			v->f = g->arena + v->off;
		if (v->goff != (size_t)-1)
			v->g = g->arena + v->goff;
	}
	for (size_t i = 0; i < nv; i++) {
		tval *v = &g->v[i];
		if (v->alias >= 0 && v->kind == VK_RUNTIME) {
			v->f = g->v[v->alias].f;
			v->g = g->v[v->alias].g;
		}
	}
	for (size_t si = 0; si < g->nsched; si++) {
		tnode *n = &g->n[g->sched[si]];
		n->aux = n->aux_floats ? g->arena + n->aux_off : NULL;
	}
	g->dlogits = g->arena + dl_off;
	g->scratch = g->arena + scr_off;
	g->scratch_floats = max_scratch;
	g->scratch_stride = align_up(max_scratch);
	g->planned_grad = g->opts.grad;
	(void)grad_start;
	(void)grad_end;
	return MLSEC_OK;
}

mlsec_err mlsec_tensor_graph_compile(const mlsec_onnx_model *m, const mlsec_tensor_opts *opts,
                                     mlsec_tensor_graph **out, mlsec_error *err)
{
	*out = NULL;
	G *g = mlsec_calloc(1, sizeof *g);
	if (!g)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	g->m = m;
	if (opts)
		g->opts = *opts;
	else
		mlsec_tensor_opts_default(&g->opts);
	if (g->opts.threads < 1)
		g->opts.threads = 1;
	if (g->opts.batch < 1)
		g->opts.batch = 1;
	mlsec_err rc;
	g->gp = mlsec_onnx_model_proto(m)->graph;
	g->opset = mlsec_onnx_model_opset(m, "");
	if (!g->gp) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "model has no graph");
		goto fail;
	}
	if (g->opset < 1) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "model imports no default-domain opset");
		goto fail;
	}
	if (g->opset < 7 || g->opset > 21) {
		rc = mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "opset %lld (supported: 7-21)",
		                     (long long)g->opset);
		goto fail;
	}
	if ((rc = build_values(g, err)) || (rc = build_nodes(g, err)) ||
	    (rc = build_outputs(g, err)))
		goto fail;
	/* One level of parallelism: our workers; OpenBLAS single-threaded. */
	mlsec_tensor_set_threads(1);
	if (g->opts.threads > 64)
		g->opts.threads = 64;
	if ((rc = tensor_pool_new(g->opts.threads, &g->pool, err)))
		goto fail;
	if ((rc = plan(g, g->opts.batch, err)))
		goto fail;
	*out = g;
	return MLSEC_OK;
fail:
	mlsec_tensor_graph_free(g);
	return rc;
}

mlsec_err mlsec_tensor_graph_set_batch(mlsec_tensor_graph *g, int64_t batch, mlsec_error *err)
{
	g->opts.batch = batch;
	return plan(g, batch, err);
}

void mlsec_tensor_graph_free(mlsec_tensor_graph *g)
{
	if (!g)
		return;
	if (g->v)
		for (size_t i = 0; i < g->nv; i++)
			value_drop_data(&g->v[i]);
	tensor_pool_free(g->pool);
	free(g->arena);
	mlsec_free(g->v);
	mlsec_free(g->ht);
	mlsec_free(g->n);
	mlsec_free(g->sched);
	mlsec_free(g->inputs);
	mlsec_free(g->outputs);
	mlsec_free(g);
}

/* ---- accessors ---- */

size_t mlsec_tensor_graph_input_count(const mlsec_tensor_graph *g)
{
	return g->ninputs;
}

size_t mlsec_tensor_graph_output_count(const mlsec_tensor_graph *g)
{
	return g->noutputs;
}

const char *mlsec_tensor_graph_input_name(const mlsec_tensor_graph *g, size_t i,
                                          mlsec_tensor_shape *shape)
{
	if (i >= g->ninputs)
		return NULL;
	if (shape)
		*shape = g->v[g->inputs[i]].sh;
	return g->v[g->inputs[i]].name;
}

const char *mlsec_tensor_graph_output_name(const mlsec_tensor_graph *g, size_t i,
                                           mlsec_tensor_shape *shape)
{
	if (i >= g->noutputs)
		return NULL;
	if (shape)
		*shape = g->v[g->outputs[i]].sh;
	return g->v[g->outputs[i]].name;
}

float *mlsec_tensor_graph_input(mlsec_tensor_graph *g, size_t i)
{
	return i < g->ninputs ? g->v[g->inputs[i]].f : NULL;
}

const float *mlsec_tensor_graph_output(const mlsec_tensor_graph *g, size_t i)
{
	return i < g->noutputs ? g->v[g->outputs[i]].f : NULL;
}

const float *mlsec_tensor_graph_input_grad(const mlsec_tensor_graph *g, size_t i)
{
	return i < g->ninputs ? g->v[g->inputs[i]].g : NULL;
}

uint64_t mlsec_tensor_graph_arena_bytes(const mlsec_tensor_graph *g)
{
	return g->arena_bytes;
}

void mlsec_tensor_graph_set_hook(mlsec_tensor_graph *g, mlsec_tensor_hook hook, void *ctx)
{
	g->hook = hook;
	g->hook_ctx = ctx;
}

size_t mlsec_tensor_graph_node_count(const mlsec_tensor_graph *g)
{
	return g->nsched;
}

mlsec_err mlsec_tensor_graph_node(const mlsec_tensor_graph *g, size_t i,
                                  mlsec_tensor_node_info *info, mlsec_tensor_shape *shape)
{
	if (i >= g->nsched)
		return MLSEC_ERR_INVALID_ARG;
	const tnode *n = &g->n[g->sched[i]];
	info->index = i;
	info->name = n->p->name ? n->p->name : "";
	info->op_type = n->p->op_type ? n->p->op_type : "";
	info->output = n->out[0] >= 0 ? g->v[n->out[0]].name : "";
	if (shape && n->out[0] >= 0)
		*shape = g->v[n->out[0]].sh;
	return MLSEC_OK;
}

/* ---- run ---- */

mlsec_err mlsec_tensor_graph_forward(mlsec_tensor_graph *g, mlsec_error *err)
{
	for (size_t si = 0; si < g->nsched; si++) {
		tnode *n = &g->n[g->sched[si]];
		if (!n->op->alias && !n->fused)
			n->op->fwd(g, n);
		if (g->hook) {
			for (int k = 0; k < n->nout; k++) {
				if (n->out[k] < 0)
					continue;
				tval *o = OUT(g, n, k);
				mlsec_tensor_node_info info = {si, n->p->name ? n->p->name : "",
				                               n->p->op_type, o->name};
				g->hook(&info, o->f, &o->sh, g->hook_ctx);
			}
		}
	}
	return MLSEC_OK;
}

mlsec_err mlsec_tensor_graph_backward(mlsec_tensor_graph *g, const float *const *dout,
                                      mlsec_error *err)
{
	if (!g->planned_grad)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "graph compiled without gradients (opts.grad = 0)");
	for (size_t i = 0; i < g->nv; i++) {
		tval *v = &g->v[i];
		if (v->g && v->alias < 0)
			memset(v->g, 0, v->sh.numel * sizeof(float));
	}
	int any = 0;
	for (size_t i = 0; i < g->noutputs; i++) {
		tval *o = &g->v[g->outputs[i]];
		if (!dout || !dout[i] || !o->g)
			continue;
		any = 1;
		for (size_t k = 0; k < o->sh.numel; k++)
			o->g[k] += dout[i][k];
	}
	if (!any)
		return MLSEC_OK;
	for (size_t si = g->nsched; si-- > 0;) {
		tnode *n = &g->n[g->sched[si]];
		if (n->op->alias || n->fused || !n->op->bwd)
			continue;
		int need = 0;
		for (int k = 0; k < n->nout; k++)
			if (n->out[k] >= 0 && OUT(g, n, k)->g)
				need = 1;
		if (need)
			n->op->bwd(g, n);
	}
	return MLSEC_OK;
}

mlsec_err mlsec_tensor_graph_loss_grad(mlsec_tensor_graph *g, mlsec_tensor_loss kind,
                                       const int64_t *labels, float kappa, float *loss,
                                       mlsec_error *err)
{
	tval *o = &g->v[g->outputs[0]];
	if (o->sh.ndim != 2)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "output '%.100s' is not [batch, classes]", o->name);
	mlsec_err rc = mlsec_tensor_graph_forward(g, err);
	if (rc)
		return rc;
	float l;
	rc = mlsec_tensor_loss_eval(kind, o->f, o->sh.dims[0], o->sh.dims[1], labels, kappa, &l,
	                            g->dlogits, err);
	if (rc)
		return rc;
	if (loss)
		*loss = l;
	/* only output 0 carries the loss; the others get no gradient */
	const float *douts[16] = {g->dlogits};
	if (g->noutputs > 16)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "loss_grad supports up to 16 graph outputs; use backward()");
	return mlsec_tensor_graph_backward(g, douts, err);
}
