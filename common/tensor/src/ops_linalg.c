/*
 * ops_linalg.c - the BLAS-backed operators: Gemm, MatMul (numpy batching
 * and broadcasting) and 2-D Conv (im2col + sgemm over chunks of images,
 * a direct kernel for depthwise convolutions), forward and backward.
 */
#include <math.h>

#include "mlsec/onnx.h"
#include "tensor_internal.h"

#define IM2COL_CHUNK_FLOATS ((int64_t)1 << 16) /* 256 KiB of columns per chunk */

static int64_t conv_chunk(const conv_params *p);
static void conv_tbwd_params(const conv_params *p, conv_params *q);
static int conv_tbwd_ok(const conv_params *p);

/* ---- Gemm ---- */

static mlsec_err gemm_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *c = IN(g, n, 2);
	if (!a || !b || a->dtype != TD_F32 || b->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs FLOAT A and B");
	if (a->sh.ndim != 2 || b->sh.ndim != 2)
		return op_error(err, MLSEC_ERR_PARSE, n, "A and B must be 2-D");
	gemm_params *p = &n->u.gemm;
	p->ta = mlsec_onnx_attr_int(n->p, "transA", 0) != 0;
	p->tb = mlsec_onnx_attr_int(n->p, "transB", 0) != 0;
	p->alpha = mlsec_onnx_attr_float(n->p, "alpha", 1.0f);
	p->beta = mlsec_onnx_attr_float(n->p, "beta", 1.0f);
	p->m = a->sh.dims[p->ta ? 1 : 0];
	p->k = a->sh.dims[p->ta ? 0 : 1];
	int64_t kb = b->sh.dims[p->tb ? 1 : 0];
	p->n = b->sh.dims[p->tb ? 0 : 1];
	if (kb != p->k)
		return op_error(err, MLSEC_ERR_PARSE, n, "inner dims %lld and %lld differ",
		                (long long)p->k, (long long)kb);
	tval *y = OUT(g, n, 0);
	int64_t d[2] = {p->m, p->n};
	shape_set(&y->sh, 2, d);
	if (c) {
		mlsec_tensor_shape bs;
		if (c->dtype != TD_F32 || shape_broadcast(&c->sh, &y->sh, &bs) ||
		    bs.numel != y->sh.numel)
			return op_error(err, MLSEC_ERR_PARSE, n, "C does not broadcast to [M, N]");
	}
	return MLSEC_OK;
}

static void gemm_fwd_rows(G *g, tnode *n, int64_t r0, int64_t r1, int tid, void *ctx)
{
	gemm_params *p = &n->u.gemm;
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *c = IN(g, n, 2), *y = OUT(g, n, 0);
	float beta = 0;
	if (c && p->beta != 0) {
		int64_t st[2];
		bcast_strides(&c->sh, &y->sh, st);
		for (int64_t i = r0; i < r1; i++)
			for (int64_t j = 0; j < p->n; j++)
				y->f[i * p->n + j] = p->beta * c->f[i * st[0] + j * st[1]];
		beta = 1;
	}
	const float *ap = p->ta ? a->f + r0 : a->f + r0 * p->k;
	tensor_sgemm(p->ta, p->tb, r1 - r0, p->n, p->k, p->alpha, ap, p->ta ? p->m : p->k, b->f,
	             p->tb ? p->k : p->n, beta, y->f + r0 * p->n, p->n);
}

static void gemm_fwd(G *g, tnode *n)
{
	tensor_par(g, n, n->u.gemm.m, gemm_fwd_rows, NULL);
}

/* dA for rows [r0, r1) of op(A). */
static void gemm_bwd_a(G *g, tnode *n, int64_t r0, int64_t r1, int tid, void *ctx)
{
	gemm_params *p = &n->u.gemm;
	tval *a = IN(g, n, 0), *b = IN(g, n, 1);
	const float *dy = OUT(g, n, 0)->g + r0 * p->n;
	int64_t rows = r1 - r0, N = p->n, K = p->k, M = p->m;
	if (!p->ta)
		tensor_sgemm(0, !p->tb, rows, K, N, p->alpha, dy, N, b->f, p->tb ? K : N, 1,
		             a->g + r0 * K, K);
	else
		tensor_sgemm(p->tb, 1, K, rows, N, p->alpha, b->f, p->tb ? K : N, dy, N, 1,
		             a->g + r0, M);
}

/* dB for columns [c0, c1) of op(B). */
static void gemm_bwd_b(G *g, tnode *n, int64_t c0, int64_t c1, int tid, void *ctx)
{
	gemm_params *p = &n->u.gemm;
	tval *a = IN(g, n, 0), *b = IN(g, n, 1);
	const float *dy = OUT(g, n, 0)->g + c0;
	int64_t cols = c1 - c0, N = p->n, K = p->k, M = p->m;
	if (!p->tb)
		tensor_sgemm(!p->ta, 0, K, cols, M, p->alpha, a->f, p->ta ? M : K, dy, N, 1,
		             b->g + c0, N);
	else
		tensor_sgemm(1, p->ta, cols, K, M, p->alpha, dy, N, a->f, p->ta ? M : K, 1,
		             b->g + c0 * K, K);
}

static void gemm_bwd(G *g, tnode *n)
{
	gemm_params *p = &n->u.gemm;
	tval *a = IN(g, n, 0), *b = IN(g, n, 1), *c = IN(g, n, 2), *y = OUT(g, n, 0);
	if (a->g)
		tensor_par(g, n, p->m, gemm_bwd_a, NULL);
	if (b->g)
		tensor_par(g, n, p->n, gemm_bwd_b, NULL);
	if (c && c->g) {
		int64_t st[2];
		bcast_strides(&c->sh, &y->sh, st);
		for (int64_t i = 0; i < p->m; i++)
			for (int64_t j = 0; j < p->n; j++)
				c->g[i * st[0] + j * st[1]] += p->beta * y->g[i * p->n + j];
	}
}

/* ---- MatMul ---- */

/* iv layout: 0 M, 1 K, 2 N, 3 batch rank, 4 a 1-D, 5 b 1-D,
 * then batch dims [8..8+MAXR), a strides, b strides (in matrices). */
#define MM_DIMS 8
#define MM_SA (8 + MAXR)
#define MM_SB (8 + 2 * MAXR)

static mlsec_err matmul_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *a = IN(g, n, 0), *b = IN(g, n, 1);
	if (!a || !b || a->dtype != TD_F32 || b->dtype != TD_F32 || !a->sh.ndim || !b->sh.ndim)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs FLOAT A and B");
	mlsec_tensor_shape sa = a->sh, sb = b->sh;
	int a1 = sa.ndim == 1, b1 = sb.ndim == 1;
	if (a1) {
		sa.ndim = 2;
		sa.dims[1] = sa.dims[0];
		sa.dims[0] = 1;
	}
	if (b1) {
		sb.ndim = 2;
		sb.dims[1] = 1;
	}
	int64_t M = sa.dims[sa.ndim - 2], K = sa.dims[sa.ndim - 1];
	int64_t K2 = sb.dims[sb.ndim - 2], N = sb.dims[sb.ndim - 1];
	if (K != K2)
		return op_error(err, MLSEC_ERR_PARSE, n, "inner dims %lld and %lld differ",
		                (long long)K, (long long)K2);
	mlsec_tensor_shape ba = sa, bb = sb, bo;
	ba.ndim -= 2;
	bb.ndim -= 2;
	if (shape_broadcast(&ba, &bb, &bo))
		return op_error(err, MLSEC_ERR_PARSE, n, "batch dims do not broadcast");
	if (bo.ndim + 2 > MAXR)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "rank over %d", MAXR);
	int64_t *iv = n->u.iv;
	iv[0] = M;
	iv[1] = K;
	iv[2] = N;
	iv[3] = (int64_t)bo.ndim;
	iv[4] = a1;
	iv[5] = b1;
	bcast_strides(&ba, &bo, iv + MM_SA);
	bcast_strides(&bb, &bo, iv + MM_SB);
	for (size_t i = 0; i < bo.ndim; i++)
		iv[MM_DIMS + i] = bo.dims[i];
	tval *y = OUT(g, n, 0);
	y->sh.ndim = 0;
	for (size_t i = 0; i < bo.ndim; i++)
		y->sh.dims[y->sh.ndim++] = bo.dims[i];
	if (!a1)
		y->sh.dims[y->sh.ndim++] = M;
	if (!b1)
		y->sh.dims[y->sh.ndim++] = N;
	shape_finish(&y->sh);
	return MLSEC_OK;
}

/* Calls fn for every batch index with the matrix offsets of A, B, Y. */
static int64_t mm_batches(const int64_t *iv)
{
	int64_t nb = 1;
	for (int64_t i = 0; i < iv[3]; i++)
		nb *= iv[MM_DIMS + i];
	return nb;
}

static void mm_offsets(const int64_t *iv, int64_t bi, int64_t *oa, int64_t *ob)
{
	int64_t a = 0, b = 0;
	for (int64_t d = iv[3] - 1; d >= 0; d--) {
		int64_t dim = iv[MM_DIMS + d], idx = bi % dim;
		bi /= dim;
		a += idx * iv[MM_SA + d];
		b += idx * iv[MM_SB + d];
	}
	*oa = a;
	*ob = b;
}

static int mm_b_shared(const int64_t *iv)
{
	for (int64_t d = 0; d < iv[3]; d++)
		if (iv[MM_SB + d] != 0)
			return 0;
	/* A must be contiguous over the batch for the flattening trick */
	int64_t s = 1;
	for (int64_t d = iv[3] - 1; d >= 0; d--) {
		if (iv[MM_SA + d] != s)
			return 0;
		s *= iv[MM_DIMS + d];
	}
	return 1;
}

static void mm_fwd_rows(G *g, tnode *n, int64_t r0, int64_t r1, int tid, void *ctx)
{
	const int64_t *iv = n->u.iv;
	int64_t K = iv[1], N = iv[2];
	tensor_sgemm(0, 0, r1 - r0, N, K, 1, IN(g, n, 0)->f + r0 * K, K, IN(g, n, 1)->f, N, 0,
	             OUT(g, n, 0)->f + r0 * N, N);
}

static void mm_fwd_batches(G *g, tnode *n, int64_t b0, int64_t b1, int tid, void *ctx)
{
	const int64_t *iv = n->u.iv;
	int64_t M = iv[0], K = iv[1], N = iv[2];
	const float *a = IN(g, n, 0)->f, *b = IN(g, n, 1)->f;
	float *y = OUT(g, n, 0)->f;
	for (int64_t bi = b0; bi < b1; bi++) {
		int64_t oa, ob;
		mm_offsets(iv, bi, &oa, &ob);
		tensor_sgemm(0, 0, M, N, K, 1, a + oa * M * K, K, b + ob * K * N, N, 0,
		             y + bi * M * N, N);
	}
}

static void matmul_fwd(G *g, tnode *n)
{
	const int64_t *iv = n->u.iv;
	int64_t nb = mm_batches(iv);
	if (mm_b_shared(iv))
		tensor_par(g, n, nb * iv[0], mm_fwd_rows, NULL);
	else
		tensor_par(g, n, nb, mm_fwd_batches, NULL);
}

static void mm_bwd_a_rows(G *g, tnode *n, int64_t r0, int64_t r1, int tid, void *ctx)
{
	const int64_t *iv = n->u.iv;
	int64_t K = iv[1], N = iv[2];
	tensor_sgemm(0, 1, r1 - r0, K, N, 1, OUT(g, n, 0)->g + r0 * N, N, IN(g, n, 1)->f, N, 1,
	             IN(g, n, 0)->g + r0 * K, K);
}

static void mm_bwd_b_cols(G *g, tnode *n, int64_t c0, int64_t c1, int tid, void *ctx)
{
	const int64_t *iv = n->u.iv;
	int64_t K = iv[1], N = iv[2], rows = mm_batches(iv) * iv[0];
	tensor_sgemm(1, 0, K, c1 - c0, rows, 1, IN(g, n, 0)->f, K, OUT(g, n, 0)->g + c0, N, 1,
	             IN(g, n, 1)->g + c0, N);
}

static void mm_bwd_batches(G *g, tnode *n, int64_t b0, int64_t b1, int tid, void *ctx)
{
	const int64_t *iv = n->u.iv;
	int64_t M = iv[0], K = iv[1], N = iv[2];
	tval *av = IN(g, n, 0), *bv = IN(g, n, 1);
	const float *dy = OUT(g, n, 0)->g;
	for (int64_t bi = b0; bi < b1; bi++) {
		int64_t oa, ob;
		mm_offsets(iv, bi, &oa, &ob);
		if (av->g)
			tensor_sgemm(0, 1, M, K, N, 1, dy + bi * M * N, N, bv->f + ob * K * N, N, 1,
			             av->g + oa * M * K, K);
		if (bv->g)
			tensor_sgemm(1, 0, K, N, M, 1, av->f + oa * M * K, K, dy + bi * M * N, N, 1,
			             bv->g + ob * K * N, N);
	}
}

/* Batched backward may run in parallel only when no operand is broadcast
 * (two batches would accumulate into the same gradient matrix). */
static int mm_no_broadcast(const int64_t *iv)
{
	for (int64_t d = 0; d < iv[3]; d++)
		if (iv[MM_DIMS + d] > 1 && (iv[MM_SA + d] == 0 || iv[MM_SB + d] == 0))
			return 0;
	return 1;
}

static void matmul_bwd(G *g, tnode *n)
{
	const int64_t *iv = n->u.iv;
	tval *av = IN(g, n, 0), *bv = IN(g, n, 1);
	int64_t nb = mm_batches(iv);
	if (mm_b_shared(iv)) {
		if (av->g)
			tensor_par(g, n, nb * iv[0], mm_bwd_a_rows, NULL);
		if (bv->g)
			tensor_par(g, n, iv[2], mm_bwd_b_cols, NULL);
		return;
	}
	if (mm_no_broadcast(iv))
		tensor_par(g, n, nb, mm_bwd_batches, NULL);
	else
		mm_bwd_batches(g, n, 0, nb, 0, NULL);
}

/* ---- Conv (2-D) ---- */

/* Reads kernel/stride/pad/dilation attributes shared by Conv and pools;
 * computes output sizes. ceil: pooling ceil_mode (PyTorch rule: the last
 * window must start inside the input or its left padding). */
mlsec_err tensor_window_params(G *g, tnode *n, int64_t h, int64_t w, int64_t kh, int64_t kw,
                               int ceil_mode, int64_t *out6, mlsec_error *err);
mlsec_err tensor_window_params(G *g, tnode *n, int64_t h, int64_t w, int64_t kh, int64_t kw,
                               int ceil_mode, int64_t *o, mlsec_error *err)
{
	(void)g;
	size_t cnt;
	const int64_t *s = mlsec_onnx_attr_ints(n->p, "strides", &cnt);
	int64_t sh = 1, sw = 1, dh = 1, dw = 1, p[4] = {0, 0, 0, 0};
	if (s) {
		if (cnt != 2)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D windows");
		sh = s[0];
		sw = s[1];
	}
	const int64_t *d = mlsec_onnx_attr_ints(n->p, "dilations", &cnt);
	if (d) {
		if (cnt != 2)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D windows");
		dh = d[0];
		dw = d[1];
	}
	if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || sh > 1 << 16 || sw > 1 << 16 || dh > 1 << 16 ||
	    dw > 1 << 16 || kh < 1 || kw < 1 || kh > 1 << 16 || kw > 1 << 16)
		return op_error(err, MLSEC_ERR_PARSE, n, "bad kernel/stride/dilation");
	int64_t ekh = dh * (kh - 1) + 1, ekw = dw * (kw - 1) + 1;
	size_t al;
	const char *ap = mlsec_onnx_attr_string(n->p, "auto_pad", "NOTSET", &al);
	int64_t oh, ow;
	if ((al == 10 && memcmp(ap, "SAME_UPPER", 10) == 0) ||
	    (al == 10 && memcmp(ap, "SAME_LOWER", 10) == 0)) {
		oh = (h + sh - 1) / sh;
		ow = (w + sw - 1) / sw;
		int64_t th = (oh - 1) * sh + ekh - h, tw = (ow - 1) * sw + ekw - w;
		th = th < 0 ? 0 : th;
		tw = tw < 0 ? 0 : tw;
		int lower = ap[5] == 'L';
		p[0] = lower ? th - th / 2 : th / 2;
		p[2] = th - p[0];
		p[1] = lower ? tw - tw / 2 : tw / 2;
		p[3] = tw - p[1];
	} else {
		if (!(al == 5 && memcmp(ap, "VALID", 5) == 0) &&
		    !(al == 6 && memcmp(ap, "NOTSET", 6) == 0))
			return op_error(err, MLSEC_ERR_PARSE, n, "bad auto_pad");
		const int64_t *pp = mlsec_onnx_attr_ints(n->p, "pads", &cnt);
		if (pp && !(al == 5 && ap[0] == 'V')) {
			if (cnt != 4)
				return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D pads");
			for (int i = 0; i < 4; i++) {
				if (pp[i] < 0 || pp[i] > 1 << 16)
					return op_error(err, MLSEC_ERR_PARSE, n, "bad pads");
				p[i] = pp[i];
			}
		}
		int64_t nh = h + p[0] + p[2] - ekh, nw = w + p[1] + p[3] - ekw;
		if (nh < 0 || nw < 0)
			return op_error(err, MLSEC_ERR_PARSE, n, "window larger than the input");
		if (ceil_mode) {
			oh = (nh + sh - 1) / sh + 1;
			ow = (nw + sw - 1) / sw + 1;
			if ((oh - 1) * sh >= h + p[0])
				oh--;
			if ((ow - 1) * sw >= w + p[1])
				ow--;
		} else {
			oh = nh / sh + 1;
			ow = nw / sw + 1;
		}
	}
	o[0] = sh;
	o[1] = sw;
	o[2] = p[0];
	o[3] = p[1];
	o[4] = p[2];
	o[5] = p[3];
	o[6] = dh;
	o[7] = dw;
	o[8] = oh;
	o[9] = ow;
	return MLSEC_OK;
}

static mlsec_err conv_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *w = IN(g, n, 1), *b = IN(g, n, 2);
	if (!x || !w || x->dtype != TD_F32 || w->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs FLOAT X and W");
	if (x->sh.ndim != 4 || w->sh.ndim != 4)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D convolutions (NCHW)");
	if (w->kind != VK_CONST || (b && b->kind != VK_CONST))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "weights must be constant");
	if (b && b->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "bias must be FLOAT");
	conv_params *p = &n->u.conv;
	p->n = x->sh.dims[0];
	p->c = x->sh.dims[1];
	p->h = x->sh.dims[2];
	p->w = x->sh.dims[3];
	p->m = w->sh.dims[0];
	p->kh = w->sh.dims[2];
	p->kw = w->sh.dims[3];
	p->group = mlsec_onnx_attr_int(n->p, "group", 1);
	if (p->group < 1 || p->c % p->group || p->m % p->group || w->sh.dims[1] != p->c / p->group)
		return op_error(err, MLSEC_ERR_PARSE, n, "channels do not match group/weights");
	if (b && b->sh.numel != (size_t)p->m)
		return op_error(err, MLSEC_ERR_PARSE, n, "bias is not [M]");
	size_t cnt;
	const int64_t *ks = mlsec_onnx_attr_ints(n->p, "kernel_shape", &cnt);
	if (ks && (cnt != 2 || ks[0] != p->kh || ks[1] != p->kw))
		return op_error(err, MLSEC_ERR_PARSE, n, "kernel_shape does not match W");
	int64_t o[10];
	mlsec_err rc = tensor_window_params(g, n, p->h, p->w, p->kh, p->kw, 0, o, err);
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
	int64_t d[4] = {p->n, p->m, p->oh, p->ow};
	shape_set(&OUT(g, n, 0)->sh, 4, d);
	int64_t cg = p->c / p->group, mg = p->m / p->group;
	int64_t rows = cg * p->kh * p->kw, ohw = p->oh * p->ow;
	p->tbwd = 0;
	if (cg == 1 && p->group > 1) {
		p->chunk = 0; /* direct depthwise kernel */
	} else {
		p->chunk = conv_chunk(p);
		n->scratch_floats = (size_t)(p->chunk * (rows + mg) * (ohw ? ohw : 1));
		/* The direct kernel packs the weights there (m * c * 9 floats;
		 * the same count for the flipped ones of the backward pass). */
		if (tensor_conv_direct_ok(p) && (size_t)(p->m * rows) > n->scratch_floats)
			n->scratch_floats = (size_t)(p->m * rows);
		if (conv_tbwd_ok(p)) {
			conv_params q;
			conv_tbwd_params(p, &q);
			size_t need =
			        (size_t)(q.chunk * ((q.c / q.group) * q.kh * q.kw + q.m / q.group) *
			                 q.oh * q.ow);
			if (need > n->scratch_floats)
				n->scratch_floats = need;
			n->aux_floats = IN(g, n, 1)->sh.numel;
			p->tbwd = 1;
		}
	}
	return MLSEC_OK;
}

/* Range [lo, hi) of output columns whose input column ix0 + ox*sw lies
 * inside [0, w): the rest of an im2col row is padding. */
static void valid_cols(const conv_params *p, int64_t ix0, int64_t *lo, int64_t *hi)
{
	int64_t l = ix0 >= 0 ? 0 : (-ix0 + p->sw - 1) / p->sw;
	int64_t h = ix0 > p->w - 1 ? 0 : (p->w - 1 - ix0) / p->sw + 1;
	if (h > p->ow)
		h = p->ow;
	if (l > h)
		l = h;
	*lo = l;
	*hi = h;
}

/*
 * im2col for stride 1 along both axes, no column dilation, and as many
 * output as input columns (w == ow: "same" padding). A row of col is then
 * the input plane shifted by a constant, so the rows of one kernel offset
 * are copied with one memcpy across image rows instead of one per row;
 * the elements that wrap from one image row into the next land exactly on
 * the padding columns, which are zeroed afterwards. The copy is clipped to
 * the plane at both ends (what it would read outside is padding too).
 */
static int im2col_flat_ok(const conv_params *p)
{
	return p->sh == 1 && p->sw == 1 && p->dw == 1 && p->w == p->ow && p->ow > 0;
}

TENSOR_HOT static void im2col_flat(const conv_params *p, const float *x, int64_t cg, float *col,
                                   int64_t ld)
{
	int64_t ow = p->ow, oh = p->oh, plane = p->h * p->w;
	for (int64_t c = 0; c < cg; c++)
		for (int64_t ki = 0; ki < p->kh; ki++) {
			int64_t off = ki * p->dh - p->ph0; /* iy = oy + off */
			int64_t oy0 = off < 0 ? -off : 0, oy1 = p->h - off < oh ? p->h - off : oh;
			if (oy0 > oh)
				oy0 = oh;
			if (oy1 < oy0)
				oy1 = oy0;
			for (int64_t kj = 0; kj < p->kw; kj++) {
				float *row = col + ((c * p->kh + ki) * p->kw + kj) * ld;
				const float *xc = x + c * plane;
				int64_t ix0 = kj - p->pw0, lo, hi;
				valid_cols(p, ix0, &lo, &hi);
				memset(row, 0, (size_t)(oy0 * ow) * sizeof(float));
				memset(row + oy1 * ow, 0,
				       (size_t)((oh - oy1) * ow) * sizeof(float));
				if (oy1 == oy0)
					continue;
				if (lo >= hi) {
					memset(row + oy0 * ow, 0,
					       (size_t)((oy1 - oy0) * ow) * sizeof(float));
					continue;
				}
				int64_t d0 = oy0 * ow, d1 = oy1 * ow;
				int64_t s0 = (oy0 + off) * p->w + ix0; /* source of d0 */
				int64_t a = s0 < 0 ? d0 - s0 : d0;
				int64_t b =
				        s0 + (d1 - d0) > plane ? d1 - (s0 + (d1 - d0) - plane) : d1;
				if (b > a)
					memcpy(row + a, xc + s0 + (a - d0),
					       (size_t)(b - a) * sizeof(float));
				if (lo > 0 || hi < ow)
					for (int64_t oy = oy0; oy < oy1; oy++) {
						float *r = row + oy * ow;
						for (int64_t k = 0; k < lo; k++)
							r[k] = 0;
						for (int64_t k = hi; k < ow; k++)
							r[k] = 0;
					}
			}
		}
}

/* r[i] = x[2 i]: one row of a stride-2 im2col (vectorised as loads and
 * permutes; the general strided loop is not). */
TENSOR_HOT static void gather_s2(float *restrict r, const float *restrict x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		r[i] = x[2 * i];
}

/* d[2 i] += r[i]: one row of a stride-2 col2im. */
TENSOR_HOT static void scatter_add_s2(float *restrict d, const float *restrict r, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		d[2 * i] += r[i];
}

/* col[r, img*ohw + o] for one image and group. ld = row stride of col. */
TENSOR_HOT static void im2col(const conv_params *p, const float *x, int64_t cg, float *col,
                              int64_t ld)
{
	if (im2col_flat_ok(p)) {
		im2col_flat(p, x, cg, col, ld);
		return;
	}
	for (int64_t c = 0; c < cg; c++)
		for (int64_t ki = 0; ki < p->kh; ki++)
			for (int64_t kj = 0; kj < p->kw; kj++) {
				float *row = col + ((c * p->kh + ki) * p->kw + kj) * ld;
				const float *xc = x + c * p->h * p->w;
				int64_t ix0 = -p->pw0 + kj * p->dw, lo, hi;
				valid_cols(p, ix0, &lo, &hi);
				for (int64_t oy = 0; oy < p->oh; oy++) {
					int64_t iy = oy * p->sh - p->ph0 + ki * p->dh;
					float *r = row + oy * p->ow;
					if (iy < 0 || iy >= p->h || lo >= hi) {
						memset(r, 0, (size_t)p->ow * sizeof(float));
						continue;
					}
					const float *xr = xc + iy * p->w + ix0;
					/* The padding columns are a few floats: stores,
					 * not memset calls. */
					for (int64_t k = 0; k < lo; k++)
						r[k] = 0;
					if (p->sw == 1) {
						memcpy(r + lo, xr + lo,
						       (size_t)(hi - lo) * sizeof(float));
					} else if (p->sw == 2) {
						gather_s2(r + lo, xr + 2 * lo, hi - lo);
					} else {
						for (int64_t ox = lo; ox < hi; ox++)
							r[ox] = xr[ox * p->sw];
					}
					for (int64_t k = hi; k < p->ow; k++)
						r[k] = 0;
				}
			}
}

TENSOR_HOT static void col2im(const conv_params *p, const float *col, int64_t cg, float *dx,
                              int64_t ld)
{
	for (int64_t c = 0; c < cg; c++)
		for (int64_t ki = 0; ki < p->kh; ki++)
			for (int64_t kj = 0; kj < p->kw; kj++) {
				const float *row = col + ((c * p->kh + ki) * p->kw + kj) * ld;
				float *dc = dx + c * p->h * p->w;
				int64_t ix0 = -p->pw0 + kj * p->dw, lo, hi;
				valid_cols(p, ix0, &lo, &hi);
				for (int64_t oy = 0; oy < p->oh; oy++) {
					int64_t iy = oy * p->sh - p->ph0 + ki * p->dh;
					if (iy < 0 || iy >= p->h)
						continue;
					const float *r = row + oy * p->ow;
					float *dr = dc + iy * p->w + ix0;
					if (p->sw == 1) {
						for (int64_t ox = lo; ox < hi; ox++)
							dr[ox] += r[ox];
					} else if (p->sw == 2) {
						scatter_add_s2(dr + 2 * lo, r + lo, hi - lo);
					} else {
						for (int64_t ox = lo; ox < hi; ox++)
							dr[ox * p->sw] += r[ox];
					}
				}
			}
}

TENSOR_HOT static void dw_fwd(const conv_params *p, const float *x, const float *w,
                              const float *bias, float *y)
{
	int64_t mg = p->m / p->group;
	for (int64_t b = 0; b < p->n; b++)
		for (int64_t m = 0; m < p->m; m++) {
			const float *xc = x + (b * p->c + m / mg) * p->h * p->w;
			const float *wk = w + m * p->kh * p->kw;
			float *yc = y + (b * p->m + m) * p->oh * p->ow;
			float bv = bias ? bias[m] : 0;
			for (int64_t oy = 0; oy < p->oh; oy++)
				for (int64_t ox = 0; ox < p->ow; ox++) {
					float s = bv;
					for (int64_t ki = 0; ki < p->kh; ki++) {
						int64_t iy = oy * p->sh - p->ph0 + ki * p->dh;
						if (iy < 0 || iy >= p->h)
							continue;
						for (int64_t kj = 0; kj < p->kw; kj++) {
							int64_t ix =
							        ox * p->sw - p->pw0 + kj * p->dw;
							if (ix >= 0 && ix < p->w)
								s += xc[iy * p->w + ix] *
								     wk[ki * p->kw + kj];
						}
					}
					yc[oy * p->ow + ox] = s;
				}
		}
}

TENSOR_HOT static void dw_bwd(const conv_params *p, const float *w, const float *dy, float *dx)
{
	int64_t mg = p->m / p->group;
	for (int64_t b = 0; b < p->n; b++)
		for (int64_t m = 0; m < p->m; m++) {
			float *dc = dx + (b * p->c + m / mg) * p->h * p->w;
			const float *wk = w + m * p->kh * p->kw;
			const float *dyc = dy + (b * p->m + m) * p->oh * p->ow;
			for (int64_t oy = 0; oy < p->oh; oy++)
				for (int64_t ox = 0; ox < p->ow; ox++) {
					float d = dyc[oy * p->ow + ox];
					for (int64_t ki = 0; ki < p->kh; ki++) {
						int64_t iy = oy * p->sh - p->ph0 + ki * p->dh;
						if (iy < 0 || iy >= p->h)
							continue;
						for (int64_t kj = 0; kj < p->kw; kj++) {
							int64_t ix =
							        ox * p->sw - p->pw0 + kj * p->dw;
							if (ix >= 0 && ix < p->w)
								dc[iy * p->w + ix] +=
								        d * wk[ki * p->kw + kj];
						}
					}
				}
		}
}

static int conv_is_pointwise(const conv_params *p)
{
	return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph0 == 0 && p->pw0 == 0 &&
	       p->ph1 == 0 && p->pw1 == 0 && p->group == 1;
}

/*
 * The GEMM of nb images leaves tmp[m, i*ohw + o]; image i's plane m of
 * group gr goes to y (=, += with acc, or = + bias). Out of conv_run so the
 * loops get the AVX2 clone.
 */
TENSOR_HOT static void scatter_planes(const conv_params *p, const float *restrict tmp, int64_t ld,
                                      float *restrict y, int64_t b0, int64_t nb, int64_t gr,
                                      int acc, const float *bias)
{
	int64_t mg = p->m / p->group, ohw = p->oh * p->ow;
	for (int64_t i = 0; i < nb; i++)
		for (int64_t m = 0; m < mg; m++) {
			float *restrict dst = y + ((b0 + i) * p->m + gr * mg + m) * ohw;
			const float *restrict src = tmp + m * ld + i * ohw;
			if (acc) {
				for (int64_t k = 0; k < ohw; k++)
					dst[k] += src[k];
			} else if (bias) {
				float bv = bias[gr * mg + m];
				for (int64_t k = 0; k < ohw; k++)
					dst[k] = src[k] + bv;
			} else {
				memcpy(dst, src, (size_t)ohw * sizeof(float));
			}
		}
}

/* Fills channel rows [m0, m0+cnt) of image plane y with the bias, so the
 * GEMM can accumulate (beta 1): OpenBLAS would otherwise zero the output
 * (beta 0) and the bias would need another pass. */
TENSOR_HOT static void fill_bias(float *y, const float *bias, int64_t cnt, int64_t ohw)
{
	for (int64_t m = 0; m < cnt; m++)
		for (int64_t i = 0; i < ohw; i++)
			y[m * ohw + i] = bias[m];
}

/* y (=|+=) conv(x, w) + bias for images [i0, i1), with worker tid's scratch.
 * With acc, bias must be NULL. */
static void conv_run(G *g, const conv_params *p, const float *x, const float *w, const float *bias,
                     float *y, int acc, int64_t i0, int64_t i1, int tid)
{
	int64_t cg = p->c / p->group, mg = p->m / p->group;
	int64_t rows = cg * p->kh * p->kw, ohw = p->oh * p->ow;
	float beta = (acc || bias) ? 1.0f : 0.0f;
	if (p->chunk == 0) {
		conv_params q = *p;
		q.n = i1 - i0;
		dw_fwd(&q, x + i0 * p->c * p->h * p->w, w, bias, y + i0 * p->m * ohw);
		return;
	}
	if (tensor_conv_direct_ok(p)) {
		tensor_conv_direct(p, x, w, bias, y, acc, i0, i1, tensor_scratch(g, tid));
		return;
	}
	if (conv_is_pointwise(p)) {
		for (int64_t b = i0; b < i1; b++) {
			if (bias)
				fill_bias(y + b * p->m * ohw, bias, p->m, ohw);
			tensor_sgemm(0, 0, p->m, ohw, p->c, 1, w, p->c, x + b * p->c * ohw, ohw,
			             beta, y + b * p->m * ohw, ohw);
		}
		return;
	}
	float *scr = tensor_scratch(g, tid);
	for (int64_t b0 = i0; b0 < i1; b0 += p->chunk) {
		int64_t nb = i1 - b0 < p->chunk ? i1 - b0 : p->chunk;
		int64_t ld = nb * ohw;
		float *col = scr, *tmp = scr + rows * ld;
		for (int64_t gr = 0; gr < p->group; gr++) {
			for (int64_t i = 0; i < nb; i++)
				im2col(p, x + ((b0 + i) * p->c + gr * cg) * p->h * p->w, cg,
				       col + i * ohw, ld);
			const float *wg = w + gr * mg * rows;
			if (nb == 1) {
				float *yg = y + (b0 * p->m + gr * mg) * ohw;
				if (bias)
					fill_bias(yg, bias + gr * mg, mg, ohw);
				tensor_sgemm(0, 0, mg, ohw, rows, 1, wg, rows, col, ld, beta, yg,
				             ohw);
				continue;
			}
			tensor_sgemm(0, 0, mg, ld, rows, 1, wg, rows, col, ld, 0, tmp, ld);
			scatter_planes(p, tmp, ld, y, b0, nb, gr, acc, bias);
		}
	}
}

static void conv_fwd_images(G *g, tnode *n, int64_t i0, int64_t i1, int tid, void *ctx)
{
	const conv_params *p = &n->u.conv;
	if (n->fuse_relu && tensor_conv_direct_ok(p)) { /* the Relu in the stores */
		tensor_conv_direct(p, IN(g, n, 0)->f, IN(g, n, 1)->f,
		                   IN(g, n, 2) ? IN(g, n, 2)->f : NULL, OUT(g, n, 0)->f,
		                   TENSOR_CONV_RELU, i0, i1, tensor_scratch(g, tid));
		return;
	}
	conv_run(g, p, IN(g, n, 0)->f, IN(g, n, 1)->f, IN(g, n, 2) ? IN(g, n, 2)->f : NULL,
	         OUT(g, n, 0)->f, 0, i0, i1, tid);
	if (n->fuse_relu) { /* the fused Relu, on this thread's images while warm */
		int64_t per = n->u.conv.m * n->u.conv.oh * n->u.conv.ow;
		tensor_relu_inplace(OUT(g, n, 0)->f + i0 * per, (size_t)((i1 - i0) * per));
	}
}

/* The fused Relu's backward on this thread's images of dY, before the
 * convolution's own. */
static void conv_unrelu_grad(G *g, tnode *n, int64_t i0, int64_t i1)
{
	if (!n->fuse_relu)
		return;
	int64_t per = n->u.conv.m * n->u.conv.oh * n->u.conv.ow;
	tensor_relu_mask_grad(OUT(g, n, 0)->f + i0 * per, OUT(g, n, 0)->g + i0 * per,
	                      (size_t)((i1 - i0) * per));
}

/* Images per im2col chunk so one chunk's columns stay cache-sized. */
static int64_t conv_chunk(const conv_params *p)
{
	int64_t rows = (p->c / p->group) * p->kh * p->kw, ohw = p->oh * p->ow;
	int64_t per = (rows + p->m / p->group) * (ohw ? ohw : 1);
	int64_t chunk = IM2COL_CHUNK_FLOATS / (per ? per : 1);
	if (chunk < 1)
		chunk = 1;
	if (chunk > p->n)
		chunk = p->n ? p->n : 1;
	return chunk;
}

/* For a stride-1 convolution, d loss / d x is the convolution of dY with
 * the flipped, channel-transposed weights and complementary padding. That
 * runs im2col + one GEMM accumulating straight into dX, instead of a GEMM
 * into a zeroed column buffer followed by col2im. */
static void conv_tbwd_params(const conv_params *p, conv_params *q)
{
	*q = *p;
	q->c = p->m;
	q->h = p->oh;
	q->w = p->ow;
	q->m = p->c;
	q->oh = p->h;
	q->ow = p->w;
	q->ph0 = p->dh * (p->kh - 1) - p->ph0;
	q->ph1 = p->dh * (p->kh - 1) - p->ph1;
	q->pw0 = p->dw * (p->kw - 1) - p->pw0;
	q->pw1 = p->dw * (p->kw - 1) - p->pw1;
	q->chunk = conv_chunk(q);
}

static int conv_tbwd_ok(const conv_params *p)
{
	/* im2col of dY has M*kh*kw rows where col2im has C*kh*kw: only worth it
	 * when the layer does not widen (M <= C) */
	return p->sh == 1 && p->sw == 1 && p->chunk != 0 && !conv_is_pointwise(p) && p->m <= p->c &&
	       p->ph0 <= p->dh * (p->kh - 1) && p->ph1 <= p->dh * (p->kh - 1) &&
	       p->pw0 <= p->dw * (p->kw - 1) && p->pw1 <= p->dw * (p->kw - 1);
}

/* W'[c, m_local, i, j] = W[m, c_local, kh-1-i, kw-1-j] within each group. */
static void conv_flip_weights(const conv_params *p, const float *w, float *wt)
{
	int64_t cg = p->c / p->group, mg = p->m / p->group, kk = p->kh * p->kw;
	for (int64_t gr = 0; gr < p->group; gr++)
		for (int64_t ml = 0; ml < mg; ml++)
			for (int64_t cl = 0; cl < cg; cl++) {
				const float *src = w + ((gr * mg + ml) * cg + cl) * kk;
				float *dst = wt + ((gr * cg + cl) * mg + ml) * kk;
				for (int64_t k = 0; k < kk; k++)
					dst[k] = src[kk - 1 - k];
			}
}

static void conv_tbwd_images(G *g, tnode *n, int64_t i0, int64_t i1, int tid, void *ctx)
{
	const conv_params *q = ctx;
	conv_unrelu_grad(g, n, i0, i1);
	conv_run(g, q, OUT(g, n, 0)->g, n->aux, NULL, IN(g, n, 0)->g, 1, i0, i1, tid);
}

static void conv_fwd(G *g, tnode *n)
{
	tensor_par(g, n, n->u.conv.n, conv_fwd_images, NULL);
}

static void conv_bwd_images(G *g, tnode *n, int64_t i0, int64_t i1, int tid, void *ctx)
{
	conv_unrelu_grad(g, n, i0, i1);
	const conv_params *p = &n->u.conv;
	const float *w = IN(g, n, 1)->f, *dy = OUT(g, n, 0)->g;
	float *dx = IN(g, n, 0)->g;
	int64_t cg = p->c / p->group, mg = p->m / p->group;
	int64_t rows = cg * p->kh * p->kw, ohw = p->oh * p->ow;
	if (p->chunk == 0) {
		conv_params q = *p;
		q.n = i1 - i0;
		dw_bwd(&q, w, dy + i0 * p->m * ohw, dx + i0 * p->c * p->h * p->w);
		return;
	}
	if (conv_is_pointwise(p)) {
		for (int64_t b = i0; b < i1; b++)
			tensor_sgemm(1, 0, p->c, ohw, p->m, 1, w, p->c, dy + b * p->m * ohw, ohw, 1,
			             dx + b * p->c * ohw, ohw);
		return;
	}
	float *scr = tensor_scratch(g, tid);
	for (int64_t b0 = i0; b0 < i1; b0 += p->chunk) {
		int64_t nb = i1 - b0 < p->chunk ? i1 - b0 : p->chunk;
		int64_t ld = nb * ohw;
		float *dcol = scr, *tmp = scr + rows * ld;
		for (int64_t gr = 0; gr < p->group; gr++) {
			const float *wg = w + gr * mg * rows;
			const float *src;
			if (nb == 1) {
				src = dy + (b0 * p->m + gr * mg) * ohw;
			} else {
				for (int64_t i = 0; i < nb; i++)
					for (int64_t m = 0; m < mg; m++)
						memcpy(tmp + m * ld + i * ohw,
						       dy + ((b0 + i) * p->m + gr * mg + m) * ohw,
						       (size_t)ohw * sizeof(float));
				src = tmp;
			}
			tensor_sgemm(1, 0, rows, ld, mg, 1, wg, rows, src, ld, 0, dcol, ld);
			for (int64_t i = 0; i < nb; i++)
				col2im(p, dcol + i * ohw, cg,
				       dx + ((b0 + i) * p->c + gr * cg) * p->h * p->w, ld);
		}
	}
}

static void conv_bwd(G *g, tnode *n)
{
	if (!IN(g, n, 0)->g)
		return; /* weight gradients are never needed */
	if (n->u.conv.tbwd && n->aux) {
		conv_params q;
		conv_tbwd_params(&n->u.conv, &q);
		/* flipping costs one pass over the weights: cheap next to the conv */
		conv_flip_weights(&n->u.conv, IN(g, n, 1)->f, n->aux);
		tensor_par(g, n, n->u.conv.n, conv_tbwd_images, &q);
		return;
	}
	tensor_par(g, n, n->u.conv.n, conv_bwd_images, NULL);
}

/* ---- ConvTranspose (2-D) ----
 * Computed as the adjoint of the convolution that maps Y-shaped tensors to
 * X-shaped ones: conv_params describe that convolution (input = Y with
 * M channels, output = X with C channels), so the forward pass is a GEMM
 * followed by col2im and the backward pass is im2col followed by a GEMM. */

static mlsec_err convt_infer(G *g, tnode *n, mlsec_error *err)
{
	tval *x = IN(g, n, 0), *w = IN(g, n, 1), *b = IN(g, n, 2);
	if (!x || !w || x->dtype != TD_F32 || w->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "needs FLOAT X and W");
	if (x->sh.ndim != 4 || w->sh.ndim != 4)
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D (NCHW)");
	if (w->kind != VK_CONST || (b && b->kind != VK_CONST))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "weights must be constant");
	if (b && b->dtype != TD_F32)
		return op_error(err, MLSEC_ERR_PARSE, n, "bias must be FLOAT");
	if (mlsec_onnx_node_attr(n->p, "output_shape"))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "output_shape (use pads)");
	size_t al;
	const char *ap = mlsec_onnx_attr_string(n->p, "auto_pad", "NOTSET", &al);
	if (!(al == 6 && memcmp(ap, "NOTSET", 6) == 0))
		return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "auto_pad (use pads)");
	conv_params *p = &n->u.conv;
	int64_t group = mlsec_onnx_attr_int(n->p, "group", 1);
	int64_t c = x->sh.dims[1], h = x->sh.dims[2], wd = x->sh.dims[3];
	if (group < 1 || c % group || w->sh.dims[0] != c)
		return op_error(err, MLSEC_ERR_PARSE, n, "channels do not match group/weights");
	int64_t m = w->sh.dims[1] * group;
	int64_t kh = w->sh.dims[2], kw = w->sh.dims[3];
	if (b && b->sh.numel != (size_t)m)
		return op_error(err, MLSEC_ERR_PARSE, n, "bias is not [M]");
	size_t cnt;
	const int64_t *op = mlsec_onnx_attr_ints(n->p, "output_padding", &cnt);
	int64_t oph = 0, opw = 0;
	if (op) {
		if (cnt != 2)
			return op_error(err, MLSEC_ERR_UNSUPPORTED, n, "only 2-D output_padding");
		oph = op[0];
		opw = op[1];
	}
	/* strides/pads/dilations through the shared reader, on a dummy size */
	int64_t o[10];
	mlsec_err rc = tensor_window_params(g, n, 1 << 20, 1 << 20, kh, kw, 0, o, err);
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
	if (oph < 0 || opw < 0 || oph >= p->sh || opw >= p->sw)
		return op_error(err, MLSEC_ERR_PARSE, n, "output_padding must be below the stride");
	int64_t oh = p->sh * (h - 1) + oph + p->dh * (kh - 1) + 1 - p->ph0 - p->ph1;
	int64_t ow = p->sw * (wd - 1) + opw + p->dw * (kw - 1) + 1 - p->pw0 - p->pw1;
	if (oh < 1 || ow < 1)
		return op_error(err, MLSEC_ERR_PARSE, n, "empty output");
	/* the equivalent convolution: Y [m, oh, ow] -> X [c, h, w] */
	p->n = x->sh.dims[0];
	p->c = m;
	p->h = oh;
	p->w = ow;
	p->m = c;
	p->oh = h;
	p->ow = wd;
	p->kh = kh;
	p->kw = kw;
	p->group = group;
	p->chunk = 1;
	int64_t d[4] = {p->n, m, oh, ow};
	shape_set(&OUT(g, n, 0)->sh, 4, d);
	n->scratch_floats = (size_t)((m / group) * kh * kw * h * wd);
	return MLSEC_OK;
}

static void convt_fwd_images(G *g, tnode *n, int64_t i0, int64_t i1, int tid, void *ctx)
{
	const conv_params *p = &n->u.conv;
	const float *x = IN(g, n, 0)->f, *w = IN(g, n, 1)->f;
	const float *bias = IN(g, n, 2) ? IN(g, n, 2)->f : NULL;
	float *y = OUT(g, n, 0)->f;
	int64_t cg = p->m / p->group, mg = p->c / p->group; /* X / Y channels per group */
	int64_t rows = mg * p->kh * p->kw, hw = p->oh * p->ow, ohw = p->h * p->w;
	float *col = tensor_scratch(g, tid);
	for (int64_t b = i0; b < i1; b++) {
		float *yb = y + b * p->c * ohw;
		memset(yb, 0, (size_t)(p->c * ohw) * sizeof(float));
		for (int64_t gr = 0; gr < p->group; gr++) {
			tensor_sgemm(1, 0, rows, hw, cg, 1, w + gr * cg * rows, rows,
			             x + (b * p->m + gr * cg) * hw, hw, 0, col, hw);
			col2im(p, col, mg, yb + gr * mg * ohw, hw);
		}
		if (bias)
			for (int64_t m = 0; m < p->c; m++)
				for (int64_t i = 0; i < ohw; i++)
					yb[m * ohw + i] += bias[m];
	}
}

static void convt_fwd(G *g, tnode *n)
{
	tensor_par(g, n, n->u.conv.n, convt_fwd_images, NULL);
}

static void convt_bwd_images(G *g, tnode *n, int64_t i0, int64_t i1, int tid, void *ctx)
{
	const conv_params *p = &n->u.conv;
	const float *w = IN(g, n, 1)->f, *dy = OUT(g, n, 0)->g;
	float *dx = IN(g, n, 0)->g;
	int64_t cg = p->m / p->group, mg = p->c / p->group;
	int64_t rows = mg * p->kh * p->kw, hw = p->oh * p->ow, ohw = p->h * p->w;
	float *col = tensor_scratch(g, tid);
	for (int64_t b = i0; b < i1; b++)
		for (int64_t gr = 0; gr < p->group; gr++) {
			im2col(p, dy + (b * p->c + gr * mg) * ohw, mg, col, hw);
			tensor_sgemm(0, 0, cg, hw, rows, 1, w + gr * cg * rows, rows, col, hw, 1,
			             dx + (b * p->m + gr * cg) * hw, hw);
		}
}

static void convt_bwd(G *g, tnode *n)
{
	if (IN(g, n, 0)->g)
		tensor_par(g, n, n->u.conv.n, convt_bwd_images, NULL);
}

const op_def tensor_op_convt = {"ConvTranspose", convt_infer, convt_fwd, NULL, convt_bwd, 0, 0};
const op_def tensor_op_gemm = {"Gemm", gemm_infer, gemm_fwd, NULL, gemm_bwd, 0, 0};
const op_def tensor_op_matmul = {"MatMul", matmul_infer, matmul_fwd, NULL, matmul_bwd, 0, 0};
const op_def tensor_op_conv = {"Conv", conv_infer, conv_fwd, NULL, conv_bwd, 0, 0};
