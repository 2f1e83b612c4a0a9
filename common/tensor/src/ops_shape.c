/*
 * ops_shape.c - data movement and shape plumbing: Reshape family (buffer
 * aliases at run time), Transpose, Concat, Slice, Gather, Pad, Expand,
 * ReduceMean/ReduceSum, and the constant producers (Constant, Shape,
 * ConstantOfShape, Cast) that exporters use to compute shapes, which are
 * folded at plan time. Kernels are written over element size so the same
 * code folds int64 constants and moves float activations.
 */
#include <math.h>

#include "mlsec/alloc.h"
#include "mlsec/onnx.h"
#include "tensor_internal.h"

/* ---- strided n-d copy/accumulate ---- */

/* For every index of dims: dst[dst_off . st] (=|+=) scale * src[src_off . st]. */
static void nd_move(size_t es, size_t nd, const int64_t *dims, void *dst, int64_t doff,
                    const int64_t *dst_st, const void *src, int64_t soff, const int64_t *src_st,
                    int accumulate, float scale)
{
	int64_t total = 1;
	for (size_t i = 0; i < nd; i++)
		total *= dims[i];
	if (total == 0)
		return;
	if (nd == 0) {
		if (accumulate)
			((float *)dst)[doff] += scale * ((const float *)src)[soff];
		else
			memcpy((char *)dst + doff * (int64_t)es,
			       (const char *)src + soff * (int64_t)es, es);
		return;
	}
	int64_t idx[MAXR] = {0};
	size_t last = nd - 1;
	int64_t n = dims[last], ds = dst_st[last], ss = src_st[last];
	for (;;) {
		if (accumulate) {
			float *d = (float *)dst + doff;
			const float *s = (const float *)src + soff;
			for (int64_t i = 0; i < n; i++)
				d[i * ds] += scale * s[i * ss];
		} else if (ds == 1 && ss == 1) {
			memcpy((char *)dst + doff * (int64_t)es,
			       (const char *)src + soff * (int64_t)es, (size_t)n * es);
		} else if (es == 4) {
			float *d = (float *)dst + doff;
			const float *s = (const float *)src + soff;
			for (int64_t i = 0; i < n; i++)
				d[i * ds] = s[i * ss];
		} else {
			int64_t *d = (int64_t *)dst + doff;
			const int64_t *s = (const int64_t *)src + soff;
			for (int64_t i = 0; i < n; i++)
				d[i * ds] = s[i * ss];
		}
		size_t k = last;
		while (k-- > 0) {
			idx[k]++;
			doff += dst_st[k];
			soff += src_st[k];
			if (idx[k] < dims[k])
				break;
			doff -= dst_st[k] * dims[k];
			soff -= src_st[k] * dims[k];
			idx[k] = 0;
		}
		if (k == (size_t)-1)
			return;
	}
}

static void contiguous_strides(const mlsec_tensor_shape *s, int64_t *st)
{
	int64_t acc = 1;
	for (size_t i = s->ndim; i-- > 0;) {
		st[i] = acc;
		acc *= s->dims[i];
	}
}

/* Reads axes from attribute (old opsets) or input k (new opsets). */
static mlsec_err read_axes(G *g, tnode *n, int input_from_opset, int k, int64_t *axes,
                           size_t *count, int *present, mlsec_error *err)
{
	const int64_t *a;
	size_t cnt = 0;
	if (node_opset(g) < input_from_opset) {
		a = mlsec_onnx_attr_ints(n->p, "axes", &cnt);
	} else {
		tval *av = IN(g, n, k);
		if (av && av->kind != VK_CONST)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "axes computed at run time");
		a = av ? const_i64(g, n, k, &cnt) : NULL;
		if (av && !a)
			return op_error(err, MLSEC_ERR_PARSE, n, "axes must be int64");
	}
	*present = a != NULL;
	if (cnt > MAXR)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "too many axes");
	for (size_t i = 0; i < cnt; i++)
		axes[i] = a[i];
	*count = cnt;
	return MLSEC_OK;
}

static int norm_axis(int64_t *a, int64_t rank)
{
	if (*a < 0)
		*a += rank;
	return *a >= 0 && *a < rank ? 0 : -1;
}

/* ---- alias family: Identity, Dropout, Reshape, Flatten, Squeeze, Unsqueeze ---- */

static mlsec_err alias_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || n->out[0] < 0)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs an input and an output");
	tval *y = OUT(g, n, 0);
	const char *op = n->p->op_type;
	y->dtype = x->dtype;
	mlsec_tensor_shape s = x->sh;
	int64_t r = (int64_t)x->sh.ndim;
	if (strcmp(op, "Dropout") == 0) {
		if (n->nout > 1 && n->out[1] >= 0)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "the mask output");
		if (n->nin > 2 && IN(g, n, 2)) {
			tval *tm = IN(g, n, 2);
			if (tm->kind != VK_CONST || tm->sh.numel != 1 ||
			    (tm->dtype == TD_I64 ? tm->i[0] : (int64_t)tm->f[0]) != 0)
				return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "training_mode");
		}
	} else if (strcmp(op, "Reshape") == 0) {
		size_t cnt;
		tval *sv = IN(g, n, 1);
		const int64_t *t = const_i64(g, n, 1, &cnt);
		if (!sv || !t)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
			                "shape must be a constant int64 tensor");
		if (cnt > MAXR)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
		int allowzero = (int)mlsec_onnx_attr_int(n->p, "allowzero", 0);
		int infer = -1;
		uint64_t known = 1;
		s.ndim = cnt;
		for (size_t i = 0; i < cnt; i++) {
			int64_t d = t[i];
			if (d == 0 && !allowzero) {
				if ((int64_t)i >= r)
					return op_error(err, MLSEC_ERR_PARSE, n,
					                "0 beyond input rank");
				d = x->sh.dims[i];
			}
			if (d == -1) {
				if (infer >= 0)
					return op_error(err, MLSEC_ERR_PARSE, n, "two -1 dims");
				infer = (int)i;
				d = 1;
			} else if (d < 0) {
				return op_error(err, MLSEC_ERR_PARSE, n, "negative dim");
			}
			s.dims[i] = d;
			if (d && known > ((uint64_t)1 << 40) / (uint64_t)d)
				return op_error(err, MLSEC_ERR_LIMIT, n, "shape too large");
			known *= (uint64_t)d;
		}
		if (infer >= 0) {
			if (known == 0 || x->sh.numel % known)
				return op_error(err, MLSEC_ERR_PARSE, n, "cannot infer -1");
			s.dims[infer] = (int64_t)(x->sh.numel / known);
		}
	} else if (strcmp(op, "Flatten") == 0) {
		int64_t axis = mlsec_onnx_attr_int(n->p, "axis", 1);
		if (axis < 0)
			axis += r;
		if (axis < 0 || axis > r)
			return op_error(err, MLSEC_ERR_PARSE, n, "axis out of range");
		int64_t a = 1, b = 1;
		for (int64_t i = 0; i < r; i++)
			*(i < axis ? &a : &b) *= x->sh.dims[i];
		s.ndim = 2;
		s.dims[0] = a;
		s.dims[1] = b;
	} else if (strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0) {
		int64_t axes[MAXR];
		size_t cnt;
		int present;
		mlsec_err rc = read_axes(g, n, 13, 1, axes, &cnt, &present, err);
		if (rc)
			return rc;
		int squeeze = op[0] == 'S';
		int64_t orank = squeeze ? r : r + (int64_t)cnt;
		if (orank > MAXR)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
		int mark[MAXR] = {0};
		for (size_t i = 0; i < cnt; i++) {
			if (norm_axis(&axes[i], orank) || mark[axes[i]])
				return op_error(err, MLSEC_ERR_PARSE, n, "bad axes");
			mark[axes[i]] = 1;
		}
		s.ndim = 0;
		if (squeeze) {
			for (int64_t i = 0; i < r; i++) {
				int drop = present ? mark[i] : x->sh.dims[i] == 1;
				if (drop && x->sh.dims[i] != 1)
					return op_error(err, MLSEC_ERR_PARSE, n,
					                "squeezing a dim that is not 1");
				if (!drop)
					s.dims[s.ndim++] = x->sh.dims[i];
			}
		} else {
			if (!present)
				return op_error(err, MLSEC_ERR_PARSE, n, "axes required");
			int64_t k = 0;
			for (int64_t i = 0; i < orank; i++)
				s.dims[s.ndim++] = mark[i] ? 1 : x->sh.dims[k++];
		}
	}
	if (shape_finish(&s) || s.numel != x->sh.numel)
		return op_error(err, MLSEC_ERR_PARSE, n, "element count changes (%zu -> %zu)",
		                x->sh.numel, s.numel);
	y->sh = s;
	return MLSEC_OK;
}

static mlsec_err alias_fold(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	memcpy(vdata(y), vdata(x), x->sh.numel * vesize(x));
	return MLSEC_OK;
}

static void alias_fwd(G *g, tnode *n)
{
	(void)g;
	(void)n; /* runtime aliases share the buffer: nothing to do */
}

/* ---- Transpose ---- */

static mlsec_err transpose_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs an input");
	size_t r = x->sh.ndim, cnt;
	const int64_t *perm = mlsec_onnx_attr_ints(n->p, "perm", &cnt);
	int seen[MAXR] = {0};
	if (perm && cnt != r)
		return op_error(err, MLSEC_ERR_PARSE, n, "perm has %zu entries for rank %zu", cnt,
		                r);
	for (size_t i = 0; i < r; i++) {
		int64_t p = perm ? perm[i] : (int64_t)(r - 1 - i);
		if (p < 0 || p >= (int64_t)r || seen[p])
			return op_error(err, MLSEC_ERR_PARSE, n, "bad perm");
		seen[p] = 1;
		n->u.iv[i] = p;
	}
	tval *y = OUT(g, n, 0);
	y->dtype = x->dtype;
	y->sh.ndim = r;
	for (size_t i = 0; i < r; i++)
		y->sh.dims[i] = x->sh.dims[n->u.iv[i]];
	return MLSEC_OK;
}

static void transpose_run(G *g, tnode *n, int backward)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	int64_t xs[MAXR] = {0}, src[MAXR] = {0}, ys[MAXR] = {0};
	contiguous_strides(&x->sh, xs);
	contiguous_strides(&y->sh, ys);
	for (size_t i = 0; i < y->sh.ndim; i++)
		src[i] = xs[n->u.iv[i]];
	if (!backward)
		nd_move(vesize(x), y->sh.ndim, y->sh.dims, vdata(y), 0, ys, vdata(x), 0, src, 0, 1);
	else if (x->g)
		nd_move(4, y->sh.ndim, y->sh.dims, x->g, 0, src, y->g, 0, ys, 1, 1);
}

static void transpose_fwd(G *g, tnode *n)
{
	transpose_run(g, n, 0);
}
static mlsec_err transpose_fold(G *g, tnode *n, mlsec_error *err)
{
	transpose_run(g, n, 0);
	return MLSEC_OK;
}
static void transpose_bwd(G *g, tnode *n)
{
	transpose_run(g, n, 1);
}

/* ---- Concat ---- */

static mlsec_err concat_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x0 = IN(g, n, 0);
	if (!x0)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs inputs");
	int64_t r = (int64_t)x0->sh.ndim, axis = mlsec_onnx_attr_int(n->p, "axis", 0);
	if (norm_axis(&axis, r))
		return op_error(err, MLSEC_ERR_PARSE, n, "axis out of range");
	tval *y = OUT(g, n, 0);
	y->sh = x0->sh;
	y->dtype = x0->dtype;
	y->sh.dims[axis] = 0;
	for (int k = 0; k < n->nin; k++) {
		tval *x = IN(g, n, k);
		if (!x || x->sh.ndim != x0->sh.ndim || x->dtype != x0->dtype)
			return op_error(err, MLSEC_ERR_PARSE, n, "inputs differ in rank or type");
		for (int64_t d = 0; d < r; d++)
			if (d != axis && x->sh.dims[d] != x0->sh.dims[d])
				return op_error(err, MLSEC_ERR_PARSE, n, "inputs differ in shape");
		y->sh.dims[axis] += x->sh.dims[axis];
	}
	n->axis = axis;
	return MLSEC_OK;
}

static void concat_run(G *g, tnode *n, int backward)
{
	tval *y = OUT(g, n, 0);
	int64_t ys[MAXR] = {0}, xs[MAXR] = {0};
	contiguous_strides(&y->sh, ys);
	int64_t base = 0;
	for (int k = 0; k < n->nin; k++) {
		tval *x = IN(g, n, k);
		contiguous_strides(&x->sh, xs);
		int64_t off = base * ys[n->axis];
		if (!backward)
			nd_move(vesize(x), x->sh.ndim, x->sh.dims, vdata(y), off, ys, vdata(x), 0,
			        xs, 0, 1);
		else if (x->g)
			nd_move(4, x->sh.ndim, x->sh.dims, x->g, 0, xs, y->g, off, ys, 1, 1);
		base += x->sh.dims[n->axis];
	}
}

static void concat_fwd(G *g, tnode *n)
{
	concat_run(g, n, 0);
}
static mlsec_err concat_fold(G *g, tnode *n, mlsec_error *err)
{
	concat_run(g, n, 0);
	return MLSEC_OK;
}
static void concat_bwd(G *g, tnode *n)
{
	concat_run(g, n, 1);
}

/* ---- Slice ---- */

/* iv: [0..MAXR) starts, [MAXR..2MAXR) steps */
static mlsec_err slice_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs an input");
	int64_t r = (int64_t)x->sh.ndim;
	const int64_t *st, *en, *ax = NULL, *sp = NULL;
	size_t ns, ne, na = 0, np = 0;
	if (node_opset(g) < 10) {
		st = mlsec_onnx_attr_ints(n->p, "starts", &ns);
		en = mlsec_onnx_attr_ints(n->p, "ends", &ne);
		ax = mlsec_onnx_attr_ints(n->p, "axes", &na);
	} else {
		for (int k = 1; k < n->nin; k++)
			if (IN(g, n, k) && IN(g, n, k)->kind != VK_CONST)
				return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
				                "starts/ends/axes/steps computed at run time");
		st = const_i64(g, n, 1, &ns);
		en = const_i64(g, n, 2, &ne);
		if (IN(g, n, 3))
			ax = const_i64(g, n, 3, &na);
		if (IN(g, n, 4))
			sp = const_i64(g, n, 4, &np);
	}
	if (!st || !en || ns != ne || (ax && na != ns) || (sp && np != ns) || ns > (size_t)r)
		return op_error(err, MLSEC_ERR_PARSE, n, "inconsistent starts/ends/axes/steps");
	tval *y = OUT(g, n, 0);
	y->dtype = x->dtype;
	y->sh = x->sh;
	for (int64_t d = 0; d < r; d++) {
		n->u.iv[d] = 0;
		n->u.iv[MAXR + d] = 1;
	}
	int seen[MAXR] = {0};
	for (size_t i = 0; i < ns; i++) {
		int64_t a = ax ? ax[i] : (int64_t)i;
		if (norm_axis(&a, r) || seen[a])
			return op_error(err, MLSEC_ERR_PARSE, n, "bad axes");
		seen[a] = 1;
		int64_t dim = x->sh.dims[a], step = sp ? sp[i] : 1;
		if (step == 0)
			return op_error(err, MLSEC_ERR_PARSE, n, "step 0");
		int64_t s = st[i], e = en[i];
		if (s < 0)
			s += dim;
		if (e < 0 && e > INT64_MIN / 2)
			e += dim;
		int64_t len;
		if (step > 0) {
			s = s < 0 ? 0 : (s > dim ? dim : s);
			e = e < 0 ? 0 : (e > dim ? dim : e);
			len = e > s ? (e - s + step - 1) / step : 0;
		} else {
			s = s < 0 ? -1 : (s > dim - 1 ? dim - 1 : s);
			e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
			len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
		}
		n->u.iv[a] = s;
		n->u.iv[MAXR + a] = step;
		y->sh.dims[a] = len;
	}
	return MLSEC_OK;
}

static void slice_run(G *g, tnode *n, int backward)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	int64_t xs[MAXR] = {0}, ys[MAXR] = {0}, src[MAXR] = {0}, off = 0;
	contiguous_strides(&x->sh, xs);
	contiguous_strides(&y->sh, ys);
	for (size_t d = 0; d < x->sh.ndim; d++) {
		src[d] = xs[d] * n->u.iv[MAXR + d];
		off += xs[d] * n->u.iv[d];
	}
	if (!backward)
		nd_move(vesize(x), y->sh.ndim, y->sh.dims, vdata(y), 0, ys, vdata(x), off, src, 0,
		        1);
	else if (x->g)
		nd_move(4, y->sh.ndim, y->sh.dims, x->g, off, src, y->g, 0, ys, 1, 1);
}

static void slice_fwd(G *g, tnode *n)
{
	slice_run(g, n, 0);
}
static mlsec_err slice_fold(G *g, tnode *n, mlsec_error *err)
{
	slice_run(g, n, 0);
	return MLSEC_OK;
}
static void slice_bwd(G *g, tnode *n)
{
	slice_run(g, n, 1);
}

/* ---- Gather (constant indices) ---- */

static mlsec_err gather_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *iv = IN(g, n, 1);
	if (!x || !iv)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs data and indices");
	size_t cnt;
	const int64_t *idx = const_i64(g, n, 1, &cnt);
	if (!idx)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "indices must be constant int64");
	int64_t r = (int64_t)x->sh.ndim, axis = mlsec_onnx_attr_int(n->p, "axis", 0);
	if (norm_axis(&axis, r))
		return op_error(err, MLSEC_ERR_PARSE, n, "axis out of range");
	int64_t dim = x->sh.dims[axis];
	for (size_t i = 0; i < cnt; i++)
		if (idx[i] < -dim || idx[i] >= dim)
			return op_error(err, MLSEC_ERR_PARSE, n, "index %lld out of range",
			                (long long)idx[i]);
	if (x->sh.ndim - 1 + iv->sh.ndim > MAXR)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
	tval *y = OUT(g, n, 0);
	y->dtype = x->dtype;
	y->sh.ndim = 0;
	for (int64_t d = 0; d < axis; d++)
		y->sh.dims[y->sh.ndim++] = x->sh.dims[d];
	for (size_t d = 0; d < iv->sh.ndim; d++)
		y->sh.dims[y->sh.ndim++] = iv->sh.dims[d];
	for (int64_t d = axis + 1; d < r; d++)
		y->sh.dims[y->sh.ndim++] = x->sh.dims[d];
	n->axis = axis;
	return MLSEC_OK;
}

static void gather_run(G *g, tnode *n, int backward)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	size_t cnt;
	const int64_t *idx = const_i64(g, n, 1, &cnt);
	int64_t outer = 1, inner = 1, dim = x->sh.dims[n->axis];
	for (int64_t d = 0; d < n->axis; d++)
		outer *= x->sh.dims[d];
	for (size_t d = (size_t)n->axis + 1; d < x->sh.ndim; d++)
		inner *= x->sh.dims[d];
	size_t es = vesize(x);
	for (int64_t o = 0; o < outer; o++)
		for (size_t j = 0; j < cnt; j++) {
			int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];
			int64_t so = (o * dim + k) * inner,
			        dof = (o * (int64_t)cnt + (int64_t)j) * inner;
			if (!backward) {
				memcpy((char *)vdata(y) + dof * (int64_t)es,
				       (const char *)vdata(x) + so * (int64_t)es,
				       (size_t)inner * es);
			} else if (x->g) {
				for (int64_t i = 0; i < inner; i++)
					x->g[so + i] += y->g[dof + i];
			}
		}
}

static void gather_fwd(G *g, tnode *n)
{
	gather_run(g, n, 0);
}
static mlsec_err gather_fold(G *g, tnode *n, mlsec_error *err)
{
	gather_run(g, n, 0);
	return MLSEC_OK;
}
static void gather_bwd(G *g, tnode *n)
{
	gather_run(g, n, 1);
}

/* ---- Pad (constant mode) ---- */

/* iv: [0..MAXR) begin pads */
static mlsec_err pad_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || x->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs a FLOAT input");
	size_t ml;
	const char *mode = mlsec_onnx_attr_string(n->p, "mode", "constant", &ml);
	if (!(ml == 8 && memcmp(mode, "constant", 8) == 0))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "mode '%.*s' (only constant)",
		                (int)(ml > 20 ? 20 : ml), mode);
	int64_t r = (int64_t)x->sh.ndim;
	const int64_t *pads;
	size_t cnt;
	float cval = 0;
	if (node_opset(g) < 11) {
		pads = mlsec_onnx_attr_ints(n->p, "pads", &cnt);
		cval = mlsec_onnx_attr_float(n->p, "value", 0);
	} else {
		if (IN(g, n, 3))
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "the axes input");
		pads = const_i64(g, n, 1, &cnt);
		tval *cv = IN(g, n, 2);
		if (cv) {
			if (cv->kind != VK_CONST || cv->sh.numel != 1 || cv->dtype != TD_F32)
				return op_error(err, MLSEC_ERR_UNSUPPORTED, n,
				                "constant_value must be a constant float");
			cval = cv->f[0];
		}
	}
	if (!pads || cnt != (size_t)(2 * r))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "pads must be constant [2*rank]");
	tval *y = OUT(g, n, 0);
	y->sh = x->sh;
	for (int64_t d = 0; d < r; d++) {
		if (pads[d] < 0 || pads[d + r] < 0 || pads[d] > 1 << 20 || pads[d + r] > 1 << 20)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "negative or huge pads");
		n->u.iv[d] = pads[d];
		y->sh.dims[d] += pads[d] + pads[d + r];
	}
	n->fa = cval;
	return MLSEC_OK;
}

static void pad_run(G *g, tnode *n, int backward)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	int64_t xs[MAXR] = {0}, ys[MAXR] = {0}, off = 0;
	contiguous_strides(&x->sh, xs);
	contiguous_strides(&y->sh, ys);
	for (size_t d = 0; d < x->sh.ndim; d++)
		off += n->u.iv[d] * ys[d];
	if (!backward) {
		for (size_t i = 0; i < y->sh.numel; i++)
			y->f[i] = n->fa;
		nd_move(4, x->sh.ndim, x->sh.dims, y->f, off, ys, x->f, 0, xs, 0, 1);
	} else if (x->g) {
		nd_move(4, x->sh.ndim, x->sh.dims, x->g, 0, xs, y->g, off, ys, 1, 1);
	}
}

static void pad_fwd(G *g, tnode *n)
{
	pad_run(g, n, 0);
}
static void pad_bwd(G *g, tnode *n)
{
	pad_run(g, n, 1);
}

/* ---- Expand ---- */

static mlsec_err expand_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	size_t cnt;
	const int64_t *s = const_i64(g, n, 1, &cnt);
	if (!x || !s)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "shape must be a constant int64");
	if (cnt > MAXR)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
	mlsec_tensor_shape t;
	t.ndim = cnt;
	for (size_t i = 0; i < cnt; i++) {
		if (s[i] < 0)
			return op_error(err, MLSEC_ERR_PARSE, n, "negative dim");
		t.dims[i] = s[i];
	}
	if (shape_finish(&t))
		return op_error(err, MLSEC_ERR_LIMIT, n, "shape too large");
	tval *y = OUT(g, n, 0);
	y->dtype = x->dtype;
	if (shape_broadcast(&x->sh, &t, &y->sh))
		return op_error(err, MLSEC_ERR_PARSE, n, "shapes do not broadcast");
	return MLSEC_OK;
}

static void expand_run(G *g, tnode *n, int backward)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	int64_t xs[MAXR] = {0}, ys[MAXR] = {0};
	bcast_strides(&x->sh, &y->sh, xs);
	contiguous_strides(&y->sh, ys);
	if (!backward)
		nd_move(vesize(x), y->sh.ndim, y->sh.dims, vdata(y), 0, ys, vdata(x), 0, xs, 0, 1);
	else if (x->g)
		nd_move(4, y->sh.ndim, y->sh.dims, x->g, 0, xs, y->g, 0, ys, 1, 1);
}

static void expand_fwd(G *g, tnode *n)
{
	expand_run(g, n, 0);
}
static mlsec_err expand_fold(G *g, tnode *n, mlsec_error *err)
{
	expand_run(g, n, 0);
	return MLSEC_OK;
}
static void expand_bwd(G *g, tnode *n)
{
	expand_run(g, n, 1);
}

/* ---- ReduceMean / ReduceSum ---- */

/* iv[0] = is_mean; keeps a keepdims shape in iv[8..8+MAXR) for iteration */
static mlsec_err reduce_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || x->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs a FLOAT input");
	int is_mean = strcmp(n->p->op_type, "ReduceMean") == 0;
	int64_t axes[MAXR];
	size_t cnt;
	int present;
	mlsec_err rc = read_axes(g, n, is_mean ? 18 : 13, 1, axes, &cnt, &present, err);
	if (rc)
		return rc;
	int64_t r = (int64_t)x->sh.ndim;
	int keep = (int)mlsec_onnx_attr_int(n->p, "keepdims", 1);
	int noop = (int)mlsec_onnx_attr_int(n->p, "noop_with_empty_axes", 0);
	int mark[MAXR] = {0};
	if (!present || cnt == 0) {
		for (int64_t d = 0; d < r; d++)
			mark[d] = !noop;
	}
	for (size_t i = 0; i < cnt; i++) {
		if (norm_axis(&axes[i], r))
			return op_error(err, MLSEC_ERR_PARSE, n, "bad axes");
		mark[axes[i]] = 1;
	}
	tval *y = OUT(g, n, 0);
	y->sh.ndim = 0;
	int64_t red = 1;
	for (int64_t d = 0; d < r; d++) {
		n->u.iv[8 + d] = mark[d] ? 1 : x->sh.dims[d];
		if (mark[d])
			red *= x->sh.dims[d];
		if (!mark[d] || keep)
			y->sh.dims[y->sh.ndim++] = mark[d] ? 1 : x->sh.dims[d];
	}
	n->u.iv[0] = is_mean;
	n->fa = is_mean ? (red ? 1.0f / (float)red : 0.0f) : 1.0f;
	return MLSEC_OK;
}

static void reduce_strides(G *g, tnode *n, int64_t *xs, int64_t *ks)
{
	tval *x = IN(g, n, 0);
	mlsec_tensor_shape k;
	k.ndim = x->sh.ndim;
	for (size_t d = 0; d < k.ndim; d++)
		k.dims[d] = n->u.iv[8 + d];
	shape_finish(&k);
	contiguous_strides(&x->sh, xs);
	bcast_strides(&k, &x->sh, ks);
}

static void reduce_fwd(G *g, tnode *n)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	int64_t xs[MAXR] = {0}, ks[MAXR] = {0};
	reduce_strides(g, n, xs, ks);
	memset(y->f, 0, y->sh.numel * sizeof(float));
	nd_move(4, x->sh.ndim, x->sh.dims, y->f, 0, ks, x->f, 0, xs, 1, n->fa);
}

static void reduce_bwd(G *g, tnode *n)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	if (!x->g)
		return;
	int64_t xs[MAXR] = {0}, ks[MAXR] = {0};
	reduce_strides(g, n, xs, ks);
	nd_move(4, x->sh.ndim, x->sh.dims, x->g, 0, xs, y->g, 0, ks, 1, n->fa);
}

/* ---- constant producers ---- */

static mlsec_err constant_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *y = OUT(g, n, 0);
	if (n->p->n_attribute != 1)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs exactly one value attribute");
	const Onnx__AttributeProto *a = n->p->attribute[0];
	const char *nm = a->name ? a->name : "";
	if (strcmp(nm, "value") == 0 && a->t) {
		const Onnx__TensorProto *t = a->t;
		int32_t dt = t->has_data_type ? t->data_type : 0;
		if (t->n_dims > MAXR)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
		y->sh.ndim = t->n_dims;
		for (size_t i = 0; i < t->n_dims; i++)
			y->sh.dims[i] = t->dims[i];
		y->dtype = (dt == 1 || dt == 10 || dt == 11 || dt == 16) ? TD_F32 : TD_I64;
		if (dt == 8 || dt == 14 || dt == 15 || dt == 0 || dt > 16)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "constant of type %s",
			                mlsec_onnx_dtype_name(dt));
		return MLSEC_OK;
	}
	if (strcmp(nm, "value_float") == 0 || strcmp(nm, "value_int") == 0) {
		y->sh.ndim = 0;
		y->dtype = nm[6] == 'f' ? TD_F32 : TD_I64;
		return MLSEC_OK;
	}
	if (strcmp(nm, "value_floats") == 0 || strcmp(nm, "value_ints") == 0) {
		y->sh.ndim = 1;
		y->dtype = nm[6] == 'f' ? TD_F32 : TD_I64;
		y->sh.dims[0] = (int64_t)(y->dtype == TD_F32 ? a->n_floats : a->n_ints);
		return MLSEC_OK;
	}
	return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "attribute '%.40s'", nm);
}

static mlsec_err constant_fold(G *g, tnode *n, mlsec_error *err)
{
	tval *y = OUT(g, n, 0);
	const Onnx__AttributeProto *a = n->p->attribute[0];
	const char *nm = a->name ? a->name : "";
	if (a->t && strcmp(nm, "value") == 0) {
		if (y->dtype == TD_F32)
			return mlsec_onnx_tensor_read_float(g->m, a->t, y->f, y->sh.numel, err);
		return mlsec_onnx_tensor_read_int64(g->m, a->t, y->i, y->sh.numel, err);
	}
	if (strcmp(nm, "value_float") == 0)
		y->f[0] = a->f;
	else if (strcmp(nm, "value_int") == 0)
		y->i[0] = a->i;
	else if (strcmp(nm, "value_floats") == 0)
		memcpy(y->f, a->floats, a->n_floats * sizeof(float));
	else
		memcpy(y->i, a->ints, a->n_ints * sizeof(int64_t));
	return MLSEC_OK;
}

static mlsec_err shape_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs an input");
	int64_t r = (int64_t)x->sh.ndim;
	int64_t s = mlsec_onnx_attr_int(n->p, "start", 0), e = mlsec_onnx_attr_int(n->p, "end", r);
	if (s < 0)
		s += r;
	if (e < 0)
		e += r;
	s = s < 0 ? 0 : (s > r ? r : s);
	e = e < 0 ? 0 : (e > r ? r : e);
	tval *y = OUT(g, n, 0);
	y->dtype = TD_I64;
	y->sh.ndim = 1;
	y->sh.dims[0] = e > s ? e - s : 0;
	n->u.iv[0] = s;
	return MLSEC_OK;
}

static mlsec_err shape_fold(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	for (int64_t i = 0; i < y->sh.dims[0]; i++)
		y->i[i] = x->sh.dims[n->u.iv[0] + i];
	return MLSEC_OK;
}

static mlsec_err cos_infer(G *g, tnode *n, mlsec_error *err)
{
	size_t cnt;
	const int64_t *s = const_i64(g, n, 0, &cnt);
	if (!s)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "shape must be constant int64");
	if (cnt > MAXR)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
	tval *y = OUT(g, n, 0);
	y->sh.ndim = cnt;
	for (size_t i = 0; i < cnt; i++) {
		if (s[i] < 0)
			return op_error(err, MLSEC_ERR_PARSE, n, "negative dim");
		y->sh.dims[i] = s[i];
	}
	y->dtype = TD_F32;
	const Onnx__AttributeProto *a = mlsec_onnx_node_attr(n->p, "value");
	if (a && a->t) {
		int32_t dt = a->t->has_data_type ? a->t->data_type : 1;
		y->dtype = (dt == 1 || dt == 10 || dt == 11 || dt == 16) ? TD_F32 : TD_I64;
		uint64_t ne;
		if (mlsec_onnx_tensor_numel(a->t, 1, &ne, NULL) || ne != 1)
			return op_error(err, MLSEC_ERR_PARSE, n, "value must hold one element");
	}
	if (shape_finish(&y->sh))
		return op_error(err, MLSEC_ERR_LIMIT, n, "shape too large");
	return MLSEC_OK;
}

static mlsec_err cos_fold(G *g, tnode *n, mlsec_error *err)
{
	tval *y = OUT(g, n, 0);
	const Onnx__AttributeProto *a = mlsec_onnx_node_attr(n->p, "value");
	if (y->dtype == TD_F32) {
		float v = 0;
		if (a && a->t) {
			mlsec_err rc = mlsec_onnx_tensor_read_float(g->m, a->t, &v, 1, err);
			if (rc)
				return rc;
		}
		for (size_t i = 0; i < y->sh.numel; i++)
			y->f[i] = v;
	} else {
		int64_t v = 0;
		mlsec_err rc = mlsec_onnx_tensor_read_int64(g->m, a->t, &v, 1, err);
		if (rc)
			return rc;
		for (size_t i = 0; i < y->sh.numel; i++)
			y->i[i] = v;
	}
	return MLSEC_OK;
}

static mlsec_err cast_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs an input");
	int64_t to = mlsec_onnx_attr_int(n->p, "to", 0);
	tval *y = OUT(g, n, 0);
	y->sh = x->sh;
	switch (to) {
	case 1:
	case 10:
	case 11:
	case 16:
		y->dtype = TD_F32;
		break;
	case 2:
	case 3:
	case 4:
	case 5:
	case 6:
	case 7:
	case 9:
	case 12:
	case 13:
		y->dtype = TD_I64;
		break;
	default:
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "cast to %s",
		                mlsec_onnx_dtype_name((int32_t)to));
	}
	n->u.iv[0] = to;
	return MLSEC_OK;
}

static void cast_fwd(G *g, tnode *n)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	memcpy(y->f, x->f, x->sh.numel * sizeof(float));
}

static mlsec_err cast_fold(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	int64_t to = n->u.iv[0];
	for (size_t i = 0; i < x->sh.numel; i++) {
		double v = x->dtype == TD_F32 ? x->f[i] : (double)x->i[i];
		if (y->dtype == TD_F32) {
			y->f[i] = (float)v;
		} else {
			if (v != v || v > 9.2e18 || v < -9.2e18)
				return op_error(err, MLSEC_ERR_PARSE, n,
				                "value out of int64 range");
			int64_t k = (int64_t)v;
			if (to == 9)
				k = v != 0;
			y->i[i] = k;
		}
	}
	return MLSEC_OK;
}

static void cast_bwd(G *g, tnode *n)
{
	tval *x = IN(g, n, 0), *y = OUT(g, n, 0);
	if (x->g)
		for (size_t i = 0; i < x->sh.numel; i++)
			x->g[i] += y->g[i];
}

const op_def tensor_op_alias = {"alias", alias_infer, alias_fwd, alias_fold, NULL, 1, 0};
const op_def tensor_op_transpose = {
        "Transpose", transpose_infer, transpose_fwd, transpose_fold, transpose_bwd, 0, 0};
const op_def tensor_op_concat = {"Concat", concat_infer, concat_fwd, concat_fold, concat_bwd, 0, 0};
const op_def tensor_op_slice = {"Slice", slice_infer, slice_fwd, slice_fold, slice_bwd, 0, 0};
const op_def tensor_op_gather = {"Gather", gather_infer, gather_fwd, gather_fold, gather_bwd, 0, 0};
const op_def tensor_op_pad = {"Pad", pad_infer, pad_fwd, NULL, pad_bwd, 0, 0};
const op_def tensor_op_expand = {"Expand", expand_infer, expand_fwd, expand_fold, expand_bwd, 0, 0};
const op_def tensor_op_reduce = {"reduce", reduce_infer, reduce_fwd, NULL, reduce_bwd, 0, 0};
const op_def tensor_op_constant = {"Constant", constant_infer, NULL, constant_fold, NULL, 0, 1};
const op_def tensor_op_shape = {"Shape", shape_infer, NULL, shape_fold, NULL, 0, 1};
const op_def tensor_op_cos = {"ConstantOfShape", cos_infer, NULL, cos_fold, NULL, 0, 1};
const op_def tensor_op_cast = {"Cast", cast_infer, cast_fwd, cast_fold, cast_bwd, 0, 0};
