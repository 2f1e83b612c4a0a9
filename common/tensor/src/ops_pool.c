/*
 * ops_pool.c - MaxPool (argmax kept for the backward pass), AveragePool
 * (count_include_pad both ways) and GlobalAveragePool/GlobalMaxPool, 2-D.
 */
#include <float.h>

#include "mlsec/onnx.h"
#include "tensor_internal.h"

mlsec_err tensor_window_params(G *g, tnode *n, int64_t h, int64_t w, int64_t kh, int64_t kw,
                               int ceil_mode, int64_t *out6, mlsec_error *err);

static mlsec_err pool_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || x->dtype != TD_F32 || n->out[0] < 0)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs a FLOAT input");
	if (x->sh.ndim != 4)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D pooling (NCHW)");
	if (n->nout > 1 && n->out[1] >= 0)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "the Indices output");
	pool_params *p = &n->u.pool;
	p->n = x->sh.dims[0];
	p->c = x->sh.dims[1];
	p->h = x->sh.dims[2];
	p->w = x->sh.dims[3];
	int is_max = strcmp(n->p->op_type, "MaxPool") == 0;
	n->axis = is_max;
	size_t cnt;
	const int64_t *ks = mlsec_onnx_attr_ints(n->p, "kernel_shape", &cnt);
	if (!ks || cnt != 2)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "kernel_shape must be 2-D");
	if (is_max && mlsec_onnx_attr_int(n->p, "storage_order", 0) != 0)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "storage_order=1");
	p->kh = ks[0];
	p->kw = ks[1];
	int64_t o[10];
	mlsec_err rc = tensor_window_params(g, n, p->h, p->w, p->kh, p->kw,
	                                    mlsec_onnx_attr_int(n->p, "ceil_mode", 0) != 0, o, err);
	if (rc)
		return rc;
	p->sh = o[0];
	p->sw = o[1];
	p->ph0 = o[2];
	p->pw0 = o[3];
	p->ph1 = o[4];
	p->pw1 = o[5];
	p->dh = o[6];
	p->dw = o[7];
	p->oh = o[8];
	p->ow = o[9];
	if (!is_max && (p->dh != 1 || p->dw != 1))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "dilated AveragePool");
	p->count_include_pad = (int)mlsec_onnx_attr_int(n->p, "count_include_pad", 0);
	int64_t d[4] = {p->n, p->c, p->oh, p->ow};
	shape_set(&OUT(g, n, 0)->sh, 4, d);
	if (is_max)
		n->aux_floats = OUT(g, n, 0)->sh.numel; /* argmax as int32 */
	return MLSEC_OK;
}

/* Windows entirely inside the input, no dilation: the common 2x2/3x3
 * pooling, without per-element bounds checks. */
static int pool_inside(const pool_params *p)
{
	return p->ph0 == 0 && p->pw0 == 0 && p->dh == 1 && p->dw == 1 &&
	       (p->oh - 1) * p->sh + p->kh <= p->h && (p->ow - 1) * p->sw + p->kw <= p->w;
}

/*
 * The 2x2 window at stride 2 (LeNet, VGG, most CNNs), branch-free so that
 * it vectorises: the scalar loop's data-dependent branch mispredicted on
 * every other element and took half of LeNet's forward pass. Same choice
 * as below: the first maximum in scan order, a NaN wins (the last one).
 */
static int pool_2x2(const pool_params *p)
{
	return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2;
}

static inline void take(float v, int32_t i, float *best, int32_t *bi)
{
	int t = v > *best || v != v;
	*best = t ? v : *best;
	*bi = t ? i : *bi;
}

TENSOR_HOT static void maxpool_2x2_row(const float *restrict r0, const float *restrict r1,
                                       int32_t base, int32_t w, float *restrict y,
                                       int32_t *restrict am, int64_t ow)
{
	for (int64_t ox = 0; ox < ow; ox++) {
		int32_t i = base + 2 * (int32_t)ox;
		float best = r0[2 * ox];
		int32_t bi = i;
		take(r0[2 * ox + 1], i + 1, &best, &bi);
		take(r1[2 * ox], i + w, &best, &bi);
		take(r1[2 * ox + 1], i + w + 1, &best, &bi);
		y[ox] = best;
		am[ox] = bi;
	}
}

TENSOR_HOT static void maxpool_fast(const pool_params *p, const float *x, float *y, int32_t *am,
                                    int64_t pc0, int64_t pc1)
{
	if (pool_2x2(p) && am) {
		for (int64_t pc = pc0; pc < pc1; pc++) {
			const float *xc = x + pc * p->h * p->w;
			for (int64_t oy = 0; oy < p->oh; oy++) {
				size_t o = (size_t)((pc * p->oh + oy) * p->ow);
				const float *r0 = xc + 2 * oy * p->w;
				maxpool_2x2_row(r0, r0 + p->w, (int32_t)(2 * oy * p->w),
				                (int32_t)p->w, y + o, am + o, p->ow);
			}
		}
		return;
	}
	for (int64_t pc = pc0; pc < pc1; pc++) {
		const float *xc = x + pc * p->h * p->w;
		for (int64_t oy = 0; oy < p->oh; oy++)
			for (int64_t ox = 0; ox < p->ow; ox++) {
				int64_t base = oy * p->sh * p->w + ox * p->sw;
				float best = xc[base];
				int64_t bi = base;
				for (int64_t ki = 0; ki < p->kh; ki++)
					for (int64_t kj = 0; kj < p->kw; kj++) {
						int64_t i = base + ki * p->w + kj;
						float v = xc[i];
						if (v > best || v != v) {
							best = v;
							bi = i;
						}
					}
				size_t o = (size_t)((pc * p->oh + oy) * p->ow + ox);
				y[o] = best;
				if (am)
					am[o] = (int32_t)bi;
			}
	}
}

TENSOR_HOT static void maxpool_fwd(G *g, tnode *n)
{
	const pool_params *p = &n->u.pool;
	const float *x = IN(g, n, 0)->f;
	float *y = OUT(g, n, 0)->f;
	int32_t *am = (int32_t *)n->aux;
	if (pool_inside(p)) {
		maxpool_fast(p, x, y, am, 0, p->n * p->c);
		return;
	}
	for (int64_t pc = 0; pc < p->n * p->c; pc++) {
		const float *xc = x + pc * p->h * p->w;
		for (int64_t oy = 0; oy < p->oh; oy++)
			for (int64_t ox = 0; ox < p->ow; ox++) {
				float best = -FLT_MAX;
				int32_t bi = -1;
				for (int64_t ki = 0; ki < p->kh; ki++) {
					int64_t iy = oy * p->sh - p->ph0 + ki * p->dh;
					if (iy < 0 || iy >= p->h)
						continue;
					for (int64_t kj = 0; kj < p->kw; kj++) {
						int64_t ix = ox * p->sw - p->pw0 + kj * p->dw;
						if (ix < 0 || ix >= p->w)
							continue;
						float v = xc[iy * p->w + ix];
						/* NaN propagates like PyTorch */
						if (bi < 0 || v > best || v != v) {
							best = v;
							bi = (int32_t)(iy * p->w + ix);
						}
					}
				}
				size_t o = (size_t)((pc * p->oh + oy) * p->ow + ox);
				y[o] = bi < 0 ? 0 : best;
				if (am)
					am[o] = bi;
			}
	}
}

static void maxpool_bwd(G *g, tnode *n)
{
	const pool_params *p = &n->u.pool;
	tval *xv = IN(g, n, 0);
	if (!xv->g)
		return;
	const float *dy = OUT(g, n, 0)->g;
	const int32_t *am = (const int32_t *)n->aux;
	size_t per = (size_t)(p->oh * p->ow);
	for (int64_t pc = 0; pc < p->n * p->c; pc++) {
		float *dxc = xv->g + pc * p->h * p->w;
		for (size_t o = 0; o < per; o++) {
			int32_t i = am[pc * (int64_t)per + (int64_t)o];
			if (i >= 0)
				dxc[i] += dy[pc * (int64_t)per + (int64_t)o];
		}
	}
}

/* Window of output (oy, ox) clipped to the input, and its divisor. */
static float avg_window(const pool_params *p, int64_t oy, int64_t ox, int64_t *y0, int64_t *y1,
                        int64_t *x0, int64_t *x1)
{
	int64_t hs = oy * p->sh - p->ph0, ws = ox * p->sw - p->pw0;
	int64_t he = hs + p->kh, we = ws + p->kw;
	/* PyTorch counts padded positions only up to the padded border */
	int64_t hp = he < p->h + p->ph1 ? he : p->h + p->ph1;
	int64_t wp = we < p->w + p->pw1 ? we : p->w + p->pw1;
	int64_t pool_size = (hp - hs) * (wp - ws);
	*y0 = hs < 0 ? 0 : hs;
	*x0 = ws < 0 ? 0 : ws;
	*y1 = he > p->h ? p->h : he;
	*x1 = we > p->w ? p->w : we;
	int64_t cnt = p->count_include_pad ? pool_size : (*y1 - *y0) * (*x1 - *x0);
	return cnt > 0 ? 1.0f / (float)cnt : 0.0f;
}

TENSOR_HOT static void avgpool_fwd(G *g, tnode *n)
{
	const pool_params *p = &n->u.pool;
	const float *x = IN(g, n, 0)->f;
	float *y = OUT(g, n, 0)->f;
	for (int64_t pc = 0; pc < p->n * p->c; pc++) {
		const float *xc = x + pc * p->h * p->w;
		for (int64_t oy = 0; oy < p->oh; oy++)
			for (int64_t ox = 0; ox < p->ow; ox++) {
				int64_t y0, y1, x0, x1;
				float inv = avg_window(p, oy, ox, &y0, &y1, &x0, &x1);
				float s = 0;
				for (int64_t iy = y0; iy < y1; iy++)
					for (int64_t ix = x0; ix < x1; ix++)
						s += xc[iy * p->w + ix];
				y[(pc * p->oh + oy) * p->ow + ox] = s * inv;
			}
	}
}

TENSOR_HOT static void avgpool_bwd(G *g, tnode *n)
{
	const pool_params *p = &n->u.pool;
	tval *xv = IN(g, n, 0);
	if (!xv->g)
		return;
	const float *dy = OUT(g, n, 0)->g;
	for (int64_t pc = 0; pc < p->n * p->c; pc++) {
		float *dxc = xv->g + pc * p->h * p->w;
		for (int64_t oy = 0; oy < p->oh; oy++)
			for (int64_t ox = 0; ox < p->ow; ox++) {
				int64_t y0, y1, x0, x1;
				float inv = avg_window(p, oy, ox, &y0, &y1, &x0, &x1);
				float d = dy[(pc * p->oh + oy) * p->ow + ox] * inv;
				for (int64_t iy = y0; iy < y1; iy++)
					for (int64_t ix = x0; ix < x1; ix++)
						dxc[iy * p->w + ix] += d;
			}
	}
}

/* ---- global pools ---- */

static mlsec_err gpool_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0);
	if (!x || x->dtype != TD_F32 || x->sh.ndim < 3)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs a FLOAT [N, C, ...] input");
	tval *y = OUT(g, n, 0);
	y->sh = x->sh;
	for (size_t i = 2; i < y->sh.ndim; i++)
		y->sh.dims[i] = 1;
	n->u.iv[0] = x->sh.dims[0] * x->sh.dims[1];
	n->u.iv[1] = (int64_t)(x->sh.numel / (size_t)(n->u.iv[0] ? n->u.iv[0] : 1));
	n->u.iv[2] = strcmp(n->p->op_type, "GlobalMaxPool") == 0;
	if (n->u.iv[2])
		n->aux_floats = (size_t)n->u.iv[0];
	return MLSEC_OK;
}

static void gpool_fwd(G *g, tnode *n)
{
	const float *x = IN(g, n, 0)->f;
	float *y = OUT(g, n, 0)->f;
	int64_t nc = n->u.iv[0], len = n->u.iv[1];
	for (int64_t i = 0; i < nc; i++) {
		const float *xc = x + i * len;
		if (n->u.iv[2]) {
			int32_t bi = 0;
			for (int64_t k = 1; k < len; k++)
				if (xc[k] > xc[bi])
					bi = (int32_t)k;
			y[i] = len ? xc[bi] : 0;
			if (n->aux)
				((int32_t *)n->aux)[i] = bi;
		} else {
			float s = 0;
			for (int64_t k = 0; k < len; k++)
				s += xc[k];
			y[i] = len ? s / (float)len : 0;
		}
	}
}

static void gpool_bwd(G *g, tnode *n)
{
	tval *xv = IN(g, n, 0);
	if (!xv->g)
		return;
	const float *dy = OUT(g, n, 0)->g;
	int64_t nc = n->u.iv[0], len = n->u.iv[1];
	for (int64_t i = 0; i < nc; i++) {
		float *dxc = xv->g + i * len;
		if (n->u.iv[2]) {
			if (len)
				dxc[((int32_t *)n->aux)[i]] += dy[i];
		} else {
			float d = len ? dy[i] / (float)len : 0;
			for (int64_t k = 0; k < len; k++)
				dxc[k] += d;
		}
	}
}

/* Runs a pooling kernel on planes [c0, c1) by shifting the tensors. */
static void pool_planes(G *g, tnode *n, int64_t c0, int64_t c1, int tid, void *ctx)
{
	int bwd = ctx != NULL;
	tnode sub = *n;
	pool_params *p = &sub.u.pool;
	tval x = *IN(g, n, 0), y = *OUT(g, n, 0);
	size_t in_plane = (size_t)(p->h * p->w), out_plane = (size_t)(p->oh * p->ow);
	x.f += (size_t)c0 * in_plane;
	y.f += (size_t)c0 * out_plane;
	if (x.g)
		x.g += (size_t)c0 * in_plane;
	if (y.g)
		y.g += (size_t)c0 * out_plane;
	if (sub.aux)
		sub.aux += (size_t)c0 * out_plane;
	p->n = 1;
	p->c = c1 - c0;
	/* a two-value graph view so the kernels' IN/OUT work unchanged */
	tval vals[2] = {x, y};
	G view = *g;
	view.v = vals;
	sub.in[0] = 0;
	sub.out[0] = 1;
	sub.nin = 1;
	if (sub.axis)
		bwd ? maxpool_bwd(&view, &sub) : maxpool_fwd(&view, &sub);
	else
		bwd ? avgpool_bwd(&view, &sub) : avgpool_fwd(&view, &sub);
}

static void pool_fwd(G *g, tnode *n)
{
	tensor_par(g, n, n->u.pool.n * n->u.pool.c, pool_planes, NULL);
}

static void pool_bwd(G *g, tnode *n)
{
	if (!IN(g, n, 0)->g)
		return;
	tensor_par(g, n, n->u.pool.n * n->u.pool.c, pool_planes, (void *)1);
}

const op_def tensor_op_pool = {"pool", pool_infer, pool_fwd, NULL, pool_bwd, 0, 0};
const op_def tensor_op_gpool = {"gpool", gpool_infer, gpool_fwd, NULL, gpool_bwd, 0, 0};
