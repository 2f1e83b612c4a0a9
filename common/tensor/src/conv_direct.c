/*
 * conv_direct.c - 3x3, stride-1, "same"-padded convolutions computed
 * directly on NCHW planes with AVX-512, without im2col.
 *
 * The im2col path writes nine copies of the input, OpenBLAS then packs that
 * matrix again, and only then multiplies: on the small channel counts of
 * CIFAR-style ResNets (16-64) the copies cost as much as the products. Here
 * each output row is a few 16-float vectors; for a block of output
 * channels, every input row vector loaded (shifted by the tap, border lanes
 * masked) feeds one FMA per channel of the block, with the weight
 * broadcast from memory. Summation order differs from the GEMM, so results
 * agree to rounding, not bit for bit.
 */
#include <string.h>

#include "tensor_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define DIRECT_MIN_W 16 /* narrower rows would leave most lanes idle */

static int direct_off; /* tests: force the im2col path */

void tensor_conv_direct_disable(int off)
{
	direct_off = off;
}

int tensor_conv_direct_ok(const conv_params *p)
{
	static int cpu = -1;
	if (cpu < 0)
		cpu = __builtin_cpu_supports("avx512f") ? 1 : 0;
	return cpu && !direct_off && p->kh == 3 && p->kw == 3 && p->sh == 1 && p->sw == 1 &&
	       p->dh == 1 && p->dw == 1 && p->ph0 == 1 && p->ph1 == 1 && p->pw0 == 1 &&
	       p->pw1 == 1 && p->group == 1 && p->w >= DIRECT_MIN_W && p->oh == p->h &&
	       p->ow == p->w && p->c > 0 && p->m > 0;
}

/* Lanes of the vector starting at output column x0 whose input column
 * x0 + lane + kj - 1 lies in [0, w). */
__attribute__((target("avx512f"))) static __mmask16 tap_mask(int64_t x0, int kj, int64_t w)
{
	unsigned m = 0;
	for (int l = 0; l < 16; l++) {
		int64_t ix = x0 + l + kj - 1;
		if (x0 + l < w && ix >= 0 && ix < w)
			m |= 1u << l;
	}
	return (__mmask16)m;
}

/*
 * Output rows of MB channels starting at m0, two vectors (32 columns)
 * starting at column x0, for one image. MB and the vector count NV are
 * compile-time so the accumulators stay in registers.
 */
#define DEFINE_BLOCK(MB, NV)                                                                       \
	__attribute__((target("avx512f"))) static inline void block_##MB##_##NV(                   \
	        const conv_params *p, const float *x, const float *w, const float *bias, float *y, \
	        int acc, int64_t m0, int64_t oy, int64_t x0, const __mmask16 *tm, __mmask16 om0,   \
	        __mmask16 om1)                                                                     \
	{                                                                                          \
		const int64_t plane = p->h * p->w, c9 = p->c * 9;                                  \
		__m512 a[MB][NV];                                                                  \
		for (int mm = 0; mm < MB; mm++) {                                                  \
			float *yr = y + (m0 + mm) * plane + oy * p->w + x0;                        \
			__m512 init = _mm512_set1_ps(bias ? bias[m0 + mm] : 0.0f);                 \
			a[mm][0] = acc ? _mm512_maskz_loadu_ps(om0, yr) : init;                    \
			if (NV > 1)                                                                \
				a[mm][NV > 1 ? 1 : 0] =                                            \
				        acc ? _mm512_maskz_loadu_ps(om1, yr + 16) : init;          \
		}                                                                                  \
		for (int64_t c = 0; c < p->c; c++) {                                               \
			for (int ki = 0; ki < 3; ki++) {                                           \
				int64_t iy = oy + ki - 1;                                          \
				if (iy < 0 || iy >= p->h)                                          \
					continue;                                                  \
				const float *row = x + c * plane + iy * p->w + x0 - 1;             \
				const float *wk = w + m0 * c9 + c * 9 + ki * 3;                    \
				for (int kj = 0; kj < 3; kj++) {                                   \
					__m512 v0 = _mm512_maskz_loadu_ps(tm[kj], row + kj);       \
					__m512 v1 = NV > 1 ? _mm512_maskz_loadu_ps(tm[3 + kj],     \
					                                           row + kj + 16)  \
					                   : v0;                                   \
					for (int mm = 0; mm < MB; mm++) {                          \
						__m512 wv = _mm512_set1_ps(wk[mm * c9 + kj]);      \
						a[mm][0] = _mm512_fmadd_ps(wv, v0, a[mm][0]);      \
						if (NV > 1)                                        \
							a[mm][NV > 1 ? 1 : 0] = _mm512_fmadd_ps(   \
							        wv, v1, a[mm][NV > 1 ? 1 : 0]);    \
					}                                                          \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
		for (int mm = 0; mm < MB; mm++) {                                                  \
			float *yr = y + (m0 + mm) * plane + oy * p->w + x0;                        \
			_mm512_mask_storeu_ps(yr, om0, a[mm][0]);                                  \
			if (NV > 1)                                                                \
				_mm512_mask_storeu_ps(yr + 16, om1, a[mm][NV > 1 ? 1 : 0]);        \
		}                                                                                  \
	}

DEFINE_BLOCK(8, 2)
DEFINE_BLOCK(1, 2)
DEFINE_BLOCK(8, 1)
DEFINE_BLOCK(1, 1)

/* One image: y[M, H, W] (=, or += with acc) conv(x[C, H, W], w) + bias. */
__attribute__((target("avx512f"))) static void conv_image(const conv_params *p, const float *x,
                                                          const float *w, const float *bias,
                                                          float *y, int acc)
{
	for (int64_t x0 = 0; x0 < p->w; x0 += 32) {
		/* Border lanes of the two vectors at x0 for each tap (the loads
		 * read input columns x0 - 1 + kj ..), and the lanes to store. */
		__mmask16 tm[6];
		for (int kj = 0; kj < 3; kj++) {
			tm[kj] = tap_mask(x0, kj, p->w);
			tm[3 + kj] = tap_mask(x0 + 16, kj, p->w);
		}
		__mmask16 om0 = tap_mask(x0, 1, p->w), om1 = tap_mask(x0 + 16, 1, p->w);
		int two = p->w - x0 > 16; /* else one vector: no idle second half */
		int64_t m0 = 0;
		for (; m0 + 8 <= p->m; m0 += 8)
			for (int64_t oy = 0; oy < p->h; oy++) {
				if (two)
					block_8_2(p, x, w, bias, y, acc, m0, oy, x0, tm, om0, om1);
				else
					block_8_1(p, x, w, bias, y, acc, m0, oy, x0, tm, om0, om1);
			}
		for (; m0 < p->m; m0++)
			for (int64_t oy = 0; oy < p->h; oy++) {
				if (two)
					block_1_2(p, x, w, bias, y, acc, m0, oy, x0, tm, om0, om1);
				else
					block_1_1(p, x, w, bias, y, acc, m0, oy, x0, tm, om0, om1);
			}
	}
	_mm256_zeroupper(); /* GCC 12 leaves the upper state dirty here */
}

void tensor_conv_direct(const conv_params *p, const float *x, const float *w, const float *bias,
                        float *y, int acc, int64_t i0, int64_t i1)
{
	int64_t in = p->c * p->h * p->w, out = p->m * p->h * p->w;
	for (int64_t b = i0; b < i1; b++)
		conv_image(p, x + b * in, w, bias, y + b * out, acc);
}

#else /* no AVX-512 build: always the im2col path */

void tensor_conv_direct_disable(int off)
{
	(void)off;
}

int tensor_conv_direct_ok(const conv_params *p)
{
	(void)p;
	return 0;
}

void tensor_conv_direct(const conv_params *p, const float *x, const float *w, const float *bias,
                        float *y, int acc, int64_t i0, int64_t i1)
{
	(void)p, (void)x, (void)w, (void)bias, (void)y, (void)acc, (void)i0, (void)i1;
}
#endif
