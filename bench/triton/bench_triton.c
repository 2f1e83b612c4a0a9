/*
 * bench_triton.c - configs/s of the Triton auditor on generated configs,
 * against the original Python auditor on the same files in the same run.
 *
 *   bench_triton [--count N] [--rounds R] [--python FILE.py] [--keep DIR]
 *
 * Generates N (default 2000) varied config.pbtxt files under a temporary
 * model repository, then times the whole in-process pipeline the CLI runs
 * (directory walk, one read per file, sha256, parse, every rule, report)
 * R times (default 10, the same for both tools) and prints the best round,
 * with the engine's automatic thread count and with one thread. With
 * --python (the original
 * triton_config_auditor.py), times its iter_targets + analyze_config over
 * the same directory inside one interpreter (start-up excluded) and prints
 * the ratio. Nothing here is a test: numbers only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlsec/triton.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One of several realistic shapes, varied by i. */
static void write_config(FILE *f, int i)
{
	static const char *const types[] = {"TYPE_FP32", "TYPE_INT64", "TYPE_STRING", "TYPE_FP16"};
	fprintf(f, "# generated model %d\nname: \"model_%d\"\n", i, i);
	if (i % 5 == 0)
		fprintf(f, "backend: \"python\"\n");
	else
		fprintf(f, "platform: \"%s\"\n", i % 2 ? "onnxruntime_onnx" : "tensorrt_plan");
	fprintf(f, "max_batch_size: %d\n", (i % 4) * 16);
	fprintf(f, "version_policy: { %s }\n", i % 7 ? "latest { num_versions: 1 }" : "all { }");
	fprintf(f, "input [\n");
	for (int k = 0; k < 1 + i % 3; k++)
		fprintf(f,
		        "  {\n    name: \"input_%d\"\n    data_type: %s\n    dims: [ %s, 224, 224 "
		        "]\n"
		        "%s  }%s\n",
		        k, types[(i + k) % 4], (i + k) % 3 ? "3" : "-1",
		        (i + k) % 6 == 0 ? "    allow_ragged_batch: true\n" : "",
		        k < i % 3 ? "," : "");
	fprintf(f,
	        "]\noutput [\n  {\n    name: \"output\"\n    data_type: TYPE_FP32\n"
	        "    dims: [ 1000 ]\n    label_filename: \"%s\"\n  }\n]\n",
	        i % 11 ? "labels.txt" : "../../labels.txt");
	if (i % 3 == 0)
		fprintf(f,
		        "dynamic_batching {\n  preferred_batch_size: [ 4, 8 ]\n"
		        "  max_queue_delay_microseconds: 100\n%s}\n",
		        i % 2 ? "  default_queue_policy { max_queue_size: 64 timeout_action: "
		                "REJECT "
		                "default_timeout_microseconds: 10000 }\n"
		              : "");
	fprintf(f,
	        "instance_group [\n  {\n    count: %d\n    kind: KIND_GPU\n    gpus: [ 0 ]\n%s  "
	        "}\n]\n",
	        1 + i % 4,
	        i % 2 ? "    rate_limiter { resources [ { name: \"R1\" count: 2 } ] }\n" : "");
	fprintf(f,
	        "parameters [\n  { key: \"intra_op_thread_count\" value: { string_value: \"%d\" } "
	        "},\n"
	        "  { key: \"%s\" value: { string_value: \"%s\" } }\n]\n",
	        i % 8, i % 13 ? "execution_mode" : "api_key",
	        i % 13 ? "sequential" : "k-1234567890");
	if (i % 17 == 0)
		fprintf(f, "model_operations { op_library_filename: \"libcustom_%d.so\" }\n", i);
	fprintf(f, "model_transaction_policy { decoupled: %s }\n", i % 2 ? "false" : "true");
}

static int generate(const char *root, int n)
{
	char p[4096];
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/model_%d", root, i);
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		snprintf(p, sizeof p, "%s/model_%d/config.pbtxt", root, i);
		FILE *f = fopen(p, "w");
		if (!f)
			return -1;
		write_config(f, i);
		fclose(f);
	}
	return 0;
}

/* threads: 0 = the engine's automatic choice, 1 = sequential. */
static double run_ours(const char *root, int threads, size_t *files, size_t *findings)
{
	const char *paths[] = {root};
	json_t *opts = json_pack("{s:i}", "threads", threads);
	mlsec_engine_request req = {.paths = paths, .npaths = 1, .options = opts};
	mlsec_report *rep = mlsec_report_new("triton");
	mlsec_error err;
	double t0 = now();
	mlsec_err rc = mlsec_engine_triton.analyze(&req, rep, &err);
	double dt = now() - t0;
	if (rc != MLSEC_OK) {
		fprintf(stderr, "bench_triton: %s\n", err.text);
		exit(1);
	}
	json_decref(opts);
	*files = mlsec_report_artifact_count(rep);
	size_t c[MLSEC_SEV__COUNT];
	mlsec_report_counts(rep, c);
	*findings = 0;
	for (int s = 0; s < MLSEC_SEV__COUNT; s++)
		*findings += c[s];
	mlsec_report_free(rep);
	return dt;
}

/* Runs the Python auditor in one interpreter; returns configs/s or -1. */
static double run_python(const char *py, const char *root, int rounds)
{
	char dir[4096], mod[256], cmd[12288];
	snprintf(dir, sizeof dir, "%s", py);
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : py;
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	snprintf(mod, sizeof mod, "%s", base);
	char *dot = strstr(mod, ".py");
	if (dot)
		*dot = '\0';
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 -c '\n"
	         "import sys, time, logging\n"
	         "sys.path.insert(0, \"%s\")\n"
	         "logging.disable(logging.CRITICAL)\n"
	         "import %s as t\n"
	         "best = 0.0\n"
	         "for _ in range(%d):\n"
	         "    t0 = time.perf_counter()\n"
	         "    paths = t.iter_targets([\"%s\"])\n"
	         "    reports = [t.analyze_config(p) for p in paths]\n"
	         "    dt = time.perf_counter() - t0\n"
	         "    best = max(best, len(paths) / dt)\n"
	         "print(best)\n'",
	         dir, mod, rounds, root);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	double rate = -1;
	if (fscanf(p, "%lf", &rate) != 1)
		rate = -1;
	if (pclose(p) != 0)
		return -1;
	return rate;
}

static int rm_tree(const char *root, int n)
{
	char p[4096];
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/model_%d/config.pbtxt", root, i);
		unlink(p);
		snprintf(p, sizeof p, "%s/model_%d", root, i);
		rmdir(p);
	}
	return rmdir(root);
}

int main(int argc, char **argv)
{
	int n = 2000, rounds = 10;
	const char *py = getenv("MLSEC_PY_TRITON_AUDITOR"), *keep = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--count") && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--python") && i + 1 < argc)
			py = argv[++i];
		else if (!strcmp(argv[i], "--keep") && i + 1 < argc)
			keep = argv[++i];
		else {
			fprintf(stderr,
			        "usage: bench_triton [--count N] [--rounds R] [--python FILE.py] "
			        "[--keep DIR]\n");
			return 1;
		}
	}
	if (n <= 0 || rounds <= 0)
		return 1;
	char root[] = "/tmp/mlsec-bench-triton-XXXXXX";
	const char *dir = keep;
	if (!dir) {
		if (!mkdtemp(root)) {
			perror("mkdtemp");
			return 1;
		}
		dir = root;
	} else {
		mkdir(keep, 0755);
	}
	if (generate(dir, n) != 0) {
		perror("generate");
		return 1;
	}
	size_t files = 0, findings = 0;
	run_ours(dir, 0, &files, &findings); /* warm the page cache for both tools */
	double best = 1e9, best1 = 1e9;
	for (int r = 0; r < rounds; r++) {
		double dt = run_ours(dir, 0, &files, &findings);
		if (dt < best)
			best = dt;
		dt = run_ours(dir, 1, &files, &findings);
		if (dt < best1)
			best1 = dt;
	}
	double ours = (double)files / best, ours1 = (double)files / best1;
	printf("mlsec triton: %zu configs, %zu findings, best of %d rounds %.1f ms: %.0f "
	       "configs/s (one thread: %.1f ms, %.0f configs/s)\n",
	       files, findings, rounds, best * 1e3, ours, best1 * 1e3, ours1);
	if (py && access(py, R_OK) == 0) {
		double theirs = run_python(py, dir, rounds);
		if (theirs > 0)
			printf("python triton_config_auditor: %.0f configs/s\nratio: %.1fx faster "
			       "(target >= 10x; one thread: %.1fx)\n",
			       theirs, ours / theirs, ours1 / theirs);
		else
			printf("python triton_config_auditor: failed to run %s\n", py);
	} else {
		printf("python triton_config_auditor: not available (set MLSEC_PY_TRITON_AUDITOR "
		       "or "
		       "--python FILE.py)\n");
	}
	/* End to end, as users run them: one process each, table to /dev/null. */
	const char *bin = getenv("MLSEC_BIN");
	if (bin && py && access(bin, X_OK) == 0 && access(py, R_OK) == 0) {
		char cmd[8192];
		double b_ours = 1e9, b_ours1 = 1e9, b_py = 1e9;
		for (int r = 0; r < rounds; r++) {
			snprintf(cmd, sizeof cmd, "%s triton %s --summary >/dev/null 2>&1", bin,
			         dir);
			double t0 = now();
			if (system(cmd) == -1)
				break;
			double dt = now() - t0;
			b_ours = dt < b_ours ? dt : b_ours;
			snprintf(cmd, sizeof cmd,
			         "%s triton %s --summary --threads 1 >/dev/null 2>&1", bin, dir);
			t0 = now();
			if (system(cmd) == -1)
				break;
			dt = now() - t0;
			b_ours1 = dt < b_ours1 ? dt : b_ours1;
			snprintf(cmd, sizeof cmd,
			         "/usr/bin/python3 %s %s --summary >/dev/null 2>&1", py, dir);
			t0 = now();
			if (system(cmd) == -1)
				break;
			dt = now() - t0;
			b_py = dt < b_py ? dt : b_py;
		}
		printf("end to end (process, --summary): mlsec %.0f configs/s, python %.0f "
		       "configs/s, ratio %.1fx (one thread: %.0f configs/s, %.1fx)\n",
		       (double)files / b_ours, (double)files / b_py, b_py / b_ours,
		       (double)files / b_ours1, b_py / b_ours1);
	}
	if (!keep)
		rm_tree(dir, n);
	return 0;
}
