/*
 * test_tensor_gradcheck.c - finite-difference checks of every operator's
 * backward pass on the single-op models of tests/data/tensor/ops (made by
 * make_op_models.py). For loss = sum(w . y) with random w, the analytic
 * d loss / d input from backward() must match central differences.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mlsec/tensor.h"
#include "test_util.h"

#define FD_STEP 1e-3
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2
#define MAX_CASES 200

static uint64_t rng_state = 88172645463325252ull;

static double urand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double loss_of(mlsec_tensor_graph *g, const float *w)
{
	mlsec_error err;
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	mlsec_tensor_shape s;
	mlsec_tensor_graph_output_name(g, 0, &s);
	const float *y = mlsec_tensor_graph_output(g, 0);
	double l = 0;
	for (size_t i = 0; i < s.numel; i++)
		l += (double)w[i] * y[i];
	return l;
}

enum { DOM_ANY, DOM_POS, DOM_DISTINCT };

static int check_case(const char *name, int domain)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/ops/%s.onnx", fixture_dir(), name);
	mlsec_onnx_model *m;
	mlsec_error err;
	if (mlsec_onnx_model_load(path, NULL, &m, &err) != MLSEC_OK) {
		print_error("%s: load: %s\n", name, err.text);
		return 0;
	}
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = 2;
	mlsec_tensor_graph *g;
	if (mlsec_tensor_graph_compile(m, &o, &g, &err) != MLSEC_OK) {
		print_error("%s: compile: %s\n", name, err.text);
		mlsec_onnx_model_free(m);
		return 0;
	}
	size_t nin = mlsec_tensor_graph_input_count(g);
	for (size_t i = 0; i < nin; i++) {
		mlsec_tensor_shape s;
		mlsec_tensor_graph_input_name(g, i, &s);
		float *x = mlsec_tensor_graph_input(g, i);
		for (size_t k = 0; k < s.numel; k++)
			x[k] = domain == DOM_POS        ? (float)(0.5 + 1.5 * urand())
			       : domain == DOM_DISTINCT ? (float)k * 0.02f - 1.0f
			                                : (float)(2 * urand() - 1);
		if (domain == DOM_DISTINCT) /* shuffle the evenly spaced values */
			for (size_t k = s.numel; k > 1; k--) {
				size_t j = (size_t)(urand() * (double)k);
				float t = x[k - 1];
				x[k - 1] = x[j < k ? j : k - 1];
				x[j < k ? j : k - 1] = t;
			}
	}
	mlsec_tensor_shape ys;
	mlsec_tensor_graph_output_name(g, 0, &ys);
	float *w = malloc(ys.numel * sizeof(float) + 4);
	for (size_t k = 0; k < ys.numel; k++)
		w[k] = (float)(2 * urand() - 1);
	loss_of(g, w);
	const float *douts[1] = {w};
	assert_int_equal(mlsec_tensor_graph_backward(g, douts, &err), MLSEC_OK);
	int ok = 1;
	for (size_t i = 0; i < nin && ok; i++) {
		mlsec_tensor_shape s;
		mlsec_tensor_graph_input_name(g, i, &s);
		float *x = mlsec_tensor_graph_input(g, i);
		float *an = malloc(s.numel * sizeof(float) + 4);
		memcpy(an, mlsec_tensor_graph_input_grad(g, i), s.numel * sizeof(float));
		for (size_t k = 0; k < s.numel; k++) {
			float x0 = x[k];
			x[k] = x0 + (float)FD_STEP;
			double lp = loss_of(g, w);
			x[k] = x0 - (float)FD_STEP;
			double lm = loss_of(g, w);
			x[k] = x0;
			double fd = (lp - lm) / (2 * FD_STEP);
			if (fabs(fd - an[k]) > FD_ATOL + FD_RTOL * fabs(fd)) {
				print_error(
				        "%s: input %zu elem %zu: backward %.6g, finite diff %.6g\n",
				        name, i, k, an[k], fd);
				ok = 0;
				break;
			}
		}
		free(an);
	}
	free(w);
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	return ok;
}

static void test_all_ops(void **state)
{
	size_t len = 0;
	char *list = fixture_read("ops/cases", ".txt", &len);
	assert_non_null(list);
	list = realloc(list, len + 1);
	list[len] = '\0';
	int cases = 0, failed = 0;
	for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
		char name[128], dom[16];
		if (sscanf(line, "%127s %15s", name, dom) != 2)
			continue;
		cases++;
		int d = strcmp(dom, "pos") == 0        ? DOM_POS
		        : strcmp(dom, "distinct") == 0 ? DOM_DISTINCT
		                                       : DOM_ANY;
		if (!check_case(name, d))
			failed++;
	}
	free(list);
	print_message("%d op cases checked, %d failed\n", cases, failed);
	assert_true(cases > 50);
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_all_ops)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
