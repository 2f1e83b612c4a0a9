/*
 * test_export_alloc.c - fails each mlsec allocation in turn while linting a
 * model with findings, attesting and verifying a chain: every run must
 * return (OK with findings, or NOMEM), never crash or leak (run it under
 * the sanitizer build or valgrind to see leaks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/export.h"

#define DATA "tests/data/export/"
#define MAX_STEPS 20000

static int run_lint(void)
{
	mlsec_report *r = mlsec_report_new("export");
	if (!r)
		return MLSEC_ERR_NOMEM;
	mlsec_error err;
	mlsec_err rc = mlsec_export_lint_onnx(DATA "lint/pos_trigger_if.onnx", NULL, r, NULL, &err);
	if (rc == MLSEC_OK)
		rc = mlsec_export_lint_onnx(DATA "clean_encoder.onnx", NULL, r, NULL, &err);
	mlsec_report_free(r);
	return rc;
}

static int run_chain(void)
{
	mlsec_report *r = mlsec_report_new("export");
	if (!r)
		return MLSEC_ERR_NOMEM;
	mlsec_error err;
	mlsec_artifact *la = NULL;
	mlsec_err rc = mlsec_export_lint_onnx(DATA "chain/model.onnx", NULL, r, &la, &err);
	char *text = NULL;
	size_t len = 0;
	if (rc == MLSEC_OK) {
		mlsec_export_attest_req req = {DATA "chain/model.pt",
		                               DATA "chain/model.onnx",
		                               DATA "chain/model.plan",
		                               la,
		                               NULL,
		                               NULL,
		                               "2026-01-01T00:00:00Z"};
		rc = mlsec_export_attest(&req, &text, &len, &err);
	}
	if (rc == MLSEC_OK) {
		mlsec_artifact *a = mlsec_report_add_artifact(r, "mem", "attestation");
		if (!a)
			rc = MLSEC_ERR_NOMEM;
		else
			(void)mlsec_export_attestation_check(text, len, a, &err);
	}
	mlsec_free(text);
	mlsec_report_free(r);
	return rc;
}

static void fail_each(int (*fn)(void))
{
	int completed = 0;
	long steps = 0;
	for (long n = 0; n < MAX_STEPS && !completed; n++, steps++) {
		mlsec_alloc_fail_after(n);
		int rc = fn();
		long used = mlsec_alloc_fail_after(-1);
		assert_true(rc == MLSEC_OK || rc == MLSEC_ERR_NOMEM || rc == MLSEC_ERR_PARSE ||
		            rc == MLSEC_ERR_INTERNAL);
		/* Done once a run made fewer allocations than it was allowed. */
		if (rc == MLSEC_OK && used <= n)
			completed = 1;
	}
	assert_true(completed);
	print_message("%s: %ld allocation points\n", fn == run_lint ? "lint" : "chain", steps);
	assert_int_equal(fn(), MLSEC_OK);
}

static void test_lint_alloc(void **state)
{
	(void)state;
	fail_each(run_lint);
}

static void test_chain_alloc(void **state)
{
	(void)state;
	fail_each(run_chain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_lint_alloc),
	        cmocka_unit_test(test_chain_alloc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
