/*
 * test_tensor_parity.c - the engine against PyTorch: logits and input
 * gradients (cross-entropy and CW margin) of the committed model zoo must
 * agree within 1e-4 relative / 1e-5 absolute. Also checks re-planning for
 * another batch size and the forward-only (buffer reuse) plan.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mlsec/tensor.h"
#include "test_util.h"

#define RTOL 1e-4
#define ATOL 1e-5

static int close_enough(const float *got, const float *want, size_t n, const char *what,
                        const char *model)
{
	size_t bad = 0;
	double worst = 0;
	size_t wi = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]);
		double tol = ATOL + RTOL * fabs((double)want[i]);
		if (!(d <= tol)) {
			bad++;
			if (d - tol > worst) {
				worst = d - tol;
				wi = i;
			}
		}
	}
	if (bad)
		print_error("%s %s: %zu/%zu values off; worst at %zu: got %.8g want %.8g\n", model,
		            what, bad, n, wi, got[wi], want[wi]);
	return bad == 0;
}

static int fuse_opt; /* opts.fuse for run_model_t */

static void run_model_t(const char *name, int grad, int threads)
{
	char path[1200];
	fixture_path(path, sizeof path, name, ".onnx");
	mlsec_error err;
	mlsec_onnx_model *m = NULL;
	mlsec_err rc = mlsec_onnx_model_load(path, NULL, &m, &err);
	if (rc)
		print_error("%s: %s\n", name, err.text);
	assert_int_equal(rc, MLSEC_OK);
	size_t nin = 0, nlog = 0, ngrad = 0, ncw = 0, nlab = 0;
	float *in = fixture_read(name, ".in.f32", &nin);
	float *logits = fixture_read(name, ".logits.f32", &nlog);
	float *gr = fixture_read(name, ".grad.f32", &ngrad);
	float *cw = fixture_read(name, ".cwgrad.f32", &ncw);
	int64_t *lab = fixture_read(name, ".labels.i64", &nlab);
	assert_non_null(in);
	assert_non_null(logits);
	int64_t batch = (int64_t)(nlab / 8);
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = batch;
	o.grad = grad;
	o.threads = threads;
	o.fuse = fuse_opt;
	mlsec_tensor_graph *g = NULL;
	rc = mlsec_tensor_graph_compile(m, &o, &g, &err);
	if (rc)
		print_error("%s: %s\n", name, err.text);
	assert_int_equal(rc, MLSEC_OK);
	mlsec_tensor_shape s;
	assert_non_null(mlsec_tensor_graph_input_name(g, 0, &s));
	assert_int_equal(s.numel * 4, nin);
	memcpy(mlsec_tensor_graph_input(g, 0), in, nin);
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	mlsec_tensor_graph_output_name(g, 0, &s);
	assert_int_equal(s.numel * 4, nlog);
	assert_true(close_enough(mlsec_tensor_graph_output(g, 0), logits, s.numel, "logits", name));
	if (grad) {
		float loss;
		rc = mlsec_tensor_graph_loss_grad(g, MLSEC_LOSS_CROSS_ENTROPY, lab, 0, &loss, &err);
		assert_int_equal(rc, MLSEC_OK);
		assert_true(close_enough(mlsec_tensor_graph_input_grad(g, 0), gr, nin / 4,
		                         "CE grad", name));
		rc = mlsec_tensor_graph_loss_grad(g, MLSEC_LOSS_CW_MARGIN, lab, 0, &loss, &err);
		assert_int_equal(rc, MLSEC_OK);
		assert_true(close_enough(mlsec_tensor_graph_input_grad(g, 0), cw, nin / 4,
		                         "CW grad", name));
	} else {
		assert_null(mlsec_tensor_graph_input_grad(g, 0));
		assert_int_not_equal(mlsec_tensor_graph_backward(g, NULL, &err), MLSEC_OK);
	}
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	free(in);
	free(logits);
	free(gr);
	free(cw);
	free(lab);
}

static void run_model(const char *name, int grad)
{
	run_model_t(name, grad, 1);
}

static void test_mlp(void **state)
{
	run_model("mlp", 1);
}
static void test_lenet(void **state)
{
	run_model("lenet", 1);
}
static void test_rescnn(void **state)
{
	run_model("rescnn", 1);
}
static void test_dwnet(void **state)
{
	run_model("dwnet", 1);
}
static void test_attn(void **state)
{
	run_model("attn", 1);
}
static void test_convt(void **state)
{
	run_model("convt", 1);
}

static void test_forward_only(void **state)
{
	const char *names[] = {"mlp", "lenet", "rescnn", "dwnet", "attn", "convt"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		run_model(names[i], 0);
}

/* Worker threads split images, rows and planes: same answers. */
static void test_threads(void **state)
{
	const char *names[] = {"mlp", "lenet", "rescnn", "dwnet", "attn", "convt"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		run_model_t(names[i], 1, 2);
		run_model_t(names[i], 0, 3);
	}
}

/* opts.fuse (a Relu run inside the Conv before it): the same logits and
 * input gradients, on one thread and three. */
static void test_fused_relu(void **state)
{
	(void)state;
	const char *names[] = {"mlp", "lenet", "rescnn", "dwnet", "attn", "convt"};
	fuse_opt = 1;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		run_model_t(names[i], 1, 1);
		run_model_t(names[i], 1, 3);
		run_model_t(names[i], 0, 2);
	}
	fuse_opt = 0;
}

/* The dynamic-batch LeNet: run each sample alone at batch 1 after
 * compiling at batch 4, and compare with the batched logits. */
static void test_set_batch(void **state)
{
	char path[1200];
	fixture_path(path, sizeof path, "lenet", ".onnx");
	mlsec_onnx_model *m;
	mlsec_error err;
	assert_int_equal(mlsec_onnx_model_load(path, NULL, &m, &err), MLSEC_OK);
	size_t nin = 0, nlog = 0;
	float *in = fixture_read("lenet", ".in.f32", &nin);
	float *logits = fixture_read("lenet", ".logits.f32", &nlog);
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = 4;
	mlsec_tensor_graph *g;
	assert_int_equal(mlsec_tensor_graph_compile(m, &o, &g, &err), MLSEC_OK);
	assert_int_equal(mlsec_tensor_graph_set_batch(g, 1, &err), MLSEC_OK);
	mlsec_tensor_shape s;
	mlsec_tensor_graph_input_name(g, 0, &s);
	assert_int_equal(s.dims[0], 1);
	for (int b = 0; b < 4; b++) {
		memcpy(mlsec_tensor_graph_input(g, 0), in + b * 784, 784 * 4);
		assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
		assert_true(close_enough(mlsec_tensor_graph_output(g, 0), logits + b * 10, 10,
		                         "batch-1 logits", "lenet"));
	}
	/* a static-batch model cannot be re-planned to another batch */
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	free(in);
	free(logits);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_mlp),          cmocka_unit_test(test_lenet),
	        cmocka_unit_test(test_rescnn),       cmocka_unit_test(test_dwnet),
	        cmocka_unit_test(test_attn),         cmocka_unit_test(test_convt),
	        cmocka_unit_test(test_forward_only), cmocka_unit_test(test_set_batch),
	        cmocka_unit_test(test_threads),      cmocka_unit_test(test_fused_relu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
