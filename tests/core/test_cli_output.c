/* test_cli_output.c - shared output flags and exit codes of the CLIs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

static int parse(mlsec_cli_output *o, int argc, char **argv, int *positional)
{
	*positional = 0;
	for (int i = 1; i < argc; i++) {
		int r = mlsec_cli_output_flag(o, "test", argc, argv, &i);
		if (r < 0)
			return -1;
		if (r == 0)
			(*positional)++;
	}
	return 0;
}

static void test_flags(void **state)
{
	(void)state;
	mlsec_cli_output o;
	int pos;
	char *a1[] = {"x", "--json", "models/", "--fail-on", "MEDIUM", "--summary"};
	mlsec_cli_output_init(&o);
	assert_int_equal(parse(&o, 6, a1, &pos), 0);
	assert_true(o.json);
	assert_null(o.json_path); /* models/ stays a target */
	assert_int_equal(pos, 1);
	assert_int_equal(o.gate, MLSEC_SEV_MEDIUM);
	assert_true(o.summary);

	char *a2[] = {"x", "--json", "out.json", "--sarif=r.sarif", "t"};
	mlsec_cli_output_init(&o);
	assert_int_equal(parse(&o, 5, a2, &pos), 0);
	assert_string_equal(o.json_path, "out.json");
	assert_string_equal(o.sarif_path, "r.sarif");
	assert_int_equal(pos, 1);

	char *a3[] = {"x", "--fail-on", "severe"};
	mlsec_cli_output_init(&o);
	assert_int_equal(parse(&o, 3, a3, &pos), -1);
	char *a4[] = {"x", "--sarif"};
	assert_int_equal(parse(&o, 2, a4, &pos), -1);
	char *a5[] = {"x", "--fail-on"};
	assert_int_equal(parse(&o, 2, a5, &pos), -1);
}

static void test_emit_exit_codes_and_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/mlsec-cli-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char jp[128], sp[128];
	snprintf(jp, sizeof jp, "%s/r.json", dir);
	snprintf(sp, sizeof sp, "%s/r.sarif", dir);
	mlsec_report *r = mlsec_report_new("triton");
	mlsec_artifact *a = mlsec_report_add_artifact(r, "c.pbtxt", NULL);
	mlsec_artifact_add_finding(a, "T-MED", MLSEC_SEV_MEDIUM, "medium thing", NULL);
	mlsec_cli_output o;
	mlsec_cli_output_init(&o);
	o.quiet = 1;
	o.json = 1;
	o.json_path = jp;
	o.sarif_path = sp;
	assert_int_equal(mlsec_cli_emit(r, &o, "test"), 0);
	o.gate = MLSEC_SEV_MEDIUM;
	assert_int_equal(mlsec_cli_emit(r, &o, "test"), 2);
	json_t *j = json_load_file(jp, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 2);
	json_decref(j);
	j = json_load_file(sp, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	/* An unwritable output is a tool error when there is no finding. */
	o.gate = MLSEC_SEV_HIGH;
	o.json_path = "/nonexistent/dir/r.json";
	assert_int_equal(mlsec_cli_emit(r, &o, "test"), 1);
	mlsec_report_free(r);
	unlink(jp);
	unlink(sp);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_flags),
	        cmocka_unit_test(test_emit_exit_codes_and_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
