/*
 * tensorstats.c - the one-pass statistics kernels (see mlsec/tensorstats.h).
 *
 * The float32 kernel works on blocks that fit in L1: a first loop does the
 * vectorisable part (min/max, sums) in independent SIMD lanes, a second
 * loop bumps the fine histogram through four sub-tables and paces the
 * prefetch of the next block. A block holding NaN/Inf is redone exactly by
 * a scalar loop (rare), so the vector loop needs no masking.
 */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/tensorstats.h"

#define BLOCK 4096 /* floats: 16 KiB, in L1 between the two loops */
#define HSTRIDE MLSEC_TS_SUB_STRIDE
/* fold the 32-bit sub-tables before any counter could overflow */
#define FOLD_EVERY (1ull << 31)

float mlsec_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float mlsec_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
	if (exp == 0x1f) {
		u = sign | 0x7f800000u | (man << 13);
	} else if (exp) {
		u = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man) {
		/* subnormal: normalise */
		int e = -1;
		do {
			e++;
			man <<= 1;
		} while (!(man & 0x400));
		u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
	} else {
		u = sign;
	}
	float f;
	memcpy(&f, &u, 4);
	return f;
}

void mlsec_tstats_init(mlsec_tstats *s, mlsec_ts_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->esize = kind == MLSEC_TS_F32 ? 4 : kind == MLSEC_TS_F64 ? 8 : 2;
	s->min = INFINITY;
	s->max = -INFINITY;
}

typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v4f __attribute__((vector_size(16)));

/* lane-wise m ? a : b (m is all-ones or zero per lane) */
#define vsel(m, a, b) ((v4f)(((v4i)(a) & (m)) | ((v4i)(b) & ~(m))))

/* Exact scalar statistics of a block holding NaN/Inf (rare). */
static void block_scalar(mlsec_tstats *s, const uint32_t *u, size_t n)
{
	double dsum = 0, dsq = 0;
	float fmn = FLT_MAX, fmx = -FLT_MAX;
	for (size_t i = 0; i < n; i++) {
		uint32_t b = u[i];
		float x;
		memcpy(&x, &b, 4);
		uint32_t mag = b & 0x7fffffffu;
		if (mag > 0x7f800000u) {
			s->nan++;
		} else if (mag == 0x7f800000u) {
			if (b >> 31)
				s->neginf++;
			else
				s->posinf++;
		} else {
			dsum += x;
			dsq += (double)x * x;
			fmn = x < fmn ? x : fmn;
			fmx = x > fmx ? x : fmx;
		}
	}
	s->sum += dsum;
	s->sumsq += dsq;
	if (fmn < s->min)
		s->min = fmn;
	if (fmx > s->max)
		s->max = fmx;
}

/*
 * Fine histogram: top 12 bits; non-finite bins are ignored at finish.
 * Four sub-tables so consecutive equal bins do not serialise on one
 * counter. The scattered increments are the slowest part of the kernel and
 * leave the memory bus idle, so this loop also prefetches, one cache line
 * per line consumed, pfd bytes ahead into L2: the stream arrives at the
 * rate it is used instead of in bursts that stall on fill buffers.
 */
static inline __attribute__((always_inline)) void hist_block(const uint32_t *u, size_t n,
                                                             uint32_t h[4][HSTRIDE], size_t pfd)
{
	const char *pf = (const char *)u + pfd;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__builtin_prefetch(pf + i * 4, 0, 2);
		for (int k = 0; k < 16; k += 4) {
			h[0][u[i + k] >> 20]++;
			h[1][u[i + k + 1] >> 20]++;
			h[2][u[i + k + 2] >> 20]++;
			h[3][u[i + k + 3] >> 20]++;
		}
	}
	for (; i < n; i++)
		h[0][u[i] >> 20]++;
}

/*
 * Folds a vector kernel's lane partials into s. Returns 0 when a lane sum
 * is not finite: that happens exactly when the block held a NaN or an Inf
 * (either one contaminates its lane's running sum for good) and, rarely,
 * when finite sums overflow float. Either way the caller redoes the block
 * exactly with block_scalar, so the vector loops never test for NaN/Inf.
 */
static int fold_lanes(mlsec_tstats *s, const float *sm, const float *sq, const float *mn,
                      const float *mx, int lanes)
{
	double dsum = 0, dsq = 0;
	float fmn = FLT_MAX, fmx = -FLT_MAX;
	for (int l = 0; l < lanes; l++) {
		if (!isfinite(sm[l]) || !isfinite(sq[l]))
			return 0;
		dsum += sm[l];
		dsq += sq[l];
		fmn = mn[l] < fmn ? mn[l] : fmn;
		fmx = mx[l] > fmx ? mx[l] : fmx;
	}
	s->sum += dsum;
	s->sumsq += dsq;
	if (fmn < s->min)
		s->min = fmn;
	if (fmx > s->max)
		s->max = fmx;
	return 1;
}

static size_t prefetch_distance(const mlsec_tstats *s)
{
	return s->prefetch ? s->prefetch : BLOCK * 4;
}

/*
 * The float32 block kernels (n <= BLOCK): one for AVX-512, one for AVX,
 * a portable one (SSE2 on x86-64 through GCC vector extensions); picked
 * once from the CPU. min/max instructions are fine here: a block whose
 * lanes saw a NaN is redone by block_scalar anyway.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86_KERNELS 1

__attribute__((target("avx512f"))) static void block_f32_avx512(mlsec_tstats *s, const uint32_t *u,
                                                                size_t n, uint32_t h[4][HSTRIDE])
{
	__m512 sm0 = _mm512_setzero_ps(), sm1 = sm0, sq0 = sm0, sq1 = sm0;
	__m512 mn0 = _mm512_set1_ps(FLT_MAX), mn1 = mn0, mx0 = _mm512_set1_ps(-FLT_MAX), mx1 = mx0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 x0 = _mm512_loadu_ps((const float *)(const void *)(u + i));
		__m512 x1 = _mm512_loadu_ps((const float *)(const void *)(u + i + 16));
		sm0 = _mm512_add_ps(sm0, x0);
		sm1 = _mm512_add_ps(sm1, x1);
		sq0 = _mm512_add_ps(sq0, _mm512_mul_ps(x0, x0));
		sq1 = _mm512_add_ps(sq1, _mm512_mul_ps(x1, x1));
		mn0 = _mm512_min_ps(mn0, x0);
		mn1 = _mm512_min_ps(mn1, x1);
		mx0 = _mm512_max_ps(mx0, x0);
		mx1 = _mm512_max_ps(mx1, x1);
	}
	float a[16], b[16], c[16], d[16];
	_mm512_storeu_ps(a, _mm512_add_ps(sm0, sm1));
	_mm512_storeu_ps(b, _mm512_add_ps(sq0, sq1));
	_mm512_storeu_ps(c, _mm512_min_ps(mn0, mn1));
	_mm512_storeu_ps(d, _mm512_max_ps(mx0, mx1));
	_mm256_zeroupper(); /* GCC 12 omits it; legacy-SSE callers would stall */
	if (fold_lanes(s, a, b, c, d, 16))
		block_scalar(s, u + i, n - i); /* the < 32 tail */
	else
		block_scalar(s, u, n);
	s->count += n;
	hist_block(u, n, h, prefetch_distance(s));
}

__attribute__((target("avx"))) static void block_f32_avx(mlsec_tstats *s, const uint32_t *u,
                                                         size_t n, uint32_t h[4][HSTRIDE])
{
	__m256 sm0 = _mm256_setzero_ps(), sm1 = sm0, sq0 = sm0, sq1 = sm0;
	__m256 mn0 = _mm256_set1_ps(FLT_MAX), mn1 = mn0, mx0 = _mm256_set1_ps(-FLT_MAX), mx1 = mx0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 x0 = _mm256_loadu_ps((const float *)(const void *)(u + i));
		__m256 x1 = _mm256_loadu_ps((const float *)(const void *)(u + i + 8));
		sm0 = _mm256_add_ps(sm0, x0);
		sm1 = _mm256_add_ps(sm1, x1);
		sq0 = _mm256_add_ps(sq0, _mm256_mul_ps(x0, x0));
		sq1 = _mm256_add_ps(sq1, _mm256_mul_ps(x1, x1));
		mn0 = _mm256_min_ps(mn0, x0);
		mn1 = _mm256_min_ps(mn1, x1);
		mx0 = _mm256_max_ps(mx0, x0);
		mx1 = _mm256_max_ps(mx1, x1);
	}
	float a[8], b[8], c[8], d[8];
	_mm256_storeu_ps(a, _mm256_add_ps(sm0, sm1));
	_mm256_storeu_ps(b, _mm256_add_ps(sq0, sq1));
	_mm256_storeu_ps(c, _mm256_min_ps(mn0, mn1));
	_mm256_storeu_ps(d, _mm256_max_ps(mx0, mx1));
	_mm256_zeroupper();
	if (fold_lanes(s, a, b, c, d, 8))
		block_scalar(s, u + i, n - i); /* the < 16 tail */
	else
		block_scalar(s, u, n);
	s->count += n;
	hist_block(u, n, h, prefetch_distance(s));
}
#endif

static void block_f32_generic(mlsec_tstats *s, const uint32_t *u, size_t n, uint32_t h[4][HSTRIDE])
{
	v4f sm0 = {0}, sm1 = {0}, sq0 = {0}, sq1 = {0};
	v4f mn0 = {FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX}, mn1 = mn0, mx0 = -mn0, mx1 = mx0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		v4f x0, x1;
		memcpy(&x0, u + i, 16);
		memcpy(&x1, u + i + 4, 16);
		sm0 += x0;
		sm1 += x1;
		sq0 += x0 * x0;
		sq1 += x1 * x1;
		mn0 = vsel((v4i)(x0 < mn0), x0, mn0);
		mn1 = vsel((v4i)(x1 < mn1), x1, mn1);
		mx0 = vsel((v4i)(x0 > mx0), x0, mx0);
		mx1 = vsel((v4i)(x1 > mx1), x1, mx1);
	}
	v4f a = sm0 + sm1, b = sq0 + sq1;
	v4f c = vsel((v4i)(mn0 < mn1), mn0, mn1), d = vsel((v4i)(mx0 > mx1), mx0, mx1);
	if (fold_lanes(s, (const float *)&a, (const float *)&b, (const float *)&c,
	               (const float *)&d, 4))
		block_scalar(s, u + i, n - i); /* the < 8 tail */
	else
		block_scalar(s, u, n);
	s->count += n;
	hist_block(u, n, h, prefetch_distance(s));
}

typedef void (*block_fn)(mlsec_tstats *, const uint32_t *, size_t, uint32_t[4][HSTRIDE]);

static _Atomic(block_fn) g_block;

static block_fn isa_kernel(const char *isa)
{
#ifdef HAVE_X86_KERNELS
	__builtin_cpu_init();
	int any = !isa || !*isa;
	if ((any || !strcmp(isa, "avx512")) && __builtin_cpu_supports("avx512f"))
		return block_f32_avx512;
	if ((any || !strcmp(isa, "avx")) && __builtin_cpu_supports("avx"))
		return block_f32_avx;
#endif
	if (!isa || !*isa || !strcmp(isa, "generic"))
		return block_f32_generic;
	return NULL;
}

int mlsec_tstats_use_isa(const char *isa)
{
	block_fn fn = isa_kernel(isa);
	if (!fn)
		return -1;
	atomic_store(&g_block, fn);
	return 0;
}

static void block_f32(mlsec_tstats *s, const uint32_t *u, size_t n, uint32_t h[4][HSTRIDE])
{
	block_fn fn = atomic_load_explicit(&g_block, memory_order_relaxed);
	if (!fn) {
		fn = isa_kernel(NULL);
		atomic_store(&g_block, fn);
	}
	fn(s, u, n, h);
}

static void fold_sub(uint64_t *fine, const uint32_t h[4][HSTRIDE])
{
	for (int k = 0; k < 4; k++)
		for (int b = 0; b < MLSEC_TS_FINE_BINS; b++)
			fine[b] += h[k][b];
}

static void update_f32(mlsec_tstats *s, const uint8_t *d, size_t n)
{
	uint32_t buf[BLOCK];
	while (n) {
		size_t k = n / 4 < BLOCK ? n / 4 : BLOCK;
		const uint32_t *u;
		if (((uintptr_t)d & 3) == 0) {
			u = (const uint32_t *)(const void *)d;
		} else {
			memcpy(buf, d, k * 4);
			u = buf;
		}
		block_f32(s, u, k, s->sub);
		d += k * 4;
		n -= k * 4;
		if ((s->since_fold += k) >= FOLD_EVERY) {
			fold_sub(s->fine, s->sub);
			memset(s->sub, 0, sizeof s->sub);
			s->since_fold = 0;
		}
	}
}

/* bfloat16 is the top half of a float32: widening is a shift. */
static void widen_bf16(uint32_t *out, const uint8_t *d, size_t k)
{
	for (size_t i = 0; i < k; i++)
		out[i] = (uint32_t)(d[2 * i] | d[2 * i + 1] << 8) << 16;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* float16 with the F16C conversion instruction, 8 at a time. */
__attribute__((target("f16c,avx"))) static void widen_f16_f16c(uint32_t *out, const uint8_t *d,
                                                               size_t k)
{
	size_t i = 0;
	for (; i + 8 <= k; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(const void *)(d + 2 * i));
		_mm256_storeu_ps((float *)(void *)(out + i), _mm256_cvtph_ps(h));
	}
	for (; i < k; i++) {
		float f = mlsec_f16_to_f32((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
		memcpy(&out[i], &f, 4);
	}
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
/* CPUID leaf 1: ECX bit 29 F16C, bit 28 AVX, bit 27 OSXSAVE (clang 14's
 * __builtin_cpu_supports does not know "f16c"). */
static int cpu_has_f16c_avx(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (!((c >> 29 & 1) && (c >> 28 & 1) && (c >> 27 & 1)))
		return 0;
	unsigned lo, hi;
	__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); /* the OS saves YMM state */
	(void)hi;
	return (lo & 6) == 6;
}
#endif

static void widen_f16(uint32_t *out, const uint8_t *d, size_t k)
{
#if defined(__x86_64__) && defined(__GNUC__)
	static int have = -1;
	if (have < 0)
		have = cpu_has_f16c_avx();
	if (have) {
		widen_f16_f16c(out, d, k);
		return;
	}
#endif
	for (size_t i = 0; i < k; i++) {
		float f = mlsec_f16_to_f32((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
		memcpy(&out[i], &f, 4);
	}
}

/* Half types: widen a block to float32 bits and reuse the f32 kernel. */
static void update_16(mlsec_tstats *s, const uint8_t *d, size_t n)
{
	uint32_t buf[BLOCK];
	while (n) {
		size_t k = n / 2 < BLOCK ? n / 2 : BLOCK;
		if (s->kind == MLSEC_TS_BF16)
			widen_bf16(buf, d, k);
		else
			widen_f16(buf, d, k);
		update_f32(s, (const uint8_t *)buf, k * 4);
		d += k * 2;
		n -= k * 2;
	}
}

static void update_f64(mlsec_tstats *s, const uint8_t *d, size_t n)
{
	size_t k = n / 8;
	for (size_t i = 0; i < k; i++) {
		double x;
		memcpy(&x, d + 8 * i, 8);
		s->count++;
		if (isnan(x)) {
			s->nan++;
			continue;
		}
		if (isinf(x)) {
			if (x > 0)
				s->posinf++;
			else
				s->neginf++;
			continue;
		}
		s->sum += x;
		s->sumsq += x * x;
		if (x < s->min)
			s->min = x;
		if (x > s->max)
			s->max = x;
		float f = x > FLT_MAX ? FLT_MAX : x < -FLT_MAX ? -FLT_MAX : (float)x;
		uint32_t b;
		memcpy(&b, &f, 4);
		s->fine[b >> 20]++;
	}
}

static void update_raw(mlsec_tstats *s, const uint8_t *d, size_t n)
{
	switch (s->kind) {
	case MLSEC_TS_F32:
		update_f32(s, d, n);
		break;
	case MLSEC_TS_F64:
		update_f64(s, d, n);
		break;
	default:
		update_16(s, d, n);
	}
}

void mlsec_tstats_update(mlsec_tstats *s, const void *data, size_t bytes)
{
	const uint8_t *d = data;
	if (s->ncarry) {
		size_t need = s->esize - s->ncarry;
		size_t k = bytes < need ? bytes : need;
		memcpy(s->carry + s->ncarry, d, k);
		s->ncarry += k;
		d += k;
		bytes -= k;
		if (s->ncarry < s->esize)
			return;
		update_raw(s, s->carry, s->esize);
		s->ncarry = 0;
	}
	size_t whole = bytes - bytes % s->esize;
	if (whole)
		update_raw(s, d, whole);
	memcpy(s->carry, d + whole, bytes - whole);
	s->ncarry = bytes - whole;
}

/* Value interval covered by fine bin b (finite bins only). */
static void bin_range(int b, double *lo, double *hi)
{
	uint32_t a = (uint32_t)b << 20, z = ((uint32_t)b << 20) | 0xfffffu;
	float fa, fz;
	memcpy(&fa, &a, 4);
	memcpy(&fz, &z, 4);
	if (fa <= fz) {
		*lo = fa;
		*hi = fz;
	} else {
		*lo = fz;
		*hi = fa;
	}
}

typedef struct vb {
	double lo, hi, c;
} vb;

static int cmp_mid(const void *x, const void *y)
{
	const vb *a = x, *b = y;
	double ma = a->lo + a->hi, mb = b->lo + b->hi;
	return (ma > mb) - (ma < mb);
}

/* Weighted quantile of bins sorted by value; interpolates inside a bin. */
static double quantile(const vb *v, size_t n, double total, double q)
{
	double target = q * total, cum = 0;
	for (size_t i = 0; i < n; i++) {
		if (cum + v[i].c >= target) {
			double f = v[i].c > 0 ? (target - cum) / v[i].c : 0;
			return v[i].lo + f * (v[i].hi - v[i].lo);
		}
		cum += v[i].c;
	}
	return n ? v[n - 1].hi : 0;
}

void mlsec_tstats_finish(const mlsec_tstats *s, mlsec_tstats_summary *o)
{
	memset(o, 0, sizeof(*o));
	o->count = s->count;
	o->nan = s->nan;
	o->posinf = s->posinf;
	o->neginf = s->neginf;
	o->finite = s->count - s->nan - s->posinf - s->neginf;
	if (!o->finite)
		return;
	o->min = s->min;
	o->max = s->max;
	o->absmax = fabs(s->min) > fabs(s->max) ? fabs(s->min) : fabs(s->max);
	o->mean = s->sum / (double)o->finite;
	double var = s->sumsq / (double)o->finite - o->mean * o->mean;
	o->std = var > 0 ? sqrt(var) : 0;
	o->hist_lo = s->min;
	o->hist_hi = s->max;

	/* finite fine bins in value order, clipped to the observed range */
	static _Thread_local vb v[MLSEC_TS_FINE_BINS];
	static _Thread_local uint64_t fine[MLSEC_TS_FINE_BINS];
	memcpy(fine, s->fine, sizeof fine);
	fold_sub(fine, s->sub);
	size_t nv = 0;
	for (int b = 0; b < MLSEC_TS_FINE_BINS; b++) {
		if (!fine[b] || ((b >> 3) & 0xff) == 0xff)
			continue;
		double lo, hi;
		bin_range(b, &lo, &hi);
		lo = lo < s->min ? s->min : lo;
		hi = hi > s->max ? s->max : hi;
		if (hi < lo)
			hi = lo;
		v[nv++] = (vb){lo, hi, (double)fine[b]};
	}
	qsort(v, nv, sizeof(vb), cmp_mid);
	double tot = (double)o->finite;
	o->median = quantile(v, nv, tot, 0.5);

	/* histogram over [min, max] */
	double width = s->max - s->min;
	for (size_t i = 0; i < nv; i++) {
		if (width <= 0) {
			o->hist[0] += v[i].c;
			continue;
		}
		double a = (v[i].lo - s->min) / width * MLSEC_TS_BINS;
		double z = (v[i].hi - s->min) / width * MLSEC_TS_BINS;
		if (z - a < 1e-12) {
			int k = (int)a;
			k = k < 0 ? 0 : k >= MLSEC_TS_BINS ? MLSEC_TS_BINS - 1 : k;
			o->hist[k] += v[i].c;
			continue;
		}
		for (int k = (int)a; k < MLSEC_TS_BINS && k <= (int)z; k++) {
			double l = a > k ? a : k, r = z < k + 1 ? z : k + 1;
			if (r > l)
				o->hist[k] += v[i].c * (r - l) / (z - a);
		}
	}

	/* MAD: weighted median of |bin - median| over deviation-sorted bins */
	for (size_t i = 0; i < nv; i++) {
		double dl = v[i].lo - o->median, dh = v[i].hi - o->median;
		if (dl <= 0 && dh >= 0) { /* straddles the median */
			double l = 0, h = fmax(-dl, dh);
			v[i].lo = l;
			v[i].hi = h;
		} else {
			double l = fmin(fabs(dl), fabs(dh)), h = fmax(fabs(dl), fabs(dh));
			v[i].lo = l;
			v[i].hi = h;
		}
	}
	qsort(v, nv, sizeof(vb), cmp_mid);
	o->mad = quantile(v, nv, tot, 0.5);
	double dev = fmax(fabs(s->max - o->median), fabs(s->min - o->median));
	double scale = o->mad > 0 ? 1.4826 * o->mad : o->std;
	o->robust_z = scale > 0 ? dev / scale : 0;
}

void mlsec_hist_rebin(const double *h, size_t n, double lo, double hi, double *out, size_t nbins,
                      double nlo, double nhi)
{
	memset(out, 0, nbins * sizeof(*out));
	double nw = nhi - nlo;
	for (size_t i = 0; i < n; i++) {
		if (h[i] <= 0)
			continue;
		double a = lo + (hi - lo) * (double)i / (double)n;
		double z = lo + (hi - lo) * (double)(i + 1) / (double)n;
		if (nw <= 0) {
			out[0] += h[i];
			continue;
		}
		double fa = (a - nlo) / nw * (double)nbins, fz = (z - nlo) / nw * (double)nbins;
		if (fz - fa < 1e-12) {
			long k = (long)fa;
			k = k < 0 ? 0 : k >= (long)nbins ? (long)nbins - 1 : k;
			out[k] += h[i];
			continue;
		}
		for (long k = (long)fa; k < (long)nbins && k <= (long)fz; k++) {
			if (k < 0)
				continue;
			double l = fa > k ? fa : k, r = fz < k + 1 ? fz : k + 1;
			if (r > l)
				out[k] += h[i] * (r - l) / (fz - fa);
		}
	}
}

double mlsec_hist_kl(const double *p, const double *q, size_t n, double eps)
{
	double sp = 0, sq = 0;
	for (size_t i = 0; i < n; i++) {
		sp += p[i] > 0 ? p[i] : 0;
		sq += q[i] > 0 ? q[i] : 0;
	}
	if (sp <= 0 && sq <= 0)
		return 0;
	if (sp <= 0 || sq <= 0)
		return -1;
	double zp = 1 + eps * (double)n, zq = zp, kl = 0;
	for (size_t i = 0; i < n; i++) {
		double a = ((p[i] > 0 ? p[i] : 0) / sp + eps) / zp;
		double b = ((q[i] > 0 ? q[i] : 0) / sq + eps) / zq;
		kl += a * log(a / b);
	}
	return kl < 0 ? 0 : kl;
}
