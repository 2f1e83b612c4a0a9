/*
 * ops.c - the operator table: ONNX op_type (default domain) -> kernels.
 * Anything not listed here is refused at compile time, by name.
 */
#include "tensor_internal.h"

extern const op_def tensor_op_unary, tensor_op_binary, tensor_op_softmax, tensor_op_bn,
        tensor_op_ln, tensor_op_gemm, tensor_op_matmul, tensor_op_conv, tensor_op_pool,
        tensor_op_gpool, tensor_op_alias, tensor_op_convt, tensor_op_transpose, tensor_op_concat,
        tensor_op_slice, tensor_op_gather, tensor_op_pad, tensor_op_expand, tensor_op_reduce,
        tensor_op_constant, tensor_op_shape, tensor_op_cos, tensor_op_cast;

static const struct {
	const char *name;
	const op_def *def;
} table[] = {
        {"Abs", &tensor_op_unary},           {"Add", &tensor_op_binary},
        {"AveragePool", &tensor_op_pool},    {"BatchNormalization", &tensor_op_bn},
        {"Cast", &tensor_op_cast},           {"Clip", &tensor_op_unary},
        {"Concat", &tensor_op_concat},       {"Constant", &tensor_op_constant},
        {"ConstantOfShape", &tensor_op_cos}, {"Conv", &tensor_op_conv},
        {"ConvTranspose", &tensor_op_convt}, {"Div", &tensor_op_binary},
        {"Dropout", &tensor_op_alias},       {"Elu", &tensor_op_unary},
        {"Erf", &tensor_op_unary},           {"Exp", &tensor_op_unary},
        {"Expand", &tensor_op_expand},       {"Flatten", &tensor_op_alias},
        {"Gather", &tensor_op_gather},       {"Gelu", &tensor_op_unary},
        {"Gemm", &tensor_op_gemm},           {"GlobalAveragePool", &tensor_op_gpool},
        {"GlobalMaxPool", &tensor_op_gpool}, {"HardSigmoid", &tensor_op_unary},
        {"Identity", &tensor_op_alias},      {"LayerNormalization", &tensor_op_ln},
        {"LeakyRelu", &tensor_op_unary},     {"Log", &tensor_op_unary},
        {"LogSoftmax", &tensor_op_softmax},  {"MatMul", &tensor_op_matmul},
        {"MaxPool", &tensor_op_pool},        {"Mul", &tensor_op_binary},
        {"Neg", &tensor_op_unary},           {"Pad", &tensor_op_pad},
        {"Pow", &tensor_op_binary},          {"Reciprocal", &tensor_op_unary},
        {"ReduceMean", &tensor_op_reduce},   {"ReduceSum", &tensor_op_reduce},
        {"Relu", &tensor_op_unary},          {"Reshape", &tensor_op_alias},
        {"Shape", &tensor_op_shape},         {"Sigmoid", &tensor_op_unary},
        {"Slice", &tensor_op_slice},         {"Softmax", &tensor_op_softmax},
        {"Softplus", &tensor_op_unary},      {"Sqrt", &tensor_op_unary},
        {"Squeeze", &tensor_op_alias},       {"Sub", &tensor_op_binary},
        {"Tanh", &tensor_op_unary},          {"Transpose", &tensor_op_transpose},
        {"Unsqueeze", &tensor_op_alias},
};

#define NOPS (sizeof table / sizeof table[0])

const op_def *tensor_op_find(const char *name)
{
	/* binary search: the table is sorted by name */
	size_t lo = 0, hi = NOPS;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(table[mid].name, name);
		if (c == 0)
			return table[mid].def;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *const *mlsec_tensor_supported_ops(void)
{
	static const char *names[NOPS + 1];
	if (!names[0])
		for (size_t i = 0; i < NOPS; i++)
			names[i] = table[i].name;
	return names;
}
