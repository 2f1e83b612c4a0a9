/*
 * crc32.c - CRC-32 (zip/gzip polynomial) for verifying zip members while
 * their data is streamed. zlib's table-driven crc32() runs at ~4 GB/s,
 * slower than the statistics pass it accompanies, so on x86 CPUs with
 * PCLMULQDQ the bulk of the data is folded with carry-less multiplication
 * (Intel, "Fast CRC Computation Using PCLMULQDQ", the same constants as
 * Linux's crc32-pclmul), and zlib handles the short head/tail.
 * The result always equals zlib's crc32(); test_zip checks it.
 */
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "mlsec/zip.h"

static uint32_t zlib_crc(uint32_t crc, const uint8_t *b, size_t len)
{
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = (uint32_t)crc32(crc, b, n);
		b += n;
		len -= n;
	}
	return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/*
 * Folds the rest of the data (len a multiple of 16) into the four 128-bit
 * lanes x1..x4 holding the 64 bytes before p, and reduces them to the raw
 * CRC.
 */
__attribute__((target("pclmul,sse4.1"))) static uint32_t
fold_lanes(__m128i x1, __m128i x2, __m128i x3, __m128i x4, const uint8_t *p, size_t len)
{
	const __m128i k1k2 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL);
	const __m128i k3k4 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
	const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124LL);
	const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
	const __m128i poly = _mm_set_epi64x(0x1F7011641LL, 0x1DB710641LL);
	while (len >= 64) {
		__m128i h1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
		__m128i h2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
		__m128i h3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
		__m128i h4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
		x1 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
		x2 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
		x3 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
		x4 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
		x1 = _mm_xor_si128(_mm_xor_si128(x1, h1), _mm_loadu_si128((const __m128i *)p));
		x2 = _mm_xor_si128(_mm_xor_si128(x2, h2),
		                   _mm_loadu_si128((const __m128i *)(p + 16)));
		x3 = _mm_xor_si128(_mm_xor_si128(x3, h3),
		                   _mm_loadu_si128((const __m128i *)(p + 32)));
		x4 = _mm_xor_si128(_mm_xor_si128(x4, h4),
		                   _mm_loadu_si128((const __m128i *)(p + 48)));
		p += 64;
		len -= 64;
	}
	/* fold the four lanes into one */
	__m128i h;
	h = _mm_clmulepi64_si128(x1, k3k4, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x00), h), x2);
	h = _mm_clmulepi64_si128(x1, k3k4, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x00), h), x3);
	h = _mm_clmulepi64_si128(x1, k3k4, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x00), h), x4);
	while (len >= 16) {
		h = _mm_clmulepi64_si128(x1, k3k4, 0x11);
		x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x00), h),
		                   _mm_loadu_si128((const __m128i *)p));
		p += 16;
		len -= 16;
	}
	/* 128 -> 64 bits */
	__m128i t = _mm_clmulepi64_si128(k3k4, x1, 0x01);
	x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
	/* 64 -> 32 bits */
	t = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00);
	x1 = _mm_xor_si128(_mm_srli_si128(x1, 4), t);
	/* Barrett reduction */
	t = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10);
	t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), poly, 0x00);
	x1 = _mm_xor_si128(x1, t);
	return (uint32_t)_mm_extract_epi32(x1, 1);
}

/* Raw (non-inverted) CRC of len bytes, len >= 64 and a multiple of 16. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t fold(uint32_t crc, const uint8_t *p,
                                                              size_t len)
{
	__m128i x1 = _mm_loadu_si128((const __m128i *)p);
	__m128i x2 = _mm_loadu_si128((const __m128i *)(p + 16));
	__m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32));
	__m128i x4 = _mm_loadu_si128((const __m128i *)(p + 48));
	x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
	return fold_lanes(x1, x2, x3, x4, p + 64, len - 64);
}

/* 512-bit fold step: x * (x^(n+32), x^(n-32)) per 128-bit lane, xor d. */
#define FOLD512(x, k, d)                                                                           \
	_mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),                            \
	                          _mm512_clmulepi64_epi128(x, k, 0x11), d, 0x96)

/*
 * The same CRC with VPCLMULQDQ on 512-bit registers (AVX-512 CPUs): four
 * registers of four lanes fold 256 bytes per step, 4x the 128-bit loop's
 * stride, which otherwise costs as much as the statistics pass beside it.
 * The 16 lanes are then folded into the 4 lanes of fold_lanes(). Constants
 * as above for distances of 2048 bits (x^2080, x^2016 mod P, reflected)
 * and 512 bits. len >= 256 and a multiple of 16.
 */
__attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1"))) static uint32_t
fold_avx512(uint32_t crc, const uint8_t *p, size_t len)
{
	const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1322d1430LL, 0x11542778aLL));
	const __m512i k512 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL));
	__m512i z0 = _mm512_loadu_si512((const void *)p);
	__m512i z1 = _mm512_loadu_si512((const void *)(p + 64));
	__m512i z2 = _mm512_loadu_si512((const void *)(p + 128));
	__m512i z3 = _mm512_loadu_si512((const void *)(p + 192));
	z0 = _mm512_xor_si512(z0, _mm512_castsi128_si512(_mm_cvtsi32_si128((int)crc)));
	p += 256;
	len -= 256;
	while (len >= 256) {
		z0 = FOLD512(z0, k2048, _mm512_loadu_si512((const void *)p));
		z1 = FOLD512(z1, k2048, _mm512_loadu_si512((const void *)(p + 64)));
		z2 = FOLD512(z2, k2048, _mm512_loadu_si512((const void *)(p + 128)));
		z3 = FOLD512(z3, k2048, _mm512_loadu_si512((const void *)(p + 192)));
		p += 256;
		len -= 256;
	}
	/* z0..z3 hold 256 consecutive bytes: fold each into the next 64 */
	z1 = FOLD512(z0, k512, z1);
	z2 = FOLD512(z1, k512, z2);
	z3 = FOLD512(z2, k512, z3);
	__m128i l0 = _mm512_extracti32x4_epi32(z3, 0), l1 = _mm512_extracti32x4_epi32(z3, 1);
	__m128i l2 = _mm512_extracti32x4_epi32(z3, 2), l3 = _mm512_extracti32x4_epi32(z3, 3);
	/* GCC 12 emits no vzeroupper here: without one the legacy-SSE code
	 * that follows (fold_lanes, zlib) pays for the dirty upper halves. */
	_mm256_zeroupper();
	return fold_lanes(l0, l1, l2, l3, p, len);
}

uint32_t mlsec_crc32(uint32_t crc, const void *buf, size_t len)
{
	static int have = -1, wide = -1;
	if (have < 0) {
		have = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
		wide = have && __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq");
	}
	const uint8_t *b = buf;
	if (!have || len < 256)
		return zlib_crc(crc, b, len);
	size_t body = len & ~(size_t)15;
	uint32_t raw = wide && body >= 1024 ? fold_avx512(~crc, b, body) : fold(~crc, b, body);
	return zlib_crc(~raw, b + body, len - body);
}
#else
uint32_t mlsec_crc32(uint32_t crc, const void *buf, size_t len)
{
	return zlib_crc(crc, buf, len);
}
#endif
