/*
 * test_tensor_conv_direct.c - the direct 3x3 convolution (AVX-512) against
 * the im2col path, which the parity tests hold to PyTorch: outputs and
 * input gradients agree to rounding on row widths that end mid-vector, on
 * channel counts that are not multiples of the channel block, with and
 * without bias, on one and two threads. On CPUs without AVX-512 both runs
 * take the im2col path and the test still checks they agree.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/onnx.h"
#include "mlsec/tensor.h"
#include "onnx/onnx.pb-c.h"

/* Internal test switch (conv_direct.c): 1 forces the im2col path. */
void tensor_conv_direct_disable(int off);

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

static Onnx__TensorProto *weights(const char *name, const int64_t *dims, size_t nd)
{
	Onnx__TensorProto *t = calloc(1, sizeof *t);
	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_dims = nd;
	t->dims = (int64_t *)dims;
	size_t n = 1;
	for (size_t i = 0; i < nd; i++)
		n *= (size_t)dims[i];
	t->n_float_data = n;
	t->float_data = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		t->float_data[i] = urand() * 0.5f;
	return t;
}

static void ints_attr(Onnx__AttributeProto *a, const char *name, int64_t *v, size_t n)
{
	onnx__attribute_proto__init(a);
	a->name = (char *)name;
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	a->n_ints = n;
	a->ints = v;
}

/* A node of op with inputs in[0..nin) and the one output out[0]. */
static void node_init(Onnx__NodeProto *node, const char *op, char **in, size_t nin, char **out)
{
	onnx__node_proto__init(node);
	node->op_type = (char *)op;
	node->n_input = nin;
	node->input = in;
	node->n_output = 1;
	node->output = out;
}

/* A Conv(3x3, pads 1) model for x[n, c, h, w] -> y[n, m, h, w], serialized. */
static uint8_t *conv_model(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, int bias,
                           int relu, size_t *len)
{
	int64_t wd[4] = {m, c, 3, 3}, bd[1] = {m};
	Onnx__TensorProto *init[2] = {weights("w", wd, 4), bias ? weights("b", bd, 1) : NULL};
	char *ins[3] = {"x", "w", "b"}, *outs[1] = {"y"};
	int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3};
	Onnx__AttributeProto ap, ak, *attrs[2] = {&ap, &ak};
	ints_attr(&ap, "pads", pads, 4);
	ints_attr(&ak, "kernel_shape", ks, 2);
	Onnx__NodeProto node, rnode, *nodes[2] = {&node, &rnode};
	char *rin[1] = {"y"}, *rout[1] = {"z"};
	node_init(&rnode, "Relu", rin, 1, rout);
	node_init(&node, "Conv", ins, bias ? 3 : 2, outs);
	node.n_attribute = 2;
	node.attribute = attrs;
	/* Input x with its full static shape; the output shape is inferred. */
	Onnx__TensorShapeProto__Dimension d[4], *dp[4];
	int64_t xd[4] = {n, c, h, w};
	for (int i = 0; i < 4; i++) {
		onnx__tensor_shape_proto__dimension__init(&d[i]);
		d[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		d[i].dim_value = xd[i];
		dp[i] = &d[i];
	}
	Onnx__TensorShapeProto shape;
	onnx__tensor_shape_proto__init(&shape);
	shape.n_dim = 4;
	shape.dim = dp;
	Onnx__TypeProto__Tensor tt;
	onnx__type_proto__tensor__init(&tt);
	tt.has_elem_type = 1;
	tt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt.shape = &shape;
	Onnx__TypeProto type;
	onnx__type_proto__init(&type);
	type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	type.tensor_type = &tt;
	Onnx__ValueInfoProto xi, yi, *gin[1] = {&xi}, *gout[1] = {&yi};
	onnx__value_info_proto__init(&xi);
	xi.name = "x";
	xi.type = &type;
	onnx__value_info_proto__init(&yi);
	yi.name = relu ? "z" : "y";
	Onnx__GraphProto g;
	onnx__graph_proto__init(&g);
	g.name = "g";
	g.n_node = relu ? 2 : 1;
	g.node = nodes;
	g.n_input = 1;
	g.input = gin;
	g.n_output = 1;
	g.output = gout;
	g.n_initializer = bias ? 2 : 1;
	g.initializer = init;
	Onnx__OperatorSetIdProto op, *ops[1] = {&op};
	onnx__operator_set_id_proto__init(&op);
	op.domain = "";
	op.has_version = 1;
	op.version = 13;
	Onnx__ModelProto mp;
	onnx__model_proto__init(&mp);
	mp.has_ir_version = 1;
	mp.ir_version = 8;
	mp.graph = &g;
	mp.n_opset_import = 1;
	mp.opset_import = ops;
	*len = onnx__model_proto__get_packed_size(&mp);
	uint8_t *buf = malloc(*len);
	onnx__model_proto__pack(&mp, buf);
	for (int i = 0; i < 2; i++)
		if (init[i]) {
			free(init[i]->float_data);
			free(init[i]);
		}
	return buf;
}

/* Output and input gradient (for a random output gradient) of the model. */
static void run(const uint8_t *model, size_t len, int threads, int fuse, const float *x,
                const float *dy, float **y, float **dx, size_t *ny, size_t *nx)
{
	mlsec_onnx_model *m;
	mlsec_error err;
	if (mlsec_onnx_model_parse(model, len, NULL, NULL, &m, &err) != MLSEC_OK)
		fail_msg("parse: %s", err.text);
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.threads = threads;
	o.grad = 1;
	o.fuse = fuse;
	mlsec_tensor_graph *g;
	if (mlsec_tensor_graph_compile(m, &o, &g, &err) != MLSEC_OK)
		fail_msg("compile: %s", err.text);
	mlsec_tensor_shape s;
	mlsec_tensor_graph_input_name(g, 0, &s);
	*nx = s.numel;
	memcpy(mlsec_tensor_graph_input(g, 0), x, s.numel * sizeof(float));
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	mlsec_tensor_graph_output_name(g, 0, &s);
	*ny = s.numel;
	*y = malloc(s.numel * sizeof(float));
	memcpy(*y, mlsec_tensor_graph_output(g, 0), s.numel * sizeof(float));
	const float *seeds[1] = {dy};
	assert_int_equal(mlsec_tensor_graph_backward(g, seeds, &err), MLSEC_OK);
	*dx = malloc(*nx * sizeof(float));
	memcpy(*dx, mlsec_tensor_graph_input_grad(g, 0), *nx * sizeof(float));
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
}

static void close_enough(const float *a, const float *b, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		float tol = 1e-5f + 1e-5f * fabsf(b[i]);
		if (!(fabsf(a[i] - b[i]) <= tol)) /* NaN fails too */
			fail_msg("%s[%zu]: direct %.9g, im2col %.9g", what, i, a[i], b[i]);
	}
}

static void test_direct_matches_im2col(void **state)
{
	(void)state;
	static const int64_t shapes[][6] = {
	        /* n, c, h, w, m, bias */
	        {2, 3, 5, 16, 8, 1},   /* one full vector per row */
	        {1, 5, 4, 17, 9, 1},   /* a one-lane second vector; 8 + 1 channels */
	        {2, 16, 3, 32, 16, 0}, /* two full vectors */
	        {1, 2, 3, 33, 7, 1},   /* three vectors; only single-channel blocks */
	        {3, 4, 6, 40, 8, 0},   /* 32 + 8 columns */
	        {1, 1, 1, 16, 1, 1},   /* one row: every tap row but the middle is padding */
	        {2, 6, 8, 8, 17, 1},   /* narrow: two rows a vector; 16 + 1 channels */
	        {1, 3, 5, 8, 16, 0},   /* an odd row count: the last vector half empty */
	        {2, 2, 3, 4, 5, 1},    /* four rows a vector, three in the plane */
	        {1, 3, 2, 2, 2, 1},    /* 2 x 2 planes */
	        {1, 2, 3, 1, 3, 0},    /* one column */
	};
	/* Each shape twice: a lone Conv, and Conv -> Relu where the Relu is
	 * fused into the direct kernel's stores (opts.fuse) and compared with
	 * the im2col path and a separate Relu. */
	for (size_t k = 0; k < 2 * (sizeof shapes / sizeof *shapes); k++) {
		const int64_t *sh = shapes[k / 2];
		int relu = (int)(k % 2);
		size_t len;
		uint8_t *model =
		        conv_model(sh[0], sh[1], sh[2], sh[3], sh[4], (int)sh[5], relu, &len);
		size_t nx = (size_t)(sh[0] * sh[1] * sh[2] * sh[3]),
		       ny = (size_t)(sh[0] * sh[4] * sh[2] * sh[3]);
		float *x = malloc(nx * sizeof(float)), *dy = malloc(ny * sizeof(float));
		for (size_t i = 0; i < nx; i++)
			x[i] = urand();
		for (size_t i = 0; i < ny; i++)
			dy[i] = urand();
		for (int threads = 1; threads <= 2; threads++) {
			float *y0, *dx0, *y1, *dx1;
			size_t a, b;
			tensor_conv_direct_disable(1);
			run(model, len, threads, 0, x, dy, &y0, &dx0, &a, &b);
			tensor_conv_direct_disable(0);
			run(model, len, threads, relu, x, dy, &y1, &dx1, &a, &b);
			assert_int_equal(a, ny);
			assert_int_equal(b, nx);
			close_enough(y1, y0, ny, "y");
			close_enough(dx1, dx0, nx, "dx");
			free(y0), free(dx0), free(y1), free(dx1);
		}
		free(x);
		free(dy);
		free(model);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_direct_matches_im2col),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
