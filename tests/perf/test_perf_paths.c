/*
 * test_perf_paths.c - the fast paths added for `mlsec triton` at scale
 * must give exactly what the plain paths give: report arena and shared
 * empty evidence, lazy details, mlsec_report_adopt, the getdents walk,
 * and the threaded Triton engine against the sequential one.
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

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/report.h"
#include "mlsec/triton.h"

static char *dump(const mlsec_report *r)
{
	json_t *j = mlsec_report_to_json(r, MLSEC_SEV_HIGH);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	return s;
}

/* A finding without evidence shares the empty object; writing evidence to
 * one finding must not show up on another, nor in an earlier JSON tree. */
static void test_evidence_is_private_once_written(void **state)
{
	(void)state;
	mlsec_report *r = mlsec_report_new("triton");
	mlsec_artifact *a = mlsec_report_add_artifact(r, "p", "triton-config");
	mlsec_finding *f1 = mlsec_artifact_add_finding(a, "R-1", MLSEC_SEV_LOW, "t1", "%s", "d1");
	mlsec_finding *f2 = mlsec_artifact_add_finding(a, "R-2", MLSEC_SEV_LOW, "t2", NULL);
	assert_non_null(f1);
	assert_non_null(f2);
	assert_int_equal(json_object_size(f1->evidence), 0);
	json_t *before = mlsec_report_to_json(r, MLSEC_SEV_HIGH);
	assert_int_equal(mlsec_finding_set_evidence(f1, "k", "%s-%d", "v", 7), MLSEC_OK);
	assert_string_equal(json_string_value(json_object_get(f1->evidence, "k")), "v-7");
	assert_int_equal(json_object_size(f2->evidence), 0);
	json_t *jf = json_array_get(
	        json_object_get(json_array_get(json_object_get(before, "artifacts"), 0),
	                        "findings"),
	        0);
	assert_int_equal(json_object_size(json_object_get(jf, "evidence")), 0);
	/* Editing the JSON tree of one finding leaves the others alone. */
	json_object_set_new(json_object_get(jf, "evidence"), "x", json_true());
	json_t *jf2 = json_array_get(
	        json_object_get(json_array_get(json_object_get(before, "artifacts"), 0),
	                        "findings"),
	        1);
	assert_int_equal(json_object_size(json_object_get(jf2, "evidence")), 0);
	assert_int_equal(json_object_size(f2->evidence), 0);
	json_decref(before);
	assert_string_equal(f1->detail, "d1");
	assert_null(f2->detail);
	mlsec_report_free(r);
}

/* "%s" details are copied without formatting, cut like vsnprintf's 4 KiB. */
static void test_long_detail_cut_like_vsnprintf(void **state)
{
	(void)state;
	char big[6000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	mlsec_report *r = mlsec_report_new("s");
	mlsec_artifact *a = mlsec_report_add_artifact(r, "p", NULL);
	mlsec_finding *f = mlsec_artifact_add_finding(a, "R", MLSEC_SEV_INFO, "t", "%s", big);
	mlsec_finding *g = mlsec_artifact_add_finding(a, "R", MLSEC_SEV_INFO, "t", "%s!", big);
	assert_int_equal(strlen(f->detail), 4095);
	assert_int_equal(strlen(g->detail), 4095);
	mlsec_report_free(r);
}

typedef struct det {
	int n;
	char name[8];
} det;

static int fills;

static mlsec_err fill(json_t *d, const void *data)
{
	const det *x = data;
	fills++;
	return json_object_set_new(d, x->name, json_integer(x->n)) ? MLSEC_ERR_NOMEM : MLSEC_OK;
}

static void test_lazy_details_fill_once(void **state)
{
	(void)state;
	mlsec_report *r = mlsec_report_new("s");
	mlsec_artifact *a = mlsec_report_add_artifact(r, "p", NULL);
	det x = {42, "answer"};
	fills = 0;
	assert_int_equal(mlsec_artifact_set_details_fill(a, fill, &x, sizeof x), MLSEC_OK);
	x.n = 0; /* the report keeps its own copy */
	assert_int_equal(fills, 0);
	char *s1 = dump(r);
	assert_non_null(strstr(s1, "\"details\":{\"answer\":42}"));
	json_object_set_new(mlsec_artifact_details(a), "more", json_true());
	char *s2 = dump(r);
	assert_non_null(strstr(s2, "\"details\":{\"answer\":42,\"more\":true}"));
	assert_int_equal(fills, 1);
	free(s1);
	free(s2);
	mlsec_report_free(r);
}

/* Building two halves and adopting them equals building one report. */
static void fill_part(mlsec_report *r, int from, int to)
{
	for (int i = from; i < to; i++) {
		char p[32];
		snprintf(p, sizeof p, "m%d/config.pbtxt", i);
		mlsec_artifact *a = mlsec_report_add_artifact(r, p, "triton-config");
		assert_non_null(a);
		mlsec_finding *f =
		        mlsec_artifact_add_finding(a, "R-X", MLSEC_SEV_MEDIUM, "title", "n=%d", i);
		assert_non_null(f);
		assert_int_equal(mlsec_finding_set_location(f, p, i + 1, 2, "field"), MLSEC_OK);
		if (i % 2)
			assert_int_equal(mlsec_finding_set_evidence(f, "i", "%d", i), MLSEC_OK);
		if (i % 3 == 0)
			assert_int_equal(mlsec_report_add_error(r, "error %d", i), MLSEC_OK);
	}
}

static void test_adopt_keeps_order_and_ownership(void **state)
{
	(void)state;
	mlsec_report *whole = mlsec_report_new("triton");
	fill_part(whole, 0, 40);
	mlsec_report *dst = mlsec_report_new("triton");
	fill_part(dst, 0, 10);
	mlsec_report *b = mlsec_report_new("triton"), *c = mlsec_report_new("triton");
	fill_part(b, 10, 25);
	fill_part(c, 25, 40);
	assert_int_equal(mlsec_report_adopt(dst, b), MLSEC_OK);
	assert_int_equal(mlsec_report_adopt(dst, c), MLSEC_OK);
	assert_int_equal(mlsec_report_adopt(dst, NULL), MLSEC_OK);
	/* Adopted artifacts allocate from dst now (b and c are gone). */
	mlsec_finding *f = mlsec_artifact_add_finding(mlsec_report_artifact(dst, 30), "R-Y",
	                                              MLSEC_SEV_LOW, "late", "%s", "x");
	assert_non_null(f);
	assert_int_equal(mlsec_finding_set_remediation(f, "fix"), MLSEC_OK);
	mlsec_finding *g = mlsec_artifact_add_finding(mlsec_report_artifact(whole, 30), "R-Y",
	                                              MLSEC_SEV_LOW, "late", "%s", "x");
	assert_int_equal(mlsec_finding_set_remediation(g, "fix"), MLSEC_OK);
	char *s1 = dump(whole), *s2 = dump(dst);
	assert_string_equal(s1, s2);
	assert_string_equal(mlsec_artifact_stage(mlsec_report_artifact(dst, 39)), "triton");
	free(s1);
	free(s2);
	/* A different stage is kept per artifact. */
	mlsec_report *o = mlsec_report_new("other");
	fill_part(o, 40, 41);
	assert_int_equal(mlsec_report_adopt(dst, o), MLSEC_OK);
	assert_string_equal(mlsec_artifact_stage(mlsec_report_artifact(dst, 40)), "other");
	mlsec_report_free(whole);
	mlsec_report_free(dst);
}

static void test_adopt_nomem_changes_nothing(void **state)
{
	(void)state;
	mlsec_report *dst = mlsec_report_new("triton"), *src = mlsec_report_new("triton");
	fill_part(dst, 0, 4);
	fill_part(src, 4, 9);
	mlsec_alloc_fail_after(0);
	mlsec_err rc = mlsec_report_adopt(dst, src);
	mlsec_alloc_fail_after(-1);
	assert_int_equal(rc, MLSEC_ERR_NOMEM);
	assert_int_equal(mlsec_report_artifact_count(dst), 4);
	assert_int_equal(mlsec_report_artifact_count(src), 5);
	mlsec_report_free(src);
	mlsec_report_free(dst);
}

/* ---- the walk and the threaded engine on a generated tree ---- */

static char root[64];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup_tree(void **state)
{
	(void)state;
	snprintf(root, sizeof root, "/tmp/mlsec-perf-test-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	char p[256];
	for (int i = 0; i < 300; i++) {
		snprintf(p, sizeof p, "%s/m%03d", root, i);
		mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/m%03d/config.pbtxt", root, i);
		char text[600];
		if (i == 7)
			snprintf(text, sizeof text, "name: \"m\" bogus: 1\n");
		else if (i == 200)
			snprintf(text, sizeof text, "input [ { name: \"a\" dims: [ -1 ");
		else
			snprintf(text, sizeof text,
			         "name: \"m%d\"\nbackend: \"%s\"\nmax_batch_size: %d\n"
			         "input [ { name: \"in\" data_type: %s dims: [ %s ] } ]\n"
			         "output [ { name: \"o\" data_type: TYPE_FP32 dims: [ 1 ] "
			         "label_filename: \"%s\" } ]\n"
			         "instance_group [ { count: %d kind: KIND_CPU %s} ]\n"
			         "parameters { key: \"%s\" value: { string_value: \"%s\" } }\n",
			         i, i % 5 ? "onnxruntime" : "python", i % 4 * 8,
			         i % 2 ? "TYPE_STRING" : "TYPE_FP32", i % 3 ? "3" : "-1",
			         i % 11 ? "labels.txt" : "/etc/labels", 1 + i % 20,
			         i % 2 ? "rate_limiter { resources [ { name: \"R\" count: 1 } ] } "
			               : "",
			         i % 13 ? "mode" : "password", i % 13 ? "fast" : "hunter2hunter2");
		write_file(p, text);
	}
	/* Nested repository, a non-config file and a symlink that is not followed. */
	snprintf(p, sizeof p, "%s/m010/sub", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/m010/sub/config.pbtxt", root);
	write_file(p, "name: \"nested\"\n");
	snprintf(p, sizeof p, "%s/m010/model.onnx", root);
	write_file(p, "x");
	snprintf(p, sizeof p, "%s/link", root);
	if (symlink("m011", p) != 0)
		return -1;
	return 0;
}

static int teardown_tree(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static int only_config(const char *path, const char *base, void *ctx)
{
	(void)path;
	(void)ctx;
	return !strcmp(base, "config.pbtxt");
}

static void test_walk_lists_sorted_without_symlinks(void **state)
{
	(void)state;
	for (int pass = 0; pass < 2; pass++) {
		setenv("MLSEC_THREADS", pass ? "3" : "1", 1); /* threaded, then sequential walk */
		const char *t[] = {root};
		mlsec_strlist out = {0};
		mlsec_error e;
		assert_int_equal(mlsec_targets_expand(t, 1, only_config, NULL, &out, &e), MLSEC_OK);
		assert_int_equal(out.count, 301);
		for (size_t i = 1; i < out.count; i++)
			assert_true(strcmp(out.items[i - 1], out.items[i]) < 0);
		char want[256];
		snprintf(want, sizeof want, "%s/m010/sub/config.pbtxt", root);
		assert_string_equal(out.items[11], want);
		for (size_t i = 0; i < out.count; i++)
			assert_null(strstr(out.items[i], "/link/"));
		mlsec_strlist_free(&out);
		/* A glob with ** sees the same files. */
		char pat[128];
		snprintf(pat, sizeof pat, "%s/**/config.pbtxt", root);
		const char *g[] = {pat};
		assert_int_equal(mlsec_targets_expand(g, 1, NULL, NULL, &out, &e), MLSEC_OK);
		assert_int_equal(out.count, 301);
		mlsec_strlist_free(&out);
	}
	unsetenv("MLSEC_THREADS");
}

/* Errors of a threaded walk are those the sequential walk meets first. */
static void test_parallel_walk_reports_first_error(void **state)
{
	(void)state;
	char top[128], p[1024];
	snprintf(top, sizeof top, "%s-deep", root);
	mkdir(top, 0755);
	for (int i = 0; i < 100; i++) {
		snprintf(p, sizeof p, "%s/e%02d", top, i);
		mkdir(p, 0755);
	}
	for (int k = 0; k < 2; k++) {
		size_t n = (size_t)snprintf(p, sizeof p, "%s/e%02d", top, k ? 80 : 20);
		for (int d = 0; d < MLSEC_WALK_MAX_DEPTH + 2; d++) {
			n += (size_t)snprintf(p + n, sizeof p - n, "/x");
			mkdir(p, 0755);
		}
	}
	const char *t[] = {top};
	mlsec_strlist out = {0};
	mlsec_error e;
	mlsec_error_clear(&e);
	setenv("MLSEC_THREADS", "3", 1); /* the threaded walk, whatever the load */
	assert_int_equal(mlsec_targets_expand(t, 1, NULL, NULL, &out, &e), MLSEC_ERR_LIMIT);
	unsetenv("MLSEC_THREADS");
	mlsec_strlist_free(&out);
	snprintf(p, sizeof p, "%s/e20/", top);
	assert_non_null(strstr(e.text, p));
	assert_null(strstr(e.text, "/e80/"));
	assert_int_equal(e.offset, -1);
	snprintf(p, sizeof p, "rm -rf '%s'", top);
	assert_int_equal(system(p), 0);
}

static char *run_engine(int threads, const char *launch)
{
	const char *paths[] = {root};
	json_t *opts = json_pack("{s:i}", "threads", threads);
	if (launch)
		json_object_set_new(opts, "launch-args", json_string(launch));
	mlsec_engine_request req = {.paths = paths, .npaths = 1, .options = opts};
	mlsec_report *r = mlsec_report_new("triton");
	mlsec_error e;
	mlsec_error_clear(&e);
	assert_int_equal(mlsec_engine_triton.analyze(&req, r, &e), MLSEC_OK);
	assert_int_equal(mlsec_report_artifact_count(r), 301 + (launch ? 1 : 0));
	char *s = dump(r);
	mlsec_report_free(r);
	json_decref(opts);
	return s;
}

static void test_threads_give_the_sequential_report(void **state)
{
	(void)state;
	char launch[128];
	snprintf(launch, sizeof launch, "%s/launch.txt", root);
	write_file(launch, "tritonserver --model-repository=/models --rate-limit=off\n");
	const char *variants[] = {NULL, launch};
	for (int v = 0; v < 2; v++) {
		char *one = run_engine(1, variants[v]);
		assert_non_null(strstr(one, "TRITON-MALFORMED"));
		assert_non_null(strstr(one, "TRITON-PLAINTEXT-SECRET"));
		for (int t = 0; t <= 5; t++) {
			setenv("MLSEC_THREADS", "2", 1); /* what threads=0 picks */
			char *many = run_engine(t, variants[v]);
			unsetenv("MLSEC_THREADS");
			assert_string_equal(one, many);
			free(many);
		}
		free(one);
	}
	unlink(launch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_evidence_is_private_once_written),
	        cmocka_unit_test(test_long_detail_cut_like_vsnprintf),
	        cmocka_unit_test(test_lazy_details_fill_once),
	        cmocka_unit_test(test_adopt_keeps_order_and_ownership),
	        cmocka_unit_test(test_adopt_nomem_changes_nothing),
	        cmocka_unit_test(test_walk_lists_sorted_without_symlinks),
	        cmocka_unit_test(test_parallel_walk_reports_first_error),
	        cmocka_unit_test(test_threads_give_the_sequential_report),
	};
	return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
