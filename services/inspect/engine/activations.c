/*
 * activations.c - activation monitoring: every input batch runs through the
 * compiled graph with a hook that folds each node's first output into
 * per-node statistics (count, NaN/Inf, min/max, mean/std, exact zeros,
 * sigmoid/tanh saturation, and which ReLU units ever fire). Afterwards:
 *   - where NaN/Inf first appears (the earliest node in schedule order: its
 *     inputs, all scheduled before it, were finite),
 *   - extremes far beyond the node's batch distribution,
 *   - dead ReLU layers, saturated sigmoid/tanh layers,
 *   - output collapse (every input predicts one class).
 *
 * The hook runs inside forward(), so it must be cheap: one pass per output,
 * in blocks whose lanes the compiler vectorises, float accumulators flushed
 * to double per block, and a slow exact path only for blocks holding
 * NaN/Inf. bench/inspect measures the overhead against a plain forward.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#ifdef __SSE__
#include <xmmintrin.h>
#endif

#include "inspect_internal.h"
#include "mlsec/alloc.h"

#define BLOCK 4096            /* elements per float accumulation block */
#define LANES 5               /* 4 vector lanes + the scalar tail */
#define EXTREME_Z 50.0        /* (max - mean) / std of a node over the batch */
#define EXTREME_MIN_COUNT 256 /* values needed before calling anything extreme */
#define DEAD_RELU_MEDIUM 0.5  /* fraction of units that never fired */
#define SATURATION_MEDIUM 0.9 /* fraction of sigmoid/tanh outputs saturated */
#define SAT_LO 0.01f
#define SAT_HI 0.99f
#define COLLAPSE_FRACTION 0.95 /* of predictions in one class */
#define COLLAPSE_MIN_SAMPLES 16
#define MAX_UNITS (1u << 24) /* ReLU units tracked per node */

enum { K_OTHER = 0, K_RELU, K_SIGMOID, K_TANH };

typedef struct node_acc {
	const char *name, *op, *output; /* borrowed from the graph */
	int kind;
	mlsec_tensor_shape shape;
	uint64_t count, nan, inf, zeros, sat;
	double sum, sumsq;
	float min, max;
	size_t units, active;
	float *fired; /* per unit: largest output seen (> 0 = fired), ReLU only */
	int seen;
} node_acc;

typedef struct act_ctx {
	node_acc *nodes;
	size_t n;
	size_t batch, nb; /* compiled batch, valid rows of the current batch */
} act_ctx;

/*
 * Block statistics over 4 x 4 lanes held in registers (GCC/Clang vector
 * extensions, so SSE2/NEON without intrinsics), one copy per saturation
 * rule so that the loop has no branch. Accumulators are float per block
 * and flushed to double. NaN/Inf are not tested per element: they poison
 * the float sum or sum of squares, and a non-finite total (which also
 * catches float overflow of finite values) sends the block to slow_block,
 * which recounts it exactly in double. Returns non-zero in that case.
 */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* Lane-wise min/max: one instruction on SSE, a select elsewhere. NaN
 * handling differs, which does not matter: NaN blocks are recounted. */
#ifdef __SSE__
#define VMIN4(a, b) ((v4f)_mm_min_ps((__m128)(a), (__m128)(b)))
#define VMAX4(a, b) ((v4f)_mm_max_ps((__m128)(a), (__m128)(b)))
#else
static inline v4f vsel(v4i m, v4f a, v4f b)
{
	return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}
#define VMIN4(a, b) vsel((a) < (b), (a), (b))
#define VMAX4(a, b) vsel((a) > (b), (a), (b))
#endif

static inline v4f vload(const float *p)
{
	v4f v;
	memcpy(&v, p, sizeof v);
	return v;
}

#define SAT_NONE(v) (((v) != (v)) & 0)
#define SAT_SIGMOID(v) (((v) < SAT_LO) | ((v) > SAT_HI))
#define SAT_TANH(v) (((v) < -SAT_HI) | ((v) > SAT_HI))
#define ZERO_NONE(v) (((v) != (v)) & 0)
#define ZERO_COUNT(v) ((v) == 0.0f)

/*
 * One kernel per (saturation rule, zero rule): VF/VI the float/int vector
 * types of W lanes, 4 independent chains per accumulator (latency, not
 * throughput, bounds a single chain). Lane results go to arrays of LANES
 * entries, the last being the scalar tail's. This is the portable kernel;
 * CPUs with AVX-512 take the FAST16 ones below.
 */
#define TAIL 4
#define FAST_BLOCK(fname, VF, VI, W, VMIN, VMAX, SAT, ZERO)                                        \
	static uint32_t fname(const float *p, size_t n, node_acc *a)                               \
	{                                                                                          \
		VF zero, inf;                                                                      \
		for (int j = 0; j < W; j++) {                                                      \
			zero[j] = 0;                                                               \
			inf[j] = INFINITY;                                                         \
		}                                                                                  \
		VF s0 = zero, s1 = zero, s2 = zero, s3 = zero;                                     \
		VF q0 = zero, q1 = zero, q2 = zero, q3 = zero;                                     \
		VF mn0 = inf, mn1 = inf, mn2 = inf, mn3 = inf;                                     \
		VF mx0 = -inf, mx1 = -inf, mx2 = -inf, mx3 = -inf;                                 \
		VI z = (VI)zero, st = (VI)zero;                                                    \
		size_t i = 0;                                                                      \
		for (; i + 4 * W <= n; i += 4 * W) {                                               \
			VF x0, x1, x2, x3;                                                         \
			memcpy(&x0, p + i, sizeof x0);                                             \
			memcpy(&x1, p + i + W, sizeof x1);                                         \
			memcpy(&x2, p + i + 2 * W, sizeof x2);                                     \
			memcpy(&x3, p + i + 3 * W, sizeof x3);                                     \
			s0 += x0;                                                                  \
			s1 += x1;                                                                  \
			s2 += x2;                                                                  \
			s3 += x3;                                                                  \
			q0 += x0 * x0;                                                             \
			q1 += x1 * x1;                                                             \
			q2 += x2 * x2;                                                             \
			q3 += x3 * x3;                                                             \
			mn0 = VMIN(x0, mn0);                                                       \
			mn1 = VMIN(x1, mn1);                                                       \
			mn2 = VMIN(x2, mn2);                                                       \
			mn3 = VMIN(x3, mn3);                                                       \
			mx0 = VMAX(x0, mx0);                                                       \
			mx1 = VMAX(x1, mx1);                                                       \
			mx2 = VMAX(x2, mx2);                                                       \
			mx3 = VMAX(x3, mx3);                                                       \
			z -= ZERO(x0) + ZERO(x1) + ZERO(x2) + ZERO(x3);                            \
			st -= SAT(x0) + SAT(x1) + SAT(x2) + SAT(x3);                               \
		}                                                                                  \
		s0 += s1 + s2 + s3;                                                                \
		q0 += q1 + q2 + q3;                                                                \
		mn0 = VMIN(VMIN(mn0, mn1), VMIN(mn2, mn3));                                        \
		mx0 = VMAX(VMAX(mx0, mx1), VMAX(mx2, mx3));                                        \
		float ls[LANES], lq[LANES], lmn[LANES], lmx[LANES];                                \
		uint32_t lz[LANES] = {0}, lst[LANES] = {0};                                        \
		for (int j = 0; j < LANES; j++) {                                                  \
			ls[j] = j < W ? s0[j % W] : 0;                                             \
			lq[j] = j < W ? q0[j % W] : 0;                                             \
			lmn[j] = j < W ? mn0[j % W] : INFINITY;                                    \
			lmx[j] = j < W ? mx0[j % W] : -INFINITY;                                   \
			lz[j] = j < W ? (uint32_t)z[j % W] : 0;                                    \
			lst[j] = j < W ? (uint32_t)st[j % W] : 0;                                  \
		}                                                                                  \
		for (; i < n; i++) {                                                               \
			float v = p[i];                                                            \
			ls[TAIL] += v;                                                             \
			lq[TAIL] += v * v;                                                         \
			lmn[TAIL] = v < lmn[TAIL] ? v : lmn[TAIL];                                 \
			lmx[TAIL] = v > lmx[TAIL] ? v : lmx[TAIL];                                 \
			lz[TAIL] += (uint32_t)ZERO(v);                                             \
			lst[TAIL] += (uint32_t)SAT(v);                                             \
		}                                                                                  \
		return block_merge(a, n, ls, lq, lmn, lmx, lz, lst);                               \
	}

/* Folds one block's lanes into the node; non-zero (nothing folded) when a
 * lane's sum or sum of squares is not finite. */
static uint32_t block_merge(node_acc *a, size_t n, const float *s, const float *q, const float *mn,
                            const float *mx, const uint32_t *z, const uint32_t *st)
{
	uint32_t bad = 0;
	for (int j = 0; j < LANES; j++)
		bad += !isfinite(s[j]) + !isfinite(q[j]);
	if (bad)
		return bad;
	double ds = 0, dq = 0;
	for (int j = 0; j < LANES; j++) {
		ds += s[j];
		dq += q[j];
		a->zeros += z[j];
		a->sat += st[j];
		a->min = mn[j] < a->min ? mn[j] : a->min;
		a->max = mx[j] > a->max ? mx[j] : a->max;
	}
	a->sum += ds;
	a->sumsq += dq;
	a->count += n;
	return 0;
}

/*
 * The scalar tail [i, n) of a vector kernel's block into lane TAIL, then
 * block_merge. zeros: count exact zeros; satlo < sathi: count values
 * outside [satlo, sathi].
 */
static uint32_t tail_merge(node_acc *a, const float *p, size_t i, size_t n, int zeros, float satlo,
                           float sathi, float *ls, float *lq, float *lmn, float *lmx, uint32_t *lz,
                           uint32_t *lst)
{
	for (; i < n; i++) {
		float v = p[i];
		ls[TAIL] += v;
		lq[TAIL] += v * v;
		lmn[TAIL] = v < lmn[TAIL] ? v : lmn[TAIL];
		lmx[TAIL] = v > lmx[TAIL] ? v : lmx[TAIL];
		lz[TAIL] += (uint32_t)(zeros && v == 0.0f);
		lst[TAIL] += (uint32_t)(sathi > satlo && (v < satlo || v > sathi));
	}
	return block_merge(a, n, ls, lq, lmn, lmx, lz, lst);
}

/* Exact zeros matter after ReLU only; saturation after sigmoid/tanh only. */
FAST_BLOCK(fast_other, v4f, v4i, 4, VMIN4, VMAX4, SAT_NONE, ZERO_NONE)
FAST_BLOCK(fast_relu, v4f, v4i, 4, VMIN4, VMAX4, SAT_NONE, ZERO_COUNT)
FAST_BLOCK(fast_sigmoid, v4f, v4i, 4, VMIN4, VMAX4, SAT_SIGMOID, ZERO_NONE)
FAST_BLOCK(fast_tanh, v4f, v4i, 4, VMIN4, VMAX4, SAT_TANH, ZERO_NONE)

static uint32_t fast_block_sse(const float *p, size_t n, int kind, node_acc *a)
{
	return kind == K_RELU      ? fast_relu(p, n, a)
	       : kind == K_SIGMOID ? fast_sigmoid(p, n, a)
	       : kind == K_TANH    ? fast_tanh(p, n, a)
	                           : fast_other(p, n, a);
}

/* Running per-unit max over nb dense rows, 4 lanes at a time (-O2 does not
 * vectorise loops of unknown trip count by itself). */
static void dense_fired_sse(const float *restrict p, size_t nb, size_t units, float *restrict fired)
{
	for (size_t r = 0; r < nb; r++) {
		const float *row = p + r * units;
		size_t u = 0;
		for (; u + 4 <= units; u += 4) {
			v4f m = VMAX4(vload(row + u), vload(fired + u));
			memcpy(fired + u, &m, sizeof m);
		}
		for (; u < units; u++)
			fired[u] = row[u] > fired[u] ? row[u] : fired[u];
	}
}

typedef uint32_t (*fast_block_fn)(const float *, size_t, int, node_acc *);
typedef void (*dense_fired_fn)(const float *, size_t, size_t, float *);

/*
 * AVX-512 copies: on small layers (an MLP's 64 x 32 outputs) the forward
 * pass is a few microseconds and four lanes of statistics are a fifth of
 * it; sixteen lanes bring the hook back under a tenth.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,fma")))

/*
 * AVX-512 block statistics: 4 x 16 lanes, reduced in registers (one
 * horizontal sum per block instead of a lane array walk) and folded with
 * block_merge's scalar form. A non-finite input poisons its lane's sum or
 * sum of squares and so the reduced total: the block is then recounted.
 * GCC 12 emits no vzeroupper under target attributes; without one the
 * legacy-SSE code run afterwards (block_merge, libm's tanhf in the next
 * node) pays for the dirty upper halves on every instruction.
 */
#define FAST16(fname, SATLO, SATHI, ZEROS)                                                         \
	AVX512 static uint32_t fname(const float *p, size_t n, node_acc *a)                        \
	{                                                                                          \
		const __m512 zero = _mm512_setzero_ps(), lo = _mm512_set1_ps(SATLO),               \
		             hi = _mm512_set1_ps(SATHI);                                           \
		__m512 s0 = zero, s1 = zero, s2 = zero, s3 = zero;                                 \
		__m512 q0 = zero, q1 = zero, q2 = zero, q3 = zero;                                 \
		__m512 mn0 = _mm512_set1_ps(INFINITY), mn1 = mn0, mn2 = mn0, mn3 = mn0;            \
		__m512 mx0 = _mm512_set1_ps(-INFINITY), mx1 = mx0, mx2 = mx0, mx3 = mx0;           \
		__m512i cz = _mm512_setzero_si512(), cs = cz;                                      \
		const __m512i one = _mm512_set1_epi32(1);                                          \
		size_t i = 0;                                                                      \
		for (; i + 64 <= n; i += 64) {                                                     \
			__m512 x0 = _mm512_loadu_ps(p + i), x1 = _mm512_loadu_ps(p + i + 16);      \
			__m512 x2 = _mm512_loadu_ps(p + i + 32), x3 = _mm512_loadu_ps(p + i + 48); \
			s0 = _mm512_add_ps(s0, x0);                                                \
			s1 = _mm512_add_ps(s1, x1);                                                \
			s2 = _mm512_add_ps(s2, x2);                                                \
			s3 = _mm512_add_ps(s3, x3);                                                \
			q0 = _mm512_fmadd_ps(x0, x0, q0);                                          \
			q1 = _mm512_fmadd_ps(x1, x1, q1);                                          \
			q2 = _mm512_fmadd_ps(x2, x2, q2);                                          \
			q3 = _mm512_fmadd_ps(x3, x3, q3);                                          \
			mn0 = _mm512_min_ps(mn0, x0);                                              \
			mn1 = _mm512_min_ps(mn1, x1);                                              \
			mn2 = _mm512_min_ps(mn2, x2);                                              \
			mn3 = _mm512_min_ps(mn3, x3);                                              \
			mx0 = _mm512_max_ps(mx0, x0);                                              \
			mx1 = _mm512_max_ps(mx1, x1);                                              \
			mx2 = _mm512_max_ps(mx2, x2);                                              \
			mx3 = _mm512_max_ps(mx3, x3);                                              \
			if (ZEROS) {                                                               \
				cz = _mm512_mask_add_epi32(                                        \
				        cz, _mm512_cmp_ps_mask(x0, zero, _CMP_EQ_OQ), cz, one);    \
				cz = _mm512_mask_add_epi32(                                        \
				        cz, _mm512_cmp_ps_mask(x1, zero, _CMP_EQ_OQ), cz, one);    \
				cz = _mm512_mask_add_epi32(                                        \
				        cz, _mm512_cmp_ps_mask(x2, zero, _CMP_EQ_OQ), cz, one);    \
				cz = _mm512_mask_add_epi32(                                        \
				        cz, _mm512_cmp_ps_mask(x3, zero, _CMP_EQ_OQ), cz, one);    \
			}                                                                          \
			if (SATHI > SATLO) {                                                       \
				__mmask16 m0 = _mm512_cmp_ps_mask(x0, lo, _CMP_LT_OQ) |            \
				               _mm512_cmp_ps_mask(x0, hi, _CMP_GT_OQ);             \
				__mmask16 m1 = _mm512_cmp_ps_mask(x1, lo, _CMP_LT_OQ) |            \
				               _mm512_cmp_ps_mask(x1, hi, _CMP_GT_OQ);             \
				__mmask16 m2 = _mm512_cmp_ps_mask(x2, lo, _CMP_LT_OQ) |            \
				               _mm512_cmp_ps_mask(x2, hi, _CMP_GT_OQ);             \
				__mmask16 m3 = _mm512_cmp_ps_mask(x3, lo, _CMP_LT_OQ) |            \
				               _mm512_cmp_ps_mask(x3, hi, _CMP_GT_OQ);             \
				cs = _mm512_mask_add_epi32(cs, m0, cs, one);                       \
				cs = _mm512_mask_add_epi32(cs, m1, cs, one);                       \
				cs = _mm512_mask_add_epi32(cs, m2, cs, one);                       \
				cs = _mm512_mask_add_epi32(cs, m3, cs, one);                       \
			}                                                                          \
		}                                                                                  \
		float ls[LANES] = {0}, lq[LANES] = {0}, lmn[LANES], lmx[LANES];                    \
		uint32_t lz[LANES] = {0}, lst[LANES] = {0};                                        \
		for (int j = 0; j < LANES; j++) {                                                  \
			lmn[j] = INFINITY;                                                         \
			lmx[j] = -INFINITY;                                                        \
		}                                                                                  \
		ls[0] = _mm512_reduce_add_ps(                                                      \
		        _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));              \
		lq[0] = _mm512_reduce_add_ps(                                                      \
		        _mm512_add_ps(_mm512_add_ps(q0, q1), _mm512_add_ps(q2, q3)));              \
		lmn[0] = _mm512_reduce_min_ps(                                                     \
		        _mm512_min_ps(_mm512_min_ps(mn0, mn1), _mm512_min_ps(mn2, mn3)));          \
		lmx[0] = _mm512_reduce_max_ps(                                                     \
		        _mm512_max_ps(_mm512_max_ps(mx0, mx1), _mm512_max_ps(mx2, mx3)));          \
		lz[0] = (uint32_t)_mm512_reduce_add_epi32(cz);                                     \
		lst[0] = (uint32_t)_mm512_reduce_add_epi32(cs);                                    \
		_mm256_zeroupper();                                                                \
		return tail_merge(a, p, i, n, ZEROS, SATLO, SATHI, ls, lq, lmn, lmx, lz, lst);     \
	}

FAST16(fast_other16, 0.0f, 0.0f, 0)
FAST16(fast_relu16, 0.0f, 0.0f, 1)
FAST16(fast_sigmoid16, SAT_LO, SAT_HI, 0)
FAST16(fast_tanh16, -SAT_HI, SAT_HI, 0)

AVX512 static uint32_t fast_block_avx512(const float *p, size_t n, int kind, node_acc *a)
{
	return kind == K_RELU      ? fast_relu16(p, n, a)
	       : kind == K_SIGMOID ? fast_sigmoid16(p, n, a)
	       : kind == K_TANH    ? fast_tanh16(p, n, a)
	                           : fast_other16(p, n, a);
}

/* Per-unit running max over rows: sixteen units per register and four
 * rows per step, so no store-to-load chain through fired[] per row. */
AVX512 static void dense_fired_avx512(const float *restrict p, size_t nb, size_t units,
                                      float *restrict fired)
{
	size_t u = 0;
	for (; u + 16 <= units; u += 16) {
		__m512 m0 = _mm512_loadu_ps(fired + u), m1 = m0, m2 = m0, m3 = m0;
		size_t r = 0;
		for (; r + 4 <= nb; r += 4) {
			m0 = _mm512_max_ps(m0, _mm512_loadu_ps(p + r * units + u));
			m1 = _mm512_max_ps(m1, _mm512_loadu_ps(p + (r + 1) * units + u));
			m2 = _mm512_max_ps(m2, _mm512_loadu_ps(p + (r + 2) * units + u));
			m3 = _mm512_max_ps(m3, _mm512_loadu_ps(p + (r + 3) * units + u));
		}
		for (; r < nb; r++)
			m0 = _mm512_max_ps(m0, _mm512_loadu_ps(p + r * units + u));
		_mm512_storeu_ps(fired + u,
		                 _mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
	}
	_mm256_zeroupper();
	for (; u < units; u++)
		for (size_t r = 0; r < nb; r++)
			fired[u] = p[r * units + u] > fired[u] ? p[r * units + u] : fired[u];
}

/*
 * AVX2 block statistics (CPUs without AVX-512): 4 x 8 lanes, folded to
 * four lanes in registers and merged like the portable kernel's.
 */
#define AVX2 __attribute__((target("avx2,fma")))
#define FAST8(fname, SATLO, SATHI, ZEROS)                                                          \
	AVX2 static uint32_t fname(const float *p, size_t n, node_acc *a)                          \
	{                                                                                          \
		const __m256 zero = _mm256_setzero_ps(), lo = _mm256_set1_ps(SATLO),               \
		             hi = _mm256_set1_ps(SATHI);                                           \
		__m256 s0 = zero, s1 = zero, s2 = zero, s3 = zero;                                 \
		__m256 q0 = zero, q1 = zero, q2 = zero, q3 = zero;                                 \
		__m256 mn0 = _mm256_set1_ps(INFINITY), mn1 = mn0, mn2 = mn0, mn3 = mn0;            \
		__m256 mx0 = _mm256_set1_ps(-INFINITY), mx1 = mx0, mx2 = mx0, mx3 = mx0;           \
		__m256i cz = _mm256_setzero_si256(), cs = cz;                                      \
		size_t i = 0;                                                                      \
		for (; i + 32 <= n; i += 32) {                                                     \
			__m256 x0 = _mm256_loadu_ps(p + i), x1 = _mm256_loadu_ps(p + i + 8);       \
			__m256 x2 = _mm256_loadu_ps(p + i + 16), x3 = _mm256_loadu_ps(p + i + 24); \
			s0 = _mm256_add_ps(s0, x0);                                                \
			s1 = _mm256_add_ps(s1, x1);                                                \
			s2 = _mm256_add_ps(s2, x2);                                                \
			s3 = _mm256_add_ps(s3, x3);                                                \
			q0 = _mm256_fmadd_ps(x0, x0, q0);                                          \
			q1 = _mm256_fmadd_ps(x1, x1, q1);                                          \
			q2 = _mm256_fmadd_ps(x2, x2, q2);                                          \
			q3 = _mm256_fmadd_ps(x3, x3, q3);                                          \
			mn0 = _mm256_min_ps(mn0, x0);                                              \
			mn1 = _mm256_min_ps(mn1, x1);                                              \
			mn2 = _mm256_min_ps(mn2, x2);                                              \
			mn3 = _mm256_min_ps(mn3, x3);                                              \
			mx0 = _mm256_max_ps(mx0, x0);                                              \
			mx1 = _mm256_max_ps(mx1, x1);                                              \
			mx2 = _mm256_max_ps(mx2, x2);                                              \
			mx3 = _mm256_max_ps(mx3, x3);                                              \
			if (ZEROS) { /* compare masks are -1: subtracting counts */                \
				cz = _mm256_sub_epi32(cz, _mm256_castps_si256(_mm256_cmp_ps(       \
				                                  x0, zero, _CMP_EQ_OQ)));         \
				cz = _mm256_sub_epi32(cz, _mm256_castps_si256(_mm256_cmp_ps(       \
				                                  x1, zero, _CMP_EQ_OQ)));         \
				cz = _mm256_sub_epi32(cz, _mm256_castps_si256(_mm256_cmp_ps(       \
				                                  x2, zero, _CMP_EQ_OQ)));         \
				cz = _mm256_sub_epi32(cz, _mm256_castps_si256(_mm256_cmp_ps(       \
				                                  x3, zero, _CMP_EQ_OQ)));         \
			}                                                                          \
			if (SATHI > SATLO) {                                                       \
				__m256 m0 = _mm256_or_ps(_mm256_cmp_ps(x0, lo, _CMP_LT_OQ),        \
				                         _mm256_cmp_ps(x0, hi, _CMP_GT_OQ));       \
				__m256 m1 = _mm256_or_ps(_mm256_cmp_ps(x1, lo, _CMP_LT_OQ),        \
				                         _mm256_cmp_ps(x1, hi, _CMP_GT_OQ));       \
				__m256 m2 = _mm256_or_ps(_mm256_cmp_ps(x2, lo, _CMP_LT_OQ),        \
				                         _mm256_cmp_ps(x2, hi, _CMP_GT_OQ));       \
				__m256 m3 = _mm256_or_ps(_mm256_cmp_ps(x3, lo, _CMP_LT_OQ),        \
				                         _mm256_cmp_ps(x3, hi, _CMP_GT_OQ));       \
				cs = _mm256_sub_epi32(cs, _mm256_castps_si256(m0));                \
				cs = _mm256_sub_epi32(cs, _mm256_castps_si256(m1));                \
				cs = _mm256_sub_epi32(cs, _mm256_castps_si256(m2));                \
				cs = _mm256_sub_epi32(cs, _mm256_castps_si256(m3));                \
			}                                                                          \
		}                                                                                  \
		__m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));            \
		__m256 q = _mm256_add_ps(_mm256_add_ps(q0, q1), _mm256_add_ps(q2, q3));            \
		__m256 mn = _mm256_min_ps(_mm256_min_ps(mn0, mn1), _mm256_min_ps(mn2, mn3));       \
		__m256 mx = _mm256_max_ps(_mm256_max_ps(mx0, mx1), _mm256_max_ps(mx2, mx3));       \
		float ls[LANES] = {0}, lq[LANES] = {0}, lmn[LANES], lmx[LANES];                    \
		uint32_t lz[LANES] = {0}, lst[LANES] = {0};                                        \
		_mm_storeu_ps(ls,                                                                  \
		              _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1))); \
		_mm_storeu_ps(lq,                                                                  \
		              _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1))); \
		_mm_storeu_ps(lmn, _mm_min_ps(_mm256_castps256_ps128(mn),                          \
		                              _mm256_extractf128_ps(mn, 1)));                      \
		_mm_storeu_ps(lmx, _mm_max_ps(_mm256_castps256_ps128(mx),                          \
		                              _mm256_extractf128_ps(mx, 1)));                      \
		_mm_storeu_si128((__m128i *)(void *)lz,                                            \
		                 _mm_add_epi32(_mm256_castsi256_si128(cz),                         \
		                               _mm256_extracti128_si256(cz, 1)));                  \
		_mm_storeu_si128((__m128i *)(void *)lst,                                           \
		                 _mm_add_epi32(_mm256_castsi256_si128(cs),                         \
		                               _mm256_extracti128_si256(cs, 1)));                  \
		_mm256_zeroupper();                                                                \
		lmn[TAIL] = INFINITY;                                                              \
		lmx[TAIL] = -INFINITY;                                                             \
		return tail_merge(a, p, i, n, ZEROS, SATLO, SATHI, ls, lq, lmn, lmx, lz, lst);     \
	}

FAST8(fast_other8, 0.0f, 0.0f, 0)
FAST8(fast_relu8, 0.0f, 0.0f, 1)
FAST8(fast_sigmoid8, SAT_LO, SAT_HI, 0)
FAST8(fast_tanh8, -SAT_HI, SAT_HI, 0)

AVX2 static uint32_t fast_block_avx2(const float *p, size_t n, int kind, node_acc *a)
{
	return kind == K_RELU      ? fast_relu8(p, n, a)
	       : kind == K_SIGMOID ? fast_sigmoid8(p, n, a)
	       : kind == K_TANH    ? fast_tanh8(p, n, a)
	                           : fast_other8(p, n, a);
}

/* Per-unit running max over rows, eight units per register and four rows
 * per step (no store-to-load chain through fired[] per row). */
AVX2 static void dense_fired_avx2(const float *restrict p, size_t nb, size_t units,
                                  float *restrict fired)
{
	size_t u = 0;
	for (; u + 8 <= units; u += 8) {
		__m256 m0 = _mm256_loadu_ps(fired + u), m1 = m0, m2 = m0, m3 = m0;
		size_t r = 0;
		for (; r + 4 <= nb; r += 4) {
			m0 = _mm256_max_ps(_mm256_loadu_ps(p + r * units + u), m0);
			m1 = _mm256_max_ps(_mm256_loadu_ps(p + (r + 1) * units + u), m1);
			m2 = _mm256_max_ps(_mm256_loadu_ps(p + (r + 2) * units + u), m2);
			m3 = _mm256_max_ps(_mm256_loadu_ps(p + (r + 3) * units + u), m3);
		}
		for (; r < nb; r++)
			m0 = _mm256_max_ps(_mm256_loadu_ps(p + r * units + u), m0);
		_mm256_storeu_ps(fired + u,
		                 _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
	}
	_mm256_zeroupper();
	for (; u < units; u++)
		for (size_t r = 0; r < nb; r++)
			fired[u] = p[r * units + u] > fired[u] ? p[r * units + u] : fired[u];
}

/* Argmax of rows of at most 16 classes with two 8-lane halves (see the
 * AVX-512 version). Lanes past the row are -inf and never chosen. */
AVX2 static size_t argmax16_avx2(const float *z, size_t nb, size_t classes, int64_t *pred)
{
	const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	const __m256i live0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)classes), idx);
	const __m256i live1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)classes - 8), idx);
	const __m256i expo = _mm256_set1_epi32(0x7f800000);
	const __m256 ninf = _mm256_set1_ps(-INFINITY);
	size_t bad = 0;
	for (size_t i = 0; i < nb; i++) {
		const float *row = z + i * classes;
		__m256 v0 = _mm256_blendv_ps(ninf, _mm256_maskload_ps(row, live0),
		                             _mm256_castsi256_ps(live0));
		__m256 v1 = _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + 8, live1),
		                             _mm256_castsi256_ps(live1));
		__m256i e0 = _mm256_and_si256(
		        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v0), expo), expo),
		        live0);
		__m256i e1 = _mm256_and_si256(
		        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v1), expo), expo),
		        live1);
		int nf = !_mm256_testz_si256(_mm256_or_si256(e0, e1), _mm256_or_si256(e0, e1));
		__m256 m = _mm256_max_ps(v0, v1);
		m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
		m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
		m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
		unsigned at = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v0, m, _CMP_EQ_OQ)) |
		              (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v1, m, _CMP_EQ_OQ)) << 8;
		at &= (1u << classes) - 1;
		pred[i] = nf ? -1 : at ? (int64_t)__builtin_ctz(at) : 0;
		bad += (size_t)nf;
	}
	_mm256_zeroupper();
	return bad;
}

/* The AVX2 form of relu_cols_avx512 below (units a multiple of 8). */
AVX2 static uint32_t relu_cols_avx2(const float *p, size_t rows, size_t units, node_acc *a)
{
	const __m256 zero = _mm256_setzero_ps(), pinf = _mm256_set1_ps(INFINITY);
	__m256 ts = zero, tq = zero, tmn = pinf, tmx = _mm256_set1_ps(-INFINITY);
	__m256i tz = _mm256_setzero_si256();
	for (size_t u = 0; u + 8 <= units; u += 8) {
		__m256 s0 = zero, s1 = zero, q0 = zero, q1 = zero, mn0 = pinf, mn1 = pinf;
		__m256 mx0 = _mm256_set1_ps(-INFINITY), mx1 = mx0;
		__m256i z0 = _mm256_setzero_si256(), z1 = z0;
		size_t r = 0;
		for (; r + 2 <= rows; r += 2) {
			__m256 x0 = _mm256_loadu_ps(p + r * units + u);
			__m256 x1 = _mm256_loadu_ps(p + (r + 1) * units + u);
			s0 = _mm256_add_ps(s0, x0);
			s1 = _mm256_add_ps(s1, x1);
			q0 = _mm256_fmadd_ps(x0, x0, q0);
			q1 = _mm256_fmadd_ps(x1, x1, q1);
			mn0 = _mm256_min_ps(mn0, x0);
			mn1 = _mm256_min_ps(mn1, x1);
			mx0 = _mm256_max_ps(x0, mx0);
			mx1 = _mm256_max_ps(x1, mx1);
			z0 = _mm256_sub_epi32(
			        z0, _mm256_castps_si256(_mm256_cmp_ps(x0, zero, _CMP_EQ_OQ)));
			z1 = _mm256_sub_epi32(
			        z1, _mm256_castps_si256(_mm256_cmp_ps(x1, zero, _CMP_EQ_OQ)));
		}
		if (r < rows) {
			__m256 x0 = _mm256_loadu_ps(p + r * units + u);
			s0 = _mm256_add_ps(s0, x0);
			q0 = _mm256_fmadd_ps(x0, x0, q0);
			mn0 = _mm256_min_ps(mn0, x0);
			mx0 = _mm256_max_ps(x0, mx0);
			z0 = _mm256_sub_epi32(
			        z0, _mm256_castps_si256(_mm256_cmp_ps(x0, zero, _CMP_EQ_OQ)));
		}
		__m256 m = _mm256_max_ps(mx0, mx1);
		_mm256_storeu_ps(a->fired + u, _mm256_max_ps(m, _mm256_loadu_ps(a->fired + u)));
		ts = _mm256_add_ps(ts, _mm256_add_ps(s0, s1));
		tq = _mm256_add_ps(tq, _mm256_add_ps(q0, q1));
		tmn = _mm256_min_ps(tmn, _mm256_min_ps(mn0, mn1));
		tmx = _mm256_max_ps(tmx, m);
		tz = _mm256_add_epi32(tz, _mm256_add_epi32(z0, z1));
	}
	float ls[LANES] = {0}, lq[LANES] = {0}, lmn[LANES], lmx[LANES];
	uint32_t lz[LANES] = {0}, lst[LANES] = {0};
	_mm_storeu_ps(ls, _mm_add_ps(_mm256_castps256_ps128(ts), _mm256_extractf128_ps(ts, 1)));
	_mm_storeu_ps(lq, _mm_add_ps(_mm256_castps256_ps128(tq), _mm256_extractf128_ps(tq, 1)));
	_mm_storeu_ps(lmn, _mm_min_ps(_mm256_castps256_ps128(tmn), _mm256_extractf128_ps(tmn, 1)));
	_mm_storeu_ps(lmx, _mm_max_ps(_mm256_castps256_ps128(tmx), _mm256_extractf128_ps(tmx, 1)));
	_mm_storeu_si128((__m128i *)(void *)lz, _mm_add_epi32(_mm256_castsi256_si128(tz),
	                                                      _mm256_extracti128_si256(tz, 1)));
	_mm256_zeroupper();
	lmn[TAIL] = INFINITY;
	lmx[TAIL] = -INFINITY;
	return block_merge(a, rows * units, ls, lq, lmn, lmx, lz, lst);
}

/*
 * A dense ReLU output [rows, units] (units a multiple of 16) in one pass:
 * the block statistics and the per-unit running max that marks fired
 * units. The per-unit maxima replace the block's max chain (the block max
 * is their max), so the fired-unit scan costs nothing extra. Sixteen units
 * at a time down all rows, four rows per step into four sets of
 * accumulators (independent dependency chains). max_ps(x, m) returns m
 * when x is NaN: NaN never marks a unit as fired, as in the separate pass;
 * the statistics of a non-finite block are recounted by the caller
 * (non-zero return), like fast_block's. relu_cols_avx2 is the same with
 * eight lanes and two sets (16 YMM registers).
 */
AVX512 static uint32_t relu_cols_avx512(const float *p, size_t rows, size_t units, node_acc *a)
{
	const __m512 zero = _mm512_setzero_ps(), pinf = _mm512_set1_ps(INFINITY);
	const __m512i one = _mm512_set1_epi32(1);
	__m512 ts = zero, tq = zero, tmn = pinf, tmx = _mm512_set1_ps(-INFINITY);
	__m512i tz = _mm512_setzero_si512();
	for (size_t u = 0; u + 16 <= units; u += 16) {
		__m512 s[4], q[4], mn[4], mx[4];
		__m512i cz[4];
#pragma GCC unroll 4
		for (int h = 0; h < 4; h++) {
			s[h] = q[h] = zero;
			mn[h] = pinf;
			mx[h] = _mm512_set1_ps(-INFINITY);
			cz[h] = _mm512_setzero_si512();
		}
		for (size_t r = 0; r < rows; r += 4) {
#pragma GCC unroll 4
			for (int h = 0; h < 4; h++) {
				if (r + (size_t)h >= rows)
					break;
				__m512 x = _mm512_loadu_ps(p + (r + (size_t)h) * units + u);
				s[h] = _mm512_add_ps(s[h], x);
				q[h] = _mm512_fmadd_ps(x, x, q[h]);
				mn[h] = _mm512_min_ps(mn[h], x);
				mx[h] = _mm512_max_ps(x, mx[h]);
				cz[h] = _mm512_mask_add_epi32(
				        cz[h], _mm512_cmp_ps_mask(x, zero, _CMP_EQ_OQ), cz[h], one);
			}
		}
		__m512 m = _mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3]));
		_mm512_storeu_ps(a->fired + u, _mm512_max_ps(m, _mm512_loadu_ps(a->fired + u)));
		ts = _mm512_add_ps(
		        ts, _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
		tq = _mm512_add_ps(
		        tq, _mm512_add_ps(_mm512_add_ps(q[0], q[1]), _mm512_add_ps(q[2], q[3])));
		tmn = _mm512_min_ps(tmn, _mm512_min_ps(_mm512_min_ps(mn[0], mn[1]),
		                                       _mm512_min_ps(mn[2], mn[3])));
		tmx = _mm512_max_ps(tmx, m);
		tz = _mm512_add_epi32(tz, _mm512_add_epi32(_mm512_add_epi32(cz[0], cz[1]),
		                                           _mm512_add_epi32(cz[2], cz[3])));
	}
	float ls[LANES] = {0}, lq[LANES] = {0}, lmn[LANES], lmx[LANES];
	uint32_t lz[LANES] = {0}, lst[LANES] = {0};
	for (int j = 0; j < LANES; j++) {
		lmn[j] = INFINITY;
		lmx[j] = -INFINITY;
	}
	ls[0] = _mm512_reduce_add_ps(ts);
	lq[0] = _mm512_reduce_add_ps(tq);
	lmn[0] = _mm512_reduce_min_ps(tmn);
	lmx[0] = _mm512_reduce_max_ps(tmx);
	lz[0] = (uint32_t)_mm512_reduce_add_epi32(tz);
	_mm256_zeroupper();
	return block_merge(a, rows * units, ls, lq, lmn, lmx, lz, lst);
}

/* Argmax of rows of at most 16 classes: one masked load, a max
 * reduction and the first lane equal to it; -1 for a non-finite row. */
AVX512 static size_t argmax16_avx512(const float *z, size_t nb, size_t classes, int64_t *pred)
{
	const __mmask16 live = (__mmask16)((1u << classes) - 1);
	const __m512i expo = _mm512_set1_epi32(0x7f800000);
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	size_t bad = 0;
	for (size_t i = 0; i < nb; i++) {
		__m512 v = _mm512_mask_loadu_ps(ninf, live, z + i * classes);
		__mmask16 nf = _mm512_mask_cmpeq_epi32_mask(
		        live, _mm512_and_si512(_mm512_castps_si512(v), expo), expo);
		float top = _mm512_reduce_max_ps(v);
		__mmask16 at = _mm512_mask_cmp_ps_mask(live, v, _mm512_set1_ps(top), _CMP_EQ_OQ);
		int64_t best = at ? (int64_t)__builtin_ctz((unsigned)at) : 0;
		pred[i] = nf ? -1 : best;
		bad += nf != 0;
	}
	_mm256_zeroupper();
	return bad;
}

static int have_avx512(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
}

static int have_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int have_avx512(void)
{
	return 0;
}

static int have_avx2(void)
{
	return 0;
}
#endif

typedef size_t (*argmax16_fn)(const float *, size_t, size_t, int64_t *);

static fast_block_fn g_fast_block;
static dense_fired_fn g_dense_fired;
static argmax16_fn g_argmax16; /* NULL: no vector argmax */
typedef uint32_t (*relu_cols_fn)(const float *, size_t, size_t, node_acc *);
static relu_cols_fn g_relu_cols; /* fused dense-ReLU pass, or NULL */
static size_t g_relu_lanes;      /* units must be a multiple of this */

static void use_portable_kernels(void)
{
	g_dense_fired = dense_fired_sse;
	g_argmax16 = NULL;
	g_relu_cols = NULL;
	g_relu_lanes = 0;
	g_fast_block = fast_block_sse;
}

#if defined(__x86_64__) && defined(__GNUC__)
static void use_avx2_kernels(void)
{
	g_dense_fired = dense_fired_avx2;
	g_argmax16 = argmax16_avx2;
	g_relu_cols = relu_cols_avx2;
	g_relu_lanes = 8;
	g_fast_block = fast_block_avx2;
}

static void use_avx512_kernels(void)
{
	g_dense_fired = dense_fired_avx512;
	g_argmax16 = argmax16_avx512;
	g_relu_cols = relu_cols_avx512;
	g_relu_lanes = 16;
	g_fast_block = fast_block_avx512;
}
#endif

/* The best kernels this CPU runs. */
static void use_best_kernels(void)
{
	use_portable_kernels();
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_avx512())
		use_avx512_kernels();
	else if (have_avx2())
		use_avx2_kernels();
#else
	(void)have_avx512;
	(void)have_avx2;
#endif
}

/* Picks the kernels for this CPU, once per process. */
static void pick_kernels(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, use_best_kernels);
}

int mlsec_inspect_use_isa(const char *isa)
{
	pick_kernels();
	if (!isa || !*isa)
		use_best_kernels();
	else if (!strcmp(isa, "generic"))
		use_portable_kernels();
#if defined(__x86_64__) && defined(__GNUC__)
	else if (!strcmp(isa, "avx512") && have_avx512())
		use_avx512_kernels();
	else if (!strcmp(isa, "avx2") && have_avx2())
		use_avx2_kernels();
#endif
	else
		return -1;
	return 0;
}

static void slow_block(const float *p, size_t n, int kind, node_acc *a)
{
	for (size_t i = 0; i < n; i++) {
		float v = p[i];
		a->count++;
		if (isnan(v)) {
			a->nan++;
			continue;
		}
		if (isinf(v)) {
			a->inf++;
			continue;
		}
		a->sum += v;
		a->sumsq += (double)v * v;
		a->min = v < a->min ? v : a->min;
		a->max = v > a->max ? v : a->max;
		a->zeros += kind == K_RELU && v == 0.0f;
		if (kind == K_SIGMOID)
			a->sat += (v < SAT_LO) | (v > SAT_HI);
		else if (kind == K_TANH)
			a->sat += fabsf(v) > SAT_HI;
	}
}

/* Marks the ReLU units of nb rows that fired (> 0); skipped once all did.
 * Dense outputs ([batch, units]) take a branch-free pass the compiler
 * vectorises; spatial ones stop scanning a unit's block at its first hit. */
static void count_active(node_acc *a)
{
	size_t active = 0;
	for (size_t u = 0; u < a->units; u++)
		active += a->fired[u] > 0;
	a->active = active;
}

static void relu_units(const float *restrict p, size_t nb, size_t units, size_t inner, node_acc *a)
{
	if (a->active == units)
		return;
	float *restrict fired = a->fired;
	if (inner == 1) {
		g_dense_fired(p, nb, units, fired);
	} else {
		for (size_t r = 0; r < nb; r++) {
			const float *row = p + r * units * inner;
			for (size_t u = 0; u < units; u++) {
				if (fired[u] > 0)
					continue;
				const float *b = row + u * inner;
				for (size_t k = 0; k < inner; k++) {
					if (b[k] > 0) {
						fired[u] = b[k];
						break;
					}
				}
			}
		}
	}
	count_active(a);
}

static void hook(const mlsec_tensor_node_info *node, const float *data,
                 const mlsec_tensor_shape *shape, void *ctx)
{
	act_ctx *c = ctx;
	if (node->index >= c->n)
		return;
	node_acc *a = &c->nodes[node->index];
	if (node->output != a->output)
		return; /* only the first output of multi-output nodes */
	a->seen = 1;
	a->shape = *shape;
	size_t n = shape->numel, rows = 0;
	if (shape->ndim >= 1 && shape->dims[0] == (int64_t)c->batch && c->batch) {
		rows = c->nb; /* padding rows (copies of sample 0) are skipped */
		n = shape->numel / c->batch * c->nb;
	}
	size_t inner = a->fired && rows ? shape->numel / c->batch / a->units : 0;
	/* small dense ReLU layers: statistics and fired units in one pass */
	if (inner == 1 && shape->ndim == 2 && g_relu_cols && a->units % g_relu_lanes == 0 &&
	    n <= BLOCK) {
		if (g_relu_cols(data, rows, a->units, a))
			slow_block(data, n, a->kind, a);
		count_active(a);
		return;
	}
	for (size_t off = 0; off < n; off += BLOCK) {
		size_t len = n - off < BLOCK ? n - off : BLOCK;
		if (g_fast_block(data + off, len, a->kind, a))
			slow_block(data + off, len, a->kind, a);
	}
	if (inner && shape->ndim >= 2)
		relu_units(data, rows, a->units, inner, a);
}

static const char *kind_op(int kind)
{
	return kind == K_RELU      ? "relu"
	       : kind == K_SIGMOID ? "sigmoid"
	       : kind == K_TANH    ? "tanh"
	                           : NULL;
}

static json_t *node_json(size_t i, const node_acc *a)
{
	json_t *shape = json_array();
	for (size_t d = 1; d < a->shape.ndim; d++) /* per sample */
		json_array_append_new(shape, json_integer(a->shape.dims[d]));
	uint64_t fin = a->count - a->nan - a->inf;
	double mean = fin ? a->sum / (double)fin : 0;
	double var = fin ? a->sumsq / (double)fin - mean * mean : 0;
	json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:f,s:f}", "index", (json_int_t)i,
	                      "node", a->name, "op", a->op, "output", a->output, "shape", shape,
	                      "count", (json_int_t)a->count, "nan", (json_int_t)a->nan, "inf",
	                      (json_int_t)a->inf, "mean", mean, "std", var > 0 ? sqrt(var) : 0.0);
	if (!o)
		return NULL;
	json_object_set_new(o, "min", fin ? json_real(a->min) : json_null());
	json_object_set_new(o, "max", fin ? json_real(a->max) : json_null());
	if (a->kind == K_RELU)
		json_object_set_new(o, "zero_fraction",
		                    json_real(a->count ? (double)a->zeros / (double)a->count : 0));
	if (a->fired)
		json_object_set_new(
		        o, "dead_fraction",
		        json_real(a->units ? 1.0 - (double)a->active / (double)a->units : 0));
	if (a->kind == K_SIGMOID || a->kind == K_TANH)
		json_object_set_new(o, "saturated_fraction",
		                    json_real(fin ? (double)a->sat / (double)fin : 0));
	return o;
}

static void node_findings(size_t i, const node_acc *a, mlsec_artifact *art)
{
	(void)i;
	uint64_t fin = a->count - a->nan - a->inf;
	mlsec_finding *f;
	if (fin >= EXTREME_MIN_COUNT) {
		double mean = a->sum / (double)fin;
		double var = a->sumsq / (double)fin - mean * mean;
		double sd = var > 0 ? sqrt(var) : 0;
		double dev = fmax((double)a->max - mean, mean - (double)a->min);
		if (sd > 0 && dev / sd >= EXTREME_Z &&
		    (f = mlsec_artifact_add_finding(
		             art, INSP_PREFIX "-ACT-EXTREME", MLSEC_SEV_MEDIUM,
		             "activation far beyond the node's batch distribution",
		             "extreme %.4g is %.1f standard deviations from the mean %.4g",
		             fabs((double)a->max - mean) >= fabs(mean - (double)a->min) ? a->max
		                                                                        : a->min,
		             dev / sd, mean))) {
			mlsec_finding_set_location(f, NULL, 0, 0, a->name[0] ? a->name : a->output);
			mlsec_finding_set_evidence_json(f, "z", json_real(dev / sd));
			mlsec_finding_set_evidence(f, "op", "%s", a->op);
		}
	}
	if (a->fired && a->units) {
		double dead = 1.0 - (double)a->active / (double)a->units;
		if (dead >= DEAD_RELU_MEDIUM &&
		    (f = mlsec_artifact_add_finding(
		             art, INSP_PREFIX "-ACT-DEAD",
		             dead >= 1.0 ? MLSEC_SEV_HIGH : MLSEC_SEV_MEDIUM,
		             "ReLU units that never fire",
		             "%zu of %zu units stayed at zero for every input",
		             a->units - a->active, a->units))) {
			mlsec_finding_set_location(f, NULL, 0, 0, a->name[0] ? a->name : a->output);
			mlsec_finding_set_evidence_json(f, "dead_fraction", json_real(dead));
		}
	}
	if ((a->kind == K_SIGMOID || a->kind == K_TANH) && fin) {
		double sat = (double)a->sat / (double)fin;
		if (sat >= SATURATION_MEDIUM &&
		    (f = mlsec_artifact_add_finding(art, INSP_PREFIX "-ACT-SATURATED",
		                                    MLSEC_SEV_MEDIUM,
		                                    "saturated sigmoid/tanh layer",
		                                    "%.1f%% of the %s outputs are saturated",
		                                    100 * sat, kind_op(a->kind)))) {
			mlsec_finding_set_location(f, NULL, 0, 0, a->name[0] ? a->name : a->output);
			mlsec_finding_set_evidence_json(f, "saturated_fraction", json_real(sat));
		}
	}
}

void insp_load_batch(mlsec_tensor_graph *g, const float *x, size_t nb, size_t numel)
{
	float *in = mlsec_tensor_graph_input(g, 0);
	mlsec_tensor_shape s;
	mlsec_tensor_graph_input_name(g, 0, &s);
	size_t batch = (size_t)s.dims[0];
	memcpy(in, x, nb * numel * sizeof(float));
	for (size_t i = nb; i < batch; i++)
		memcpy(in + i * numel, x, numel * sizeof(float));
}

/*
 * Branch-free argmax of one row: on random logits a compare-and-branch
 * mispredicts every few classes. A non-finite row's argmax is discarded
 * (-1), so NaN compares need no care. Inlined four times side by side so
 * that four rows' serial running-max chains overlap in registers.
 */
static inline __attribute__((always_inline)) int64_t argmax_row(const float *row, size_t classes)
{
	uint32_t nonfinite = 0;
	float top = -INFINITY;
	int64_t best = 0;
	for (size_t k = 0; k < classes; k++) {
		float v = row[k];
		uint32_t b;
		memcpy(&b, &v, sizeof b);
		nonfinite |= (b & 0x7f800000u) == 0x7f800000u;
		int take = v > top;
		best = take ? (int64_t)k : best;
		top = take ? v : top;
	}
	return nonfinite ? -1 : best;
}

size_t insp_argmax(const mlsec_tensor_graph *g, size_t nb, size_t classes, int64_t *pred)
{
	const float *z = mlsec_tensor_graph_output(g, 0);
	pick_kernels();
	if (g_argmax16 && classes >= 1 && classes <= 16)
		return g_argmax16(z, nb, classes, pred);
	size_t bad = 0, i = 0;
	for (; i + 4 <= nb; i += 4) {
		int64_t p0 = argmax_row(z + i * classes, classes);
		int64_t p1 = argmax_row(z + (i + 1) * classes, classes);
		int64_t p2 = argmax_row(z + (i + 2) * classes, classes);
		int64_t p3 = argmax_row(z + (i + 3) * classes, classes);
		pred[i] = p0;
		pred[i + 1] = p1;
		pred[i + 2] = p2;
		pred[i + 3] = p3;
		bad += (size_t)(p0 < 0) + (size_t)(p1 < 0) + (size_t)(p2 < 0) + (size_t)(p3 < 0);
	}
	for (; i < nb; i++) {
		pred[i] = argmax_row(z + i * classes, classes);
		bad += pred[i] < 0;
	}
	return bad;
}

static void collapse(const uint64_t *hist, size_t classes, size_t n, const insp_inputs *in,
                     mlsec_artifact *art, json_t *det)
{
	size_t top = 0;
	for (size_t k = 1; k < classes; k++)
		if (hist[k] > hist[top])
			top = k;
	double frac = n ? (double)hist[top] / (double)n : 0;
	json_t *h = json_array();
	for (size_t k = 0; k < classes; k++)
		json_array_append_new(h, json_integer((json_int_t)hist[k]));
	json_object_set_new(det, "predictions", h);
	if (n < COLLAPSE_MIN_SAMPLES || frac < COLLAPSE_FRACTION)
		return;
	/* labelled data dominated by that class is not a collapse */
	if (in->y) {
		size_t same = 0;
		for (size_t i = 0; i < in->n; i++)
			same += in->y[i] == (int64_t)top;
		if ((double)same / (double)in->n >= COLLAPSE_FRACTION)
			return;
	}
	/* Random inputs often land in one class: only information then. */
	mlsec_severity sev = in->synthetic ? MLSEC_SEV_INFO : MLSEC_SEV_HIGH;
	mlsec_finding *f =
	        mlsec_artifact_add_finding(art, INSP_PREFIX "-OUTPUT-COLLAPSE", sev,
	                                   "the model predicts one class for (almost) every input",
	                                   "class %zu for %.1f%% of %zu %s inputs", top, 100 * frac,
	                                   n, in->synthetic ? "synthetic" : "data");
	if (f) {
		mlsec_finding_set_location(f, NULL, 0, 0, "output[0]");
		mlsec_finding_set_evidence_json(f, "class", json_integer((json_int_t)top));
		mlsec_finding_set_evidence_json(f, "fraction", json_real(frac));
	}
}

mlsec_err insp_activations(mlsec_tensor_graph *g, const insp_inputs *in, size_t classes,
                           const mlsec_inspect_opts *o, mlsec_artifact *art, mlsec_error *err)
{
	mlsec_tensor_shape is;
	mlsec_tensor_graph_input_name(g, 0, &is);
	act_ctx c = {0};
	c.batch = (size_t)is.dims[0];
	c.n = mlsec_tensor_graph_node_count(g);
	c.nodes = mlsec_calloc(c.n ? c.n : 1, sizeof *c.nodes);
	uint64_t *hist = mlsec_calloc(classes ? classes : 1, sizeof *hist);
	int64_t *pred = mlsec_calloc(c.batch, sizeof *pred);
	mlsec_err rc = c.nodes && hist && pred
	                       ? MLSEC_OK
	                       : mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == MLSEC_OK && i < c.n; i++) {
		mlsec_tensor_node_info info;
		node_acc *a = &c.nodes[i];
		mlsec_tensor_graph_node(g, i, &info, &a->shape);
		a->name = info.name;
		a->op = info.op_type;
		a->output = info.output;
		a->min = INFINITY;
		a->max = -INFINITY;
		a->kind = !strcmp(a->op, "Relu")      ? K_RELU
		          : !strcmp(a->op, "Sigmoid") ? K_SIGMOID
		          : !strcmp(a->op, "Tanh")    ? K_TANH
		                                      : K_OTHER;
		if (a->kind == K_RELU && a->shape.ndim >= 2 &&
		    a->shape.dims[0] == (int64_t)c.batch && a->shape.dims[1] > 0 &&
		    (uint64_t)a->shape.dims[1] <= MAX_UNITS) {
			a->units = (size_t)a->shape.dims[1];
			if (!(a->fired = mlsec_calloc(a->units, sizeof(float))))
				rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
	}
	size_t nonfinite_out = 0;
	pick_kernels();
	mlsec_tensor_graph_set_hook(g, hook, &c);
	for (size_t off = 0; rc == MLSEC_OK && off < in->n; off += c.batch) {
		if (insp_cancelled(o)) {
			rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
			break;
		}
		c.nb = in->n - off < c.batch ? in->n - off : c.batch;
		insp_load_batch(g, in->x + off * in->numel, c.nb, in->numel);
		rc = mlsec_tensor_graph_forward(g, err);
		if (rc == MLSEC_OK && classes) {
			nonfinite_out += insp_argmax(g, c.nb, classes, pred);
			for (size_t i = 0; i < c.nb; i++)
				if (pred[i] >= 0)
					hist[pred[i]]++;
		}
		if (o->progress)
			o->progress(o->progress_ctx, "activations", (double)(off + c.nb),
			            (double)in->n);
	}
	mlsec_tensor_graph_set_hook(g, NULL, NULL);

	if (rc == MLSEC_OK) {
		json_t *det = json_pack("{s:I,s:s}", "samples", (json_int_t)in->n, "inputs",
		                        in->synthetic ? "synthetic" : "data");
		json_t *nodes = json_array();
		long first_bad = -1;
		for (size_t i = 0; i < c.n; i++) {
			node_acc *a = &c.nodes[i];
			if (!a->seen)
				continue;
			if ((a->nan || a->inf) && first_bad < 0)
				first_bad = (long)i;
			node_findings(i, a, art);
			if (i < MLSEC_INSPECT_MAX_NODE_DETAILS)
				json_array_append_new(nodes, node_json(i, a));
		}
		if (first_bad >= 0) {
			node_acc *a = &c.nodes[first_bad];
			mlsec_finding *f = mlsec_artifact_add_finding(
			        art, INSP_PREFIX "-ACT-NONFINITE", MLSEC_SEV_HIGH,
			        "NaN/Inf appears in the activations",
			        "first at node '%s' (%s, output '%s'): %llu NaN and %llu Inf of "
			        "%llu values; "
			        "its inputs were finite",
			        a->name, a->op, a->output, (unsigned long long)a->nan,
			        (unsigned long long)a->inf, (unsigned long long)a->count);
			if (f) {
				mlsec_finding_set_location(f, NULL, 0, 0,
				                           a->name[0] ? a->name : a->output);
				mlsec_finding_set_evidence(f, "op", "%s", a->op);
				mlsec_finding_set_evidence(f, "output", "%s", a->output);
				mlsec_finding_set_evidence_json(f, "nan",
				                                json_integer((json_int_t)a->nan));
				mlsec_finding_set_evidence_json(f, "inf",
				                                json_integer((json_int_t)a->inf));
				mlsec_finding_set_remediation(
				        f, "Look at the weights this node reads (mlsec "
				           "inspect --checks weights) for injected NaN/Inf.");
			}
			json_object_set_new(det, "first_nonfinite_node",
			                    json_string(a->name[0] ? a->name : a->output));
		}
		if (classes) {
			json_object_set_new(det, "nonfinite_outputs",
			                    json_integer((json_int_t)nonfinite_out));
			collapse(hist, classes, in->n - nonfinite_out, in, art, det);
		}
		json_object_set_new(det, "nodes", nodes);
		json_object_set_new(mlsec_artifact_details(art), "activations", det);
	}
	for (size_t i = 0; c.nodes && i < c.n; i++)
		mlsec_free(c.nodes[i].fired);
	mlsec_free(c.nodes);
	mlsec_free(hist);
	mlsec_free(pred);
	return rc;
}
