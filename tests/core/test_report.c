/* test_report.c - the findings model, exit codes, JSON round trip, SARIF,
 * and allocation failure at every step of building a report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/report.h"

static mlsec_report *sample(void)
{
	mlsec_report *r = mlsec_report_new("triton");
	if (!r)
		return NULL;
	mlsec_artifact *a = mlsec_report_add_artifact(r, "models/a/config.pbtxt", "triton-config");
	if (!a)
		goto fail;
	mlsec_finding *f =
	        mlsec_artifact_add_finding(a, "TRITON-OP-LIBRARY", MLSEC_SEV_CRITICAL,
	                                   "Custom op library", "loads %s", "/x/libop.so");
	if (!f ||
	    mlsec_finding_set_location(f, NULL, 12, 3, "model_operations.op_library_filename") ||
	    mlsec_finding_set_evidence(f, "value", "%s", "/x/libop.so") ||
	    mlsec_finding_set_remediation(f, "remove it"))
		goto fail;
	if (!mlsec_artifact_add_finding(a, "TRITON-NO-RATE-LIMITER", MLSEC_SEV_LOW,
	                                "No rate limiter", NULL))
		goto fail;
	mlsec_artifact *b = mlsec_report_add_artifact(r, "models/b/config.pbtxt", NULL);
	if (!b)
		goto fail;
	mlsec_error e;
	mlsec_error_clear(&e);
	mlsec_error_set_at(&e, MLSEC_ERR_PARSE, "models/b/config.pbtxt", 4, 7, -1, "expected '}'");
	if (!mlsec_artifact_add_malformed(b, "TRITON", &e))
		goto fail;
	return r;
fail:
	mlsec_report_free(r);
	return NULL;
}

static void test_severity_names(void **state)
{
	(void)state;
	mlsec_severity s;
	assert_int_equal(mlsec_severity_parse("HIGH", &s), MLSEC_OK);
	assert_int_equal(s, MLSEC_SEV_HIGH);
	assert_int_equal(mlsec_severity_parse("critical", &s), MLSEC_OK);
	assert_int_equal(s, MLSEC_SEV_CRITICAL);
	assert_int_equal(mlsec_severity_parse("severe", &s), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_severity_parse(NULL, &s), MLSEC_ERR_INVALID_ARG);
	assert_string_equal(mlsec_severity_name(MLSEC_SEV_INFO), "info");
	assert_string_equal(mlsec_severity_name((mlsec_severity)42), "unknown");
}

static void test_exit_codes_follow_gate(void **state)
{
	(void)state;
	mlsec_report *r = sample();
	assert_non_null(r);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_CRITICAL), 2);
	size_t c[MLSEC_SEV__COUNT];
	mlsec_report_counts(r, c);
	assert_int_equal(c[MLSEC_SEV_CRITICAL], 1);
	assert_int_equal(c[MLSEC_SEV_HIGH], 1); /* the MALFORMED finding */
	assert_int_equal(c[MLSEC_SEV_LOW], 1);
	mlsec_report_free(r);

	r = mlsec_report_new("triton");
	mlsec_artifact *a = mlsec_report_add_artifact(r, "x", NULL);
	mlsec_artifact_add_finding(a, "X-LOW", MLSEC_SEV_LOW, "low", NULL);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_LOW), 2);
	mlsec_report_add_error(r, "stage %s timed out", "poison");
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 1);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_LOW), 2); /* findings win */
	mlsec_report_free(r);
}

static void test_malformed_is_high_with_location(void **state)
{
	(void)state;
	mlsec_report *r = sample();
	const mlsec_artifact *b = mlsec_report_artifact(r, 1);
	const mlsec_finding *f = mlsec_artifact_finding(b, 0);
	assert_string_equal(f->rule_id, "TRITON-MALFORMED");
	assert_int_equal(f->severity, MLSEC_SEV_HIGH);
	assert_int_equal(f->line, 4);
	assert_int_equal(f->column, 7);
	assert_string_equal(f->detail, "expected '}'");
	mlsec_report_free(r);
}

static void test_json_round_trip(void **state)
{
	(void)state;
	mlsec_report *r = sample();
	mlsec_artifact_set_digest(
	        mlsec_report_artifact(r, 0),
	        "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789", 42);
	json_object_set_new(mlsec_artifact_details(mlsec_report_artifact(r, 0)), "models",
	                    json_integer(1));
	json_t *j = mlsec_report_to_json(r, MLSEC_SEV_HIGH);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "tool")), "mlsec");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 2);
	json_t *a0 = json_array_get(json_object_get(j, "artifacts"), 0);
	assert_string_equal(json_string_value(json_object_get(a0, "sha256")),
	                    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	json_t *f0 = json_array_get(json_object_get(a0, "findings"), 0);
	assert_string_equal(json_string_value(json_object_get(f0, "severity")), "critical");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(f0, "location"), "field")),
	        "model_operations.op_library_filename");
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(j, "summary"), "total")), 3);

	mlsec_report *m = mlsec_report_new("cluster");
	mlsec_error e;
	assert_int_equal(mlsec_report_merge_json(m, j, &e), MLSEC_OK);
	json_t *j2 = mlsec_report_to_json(m, MLSEC_SEV_HIGH);
	/* Same artifacts and findings, only the top-level stage differs. */
	assert_true(json_equal(json_object_get(j, "artifacts"), json_object_get(j2, "artifacts")));
	json_decref(j2);
	json_decref(j);
	mlsec_report_free(m);
	mlsec_report_free(r);
}

static void test_merge_rejects_bad_reports(void **state)
{
	(void)state;
	const char *bad[] = {
	        "[]",
	        "{\"artifacts\": 3}",
	        "{\"artifacts\": [1]}",
	        "{\"artifacts\": [{\"findings\": [{\"rule_id\": \"X\", \"severity\": "
	        "\"awful\"}]}]}",
	        "{\"artifacts\": [{\"findings\": [{\"severity\": \"high\"}]}]}",
	        "{\"artifacts\": [{\"sha256\": \"zz\"}]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		assert_non_null(j);
		mlsec_report *m = mlsec_report_new("cluster");
		mlsec_error e;
		mlsec_error_clear(&e);
		assert_int_equal(mlsec_report_merge_json(m, j, &e), MLSEC_ERR_PARSE);
		assert_true(e.text[0] != '\0');
		mlsec_report_free(m);
		json_decref(j);
	}
}

static void test_sarif_structure(void **state)
{
	(void)state;
	mlsec_report *r = sample();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(mlsec_report_write_sarif(r, f), MLSEC_OK);
	fclose(f);
	json_error_t je;
	json_t *s = json_loads(buf, 0, &je);
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(s, "version")), "2.1.0");
	json_t *run = json_array_get(json_object_get(s, "runs"), 0);
	json_t *rules =
	        json_object_get(json_object_get(json_object_get(run, "tool"), "driver"), "rules");
	json_t *results = json_object_get(run, "results");
	assert_int_equal(json_array_size(rules), 3);
	assert_int_equal(json_array_size(results), 3);
	json_t *r0 = json_array_get(results, 0);
	assert_string_equal(json_string_value(json_object_get(r0, "level")), "error");
	json_t *region =
	        json_object_get(json_object_get(json_array_get(json_object_get(r0, "locations"), 0),
	                                        "physicalLocation"),
	                        "region");
	assert_int_equal(json_integer_value(json_object_get(region, "startLine")), 12);
	json_t *r1 = json_array_get(results, 1);
	assert_string_equal(json_string_value(json_object_get(r1, "level")), "note");
	json_decref(s);
	free(buf);
	mlsec_report_free(r);
}

static void test_table_output(void **state)
{
	(void)state;
	mlsec_report *r = sample();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mlsec_table_opts o = {.gate = MLSEC_SEV_HIGH, .verbose = 1};
	mlsec_report_print_table(r, &o, f);
	fclose(f);
	assert_non_null(strstr(buf, "CRITICAL"));
	assert_non_null(strstr(buf, "TRITON-OP-LIBRARY"));
	assert_non_null(strstr(buf, "line 12:3 model_operations.op_library_filename"));
	assert_non_null(strstr(buf, "fix: remove it"));
	assert_non_null(strstr(buf, "FAIL"));
	assert_null(strstr(buf, "\033[")); /* no colour unless asked */
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	o.summary = 1;
	mlsec_report_print_table(r, &o, f);
	fclose(f);
	assert_non_null(strstr(
	        buf, "models/a/config.pbtxt  critical=1 high=0 medium=0 low=1 info=0 total=2"));
	free(buf);
	mlsec_report_free(r);
}

/* Fail each allocation in turn: building and serialising must never crash
 * and (under ASan/LSan) never leak. */
static void test_allocation_failures(void **state)
{
	(void)state;
	for (long n = 0; n < 200; n++) {
		mlsec_alloc_fail_after(n);
		mlsec_report *r = sample();
		mlsec_alloc_fail_after(-1);
		if (r) {
			json_t *j = mlsec_report_to_json(r, MLSEC_SEV_HIGH);
			json_decref(j);
			mlsec_report_free(r);
			if (n > 60)
				break; /* all allocations of sample() succeeded */
		}
	}
	mlsec_alloc_fail_after(-1);
}

static void test_error_format(void **state)
{
	(void)state;
	mlsec_error e;
	char buf[256];
	mlsec_error_clear(&e);
	mlsec_error_set_at(&e, MLSEC_ERR_PARSE, "a.pbtxt", 3, 9, -1, "unknown field '%s'", "foo");
	assert_string_equal(mlsec_error_format(&e, buf, sizeof buf),
	                    "a.pbtxt:3:9: unknown field 'foo'");
	mlsec_error_set_at(&e, MLSEC_ERR_PARSE, "m.pt", 0, 0, 77, "bad opcode");
	assert_string_equal(mlsec_error_format(&e, buf, sizeof buf), "m.pt:offset 77: bad opcode");
	assert_string_equal(mlsec_strerror(MLSEC_ERR_TIMEOUT), "timed out");
	assert_string_equal(mlsec_strerror((mlsec_err)999), "unknown error");
}

/* Runs of paths as k worker reports would leave them, merged in order. */
static void test_sort_merges_runs(void **state)
{
	(void)state;
	static const char *const order[] = {"k/01", "k/05", "k/09", "k/02", "k/03", "k/04",
	                                    "k/07", "k/06", "k/08", "k/00", "k/10"};
	const size_t n = sizeof order / sizeof *order;
	mlsec_report *r = mlsec_report_new("triton");
	assert_non_null(r);
	assert_non_null(mlsec_report_add_artifact(r, "zz-before", NULL)); /* not sorted */
	for (size_t i = 0; i < n; i++)
		assert_non_null(mlsec_report_add_artifact(r, order[i], NULL));
	/* Two artifacts with one path keep their order (tagged by format). */
	assert_non_null(mlsec_report_add_artifact(r, "k/05", "second"));
	assert_int_equal(mlsec_report_add_error(r, "%s", "b: unreadable"), MLSEC_OK);
	assert_int_equal(mlsec_report_add_error(r, "%s", "a: unreadable"), MLSEC_OK);
	assert_int_equal(mlsec_report_sort(r, 1, 0), MLSEC_OK);
	assert_string_equal(mlsec_artifact_path(mlsec_report_artifact(r, 0)), "zz-before");
	char want[8];
	size_t at = 1;
	for (int k = 0; k <= 10; k++) {
		snprintf(want, sizeof want, "k/%02d", k);
		assert_string_equal(mlsec_artifact_path(mlsec_report_artifact(r, at)), want);
		if (k == 5) {
			at++;
			assert_string_equal(mlsec_artifact_path(mlsec_report_artifact(r, at)),
			                    want);
			assert_string_equal(mlsec_artifact_format(mlsec_report_artifact(r, at)),
			                    "second");
		}
		at++;
	}
	assert_int_equal(at, mlsec_report_artifact_count(r));
	assert_string_equal(mlsec_report_error(r, 0), "a: unreadable");
	assert_string_equal(mlsec_report_error(r, 1), "b: unreadable");
	/* Sorted input, one item, or nothing past the start: unchanged. */
	assert_int_equal(mlsec_report_sort(r, 1, 0), MLSEC_OK);
	assert_string_equal(mlsec_artifact_path(mlsec_report_artifact(r, 1)), "k/00");
	assert_int_equal(mlsec_report_sort(r, 100, 100), MLSEC_OK);
	mlsec_report_free(r);
}

/* Static strings are referenced, the detail is copied. */
static void test_static_finding(void **state)
{
	(void)state;
	static const char id[] = "TRITON-X", title[] = "Title", fix[] = "Fix it";
	mlsec_report *r = mlsec_report_new("triton");
	assert_non_null(r);
	mlsec_artifact *a = mlsec_report_add_artifact(r, "m/config.pbtxt", NULL);
	assert_non_null(a);
	char detail[32];
	snprintf(detail, sizeof detail, "value %d", 7);
	mlsec_finding *f = mlsec_artifact_add_finding_static(a, id, MLSEC_SEV_HIGH, title, detail);
	assert_non_null(f);
	mlsec_finding_set_remediation_static(f, fix);
	detail[0] = 'X'; /* the caller's buffer may change: the detail was copied */
	assert_ptr_equal(f->rule_id, id);
	assert_ptr_equal(f->title, title);
	assert_ptr_equal(f->remediation, fix);
	assert_string_equal(f->detail, "value 7");
	assert_int_equal(f->severity, MLSEC_SEV_HIGH);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	json_t *j = mlsec_report_to_json(r, MLSEC_SEV_HIGH);
	json_t *jf = json_array_get(
	        json_object_get(json_array_get(json_object_get(j, "artifacts"), 0), "findings"), 0);
	assert_string_equal(json_string_value(json_object_get(jf, "rule_id")), "TRITON-X");
	assert_string_equal(json_string_value(json_object_get(jf, "remediation")), "Fix it");
	json_decref(j);
	mlsec_report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_severity_names),
	        cmocka_unit_test(test_exit_codes_follow_gate),
	        cmocka_unit_test(test_malformed_is_high_with_location),
	        cmocka_unit_test(test_json_round_trip),
	        cmocka_unit_test(test_merge_rejects_bad_reports),
	        cmocka_unit_test(test_sarif_structure),
	        cmocka_unit_test(test_table_output),
	        cmocka_unit_test(test_allocation_failures),
	        cmocka_unit_test(test_error_format),
	        cmocka_unit_test(test_sort_merges_runs),
	        cmocka_unit_test(test_static_finding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
