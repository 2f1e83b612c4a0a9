/* test_options.c - bounded numeric engine options. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/options.h"

static void test_numbers_and_strings(void **state)
{
	(void)state;
	double d = -1;
	mlsec_error e;
	json_t *v = json_real(0.25);
	assert_int_equal(mlsec_option_number(v, "eps", 0, 1, &d, &e), MLSEC_OK);
	assert_true(d == 0.25);
	json_decref(v);
	v = json_string("0.5");
	assert_int_equal(mlsec_option_number(v, "eps", 0, 1, &d, &e), MLSEC_OK);
	assert_true(d == 0.5);
	json_decref(v);
}

static void test_rejects(void **state)
{
	(void)state;
	double d = 7;
	mlsec_error e;
	const char *bad[] = {"\"x\"", "\"0.5x\"", "\"\"", "[1]",    "null",
	                     "true",  "2",        "-0.1", "\"nan\""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		assert_int_equal(mlsec_option_number(v, "eps", 0, 1, &d, &e),
		                 MLSEC_ERR_INVALID_ARG);
		assert_non_null(strstr(e.text, "eps"));
		json_decref(v);
	}
	assert_true(d == 7); /* untouched on error */
	json_t *v = json_real(1.5);
	assert_int_equal(mlsec_option_integer(v, "steps", 0, 10, &d, &e), MLSEC_ERR_INVALID_ARG);
	json_decref(v);
	v = json_string("3");
	assert_int_equal(mlsec_option_integer(v, "steps", 0, 10, &d, &e), MLSEC_OK);
	assert_true(d == 3);
	json_decref(v);
}

/* A toy parser: "a" -> 1, "b" -> 2, "a,b" -> 3, anything else an error. */
static mlsec_err ab(const char *s, unsigned *out, mlsec_error *err)
{
	unsigned bits = 0;
	for (; *s; s++) {
		if (*s == 'a')
			bits |= 1;
		else if (*s == 'b')
			bits |= 2;
		else if (*s != ',')
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "bad name");
	}
	*out = bits;
	return MLSEC_OK;
}

static void test_flags(void **state)
{
	(void)state;
	mlsec_error e;
	unsigned bits = 99;
	json_t *v = json_loads("[\"a\", \"b\"]", 0, NULL);
	assert_int_equal(mlsec_option_flags(v, "k", ab, &bits, &e), MLSEC_OK);
	assert_int_equal(bits, 3);
	json_decref(v);
	v = json_string("b");
	assert_int_equal(mlsec_option_flags(v, "k", ab, &bits, &e), MLSEC_OK);
	assert_int_equal(bits, 2);
	json_decref(v);
	v = json_loads("[]", 0, NULL);
	assert_int_equal(mlsec_option_flags(v, "k", ab, &bits, &e), MLSEC_OK);
	assert_int_equal(bits, 0);
	json_decref(v);
	const char *bad[] = {"[1]", "[\"a\", \"x\"]", "3", "{}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		bits = 99;
		assert_int_equal(mlsec_option_flags(v, "k", ab, &bits, &e), MLSEC_ERR_INVALID_ARG);
		assert_int_equal(bits, 99);
		json_decref(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_numbers_and_strings),
	        cmocka_unit_test(test_rejects),
	        cmocka_unit_test(test_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
