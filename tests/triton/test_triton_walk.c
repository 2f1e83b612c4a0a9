/*
 * test_triton_walk.c - a model repository given as one directory is walked
 * and audited in one pass by several threads (mlsec_dir_visit); the report
 * must be exactly the one of the list-then-audit path, whatever the thread
 * count: same artifacts in the same order, same findings, same launch-flag
 * cross-checks (which depend on the first rate-limited config in order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "mlsec/engine.h"
#include "mlsec/report.h"
#include "mlsec/triton.h"

static char dir[256], repo[300], launch[300];

static void put(const char *rel, const char *text)
{
	char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mlsec-triton-walk-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(repo, sizeof repo, "%s/models", dir);
	snprintf(launch, sizeof launch, "%s/launch.txt", dir);
	/* Enough models for parallel walks, names whose per-directory order
	 * differs from whole-path order, nested and malformed configs. */
	char rel[128], text[512];
	for (int i = 0; i < 150; i++) {
		static const char *const suffix[] = {"", "-b", ".v2", "/1/sub"};
		char name[32];
		snprintf(name, sizeof name, "m%03d%s", i / 4, suffix[i % 4]);
		snprintf(rel, sizeof rel, "models/%s/config.pbtxt", name);
		if (i % 37 == 5)
			snprintf(text, sizeof text, "name: \"%s\"\ninput [ { name: \"x\" ", name);
		else
			snprintf(
			        text, sizeof text,
			        "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: %d\n"
			        "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ %s, 8 ] } ]\n"
			        "instance_group [ { count: %d kind: KIND_GPU%s } ]\n%s",
			        name, i % 3 * 8, i % 5 ? "3" : "-1", 1 + i % 4,
			        i % 6 == 1
			                ? " rate_limiter { resources [ { name: \"r\" count: 1 } ] }"
			                : "",
			        i % 17 == 0 ? "model_operations { op_library_filename: \"x.so\" }\n"
			                    : "");
		put(rel, text);
	}
	put("models/README.md", "not a config");
	put("launch.txt", "tritonserver --model-repository=/m --model-control-mode=none\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The JSON report of an analysis, as a string (caller frees). */
static char *analyze(const char *const *paths, size_t n, int threads, int with_launch)
{
	json_t *opts = json_pack("{s:i}", "threads", threads);
	if (with_launch)
		json_object_set_new(opts, "launch-args", json_string(launch));
	mlsec_engine_request req = {.paths = paths, .npaths = n, .options = opts};
	mlsec_report *rep = mlsec_report_new("triton");
	mlsec_error err;
	assert_int_equal(mlsec_engine_triton.analyze(&req, rep, &err), MLSEC_OK);
	json_t *j = mlsec_report_to_json(rep, MLSEC_SEV_HIGH);
	char *s = json_dumps(j, JSON_SORT_KEYS);
	json_decref(j);
	json_decref(opts);
	mlsec_report_free(rep);
	assert_non_null(s);
	return s;
}

static void test_one_pass_equals_list(void **state)
{
	(void)state;
	const char *one[] = {repo}, *twice[] = {repo, repo}; /* two targets: the list path */
	for (int with_launch = 0; with_launch <= 1; with_launch++) {
		char *want = analyze(twice, 2, 1, with_launch);
		json_t *w = json_loads(want, 0, NULL);
		assert_non_null(w);
		assert_int_equal(json_array_size(json_object_get(w, "artifacts")),
		                 150 + with_launch);
		json_decref(w);
		for (int threads = 1; threads <= 4; threads++) {
			char *got = analyze(one, 1, threads, with_launch);
			if (strcmp(got, want) != 0)
				fail_msg("threads %d, launch %d: the one-pass report differs",
				         threads, with_launch);
			free(got);
			got = analyze(twice, 2, threads, with_launch); /* list path, threads */
			assert_string_equal(got, want);
			free(got);
		}
		free(want);
	}
}

/* A cancelled one-pass audit stops with MLSEC_ERR_TIMEOUT, whatever the
 * thread count, and leaves nothing behind (the sanitizer build checks). */
static void test_one_pass_cancel(void **state)
{
	(void)state;
	const char *one[] = {repo};
	volatile int cancel = 1;
	for (int threads = 1; threads <= 2; threads++) {
		json_t *opts = json_pack("{s:i}", "threads", threads);
		mlsec_engine_request req = {
		        .paths = one, .npaths = 1, .options = opts, .cancel = &cancel};
		mlsec_report *rep = mlsec_report_new("triton");
		mlsec_error err;
		assert_int_equal(mlsec_engine_triton.analyze(&req, rep, &err), MLSEC_ERR_TIMEOUT);
		assert_non_null(strstr(err.text, "cancelled"));
		mlsec_report_free(rep);
		json_decref(opts);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_one_pass_equals_list),
	        cmocka_unit_test(test_one_pass_cancel),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
