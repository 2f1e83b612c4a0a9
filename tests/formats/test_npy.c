/* test_npy.c - .npy header parsing: repeated keys and object dtypes must
 * never let a pickle pass as a plain array (found by npy_fuzz). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/npy.h"

/* Builds a version-1 .npy header around dict (padded like numpy). */
static size_t make(uint8_t *out, const char *dict)
{
	size_t dl = strlen(dict), hl = dl + 1;
	hl += (64 - (10 + hl) % 64) % 64;
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	out[8] = (uint8_t)(hl & 0xff);
	out[9] = (uint8_t)(hl >> 8);
	memset(out + 10, ' ', hl);
	memcpy(out + 10, dict, dl);
	out[10 + hl - 1] = '\n';
	return 10 + hl;
}

static mlsec_err parse(const char *dict, mlsec_npy_info *info)
{
	uint8_t buf[512];
	size_t n = make(buf, dict);
	mlsec_error e;
	memset(info, 0, sizeof *info);
	return mlsec_npy_parse(buf, n, info, &e);
}

static void test_plain(void **state)
{
	(void)state;
	mlsec_npy_info i;
	assert_int_equal(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", &i),
	                 MLSEC_OK);
	assert_int_equal(i.ndim, 2);
	assert_int_equal(i.numel, 12);
	assert_false(i.is_object);
	assert_int_equal(i.dtype, MLSEC_DT_F32);
}

static void test_object_dtypes(void **state)
{
	(void)state;
	const char *obj[] = {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
	                     "{'descr': 'O', 'fortran_order': False, 'shape': (2,), }",
	                     "{'descr': '<O8', 'fortran_order': False, 'shape': (2,), }"};
	for (size_t k = 0; k < 3; k++) {
		mlsec_npy_info i;
		assert_int_equal(parse(obj[k], &i), MLSEC_OK);
		assert_true(i.is_object);
	}
}

static void test_repeated_keys_rejected(void **state)
{
	(void)state;
	mlsec_npy_info i;
	/* numpy keeps the last key: this one unpickles. */
	assert_int_equal(
	        parse("{'descr': '<f8', 'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
	              &i),
	        MLSEC_ERR_PARSE);
	assert_int_equal(
	        parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'shape': (6,), }",
	              &i),
	        MLSEC_ERR_PARSE);
	assert_int_equal(parse("{'descr': '<f4', 'fortran_order': False, 'fortran_order': True, "
	                       "'shape': (2,), }",
	                       &i),
	                 MLSEC_ERR_PARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plain),
	        cmocka_unit_test(test_object_dtypes),
	        cmocka_unit_test(test_repeated_keys_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
