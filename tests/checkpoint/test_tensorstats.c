/*
 * test_tensorstats.c - the one-pass statistics: exact counts and moments
 * whatever the chunking, half-precision decoding, derived histogram,
 * median/MAD, and the KL helpers' edge cases (empty, constant).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/tensorstats.h"

static mlsec_tstats st;

static void test_counts_any_chunking(void **s)
{
	(void)s;
	float v[] = {1, 2, 3, 4, NAN, INFINITY, -INFINITY};
	for (size_t step = 1; step <= sizeof v; step++) {
		mlsec_tstats_init(&st, MLSEC_TS_F32);
		for (size_t o = 0; o < sizeof v; o += step)
			mlsec_tstats_update(&st, (const char *)v + o,
			                    o + step > sizeof v ? sizeof v - o : step);
		mlsec_tstats_summary m;
		mlsec_tstats_finish(&st, &m);
		assert_int_equal(m.count, 7);
		assert_int_equal(m.nan, 1);
		assert_int_equal(m.posinf, 1);
		assert_int_equal(m.neginf, 1);
		assert_int_equal(m.finite, 4);
		assert_true(m.min == 1 && m.max == 4 && m.mean == 2.5);
		assert_true(fabs(m.std - sqrt(1.25)) < 1e-12);
	}
}

/* The vector path (blocks of 16) and the tail agree; NaN never hides a max. */
static void test_vector_path(void **s)
{
	(void)s;
	size_t n = 10007;
	float *v = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		v[i] = (float)((int)(i % 200) - 100) * 0.01f;
	v[17] = NAN;
	v[18] = 1e6f;
	v[5000] = -INFINITY;
	v[n - 1] = NAN;
	mlsec_tstats_init(&st, MLSEC_TS_F32);
	mlsec_tstats_update(&st, v, n * sizeof(float));
	mlsec_tstats_summary m;
	mlsec_tstats_finish(&st, &m);
	assert_int_equal(m.nan, 2);
	assert_int_equal(m.neginf, 1);
	assert_true(m.max == 1e6);
	assert_true(m.min == -1.0);
	double h = 0;
	for (int b = 0; b < MLSEC_TS_BINS; b++)
		h += m.hist[b];
	assert_true(fabs(h - (double)m.finite) < 1e-6);
	assert_true(m.robust_z > 1000);
	free(v);
}

static void test_half_types(void **s)
{
	(void)s;
	assert_true(mlsec_f16_to_f32(0x3c00) == 1.0f);
	assert_true(mlsec_f16_to_f32(0xc000) == -2.0f);
	assert_true(isinf(mlsec_f16_to_f32(0x7c00)));
	assert_true(isnan(mlsec_f16_to_f32(0x7e00)));
	assert_true(mlsec_f16_to_f32(0x0001) == ldexpf(1, -24));
	assert_true(mlsec_f16_to_f32(0x03ff) == ldexpf(1023, -24));
	assert_true(mlsec_bf16_to_f32(0x3f80) == 1.0f);
	uint16_t h[] = {0x3c00, 0x7e00, 0xfc00, 0x4000};
	mlsec_tstats_init(&st, MLSEC_TS_F16);
	mlsec_tstats_update(&st, h, sizeof h);
	mlsec_tstats_summary m;
	mlsec_tstats_finish(&st, &m);
	assert_int_equal(m.nan, 1);
	assert_int_equal(m.neginf, 1);
	assert_true(m.min == 1 && m.max == 2);
	double d[] = {1e300, -1e300, 0, NAN};
	mlsec_tstats_init(&st, MLSEC_TS_F64);
	mlsec_tstats_update(&st, d, sizeof d);
	mlsec_tstats_finish(&st, &m);
	assert_true(m.max == 1e300 && m.min == -1e300 && m.nan == 1);
}

static void test_constant_and_empty(void **s)
{
	(void)s;
	float v[100];
	for (int i = 0; i < 100; i++)
		v[i] = 0.5f;
	mlsec_tstats_init(&st, MLSEC_TS_F32);
	mlsec_tstats_update(&st, v, sizeof v);
	mlsec_tstats_summary m;
	mlsec_tstats_finish(&st, &m);
	assert_true(m.median == 0.5 && m.mad == 0 && m.robust_z == 0 && m.std == 0);
	assert_true(m.hist[0] == 100);
	mlsec_tstats_init(&st, MLSEC_TS_F32);
	mlsec_tstats_finish(&st, &m);
	assert_int_equal(m.finite, 0);
	assert_false(isnan(m.mean));
}

static void test_median_mad(void **s)
{
	(void)s;
	size_t n = 1 << 18;
	float *v = malloc(n * sizeof(float));
	srand(7);
	for (size_t i = 0; i < n; i++) { /* Box-Muller, sigma 0.02 */
		double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
		v[i] = (float)(0.02 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
	}
	mlsec_tstats_init(&st, MLSEC_TS_F32);
	mlsec_tstats_update(&st, v, n * sizeof(float));
	mlsec_tstats_summary m;
	mlsec_tstats_finish(&st, &m);
	assert_true(fabs(m.median) < 0.002);
	assert_true(fabs(m.mad - 0.6745 * 0.02) < 0.15 * 0.6745 * 0.02);
	assert_true(m.robust_z < 10);
	free(v);
}

static void test_kl(void **s)
{
	(void)s;
	double a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, z[4] = {0}, c[4] = {4, 0, 0, 0};
	assert_true(mlsec_hist_kl(a, b, 4, 1e-6) < 1e-12);
	assert_true(mlsec_hist_kl(z, z, 4, 1e-6) == 0);
	assert_true(mlsec_hist_kl(a, z, 4, 1e-6) == -1);
	double k = mlsec_hist_kl(a, c, 4, 1e-6);
	assert_true(isfinite(k) && k > 0.5);
	double r[4];
	mlsec_hist_rebin(c, 4, 1.0, 1.0, r, 4, 0.0, 2.0); /* constant source */
	assert_true(r[2] == 4);
	mlsec_hist_rebin(a, 4, 0.0, 4.0, r, 4, 0.0, 8.0);
	assert_true(fabs(r[0] - 3) < 1e-12 && fabs(r[1] - 7) < 1e-12 && r[2] == 0);
}

static const char *const isas[] = {"generic", "avx", "avx512"};

/* Exact reference: counts, min/max and the fine histogram. */
static void reference(const float *v, size_t n, uint64_t *nan, uint64_t *inf, float *mn, float *mx,
                      uint64_t *fine)
{
	*nan = *inf = 0;
	*mn = INFINITY;
	*mx = -INFINITY;
	memset(fine, 0, MLSEC_TS_FINE_BINS * sizeof *fine);
	for (size_t i = 0; i < n; i++) {
		uint32_t b;
		memcpy(&b, &v[i], 4);
		fine[b >> 20]++;
		if (isnan(v[i]))
			(*nan)++;
		else if (isinf(v[i]))
			(*inf)++;
		else {
			*mn = v[i] < *mn ? v[i] : *mn;
			*mx = v[i] > *mx ? v[i] : *mx;
		}
	}
}

static void check_against_reference(const float *v, size_t n)
{
	uint64_t nan, inf, fine[MLSEC_TS_FINE_BINS];
	float mn, mx;
	reference(v, n, &nan, &inf, &mn, &mx, fine);
	mlsec_tstats_init(&st, MLSEC_TS_F32);
	mlsec_tstats_update(&st, v, n * sizeof(float));
	mlsec_tstats_summary m;
	mlsec_tstats_finish(&st, &m);
	assert_int_equal(m.count, n);
	assert_int_equal(m.nan, nan);
	assert_int_equal(m.posinf + m.neginf, inf);
	assert_true(m.min == mn && m.max == mx);
	for (int b = 0; b < MLSEC_TS_FINE_BINS; b++)
		assert_int_equal(st.fine[b] + st.sub[0][b] + st.sub[1][b] + st.sub[2][b] +
		                         st.sub[3][b],
		                 fine[b]);
}

/*
 * Every kernel this CPU runs: a NaN or an Inf in any lane of any vector
 * position is counted and never changes min/max (the vector loops detect
 * them through the lane sums only), and finite values whose squares
 * overflow float keep exact counts and extremes.
 */
static void test_every_kernel_every_lane(void **s)
{
	(void)s;
	size_t n = 4096 * 2 + 77; /* two full blocks and a tail */
	float *v = malloc(n * sizeof(float));
	int ran = 0;
	for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
		if (mlsec_tstats_use_isa(isas[k]) != 0)
			continue;
		ran++;
		for (size_t i = 0; i < n; i++)
			v[i] = (float)((int)(i * 7919 % 1000) - 500) * 1e-3f;
		check_against_reference(v, n);
		const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
		for (size_t pos = 0; pos < 64; pos++) {
			for (size_t b = 0; b < 4; b++) {
				size_t at = 4096 + pos; /* second block, each lane of 2 vectors */
				float keep = v[at];
				v[at] = bad[b];
				check_against_reference(v, n);
				v[at] = keep;
			}
		}
		/* squares overflow float (sums of 1e20^2): exact fallback */
		v[3] = 1e20f;
		v[4100] = -3e38f;
		v[n - 1] = 2e38f;
		check_against_reference(v, n);
		mlsec_tstats_summary m;
		mlsec_tstats_finish(&st, &m);
		assert_true(isfinite(m.std) && m.std > 1e36);
	}
	assert_true(ran >= 1);
	assert_int_equal(mlsec_tstats_use_isa("no-such-isa"), -1);
	assert_int_equal(mlsec_tstats_use_isa(NULL), 0);
	free(v);
}

/* Sums from every kernel agree with double-precision sums. */
static void test_kernels_agree_on_moments(void **s)
{
	(void)s;
	size_t n = 100003;
	float *v = malloc(n * sizeof(float));
	double sum = 0, sq = 0;
	for (size_t i = 0; i < n; i++) {
		v[i] = (float)sin((double)i * 0.37) * 0.05f + 0.001f;
		sum += v[i];
		sq += (double)v[i] * v[i];
	}
	for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
		if (mlsec_tstats_use_isa(isas[k]) != 0)
			continue;
		mlsec_tstats_init(&st, MLSEC_TS_F32);
		mlsec_tstats_update(&st, v, n * sizeof(float));
		mlsec_tstats_summary m;
		mlsec_tstats_finish(&st, &m);
		assert_true(fabs(m.mean - sum / (double)n) < 1e-6);
		assert_true(fabs(m.std - sqrt(sq / (double)n - (sum / n) * (sum / n))) < 1e-6);
	}
	mlsec_tstats_use_isa(NULL);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_counts_any_chunking),
	        cmocka_unit_test(test_vector_path),
	        cmocka_unit_test(test_every_kernel_every_lane),
	        cmocka_unit_test(test_kernels_agree_on_moments),
	        cmocka_unit_test(test_half_types),
	        cmocka_unit_test(test_constant_and_empty),
	        cmocka_unit_test(test_median_mad),
	        cmocka_unit_test(test_kl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
