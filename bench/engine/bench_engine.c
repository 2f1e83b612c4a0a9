/*
 * bench_engine.c - throughput of the tensor engine on one ONNX classifier:
 * forward, forward+backward (one FGSM step) and PGD-20, in samples/s.
 * Driven by run_bench.py, which runs PyTorch on the same models in the same
 * invocation and prints the ratios. Prints one JSON object per mode.
 *
 *   mlsec-bench-engine MODEL.onnx --batch N --threads T [--seconds S]
 *                      [--modes forward,fgsm,pgd20]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlsec/tensor.h"

#define EPS 0.03f
#define ALPHA 0.01f
#define PGD_STEPS 20

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, const mlsec_error *err)
{
	fprintf(stderr, "mlsec-bench-engine: %s: %s\n", what, err ? err->text : "");
	exit(1);
}

static void step(float *x, const float *x0, const float *g, size_t n, float a)
{
	/* branch-free so it vectorises, like torch's sign/clamp kernels */
	for (size_t i = 0; i < n; i++) {
		float sg = (float)(g[i] > 0) - (float)(g[i] < 0);
		float v = x[i] + a * sg;
		float lo = x0[i] - EPS, hi = x0[i] + EPS;
		v = v < lo ? lo : v;
		v = v > hi ? hi : v;
		v = v < 0.0f ? 0.0f : v;
		x[i] = v > 1.0f ? 1.0f : v;
	}
}

int main(int argc, char **argv)
{
	const char *path = NULL, *modes = "forward,fgsm,pgd20";
	int64_t batch = 1;
	int threads = 1;
	double secs = 1.0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--blas-info") == 0) {
			const char *hint = mlsec_tensor_blas_core_hint();
			printf("{\"core\": \"%s\", \"hint\": \"%s\"}\n", mlsec_tensor_blas_core(),
			       hint ? hint : "");
			return 0;
		}
		if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = atoll(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (strcmp(argv[i], "--modes") == 0 && i + 1 < argc)
			modes = argv[++i];
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr,
			        "usage: mlsec-bench-engine MODEL.onnx --batch N --threads T "
			        "[--seconds S] [--modes forward,fgsm,pgd20]\n");
			return 1;
		}
	}
	if (!path)
		die("no model given", NULL);
	mlsec_error err;
	mlsec_onnx_model *m;
	if (mlsec_onnx_model_load(path, NULL, &m, &err))
		die(path, &err);
	mlsec_tensor_opts o;
	mlsec_tensor_opts_default(&o);
	o.batch = batch;
	o.threads = threads;
	o.fuse = 1; /* as the adversarial engine runs it (no activation hooks) */
	mlsec_tensor_graph *g;
	if (mlsec_tensor_graph_compile(m, &o, &g, &err))
		die("compile", &err);
	mlsec_tensor_shape s, os;
	mlsec_tensor_graph_input_name(g, 0, &s);
	mlsec_tensor_graph_output_name(g, 0, &os);
	size_t n = s.numel;
	float *x = mlsec_tensor_graph_input(g, 0);
	float *x0 = malloc(n * sizeof(float));
	int64_t *labels = malloc((size_t)batch * sizeof(int64_t));
	unsigned seed = 12345;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		x0[i] = (float)((seed >> 8) & 0xffff) / 65535.0f;
	}
	for (int64_t b = 0; b < batch; b++)
		labels[b] = b % os.dims[1];
	char buf[256];
	snprintf(buf, sizeof buf, "%s", modes);
	for (char *mode = strtok(buf, ","); mode; mode = strtok(NULL, ",")) {
		int kind = strcmp(mode, "forward") == 0 ? 0 : strcmp(mode, "fgsm") == 0 ? 1 : 2;
		long iters = 0;
		double t0 = 0, el = 0;
		for (int warm = 1; warm >= 0; warm--) {
			double budget = warm ? secs * 0.2 : secs;
			iters = 0;
			t0 = now();
			do {
				memcpy(x, x0, n * sizeof(float));
				if (kind == 0) {
					if (mlsec_tensor_graph_forward(g, &err))
						die("forward", &err);
				} else {
					int steps = kind == 1 ? 1 : PGD_STEPS;
					float a = kind == 1 ? EPS : ALPHA;
					for (int k = 0; k < steps; k++) {
						if (mlsec_tensor_graph_loss_grad(
						            g, MLSEC_LOSS_CROSS_ENTROPY, labels, 0,
						            NULL, &err))
							die("loss_grad", &err);
						step(x, x0, mlsec_tensor_graph_input_grad(g, 0), n,
						     a);
					}
				}
				iters++;
				el = now() - t0;
			} while (el < budget);
		}
		printf("{\"mode\": \"%s\", \"threads\": %d, \"batch\": %lld, \"iters\": %ld, "
		       "\"seconds\": %.4f, \"samples_per_s\": %.1f}\n",
		       mode, threads, (long long)batch, iters, el, (double)iters * batch / el);
		fflush(stdout);
	}
	free(x0);
	free(labels);
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	return 0;
}
