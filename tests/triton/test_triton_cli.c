/*
 * test_triton_cli.c - `mlsec triton` end to end: exit codes 0/1/2 on the
 * shipped examples, globbing, JSON and SARIF outputs, bad flags.
 * Runs the built binary ($MLSEC_BIN_DIR/mlsec) from the source tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

static char mlsec[1024];

static int run(const char *args)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "%s triton %s >/dev/null 2>&1", mlsec, args);
	int st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(run("examples/triton/clean"), 0);
	assert_int_equal(run("examples/triton/hostile"), 2);
	assert_int_equal(run("examples/triton/hostile/llm_python/config.pbtxt --fail-on critical"),
	                 0);
	assert_int_equal(run("examples/triton/hostile/custom_ops/config.pbtxt --fail-on critical"),
	                 2);
	assert_int_equal(
	        run("examples/triton/clean --launch-args examples/triton/hostile/launch-args.txt"),
	        2);
	assert_int_equal(run("examples/triton/clean --fail-on info"),
	                 2); /* the auth note is info */
	assert_int_equal(run("no/such/dir"), 1);
	assert_int_equal(run("examples/triton/clean --launch-args no/such/file"), 1);
	assert_int_equal(run("examples/triton/clean --bogus"), 1);
	assert_int_equal(run("examples/triton/clean --fail-on severe"), 1);
	assert_int_equal(run(""), 1);
	assert_int_equal(run("--help"), 0);
	assert_int_equal(run("'examples/triton/**/nothing.pbtxt'"), 1);
}

static void test_glob_and_json(void **state)
{
	(void)state;
	char path[] = "/tmp/mlsec-triton-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	char args[2048];
	snprintf(args, sizeof args, "'examples/triton/**/config.pbtxt' --json=%s", path);
	assert_int_equal(run(args), 2);
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "stage")), "triton");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 2);
	assert_int_equal(json_array_size(json_object_get(j, "artifacts")), 4);
	json_decref(j);
	snprintf(args, sizeof args, "examples/triton/hostile --sarif %s", path);
	assert_int_equal(run(args), 2);
	j = json_load_file(path, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "version")), "2.1.0");
	json_decref(j);
	unlink(path);
}

static void test_malformed_is_a_finding(void **state)
{
	(void)state;
	char dir[] = "/tmp/mlsec-triton-dXXXXXX";
	assert_non_null(mkdtemp(dir));
	char p[1100];
	snprintf(p, sizeof p, "%s/config.pbtxt", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("name: \"x\"\ninput { dims: [1, }\n", f);
	fclose(f);
	char args[1200];
	snprintf(args, sizeof args, "%s", dir);
	assert_int_equal(run(args), 2); /* never "clean" */
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	const char *bin = getenv("MLSEC_BIN_DIR");
	snprintf(mlsec, sizeof mlsec, "%s/mlsec", bin ? bin : "build/bin");
	const char *src = getenv("MLSEC_SOURCE_DIR");
	if (src && chdir(src) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_exit_codes),
	        cmocka_unit_test(test_glob_and_json),
	        cmocka_unit_test(test_malformed_is_a_finding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
