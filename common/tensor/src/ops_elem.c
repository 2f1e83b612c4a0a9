/*
 * ops_elem.c - element-wise operators (unary activations, broadcasting
 * binary arithmetic, Clip), the normalisations (Softmax, LogSoftmax,
 * BatchNormalization in inference mode, LayerNormalization) with their
 * backward passes.
 */
#include <math.h>

#include "mlsec/onnx.h"
#include "tensor_internal.h"

/* ---- broadcasting iterator ---- */

/* Iteration over an output shape with per-operand strides; adjacent axes
 * that are contiguous (or broadcast) for every operand are merged so the
 * inner loop is as long as possible. */
typedef struct bcast {
	int nd;
	int64_t dims[MAXR];
	int64_t st[3][MAXR];
	int nop;
} bcast;

static void bcast_init(bcast *it, const mlsec_tensor_shape *out,
                       const mlsec_tensor_shape *const *ops, int nop)
{
	int64_t st[3][MAXR];
	for (int k = 0; k < nop; k++)
		bcast_strides(ops[k], out, st[k]);
	it->nop = nop;
	it->nd = 0;
	for (size_t i = 0; i < out->ndim; i++) {
		if (out->dims[i] == 1)
			continue;
		if (it->nd > 0) {
			int j = it->nd - 1, ok = 1;
			for (int k = 0; k < nop; k++)
				if (it->st[k][j] != st[k][i] * out->dims[i])
					ok = 0;
			if (ok) {
				it->dims[j] *= out->dims[i];
				for (int k = 0; k < nop; k++)
					it->st[k][j] = st[k][i];
				continue;
			}
		}
		it->dims[it->nd] = out->dims[i];
		for (int k = 0; k < nop; k++)
			it->st[k][it->nd] = st[k][i];
		it->nd++;
	}
	if (it->nd == 0) {
		it->nd = 1;
		it->dims[0] = 1;
		for (int k = 0; k < nop; k++)
			it->st[k][0] = 0;
	}
}

/* Calls fn(ctx, offsets[nop], inner_len, inner_strides[nop]) per row. */
typedef void (*bcast_row)(void *ctx, const int64_t *off, int64_t n, const int64_t *inc);

static void bcast_run(const bcast *it, bcast_row fn, void *ctx)
{
	int64_t idx[MAXR] = {0};
	int64_t off[3] = {0, 0, 0};
	int last = it->nd - 1;
	int64_t inc[3];
	for (int k = 0; k < it->nop; k++)
		inc[k] = it->st[k][last];
	for (;;) {
		fn(ctx, off, it->dims[last], inc);
		int d = last - 1;
		for (; d >= 0; d--) {
			idx[d]++;
			for (int k = 0; k < it->nop; k++)
				off[k] += it->st[k][d];
			if (idx[d] < it->dims[d])
				break;
			for (int k = 0; k < it->nop; k++)
				off[k] -= it->st[k][d] * it->dims[d];
			idx[d] = 0;
		}
		if (d < 0)
			return;
	}
}

/* ---- unary ---- */

enum {
	U_RELU,
	U_LEAKY,
	U_SIGMOID,
	U_TANH,
	U_ERF,
	U_GELU,
	U_GELU_TANH,
	U_NEG,
	U_EXP,
	U_LOG,
	U_SQRT,
	U_ABS,
	U_RECIP,
	U_CLIP,
	U_IDENT,
	U_SOFTPLUS,
	U_HSIGMOID,
	U_ELU
};

static int unary_kind(const char *op)
{
	static const struct {
		const char *name;
		int kind;
	} t[] = {{"Relu", U_RELU}, {"LeakyRelu", U_LEAKY},   {"Sigmoid", U_SIGMOID},
	         {"Tanh", U_TANH}, {"Erf", U_ERF},           {"Gelu", U_GELU},
	         {"Neg", U_NEG},   {"Exp", U_EXP},           {"Log", U_LOG},
	         {"Sqrt", U_SQRT}, {"Abs", U_ABS},           {"Reciprocal", U_RECIP},
	         {"Clip", U_CLIP}, {"Softplus", U_SOFTPLUS}, {"HardSigmoid", U_HSIGMOID},
	         {"Elu", U_ELU}};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcmp(t[i].name, op) == 0)
			return t[i].kind;
	return -1;
}

static mlsec_err unary_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || n->nout < 1 || n->out[0] < 0)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs an input and an output");
	int kind = unary_kind(n->p->op_type);
	if (x->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only FLOAT inputs");
	n->u.iv[0] = kind;
	n->fa = 0;
	n->fb = 0;
	switch (kind) {
	case U_LEAKY:
		n->fa = mlsec_onnx_attr_float(n->p, "alpha", 0.01f);
		break;
	case U_ELU:
		n->fa = mlsec_onnx_attr_float(n->p, "alpha", 1.0f);
		break;
	case U_HSIGMOID:
		n->fa = mlsec_onnx_attr_float(n->p, "alpha", 0.2f);
		n->fb = mlsec_onnx_attr_float(n->p, "beta", 0.5f);
		break;
	case U_GELU: {
		size_t len;
		const char *a = mlsec_onnx_attr_string(n->p, "approximate", "none", &len);
		if (len == 4 && memcmp(a, "tanh", 4) == 0)
			n->u.iv[0] = U_GELU_TANH;
		else if (!(len == 4 && memcmp(a, "none", 4) == 0))
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "approximate='%.*s'",
			                (int)(len > 20 ? 20 : len), a);
		break;
	}
	case U_CLIP: {
		float lo = -INFINITY, hi = INFINITY;
		if (node_opset(g) < 11) {
			lo = mlsec_onnx_attr_float(n->p, "min", -INFINITY);
			hi = mlsec_onnx_attr_float(n->p, "max", INFINITY);
		} else {
			for (int k = 1; k <= 2; k++) {
				tval *b = IN(g, n, k);
				if (!b)
					continue;
				if (b->kind != VK_CONST || b->sh.numel != 1)
					return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
					                "min/max must be constant scalars");
				float v = b->dtype == TD_F32 ? b->f[0] : (float)b->i[0];
				if (k == 1)
					lo = v;
				else
					hi = v;
			}
		}
		n->fa = lo;
		n->fb = hi;
		break;
	}
	default:
		break;
	}
	OUT(g, n, 0)->sh = x->sh;
	return MLSEC_OK;
}

#define UNARY_BLOCK 16384 /* elements per parallel slice */

/* Element blocks of a tensor of numel elements: how many, and the element
 * range [*s, *e) of blocks [b0, b1). */
static int64_t block_count(size_t numel)
{
	return (int64_t)((numel + UNARY_BLOCK - 1) / UNARY_BLOCK);
}

static void block_range(int64_t b0, int64_t b1, size_t numel, size_t *s, size_t *e)
{
	*s = (size_t)b0 * UNARY_BLOCK;
	*e = (size_t)b1 * UNARY_BLOCK;
	if (*e > numel)
		*e = numel;
	if (*s > *e)
		*s = *e;
}

/* NaN must propagate (as in ONNX and PyTorch): a NaN hidden in a layer has
 * to reach the logits, not turn into a clean zero; -0 becomes 0. */
static inline float relu1(float v)
{
	return v < 0 ? 0 : v == 0 ? 0 : v;
}

TENSOR_HOT static void unary_fwd_range(const tnode *n, const float *x, float *y, size_t cnt)
{
	float a = n->fa, b = n->fb;
	switch ((int)n->u.iv[0]) {
	case U_RELU:
		for (size_t i = 0; i < cnt; i++)
			y[i] = relu1(x[i]);
		break;
	case U_LEAKY:
		for (size_t i = 0; i < cnt; i++)
			y[i] = x[i] >= 0 ? x[i] : a * x[i];
		break;
	case U_ELU:
		for (size_t i = 0; i < cnt; i++)
			y[i] = x[i] >= 0 ? x[i] : a * (expf(x[i]) - 1);
		break;
	case U_SIGMOID:
		for (size_t i = 0; i < cnt; i++)
			y[i] = 1.0f / (1.0f + expf(-x[i]));
		break;
	case U_HSIGMOID:
		for (size_t i = 0; i < cnt; i++)
			y[i] = fmaxf(0, fminf(1, a * x[i] + b));
		break;
	case U_TANH:
		for (size_t i = 0; i < cnt; i++)
			y[i] = tanhf(x[i]);
		break;
	case U_ERF:
		for (size_t i = 0; i < cnt; i++)
			y[i] = erff(x[i]);
		break;
	case U_GELU:
		for (size_t i = 0; i < cnt; i++)
			y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
		break;
	case U_GELU_TANH:
		for (size_t i = 0; i < cnt; i++) {
			float u = 0.7978845608f * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
			y[i] = 0.5f * x[i] * (1.0f + tanhf(u));
		}
		break;
	case U_NEG:
		for (size_t i = 0; i < cnt; i++)
			y[i] = -x[i];
		break;
	case U_EXP:
		for (size_t i = 0; i < cnt; i++)
			y[i] = expf(x[i]);
		break;
	case U_LOG:
		for (size_t i = 0; i < cnt; i++)
			y[i] = logf(x[i]);
		break;
	case U_SQRT:
		for (size_t i = 0; i < cnt; i++)
			y[i] = sqrtf(x[i]);
		break;
	case U_ABS:
		for (size_t i = 0; i < cnt; i++)
			y[i] = fabsf(x[i]);
		break;
	case U_RECIP:
		for (size_t i = 0; i < cnt; i++)
			y[i] = 1.0f / x[i];
		break;
	case U_SOFTPLUS:
		for (size_t i = 0; i < cnt; i++)
			y[i] = x[i] > 20 ? x[i] : log1pf(expf(x[i]));
		break;
	case U_CLIP:
		for (size_t i = 0; i < cnt; i++)
			y[i] = x[i] < a ? a : (x[i] > b ? b : x[i]);
		break;
	default:
		for (size_t i = 0; i < cnt; i++)
			y[i] = x[i];
	}
}

TENSOR_HOT static void unary_bwd_range(const tnode *n, const float *x, const float *y,
                                       const float *dy, float *dx, size_t cnt)
{
	float a = n->fa, b = n->fb;
	switch ((int)n->u.iv[0]) {
	case U_RELU:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += x[i] > 0 ? dy[i] : 0;
		break;
	case U_LEAKY:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += x[i] >= 0 ? dy[i] : a * dy[i];
		break;
	case U_ELU:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += x[i] >= 0 ? dy[i] : dy[i] * (y[i] + a);
		break;
	case U_SIGMOID:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] * y[i] * (1 - y[i]);
		break;
	case U_HSIGMOID:
		for (size_t i = 0; i < cnt; i++) {
			float t = a * x[i] + b;
			dx[i] += (t > 0 && t < 1) ? a * dy[i] : 0;
		}
		break;
	case U_TANH:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] * (1 - y[i] * y[i]);
		break;
	case U_ERF:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] * 1.1283791671f * expf(-x[i] * x[i]);
		break;
	case U_GELU:
		for (size_t i = 0; i < cnt; i++) {
			float cdf = 0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2));
			float pdf = 0.3989422804f * expf(-0.5f * x[i] * x[i]);
			dx[i] += dy[i] * (cdf + x[i] * pdf);
		}
		break;
	case U_GELU_TANH:
		for (size_t i = 0; i < cnt; i++) {
			float xx = x[i];
			float u = 0.7978845608f * (xx + 0.044715f * xx * xx * xx);
			float t = tanhf(u);
			float du = 0.7978845608f * (1 + 3 * 0.044715f * xx * xx);
			dx[i] += dy[i] * (0.5f * (1 + t) + 0.5f * xx * (1 - t * t) * du);
		}
		break;
	case U_NEG:
		for (size_t i = 0; i < cnt; i++)
			dx[i] -= dy[i];
		break;
	case U_EXP:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] * y[i];
		break;
	case U_LOG:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] / x[i];
		break;
	case U_SQRT:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] * 0.5f / y[i];
		break;
	case U_ABS:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += x[i] > 0 ? dy[i] : (x[i] < 0 ? -dy[i] : 0);
		break;
	case U_RECIP:
		for (size_t i = 0; i < cnt; i++)
			dx[i] -= dy[i] * y[i] * y[i];
		break;
	case U_SOFTPLUS:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i] / (1.0f + expf(-x[i]));
		break;
	case U_CLIP:
		/* PyTorch passes the gradient where min <= x <= max */
		for (size_t i = 0; i < cnt; i++)
			dx[i] += (x[i] >= a && x[i] <= b) ? dy[i] : 0;
		break;
	default:
		for (size_t i = 0; i < cnt; i++)
			dx[i] += dy[i];
	}
}

static void unary_slices(G *g, tnode *n, int64_t b0, int64_t b1, int tid, void *ctx)
{
	tval *xv = IN(g, n, 0), *yv = OUT(g, n, 0);
	size_t s, e;
	block_range(b0, b1, yv->sh.numel, &s, &e);
	if (!ctx)
		unary_fwd_range(n, xv->f + s, yv->f + s, e - s);
	else
		unary_bwd_range(n, xv->f + s, yv->f + s, yv->g + s, xv->g + s, e - s);
}

static void unary_fwd(G *g, tnode *n)
{
	tensor_par(g, n, block_count(OUT(g, n, 0)->sh.numel), unary_slices, NULL);
}

static void unary_bwd(G *g, tnode *n)
{
	if (!IN(g, n, 0)->g)
		return;
	tensor_par(g, n, block_count(OUT(g, n, 0)->sh.numel), unary_slices, (void *)1);
}

/* ---- binary (Add, Sub, Mul, Div, Pow) ---- */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW };

static int binary_kind(const char *op)
{
	if (strcmp(op, "Add") == 0)
		return B_ADD;
	if (strcmp(op, "Sub") == 0)
		return B_SUB;
	if (strcmp(op, "Mul") == 0)
		return B_MUL;
	if (strcmp(op, "Div") == 0)
		return B_DIV;
	return B_POW;
}

static mlsec_err binary_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *a = IN(g, n, 0), *b = IN(g, n, 1);
	if (!a || !b || n->nout < 1 || n->out[0] < 0)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs two inputs and an output");
	n->u.iv[0] = binary_kind(n->p->op_type);
	tval *y = OUT(g, n, 0);
	if (shape_broadcast(&a->sh, &b->sh, &y->sh))
		return op_error(err, MLSEC_ERR_PARSE, n, "shapes do not broadcast");
	if (a->dtype != b->dtype)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "input types differ (%s, %s)",
		                a->dtype == TD_F32 ? "float" : "int64",
		                b->dtype == TD_F32 ? "float" : "int64");
	y->dtype = a->dtype;
	return MLSEC_OK;
}

typedef struct bin_ctx {
	const float *a, *b;
	float *y;
	int kind;
	float *da, *db;
	const float *dy;
} bin_ctx;

TENSOR_HOT static void bin_row(void *c_, const int64_t *off, int64_t n, const int64_t *inc)
{
	bin_ctx *c = c_;
	const float *a = c->a + off[1], *b = c->b + off[2];
	float *y = c->y + off[0];
	int64_t ia = inc[1], ib = inc[2];
	switch (c->kind) {
	case B_ADD:
		if (ia == 1 && ib == 1)
			for (int64_t i = 0; i < n; i++)
				y[i] = a[i] + b[i];
		else
			for (int64_t i = 0; i < n; i++)
				y[i] = a[i * ia] + b[i * ib];
		break;
	case B_SUB:
		for (int64_t i = 0; i < n; i++)
			y[i] = a[i * ia] - b[i * ib];
		break;
	case B_MUL:
		for (int64_t i = 0; i < n; i++)
			y[i] = a[i * ia] * b[i * ib];
		break;
	case B_DIV:
		for (int64_t i = 0; i < n; i++)
			y[i] = a[i * ia] / b[i * ib];
		break;
	default:
		for (int64_t i = 0; i < n; i++)
			y[i] = powf(a[i * ia], b[i * ib]);
	}
}

extern const op_def tensor_op_binary;

/* Operands of the output's own shape (residual connections). */
static int binary_same(tnode *n, G *g)
{
	const tval *a = IN(g, n, 0), *b = IN(g, n, 1), *y = OUT(g, n, 0);
	return a->sh.numel == y->sh.numel && b->sh.numel == y->sh.numel &&
	       a->sh.ndim == y->sh.ndim && b->sh.ndim == y->sh.ndim;
}

/* No restrict: the arena may give y the buffer of an operand it replaces. */
TENSOR_HOT static void bin_same_range(int kind, int relu, const float *a, const float *b, float *y,
                                      size_t cnt)
{
	if (kind == B_ADD && relu) /* the residual "relu(x + shortcut)": one pass */
		for (size_t i = 0; i < cnt; i++)
			y[i] = relu1(a[i] + b[i]);
	else if (kind == B_ADD)
		for (size_t i = 0; i < cnt; i++)
			y[i] = a[i] + b[i];
	else
		for (size_t i = 0; i < cnt; i++)
			y[i] = a[i] - b[i];
}

/* Same-shape Add/Sub on element blocks [b0, b1), with the fused Relu. */
static void bin_same_slices(G *g, tnode *n, int64_t b0, int64_t b1, int tid, void *ctx)
{
	(void)tid;
	(void)ctx;
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *y = OUT(g, n, 0);
	size_t s, e;
	block_range(b0, b1, y->sh.numel, &s, &e);
	int kind = (int)n->u.iv[0];
	bin_same_range(kind, n->fuse_relu, a->f + s, b->f + s, y->f + s, e - s);
	if (n->fuse_relu && kind != B_ADD)
		tensor_relu_inplace(y->f + s, e - s);
}

static void binary_fwd(G *g, tnode *n)
{
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *y = OUT(g, n, 0);
	int kind = (int)n->u.iv[0];
	if ((kind == B_ADD || kind == B_SUB) && binary_same(n, g)) {
		tensor_par(g, n, block_count(y->sh.numel), bin_same_slices, NULL);
		return;
	}
	const mlsec_tensor_shape *ops[3] = {&y->sh, &a->sh, &b->sh};
	bcast it;
	bcast_init(&it, &y->sh, ops, 3);
	bin_ctx c = {a->f, b->f, y->f, kind, NULL, NULL, NULL};
	bcast_run(&it, bin_row, &c);
	if (n->fuse_relu)
		tensor_relu_inplace(y->f, y->sh.numel);
}

/* Add/Sub whose Relu was fused: d/dy of the Relu on element blocks. */
static void bin_unrelu_slices(G *g, tnode *n, int64_t b0, int64_t b1, int tid, void *ctx)
{
	(void)tid;
	(void)ctx;
	tval *y = OUT(g, n, 0);
	size_t s, e;
	block_range(b0, b1, y->sh.numel, &s, &e);
	tensor_relu_mask_grad(y->f + s, y->g + s, e - s);
}

int tensor_node_fuses_relu(const tnode *n)
{
	/* Add and Sub: their backward never reads their output, which the
	 * fused Relu overwrites. */
	return n->op == &tensor_op_binary && (n->u.iv[0] == B_ADD || n->u.iv[0] == B_SUB);
}

TENSOR_HOT static void bin_bwd_row(void *c_, const int64_t *off, int64_t n, const int64_t *inc)
{
	bin_ctx *c = c_;
	const float *a = c->a + off[1], *b = c->b + off[2], *dy = c->dy + off[0],
	            *y = c->y + off[0];
	float *da = c->da ? c->da + off[1] : NULL, *db = c->db ? c->db + off[2] : NULL;
	int64_t ia = inc[1], ib = inc[2];
	for (int64_t i = 0; i < n; i++) {
		float av = a[i * ia], bv = b[i * ib], d = dy[i];
		switch (c->kind) {
		case B_ADD:
			if (da)
				da[i * ia] += d;
			if (db)
				db[i * ib] += d;
			break;
		case B_SUB:
			if (da)
				da[i * ia] += d;
			if (db)
				db[i * ib] -= d;
			break;
		case B_MUL:
			if (da)
				da[i * ia] += d * bv;
			if (db)
				db[i * ib] += d * av;
			break;
		case B_DIV:
			if (da)
				da[i * ia] += d / bv;
			if (db)
				db[i * ib] -= d * av / (bv * bv);
			break;
		default:
			if (da)
				da[i * ia] += d * bv * powf(av, bv - 1);
			if (db && av > 0)
				db[i * ib] += d * y[i] * logf(av);
		}
	}
}

/* Same-shape Add/Sub (residual connections): plain vector loops. */
TENSOR_HOT static void bin_bwd_same(int kind, const float *dy, float *da, float *db, size_t n)
{
	if (da)
		for (size_t i = 0; i < n; i++)
			da[i] += dy[i];
	if (db && kind == B_ADD)
		for (size_t i = 0; i < n; i++)
			db[i] += dy[i];
	else if (db)
		for (size_t i = 0; i < n; i++)
			db[i] -= dy[i];
}

static void binary_bwd(G *g, tnode *n)
{
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *y = OUT(g, n, 0);
	if (!a->g && !b->g)
		return;
	if (n->fuse_relu)
		tensor_par(g, n, block_count(y->sh.numel), bin_unrelu_slices, NULL);
	int kind = (int)n->u.iv[0];
	if ((kind == B_ADD || kind == B_SUB) && binary_same(n, g)) {
		bin_bwd_same(kind, y->g, a->g, b->g, y->sh.numel);
		return;
	}
	const mlsec_tensor_shape *ops[3] = {&y->sh, &a->sh, &b->sh};
	bcast it;
	bcast_init(&it, &y->sh, ops, 3);
	bin_ctx c = {a->f, b->f, y->f, (int)n->u.iv[0], a->g, b->g, y->g};
	bcast_run(&it, bin_bwd_row, &c);
}

/* int64 arithmetic on shape constants */
typedef struct bin_i64 {
	const int64_t *a, *b;
	int64_t *y;
	int kind;
} bin_i64;

static void bin_i64_row(void *c_, const int64_t *off, int64_t n, const int64_t *inc)
{
	bin_i64 *c = c_;
	for (int64_t i = 0; i < n; i++) {
		int64_t a = c->a[off[1] + i * inc[1]], b = c->b[off[2] + i * inc[2]], r;
		switch (c->kind) {
		case B_ADD:
			r = a + b;
			break;
		case B_SUB:
			r = a - b;
			break;
		case B_MUL:
			r = a * b;
			break;
		case B_DIV:
			r = b ? a / b : 0;
			break;
		default: {
			r = 1;
			for (int64_t k = 0; k < b && k < 64; k++)
				r *= a;
		}
		}
		c->y[off[0] + i] = r;
	}
}

static mlsec_err binary_fold(G *g, tnode *n, mlsec_error *err)
{
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *y = OUT(g, n, 0);
	const mlsec_tensor_shape *ops[3] = {&y->sh, &a->sh, &b->sh};
	bcast it;
	bcast_init(&it, &y->sh, ops, 3);
	if (y->sh.numel == 0)
		return MLSEC_OK;
	if (y->dtype == TD_F32) {
		if (b->dtype != TD_F32)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "mixed types");
		bin_ctx c = {a->f, b->f, y->f, (int)n->u.iv[0], NULL, NULL, NULL};
		bcast_run(&it, bin_row, &c);
		return MLSEC_OK;
	}
	if (b->dtype != TD_I64)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "mixed types");
	bin_i64 c = {a->i, b->i, y->i, (int)n->u.iv[0]};
	bcast_run(&it, bin_i64_row, &c);
	return MLSEC_OK;
}

/* ---- Softmax / LogSoftmax ---- */

/* Splits x into [outer, axis_len, inner] per the opset's semantics:
 * before 13 the input is coerced to 2-D at axis; from 13 only axis. */
static mlsec_err softmax_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || x->dtype != TD_F32 || n->out[0] < 0)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs a FLOAT input");
	int64_t r = (int64_t)x->sh.ndim;
	int64_t axis = mlsec_onnx_attr_int(n->p, "axis", node_opset(g) < 13 ? 1 : -1);
	if (axis < 0)
		axis += r;
	if (axis < 0 || axis >= r)
		return op_error(err, MLSEC_ERR_PARSE, n, "axis out of range");
	int64_t outer = 1, len = 1, inner = 1;
	for (int64_t i = 0; i < r; i++) {
		if (i < axis)
			outer *= x->sh.dims[i];
		else if (i == axis || node_opset(g) < 13)
			len *= x->sh.dims[i];
		else
			inner *= x->sh.dims[i];
	}
	n->u.iv[0] = outer;
	n->u.iv[1] = len;
	n->u.iv[2] = inner;
	n->u.iv[3] = strcmp(n->p->op_type, "LogSoftmax") == 0;
	OUT(g, n, 0)->sh = x->sh;
	return MLSEC_OK;
}

TENSOR_HOT static void softmax_fwd(G *g, tnode *n)
{
	const float *x = IN(g, n, 0)->f;
	float *y = OUT(g, n, 0)->f;
	int64_t outer = n->u.iv[0], len = n->u.iv[1], inner = n->u.iv[2];
	int logsm = (int)n->u.iv[3];
	for (int64_t o = 0; o < outer; o++)
		for (int64_t in = 0; in < inner; in++) {
			const float *xp = x + o * len * inner + in;
			float *yp = y + o * len * inner + in;
			float mx = xp[0];
			for (int64_t i = 1; i < len; i++)
				mx = xp[i * inner] > mx ? xp[i * inner] : mx;
			float s = 0;
			for (int64_t i = 0; i < len; i++) {
				float e = expf(xp[i * inner] - mx);
				yp[i * inner] = e;
				s += e;
			}
			if (logsm) {
				float ls = logf(s) + mx;
				for (int64_t i = 0; i < len; i++)
					yp[i * inner] = xp[i * inner] - ls;
			} else {
				float inv = 1.0f / s;
				for (int64_t i = 0; i < len; i++)
					yp[i * inner] *= inv;
			}
		}
}

static void softmax_bwd(G *g, tnode *n)
{
	tval *xv = IN(g, n, 0);
	if (!xv->g)
		return;
	const float *y = OUT(g, n, 0)->f, *dy = OUT(g, n, 0)->g;
	float *dx = xv->g;
	int64_t outer = n->u.iv[0], len = n->u.iv[1], inner = n->u.iv[2];
	int logsm = (int)n->u.iv[3];
	for (int64_t o = 0; o < outer; o++)
		for (int64_t in = 0; in < inner; in++) {
			size_t base = (size_t)(o * len * inner + in);
			float s = 0;
			if (logsm) {
				for (int64_t i = 0; i < len; i++)
					s += dy[base + i * inner];
				for (int64_t i = 0; i < len; i++)
					dx[base + i * inner] += dy[base + i * inner] -
					                        expf(y[base + i * inner]) * s;
			} else {
				for (int64_t i = 0; i < len; i++)
					s += dy[base + i * inner] * y[base + i * inner];
				for (int64_t i = 0; i < len; i++)
					dx[base + i * inner] +=
					        y[base + i * inner] * (dy[base + i * inner] - s);
			}
		}
}

/* ---- BatchNormalization (inference): y = a[c] * x + b[c] ---- */

static mlsec_err bn_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || n->nin < 5 || x->dtype != TD_F32 || x->sh.ndim < 2)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs X, scale, B, mean, var");
	if (mlsec_onnx_attr_int(n->p, "training_mode", 0))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "training_mode=1");
	int64_t c = x->sh.dims[1];
	for (int k = 1; k < 5; k++) {
		tval *p = IN(g, n, k);
		if (!p || p->kind != VK_CONST || p->dtype != TD_F32 || p->sh.numel != (size_t)c)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
			                "scale/B/mean/var must be constant [C] tensors");
	}
	for (int k = 1; k < n->nout; k++)
		if (n->out[k] >= 0)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "training outputs");
	n->fa = mlsec_onnx_attr_float(n->p, "epsilon", 1e-5f);
	n->aux_floats = 2 * (size_t)c;
	OUT(g, n, 0)->sh = x->sh;
	return MLSEC_OK;
}

void tensor_bn_prepare(G *g, tnode *n);
void tensor_bn_prepare(G *g, tnode *n)
{
	tval *x = IN(g, n, 0);
	int64_t c = x->sh.dims[1];
	const float *sc = IN(g, n, 1)->f, *bb = IN(g, n, 2)->f, *mu = IN(g, n, 3)->f,
	            *var = IN(g, n, 4)->f;
	for (int64_t i = 0; i < c; i++) {
		float a = sc[i] / sqrtf(var[i] + n->fa);
		n->aux[i] = a;
		n->aux[c + i] = bb[i] - mu[i] * a;
	}
}

static void bn_fwd(G *g, tnode *n)
{
	tval *x = IN(g, n, 0);
	tensor_bn_prepare(g, n); /* C divisions: cheap, and keeps folding simple */
	int64_t nb = x->sh.dims[0], c = x->sh.dims[1];
	int64_t inner = (int64_t)(x->sh.numel / (size_t)(nb * c > 0 ? nb * c : 1));
	const float *xp = x->f;
	float *y = OUT(g, n, 0)->f;
	for (int64_t b = 0; b < nb; b++)
		for (int64_t ch = 0; ch < c; ch++) {
			float a = n->aux[ch], s = n->aux[c + ch];
			size_t base = (size_t)((b * c + ch) * inner);
			for (int64_t i = 0; i < inner; i++)
				y[base + i] = a * xp[base + i] + s;
		}
}

static void bn_bwd(G *g, tnode *n)
{
	tval *x = IN(g, n, 0);
	if (!x->g)
		return;
	int64_t nb = x->sh.dims[0], c = x->sh.dims[1];
	int64_t inner = (int64_t)(x->sh.numel / (size_t)(nb * c > 0 ? nb * c : 1));
	const float *dy = OUT(g, n, 0)->g;
	for (int64_t b = 0; b < nb; b++)
		for (int64_t ch = 0; ch < c; ch++) {
			float a = n->aux[ch];
			size_t base = (size_t)((b * c + ch) * inner);
			for (int64_t i = 0; i < inner; i++)
				x->g[base + i] += a * dy[base + i];
		}
}

/* ---- LayerNormalization (opset 17): normalise over axes [axis, r) ---- */

static mlsec_err ln_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *sc = IN(g, n, 1), *bb = IN(g, n, 2);
	if (!x || !sc || x->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs X and scale");
	int64_t r = (int64_t)x->sh.ndim;
	int64_t axis = mlsec_onnx_attr_int(n->p, "axis", -1);
	if (axis < 0)
		axis += r;
	if (axis < 0 || axis >= r)
		return op_error(err, MLSEC_ERR_PARSE, n, "axis out of range");
	int64_t outer = 1, len = 1;
	for (int64_t i = 0; i < r; i++) {
		if (i < axis)
			outer *= x->sh.dims[i];
		else
			len *= x->sh.dims[i];
	}
	if (sc->kind != VK_CONST || sc->dtype != TD_F32 || sc->sh.numel != (size_t)len ||
	    (bb && (bb->kind != VK_CONST || bb->dtype != TD_F32 || bb->sh.numel != (size_t)len)))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
		                "scale and bias must be constants over the normalised axes");
	for (int k = 1; k < n->nout; k++)
		if (n->out[k] >= 0)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "Mean/InvStdDev outputs");
	n->u.iv[0] = outer;
	n->u.iv[1] = len;
	n->fa = mlsec_onnx_attr_float(n->p, "epsilon", 1e-5f);
	n->aux_floats = (size_t)outer; /* 1/std per row */
	n->scratch_floats = (size_t)len;
	OUT(g, n, 0)->sh = x->sh;
	return MLSEC_OK;
}

static void ln_fwd(G *g, tnode *n)
{
	const float *x = IN(g, n, 0)->f, *sc = IN(g, n, 1)->f;
	const float *bb = IN(g, n, 2) ? IN(g, n, 2)->f : NULL;
	float *y = OUT(g, n, 0)->f;
	int64_t outer = n->u.iv[0], len = n->u.iv[1];
	for (int64_t o = 0; o < outer; o++) {
		const float *xp = x + o * len;
		float *yp = y + o * len;
		double mu = 0, var = 0;
		for (int64_t i = 0; i < len; i++)
			mu += xp[i];
		mu /= (double)len;
		for (int64_t i = 0; i < len; i++)
			var += (xp[i] - mu) * (xp[i] - mu);
		var /= (double)len;
		float rs = (float)(1.0 / sqrt(var + n->fa));
		if (n->aux)
			n->aux[o] = rs;
		for (int64_t i = 0; i < len; i++)
			yp[i] = (float)(xp[i] - mu) * rs * sc[i] + (bb ? bb[i] : 0);
	}
}

static void ln_bwd(G *g, tnode *n)
{
	tval *xv = IN(g, n, 0);
	if (!xv->g)
		return;
	const float *x = xv->f, *sc = IN(g, n, 1)->f, *dy = OUT(g, n, 0)->g;
	int64_t outer = n->u.iv[0], len = n->u.iv[1];
	float *xh = g->scratch;
	for (int64_t o = 0; o < outer; o++) {
		const float *xp = x + o * len, *dyp = dy + o * len;
		float *dxp = xv->g + o * len;
		float rs = n->aux[o];
		double mu = 0;
		for (int64_t i = 0; i < len; i++)
			mu += xp[i];
		mu /= (double)len;
		double s1 = 0, s2 = 0;
		for (int64_t i = 0; i < len; i++) {
			xh[i] = (float)(xp[i] - mu) * rs;
			float gi = dyp[i] * sc[i];
			s1 += gi;
			s2 += gi * xh[i];
		}
		float m1 = (float)(s1 / (double)len), m2 = (float)(s2 / (double)len);
		for (int64_t i = 0; i < len; i++)
			dxp[i] += rs * (dyp[i] * sc[i] - m1 - xh[i] * m2);
	}
}

const op_def tensor_op_unary = {"unary", unary_infer, unary_fwd, NULL, unary_bwd, 0, 0};

int tensor_node_is_relu(const tnode *n)
{
	return n->op == &tensor_op_unary && n->u.iv[0] == U_RELU;
}

/* The same values and NaN handling as the Relu kernel above. */
TENSOR_HOT void tensor_relu_inplace(float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = relu1(y[i]);
}

/* relu(x) > 0 exactly where x > 0 (NaN and -0 give 0 both ways). */
TENSOR_HOT void tensor_relu_mask_grad(const float *y, float *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g[i] = y[i] > 0 ? g[i] : 0;
}
const op_def tensor_op_binary = {"binary", binary_infer, binary_fwd, binary_fold, binary_bwd, 0, 0};
const op_def tensor_op_softmax = {"softmax", softmax_infer, softmax_fwd, NULL, softmax_bwd, 0, 0};
const op_def tensor_op_bn = {"BatchNormalization", bn_infer, bn_fwd, NULL, bn_bwd, 0, 0};
const op_def tensor_op_ln = {"LayerNormalization", ln_infer, ln_fwd, NULL, ln_bwd, 0, 0};
