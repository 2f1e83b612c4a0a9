/*
 * test_poison_engine.c - mlsec_engine_poison as the stage services drive
 * it: options, findings and details, the fail-closed POISON-MALFORMED
 * finding, missing logs, artifact-root confinement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/poison.h"

static char tmp[] = "/tmp/mlsec-poison-engine-XXXXXX";

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	char dir[256];
	mlsec_poison_sim s;
	mlsec_poison_sim_init(&s);
	s.workers = 6;
	s.steps = 1500;
	s.mode = MLSEC_POISON_SIM_SLOW;
	s.poison_rank = 4;
	s.poison_start = 600;
	snprintf(dir, sizeof dir, "%s/slow", tmp);
	return mlsec_poison_sim_write(&s, dir, NULL) == MLSEC_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static mlsec_err analyze(const char *path, const json_t *opts, const char *root, mlsec_report **rep)
{
	const char *paths[] = {path};
	mlsec_engine_request req = {
	        .paths = paths, .npaths = 1, .options = opts, .artifact_root = root};
	*rep = mlsec_report_new("poison");
	mlsec_error err;
	mlsec_error_clear(&err);
	return mlsec_engine_poison.analyze(&req, *rep, &err);
}

static void test_drift_finding(void **state)
{
	(void)state;
	char dir[256];
	snprintf(dir, sizeof dir, "%s/slow", tmp);
	json_t *opts = json_pack("{s:f, s:s}", "cusum-threshold", 10.0, "threshold", "7");
	mlsec_report *rep;
	assert_int_equal(analyze(dir, opts, NULL, &rep), MLSEC_OK);
	assert_string_equal(mlsec_engine_poison.rule_prefix, "POISON");
	mlsec_artifact *a = mlsec_report_artifact(rep, 0);
	assert_true(mlsec_artifact_finding_count(a) >= 1);
	const mlsec_finding *f = mlsec_artifact_finding(a, 0);
	assert_string_equal(f->rule_id, "POISON-CUSUM-DRIFT");
	assert_int_equal(f->severity, MLSEC_SEV_HIGH);
	assert_non_null(strstr(f->field, "rank=4/"));
	json_t *det = mlsec_artifact_details(a);
	json_t *alarm = json_array_get(json_object_get(det, "alarms"), 0);
	assert_int_equal(json_integer_value(json_object_get(alarm, "rank")), 4);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(det, "stats"), "records")),
	        6 * 1500);
	assert_int_equal(mlsec_report_exit_code(rep, MLSEC_SEV_HIGH), 2);
	mlsec_report_free(rep);
	json_decref(opts);

	/* bad options are the caller's error, not a finding */
	opts = json_pack("{s:s}", "cusum-drift", "fast");
	assert_int_equal(analyze(dir, opts, NULL, &rep), MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(rep);
	json_decref(opts);
}

static void test_malformed_is_a_finding(void **state)
{
	(void)state;
	char dir[256], path[300];
	snprintf(dir, sizeof dir, "%s/bad", tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof path, "%s/worker_0.jsonl", dir);
	FILE *f = fopen(path, "w");
	fputs("{\"rank\": 0}\n", f);
	fclose(f);
	mlsec_report *rep;
	assert_int_equal(analyze(dir, NULL, NULL, &rep), MLSEC_OK);
	const mlsec_finding *fd = mlsec_artifact_finding(mlsec_report_artifact(rep, 0), 0);
	assert_string_equal(fd->rule_id, "POISON-MALFORMED");
	assert_int_equal(fd->severity, MLSEC_SEV_HIGH);
	assert_int_equal(fd->line, 1);
	assert_non_null(strstr(fd->file, "worker_0.jsonl"));
	mlsec_report_free(rep);
}

static void test_missing_and_confined(void **state)
{
	(void)state;
	char dir[256], root[256];
	snprintf(dir, sizeof dir, "%s/none", tmp);
	mlsec_report *rep;
	assert_int_not_equal(analyze(dir, NULL, NULL, &rep), MLSEC_OK);
	mlsec_report_free(rep);
	snprintf(dir, sizeof dir, "%s/slow", tmp);
	snprintf(root, sizeof root, "%s/bad", tmp);
	assert_int_equal(analyze(dir, NULL, root, &rep), MLSEC_ERR_PERMISSION);
	mlsec_report_free(rep);
	assert_int_equal(analyze(dir, NULL, tmp, &rep), MLSEC_OK);
	mlsec_report_free(rep);
}

/* The worker logs given as separate file artifacts (what a Submit to the
 * stage service carries) are one run; the finding lands on rank 4's file. */
static void test_file_artifacts_one_run(void **state)
{
	(void)state;
	char files[6][300];
	const char *paths[6];
	for (int r = 0; r < 6; r++) {
		snprintf(files[r], sizeof files[r], "%s/slow/worker_%d.jsonl", tmp, r);
		paths[r] = files[r];
	}
	mlsec_engine_request req = {.paths = paths, .npaths = 6};
	mlsec_report *rep = mlsec_report_new("poison");
	mlsec_error err;
	assert_int_equal(mlsec_engine_poison.analyze(&req, rep, &err), MLSEC_OK);
	assert_int_equal(mlsec_report_artifact_count(rep), 6);
	for (size_t i = 0; i < 6; i++) {
		mlsec_artifact *a = mlsec_report_artifact(rep, i);
		if (i == 4) {
			assert_true(mlsec_artifact_finding_count(a) >= 1);
			assert_string_equal(mlsec_artifact_finding(a, 0)->rule_id,
			                    "POISON-CUSUM-DRIFT");
		} else {
			assert_int_equal(mlsec_artifact_finding_count(a), 0);
		}
	}
	/* one run of 6 workers, stats on the first artifact */
	json_t *stats =
	        json_object_get(mlsec_artifact_details(mlsec_report_artifact(rep, 0)), "stats");
	assert_int_equal(json_integer_value(json_object_get(stats, "workers")), 6);
	mlsec_report_free(rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_drift_finding),
	        cmocka_unit_test(test_malformed_is_a_finding),
	        cmocka_unit_test(test_missing_and_confined),
	        cmocka_unit_test(test_file_artifacts_one_run),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
