/*
 * test_tensor_api.c - the executor's API contract beyond numerics:
 * activation hooks and node listing (inspect stage), forward-only plans
 * reusing buffers, the supported-op list, loss edge cases, the walk
 * helper seeing subgraphs, and the BLAS core helpers.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mlsec/tensor.h"
#include "test_util.h"

static mlsec_onnx_model *load(const char *name)
{
	char path[1200];
	fixture_path(path, sizeof path, name, ".onnx");
	mlsec_onnx_model *m = NULL;
	mlsec_error err;
	assert_int_equal(mlsec_onnx_model_load(path, NULL, &m, &err), MLSEC_OK);
	return m;
}

typedef struct hook_log {
	int calls;
	int relu_negative;
	char last_op[32];
	size_t last_numel;
} hook_log;

static void hook(const mlsec_tensor_node_info *n, const float *data,
                 const mlsec_tensor_shape *shape, void *ctx)
{
	hook_log *h = ctx;
	h->calls++;
	if (strcmp(n->op_type, "Relu") == 0)
		for (size_t i = 0; i < shape->numel; i++)
			if (data[i] < 0)
				h->relu_negative++;
	snprintf(h->last_op, sizeof h->last_op, "%s", n->op_type);
	h->last_numel = shape->numel;
}

static void test_hooks_and_nodes(void **state)
{
	mlsec_onnx_model *m = load("lenet");
	mlsec_tensor_graph *g;
	mlsec_error err;
	assert_int_equal(mlsec_tensor_graph_compile(m, NULL, &g, &err), MLSEC_OK);
	size_t nn = mlsec_tensor_graph_node_count(g);
	/* Shape/Gather/Unsqueeze/Concat/Constant were folded: 16 nodes, 10 run */
	assert_int_equal(nn, 10);
	mlsec_tensor_node_info info;
	mlsec_tensor_shape s;
	assert_int_equal(mlsec_tensor_graph_node(g, 0, &info, &s), MLSEC_OK);
	assert_string_equal(info.op_type, "Conv");
	assert_int_equal(s.ndim, 4);
	assert_int_equal(s.dims[1], 4);
	assert_int_equal(mlsec_tensor_graph_node(g, nn, &info, &s), MLSEC_ERR_INVALID_ARG);
	hook_log h = {0};
	mlsec_tensor_graph_set_hook(g, hook, &h);
	size_t n;
	float *in = fixture_read("lenet", ".in.f32", &n);
	memcpy(mlsec_tensor_graph_input(g, 0), in, 784 * 4);
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	assert_int_equal(h.calls, (int)nn);
	assert_int_equal(h.relu_negative, 0);
	assert_string_equal(h.last_op, "Gemm");
	assert_int_equal(h.last_numel, 10);
	mlsec_tensor_graph_set_hook(g, NULL, NULL);
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	assert_int_equal(h.calls, (int)nn);
	free(in);
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
}

static void test_forward_only_smaller(void **state)
{
	mlsec_onnx_model *m = load("rescnn");
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = 8;
	mlsec_tensor_graph *g1, *g2;
	mlsec_error err;
	assert_int_equal(mlsec_tensor_graph_compile(m, &o, &g1, &err), MLSEC_OK);
	o.grad = 0;
	assert_int_equal(mlsec_tensor_graph_compile(m, &o, &g2, &err), MLSEC_OK);
	uint64_t a1 = mlsec_tensor_graph_arena_bytes(g1), a2 = mlsec_tensor_graph_arena_bytes(g2);
	print_message("arena: %llu bytes with gradients, %llu forward-only\n",
	              (unsigned long long)a1, (unsigned long long)a2);
	assert_true(a2 * 2 < a1);
	/* a work limit is enforced */
	double fl = mlsec_tensor_graph_flops(g1);
	assert_true(fl > 1e6 && fl < 1e9);
	o.max_flops = fl / 2;
	mlsec_tensor_graph *g4 = NULL;
	assert_int_equal(mlsec_tensor_graph_compile(m, &o, &g4, &err), MLSEC_ERR_LIMIT);
	assert_non_null(strstr(err.text, "operations"));
	o.max_flops = 4e12;
	/* an arena limit is enforced */
	o.max_arena_bytes = 1000;
	mlsec_tensor_graph *g3 = NULL;
	assert_int_equal(mlsec_tensor_graph_compile(m, &o, &g3, &err), MLSEC_ERR_LIMIT);
	assert_null(g3);
	mlsec_tensor_graph_free(g1);
	mlsec_tensor_graph_free(g2);
	mlsec_onnx_model_free(m);
}

static void test_supported_ops(void **state)
{
	const char *const *ops = mlsec_tensor_supported_ops();
	size_t n = 0;
	for (; ops[n]; n++)
		if (n)
			assert_true(strcmp(ops[n - 1], ops[n]) < 0); /* binary search needs order */
	assert_true(n >= 50);
}

static void test_losses(void **state)
{
	const float z[6] = {2, 1, 0, 0, 0, 3};
	const int64_t y[2] = {0, 2};
	float loss, d[6];
	mlsec_error err;
	assert_int_equal(
	        mlsec_tensor_loss_eval(MLSEC_LOSS_CROSS_ENTROPY, z, 2, 3, y, 0, &loss, d, &err),
	        MLSEC_OK);
	double l0 = log(exp(2) + exp(1) + 1) - 2, l1 = log(2 + exp(3)) - 3;
	assert_float_equal(loss, (l0 + l1) / 2, 1e-5);
	double s = 0;
	for (int i = 0; i < 6; i++)
		s += d[i];
	assert_float_equal(s, 0, 1e-6); /* softmax - onehot sums to zero per row */
	/* CW: margins 2-1 = 1 and 3-0 = 3; kappa 2 clamps neither from below */
	assert_int_equal(
	        mlsec_tensor_loss_eval(MLSEC_LOSS_CW_MARGIN, z, 2, 3, y, 2, &loss, d, &err),
	        MLSEC_OK);
	assert_float_equal(loss, 2.0, 1e-6);
	assert_float_equal(d[0], 0.5, 1e-6);
	assert_float_equal(d[1], -0.5, 1e-6);
	const int64_t y2[2] = {1, 0}; /* margins 1-2 = -1 -> clamped at -0.5; 0-3 = -3 -> -0.5 */
	assert_int_equal(
	        mlsec_tensor_loss_eval(MLSEC_LOSS_CW_MARGIN, z, 2, 3, y2, 0.5f, &loss, d, &err),
	        MLSEC_OK);
	assert_float_equal(loss, -0.5, 1e-6);
	for (int i = 0; i < 6; i++)
		assert_float_equal(d[i], 0, 0);
	const int64_t bad[2] = {0, 3};
	assert_int_equal(mlsec_tensor_loss_eval(MLSEC_LOSS_CROSS_ENTROPY, z, 2, 3, bad, 0, &loss,
	                                        NULL, &err),
	                 MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "label 3"));
}

static int count_graphs(const Onnx__GraphProto *g, size_t depth, const char *where, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static void test_walk(void **state)
{
	mlsec_onnx_model *m = load("attn");
	int graphs = 0;
	mlsec_onnx_visitor v = {.graph = count_graphs};
	assert_int_equal(mlsec_onnx_model_walk(mlsec_onnx_model_proto(m), &v, 8, &graphs), 0);
	assert_int_equal(graphs, 1);
	assert_int_equal(mlsec_onnx_model_opset(m, ""), 17);
	assert_int_equal(mlsec_onnx_model_opset(m, "ai.onnx"), 17);
	assert_int_equal(mlsec_onnx_model_opset(m, "com.microsoft"), -1);
	mlsec_onnx_model_free(m);
}

/* NaN must survive Relu (ONNX/PyTorch semantics): a NaN hidden in a layer
 * has to reach the logits, never become a clean zero. */
static void test_relu_propagates_nan(void **state)
{
	(void)state;
	mlsec_onnx_model *m = load("ops/relu");
	mlsec_tensor_graph *g = NULL;
	mlsec_error err;
	assert_int_equal(mlsec_tensor_graph_compile(m, NULL, &g, &err), MLSEC_OK);
	mlsec_tensor_shape shape;
	mlsec_tensor_graph_input_name(g, 0, &shape);
	float *in = mlsec_tensor_graph_input(g, 0);
	for (size_t i = 0; i < shape.numel; i++)
		in[i] = i % 3 == 0 ? NAN : (i % 3 == 1 ? -1.0f : 2.0f);
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	const float *out = mlsec_tensor_graph_output(g, 0);
	for (size_t i = 0; i < shape.numel; i++) {
		float want = i % 3 == 1 ? 0.0f : 2.0f;
		if (i % 3 == 0)
			assert_true(isnan(out[i]));
		else
			assert_true(out[i] == want);
	}
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
}

/* MaxPool 2x2/2 (the vectorised path): a window holding a NaN yields NaN
 * and sends its gradient to the last NaN; otherwise the first maximum in
 * scan order wins ties. Checked against a reference per window. */
static void test_maxpool_nan_and_ties(void **state)
{
	(void)state;
	mlsec_onnx_model *m = load("ops/maxpool"); /* x[2, 2, 6, 6] -> y[2, 2, 3, 3] */
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = 2;
	mlsec_tensor_graph *g = NULL;
	mlsec_error err;
	assert_int_equal(mlsec_tensor_graph_compile(m, &o, &g, &err), MLSEC_OK);
	mlsec_tensor_shape shape;
	mlsec_tensor_graph_input_name(g, 0, &shape);
	assert_int_equal(shape.numel, 144);
	float *in = mlsec_tensor_graph_input(g, 0);
	/* Windows cycle through: all equal, a tie for the max, one NaN, two
	 * NaNs, a NaN first then larger values, a max in the last place. */
	static const float pat[6][4] = {{1, 1, 1, 1},     {0, 5, 5, 2},   {3, NAN, 9, 1},
	                                {NAN, 2, 7, NAN}, {NAN, 4, 8, 6}, {-3, -2, -1, 0}};
	for (int64_t pc = 0; pc < 4; pc++)
		for (int64_t oy = 0; oy < 3; oy++)
			for (int64_t ox = 0; ox < 3; ox++) {
				const float *w = pat[(pc * 9 + oy * 3 + ox) % 6];
				float *r = in + pc * 36 + 2 * oy * 6 + 2 * ox;
				r[0] = w[0], r[1] = w[1], r[6] = w[2], r[7] = w[3];
			}
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	const float *out = mlsec_tensor_graph_output(g, 0);
	float dout[36];
	for (int i = 0; i < 36; i++)
		dout[i] = (float)(i + 1);
	const float *seeds[1] = {dout};
	assert_int_equal(mlsec_tensor_graph_backward(g, seeds, &err), MLSEC_OK);
	const float *dx = mlsec_tensor_graph_input_grad(g, 0);
	for (int64_t i = 0; i < 36; i++) {
		const float *w = pat[i % 6];
		int want = 0; /* the reference scan */
		for (int k = 1; k < 4; k++)
			if (w[k] > w[want] || w[k] != w[k])
				want = k;
		if (w[want] != w[want])
			assert_true(isnan(out[i]));
		else
			assert_true(out[i] == w[want]);
		int64_t pc = i / 9, oy = i % 9 / 3, ox = i % 3;
		for (int k = 0; k < 4; k++) {
			int64_t at = pc * 36 + (2 * oy + k / 2) * 6 + 2 * ox + k % 2;
			assert_true(dx[at] == (k == want ? dout[i] : 0.0f));
		}
	}
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
}

static void test_blas_core(void **state)
{
	const char *core = mlsec_tensor_blas_core();
	assert_non_null(core);
	/* OpenBLAS is a build dependency: it must be found at run time too
	 * (it is dlopen()ed), or every product silently takes the slow kernel. */
	assert_null(strstr(core, "built-in"));
	const char *hint = mlsec_tensor_blas_core_hint();
	print_message("OpenBLAS core %s, hint %s\n", core, hint ? hint : "(none)");
	if (hint)
		assert_true(strcmp(hint, "SkylakeX") == 0 || strcmp(hint, "Haswell") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hooks_and_nodes),
	        cmocka_unit_test(test_forward_only_smaller),
	        cmocka_unit_test(test_supported_ops),
	        cmocka_unit_test(test_losses),
	        cmocka_unit_test(test_walk),
	        cmocka_unit_test(test_blas_core),
	        cmocka_unit_test(test_relu_propagates_nan),
	        cmocka_unit_test(test_maxpool_nan_and_ties),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
