/*
 * test_poison_parse.c - the gradient-log record parser (fast path and the
 * jansson fallback agree) and the log-directory reader's error locations.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/poison.h"

#define GOOD                                                                                       \
	"{\"rank\": 3, \"step\": 42, \"global_l2\": 1.5, \"global_linf\": 0.25, "                  \
	"\"mean\": -1e-05, \"std\": 0.01, \"parameter_count\": 1000}"

static mlsec_err parse(const char *s, mlsec_poison_record *r, mlsec_error *e)
{
	mlsec_error_clear(e);
	return mlsec_poison_record_parse(s, strlen(s), r, e);
}

static void test_good_record(void **state)
{
	(void)state;
	mlsec_poison_record r;
	mlsec_error e;
	assert_int_equal(parse(GOOD, &r, &e), MLSEC_OK);
	assert_int_equal(r.rank, 3);
	assert_int_equal(r.step, 42);
	assert_true(r.global_l2 == 1.5 && r.global_linf == 0.25 && r.mean == -1e-05 &&
	            r.std == 0.01);
	assert_int_equal(r.parameter_count, 1000);
	/* format -> parse round trip */
	char buf[512];
	mlsec_poison_record r2;
	mlsec_poison_record_format(&r, buf, sizeof buf);
	assert_int_equal(parse(buf, &r2, &e), MLSEC_OK);
	assert_memory_equal(&r, &r2, sizeof r);
}

static void test_extra_keys_ignored(void **state)
{
	(void)state;
	static const char *const ok[] = {
	        /* fast path: scalars */
	        "{\"host\": \"gpu-7\", \"ok\": true, \"x\": null, \"rank\": 1, \"step\": 2, "
	        "\"global_l2\": 1, \"global_linf\": 1, \"mean\": 0, \"std\": 1, "
	        "\"parameter_count\": 5, \"lr\": 3e-4}",
	        /* fallback: nested values and escapes */
	        "{\"meta\": {\"a\": [1, 2, {\"b\": null}]}, \"rank\": 1, \"step\": 2, "
	        "\"global_l2\": 1, \"global_linf\": 1, \"mean\": 0, \"std\": 1, "
	        "\"parameter_count\": 5, \"note\": \"tab\\there\"}",
	        "{\"r\\u0061nk\": 1, \"step\": 2, \"global_l2\": 1, \"global_linf\": 1, "
	        "\"mean\": 0, \"std\": 1, \"parameter_count\": 5}",
	        /* integral values written as floats (some emitters do) */
	        "{\"rank\": 1.0, \"step\": 2e0, \"global_l2\": 1, \"global_linf\": 1, "
	        "\"mean\": 0, \"std\": 1, \"parameter_count\": 5}",
	        "  {\"rank\":1,\"step\":2,\"global_l2\":1,\"global_linf\":1,\"mean\":0,\"std\":1,"
	        "\"parameter_count\":5}\r\n",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		mlsec_poison_record r;
		mlsec_error e;
		if (parse(ok[i], &r, &e))
			fail_msg("case %zu: %s", i, e.text);
		assert_int_equal(r.rank, 1);
		assert_int_equal(r.step, 2);
	}
}

static void test_bad_records(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
	        {"{\"rank\": 1, \"step\": 2, \"global_l2\": 1, \"global_linf\": 1, \"mean\": 0, "
	         "\"parameter_count\": 5}",
	         "missing required key \"std\""},
	        {"{\"rank\": \"1\", \"step\": 2, \"global_l2\": 1, \"global_linf\": 1, \"mean\": "
	         "0, "
	         "\"std\": 1, \"parameter_count\": 5}",
	         "key \"rank\" must be a number"},
	        {"{\"rank\": 1.5, \"step\": 2, \"global_l2\": 1, \"global_linf\": 1, \"mean\": 0, "
	         "\"std\": 1, \"parameter_count\": 5}",
	         "key \"rank\" must be an integer"},
	        {"{\"rank\": 1, \"step\": 2, \"global_l2\": -1, \"global_linf\": 1, \"mean\": 0, "
	         "\"std\": 1, \"parameter_count\": 5}",
	         "key \"global_l2\" must be >= 0"},
	        {"{\"rank\": 1, \"rank\": 2, \"step\": 2, \"global_l2\": 1, \"global_linf\": 1, "
	         "\"mean\": 0, \"std\": 1, \"parameter_count\": 5}",
	         "duplicate key \"rank\""},
	        {"{\"rank\": 99999, \"step\": 2, \"global_l2\": 1, \"global_linf\": 1, \"mean\": "
	         "0, "
	         "\"std\": 1, \"parameter_count\": 5}",
	         "key \"rank\" is out of range"},
	        {"{\"rank\": 1, \"step\": 2, \"global_l2\": 1e999, \"global_linf\": 1, \"mean\": "
	         "0, "
	         "\"std\": 1, \"parameter_count\": 5}",
	         "key \"global_l2\" is not a finite number"},
	        {"{\"rank\": 1, \"step\": 2, \"global_l2\": NaN}", "invalid value"},
	        {"{\"rank\": 1} x", "trailing data after the object"},
	        {"{\"rank\": 1}{", "trailing data after the object"},
	        {"[1, 2]", "expected a JSON object"},
	        {"", "expected a JSON object"},
	        {"{\"rank\": 01}", "expected ',' or '}'"},
	        {"{\"a\": {\"b\": }, \"rank\": 1}", "invalid JSON"},
	        {"{\"a\": \"x", "unterminated string"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		mlsec_poison_record r;
		mlsec_error e;
		if (parse(bad[i][0], &r, &e) != MLSEC_ERR_PARSE)
			fail_msg("case %zu accepted: %s", i, bad[i][0]);
		if (!strstr(e.text, bad[i][1]))
			fail_msg("case %zu: '%s' does not say '%s'", i, e.text, bad[i][1]);
	}
	char big[MLSEC_POISON_MAX_RECORD + 10];
	memset(big, ' ', sizeof big);
	mlsec_poison_record r;
	assert_int_equal(mlsec_poison_record_parse(big, sizeof big, &r, NULL), MLSEC_ERR_LIMIT);
}

/* The parser's fast number path must agree bit for bit with strtod. */
static void test_numbers_match_strtod(void **state)
{
	(void)state;
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 300000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* magnitudes 1e-30 .. 1e30, both signs */
		double v = ldexp((double)(x >> 11) * 0x1.0p-53, (int)(x % 200) - 100);
		if (x & (1ULL << 62))
			v = -v;
		char num[128], rec[512];
		switch (i % 6) {
		case 0:
			snprintf(num, sizeof num, "%.17g", v);
			break;
		case 1:
			snprintf(num, sizeof num, "%.16g", v);
			break;
		case 2:
			snprintf(num, sizeof num, "%.15g", v);
			break;
		case 3:
			snprintf(num, sizeof num, "%.6g", v);
			break;
		case 4:
			snprintf(num, sizeof num, "%.3e", v);
			break;
		default:
			snprintf(num, sizeof num, "%.20f", v);
			break;
		}
		if (strlen(num) > 64)
			continue;
		snprintf(rec, sizeof rec,
		         "{\"rank\": 0, \"step\": 0, \"global_l2\": 1, \"global_linf\": 1, "
		         "\"mean\": %s, \"std\": 1, \"parameter_count\": 1}",
		         num);
		mlsec_poison_record r;
		mlsec_error e;
		if (parse(rec, &r, &e))
			fail_msg("%s: %s", num, e.text);
		double want = strtod(num, NULL);
		if (memcmp(&r.mean, &want, sizeof want))
			fail_msg("%s parsed as %.17g, strtod says %.17g", num, r.mean, want);
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A line that does not parse stops the run and names file and line. */
static void test_monitor_error_location(void **state)
{
	(void)state;
	char dir[] = "/tmp/mlsec-poison-parse-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char p0[256], p1[256];
	snprintf(p0, sizeof p0, "%s/worker_0.jsonl", dir);
	snprintf(p1, sizeof p1, "%s/worker_1.jsonl", dir);
	write_file(p0, GOOD "\n" GOOD "\n");
	write_file(p1, GOOD "\n\n{\"rank\": 1, \"step\": 43}\n");
	mlsec_poison_config c;
	mlsec_poison_config_init(&c);
	mlsec_error e;
	mlsec_error_clear(&e);
	assert_int_equal(mlsec_poison_monitor_dir(dir, &c, NULL, NULL, NULL, NULL, NULL, NULL, &e),
	                 MLSEC_ERR_PARSE);
	assert_string_equal(e.file, p1);
	assert_int_equal(e.line, 3);
	assert_non_null(strstr(e.text, "missing required key \"global_l2\""));

	/* no logs at all */
	unlink(p0);
	unlink(p1);
	mlsec_error_clear(&e);
	assert_int_equal(mlsec_poison_monitor_dir(dir, &c, NULL, NULL, NULL, NULL, NULL, NULL, &e),
	                 MLSEC_ERR_NOT_FOUND);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_good_record),
	        cmocka_unit_test(test_extra_keys_ignored),
	        cmocka_unit_test(test_bad_records),
	        cmocka_unit_test(test_numbers_match_strtod),
	        cmocka_unit_test(test_monitor_error_location),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
