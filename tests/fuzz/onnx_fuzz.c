/*
 * onnx_fuzz.c - libFuzzer harness for the ONNX loader and the graph
 * compiler: parse (no external data: base_dir NULL), compile at batch 2
 * under a small arena limit, run forward and backward when it compiles.
 * Any crash, leak, hang or sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/tensor.h"

#define FUZZ_MAX_BYTES (1 << 20)
#define FUZZ_ARENA_BYTES ((uint64_t)16 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_onnx_limits lim;
	mlsec_onnx_limits_default(&lim);
	lim.max_file_bytes = FUZZ_MAX_BYTES;
	lim.max_messages = 100000;
	lim.max_decoded_bytes = 64 << 20;
	lim.max_tensor_elems = 1 << 20;
	mlsec_onnx_model *m = NULL;
	mlsec_error err;
	if (mlsec_onnx_model_parse(data, size, NULL, &lim, &m, &err) != MLSEC_OK)
		return 0;
	/* the walk must cope with anything the loader accepted */
	mlsec_onnx_visitor v = {0};
	mlsec_onnx_model_walk(mlsec_onnx_model_proto(m), &v, 8, NULL);
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = 2;
	o.max_arena_bytes = FUZZ_ARENA_BYTES;
	o.max_flops = 2e8; /* keeps every run well under libFuzzer's timeout */
	mlsec_tensor_graph *g = NULL;
	if (mlsec_tensor_graph_compile(m, &o, &g, &err) == MLSEC_OK) {
		mlsec_tensor_shape s;
		for (size_t i = 0; i < mlsec_tensor_graph_input_count(g); i++) {
			mlsec_tensor_graph_input_name(g, i, &s);
			float *x = mlsec_tensor_graph_input(g, i);
			for (size_t k = 0; k < s.numel; k++)
				x[k] = (float)((k * 7919) % 13) / 13.0f - 0.5f;
		}
		mlsec_tensor_graph_forward(g, &err);
		float *d = NULL;
		mlsec_tensor_graph_output_name(g, 0, &s);
		d = calloc(s.numel + 1, sizeof(float));
		if (d) {
			for (size_t k = 0; k < s.numel; k++)
				d[k] = 1.0f;
			const float *douts[1] = {d};
			if (mlsec_tensor_graph_output_count(g) == 1)
				mlsec_tensor_graph_backward(g, douts, &err);
			free(d);
		}
		mlsec_tensor_graph_free(g);
	}
	mlsec_onnx_model_free(m);
	return 0;
}
