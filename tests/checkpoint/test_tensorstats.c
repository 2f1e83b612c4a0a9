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

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_counts_any_chunking),
	        cmocka_unit_test(test_vector_path),
	        cmocka_unit_test(test_half_types),
	        cmocka_unit_test(test_constant_and_empty),
	        cmocka_unit_test(test_median_mad),
	        cmocka_unit_test(test_kl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
