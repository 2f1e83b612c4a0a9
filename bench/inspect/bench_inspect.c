/*
 * bench_inspect.c - how much the activation pass of `mlsec inspect` adds to
 * a plain forward pass. Both run the same compiled graph over the same
 * inputs in the same process (thread CPU time, so that other processes on
 * a shared machine do not skew the ratio); the monitored run is exactly what the engine
 * does (insp_activations: forward with the statistics hook, argmax, the
 * per-node findings and table). Best of R repetitions each, interleaved.
 *
 * usage: bench_inspect [--isa avx512|avx2|generic] [MODEL.onnx ...]
 *        (default: the best kernels for this CPU, the inspect fixtures)
 * Prints per model: plain ms, monitored ms, ratio, and whether the
 * overhead is under the 20% budget. Exit 1 when a model is over budget.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inspect_internal.h"
#include "mlsec/alloc.h"

#define SAMPLES 4096
#define BATCH 64
#define REPS 15
#define BUDGET 1.20

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int bench(const char *path)
{
	mlsec_onnx_model *m = NULL;
	mlsec_tensor_graph *g = NULL;
	mlsec_error e;
	mlsec_tensor_opts to;
	mlsec_tensor_opts_default(&to);
	to.batch = BATCH;
	to.grad = 0;
	if (mlsec_onnx_model_load(path, NULL, &m, &e) != MLSEC_OK ||
	    mlsec_tensor_graph_compile(m, &to, &g, &e) != MLSEC_OK) {
		fprintf(stderr, "%s: %s\n", path, e.text);
		mlsec_onnx_model_free(m);
		return -1;
	}
	mlsec_tensor_shape is, os;
	mlsec_tensor_graph_input_name(g, 0, &is);
	mlsec_tensor_graph_output_name(g, 0, &os);
	size_t numel = is.numel / BATCH, classes = os.ndim == 2 ? (size_t)os.dims[1] : 0;
	float *x = mlsec_reallocarray(NULL, (size_t)SAMPLES * numel, sizeof(float));
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < (size_t)SAMPLES * numel; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		x[i] = (float)((s >> 40) / 16777216.0);
	}
	insp_inputs in = {x, NULL, SAMPLES, numel, 1};
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	double best_plain = 1e30, best_mon = 1e30;
	for (int r = 0; r < REPS; r++) {
		double t0 = now();
		for (size_t off = 0; off < SAMPLES; off += BATCH) {
			insp_load_batch(g, x + off * numel, BATCH, numel);
			mlsec_tensor_graph_forward(g, &e);
		}
		double t1 = now();
		mlsec_report *rep = mlsec_report_new("inspect");
		mlsec_artifact *a = mlsec_report_add_artifact(rep, path, "onnx");
		double t2 = now();
		insp_activations(g, &in, classes, &o, a, &e);
		double t3 = now();
		mlsec_report_free(rep);
		best_plain = t1 - t0 < best_plain ? t1 - t0 : best_plain;
		best_mon = t3 - t2 < best_mon ? t3 - t2 : best_mon;
	}
	double ratio = best_mon / best_plain;
	const char *base = strrchr(path, '/');
	printf("%-22s nodes %3zu  plain %8.2f ms  monitored %8.2f ms  ratio %.3f  (%+.1f%%) %s\n",
	       base ? base + 1 : path, mlsec_tensor_graph_node_count(g), best_plain * 1e3,
	       best_mon * 1e3, ratio, (ratio - 1) * 100, ratio < BUDGET ? "ok" : "OVER BUDGET");
	mlsec_free(x);
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	return ratio < BUDGET ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const char *const defaults[] = {"tests/data/inspect/clean_mlp.onnx",
	                                       "tests/data/inspect/clean_cnn.onnx",
	                                       "tests/data/adversarial/digits_rescnn.onnx"};
	int rc = 0;
	printf("activation pass vs plain forward: %d samples, batch %d, best of %d\n", SAMPLES,
	       BATCH, REPS);
	int first = 1;
	if (argc > 2 && !strcmp(argv[1], "--isa")) {
		if (mlsec_inspect_use_isa(argv[2]) != 0) {
			fprintf(stderr, "bench_inspect: this CPU cannot run the %s kernels\n",
			        argv[2]);
			return 1;
		}
		printf("activation kernels: %s\n", argv[2]);
		first = 3;
	}
	if (argc > first) {
		for (int i = first; i < argc; i++)
			rc |= bench(argv[i]) != 0;
	} else {
		for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
			rc |= bench(defaults[i]) != 0;
	}
	return rc;
}
