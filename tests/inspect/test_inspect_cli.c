/*
 * test_inspect_cli.c - `mlsec inspect` end to end: exit codes 0/1/2, the
 * original's space-separated --checks, the activation table and the JSON
 * report on stdout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#define D "tests/data/inspect/"

static char out[1 << 17];

/* Runs `mlsec inspect ARGS`, stdout into out; returns the exit status. */
static int mlsec(const char *args)
{
	const char *bin = getenv("MLSEC_BIN_DIR");
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "%s/mlsec inspect %s 2>&1", bin ? bin : "build/bin", args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(mlsec("--model " D "clean_mlp.onnx --data " D "data.npz"), 0);
	/* the per-node table names every node */
	assert_non_null(strstr(out, "/0/Gemm"));
	assert_non_null(strstr(out, "/3/Relu"));
	assert_non_null(strstr(out, "fgsm epsilon 0.01"));
	assert_int_equal(mlsec("--model " D "nan_bias.onnx --checks weights activations"), 2);
	assert_non_null(strstr(out, "INSPECT-ACT-NONFINITE"));
	assert_null(strstr(out, "fgsm epsilon"));
	/* medium findings pass the default gate, fail a lower one */
	assert_int_equal(mlsec(D "rows.safetensors"), 0);
	assert_int_equal(mlsec(D "rows.safetensors --fail-on medium"), 2);
	assert_int_equal(mlsec("--model " D "truncated.onnx"), 2);
	assert_non_null(strstr(out, "INSPECT-MALFORMED"));
	assert_int_equal(mlsec("--model " D "nope.onnx"), 1);
	assert_int_equal(mlsec("--model " D "clean_mlp.onnx --checks gradients"), 1);
	assert_int_equal(mlsec("--model " D "clean_mlp.onnx --type speech"), 1);
	assert_int_equal(mlsec("--checks weights"), 1);
}

static void test_json(void **state)
{
	(void)state;
	assert_int_equal(mlsec("--model " D "class_pin.pt --checks weights --json"), 2);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	if (!j)
		fail_msg("stdout is not JSON: %s\n%s", je.text, out);
	json_t *f = json_array_get(
	        json_object_get(json_array_get(json_object_get(j, "artifacts"), 0), "findings"), 0);
	assert_string_equal(json_string_value(json_object_get(f, "rule_id")), "INSPECT-CLASS-PIN");
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_exit_codes),
	        cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
