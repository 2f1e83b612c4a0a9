/*
 * test_jobproto.c - the verdict rule, StageResult packing from a report
 * (status, findings, root-relative paths) and artifact resolution
 * (confinement, '..', symlinks, sha256 verification, size limit).
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
#include "mlsec/artifacts.h"
#include "mlsec/jobproto.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mlsec-jobproto-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p[512];
	snprintf(p, sizeof(p), "%s/root", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/a.pbtxt", dir);
	FILE *f = fopen(p, "w");
	fputs("name: \"a\"\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/outside.txt", dir);
	f = fopen(p, "w");
	fputs("secret\n", f);
	fclose(f);
	char link[512];
	snprintf(link, sizeof(link), "%s/root/link.pbtxt", dir);
	assert_int_equal(symlink(p, link), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static Mlsec__V1__StageResult *unpack(uint8_t *buf, size_t len)
{
	Mlsec__V1__StageResult *r = mlsec__v1__stage_result__unpack(NULL, len, buf);
	mlsec_free(buf);
	assert_non_null(r);
	return r;
}

static void test_result_and_verdict(void **state)
{
	char root[300], path[400];
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(path, sizeof(path), "%s/a.pbtxt", root);
	mlsec_report *rep = mlsec_report_new("triton");
	mlsec_artifact *a = mlsec_report_add_artifact(rep, path, "triton-config");
	mlsec_artifact_add_finding(a, "X-LOW", MLSEC_SEV_LOW, "low", NULL);
	uint8_t *buf;
	size_t len;
	assert_int_equal(mlsec_jobproto_result_pack("j1", "triton", rep, MLSEC_OK, NULL, root,
	                                            MLSEC_SEV_HIGH, 5, "w", &buf, &len),
	                 MLSEC_OK);
	Mlsec__V1__StageResult *ok = unpack(buf, len);
	assert_int_equal(ok->status, MLSEC__V1__STAGE_STATUS__STAGE_STATUS_OK);
	assert_int_equal(ok->n_findings, 1);
	assert_string_equal(ok->findings[0]->artifact, "a.pbtxt"); /* relative to the root */
	assert_non_null(strstr(ok->report_json, "\"a.pbtxt\""));
	assert_null(strstr(ok->report_json, root));
	assert_int_equal(mlsec_jobproto_stage_exit(ok, MLSEC_SEV_HIGH), 0);
	assert_int_equal(mlsec_jobproto_stage_exit(ok, MLSEC_SEV_LOW),
	                 2); /* the job's gate decides */

	mlsec_artifact_add_finding(a, "X-HIGH", MLSEC_SEV_HIGH, "high", NULL);
	assert_int_equal(mlsec_jobproto_result_pack("j1", "triton", rep, MLSEC_OK, NULL, root,
	                                            MLSEC_SEV_HIGH, 5, "w", &buf, &len),
	                 MLSEC_OK);
	Mlsec__V1__StageResult *alert = unpack(buf, len);
	assert_int_equal(alert->status, MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ALERT);

	assert_int_equal(mlsec_jobproto_result_pack("j1", "checkpoint", NULL, MLSEC_ERR_TIMEOUT,
	                                            "late", NULL, MLSEC_SEV_HIGH, 0, "o", &buf,
	                                            &len),
	                 MLSEC_OK);
	Mlsec__V1__StageResult *err = unpack(buf, len);
	assert_int_equal(err->status, MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ERROR);
	assert_string_equal(err->error, "late");
	assert_int_equal(mlsec_jobproto_stage_exit(err, MLSEC_SEV_HIGH), 1);

	const Mlsec__V1__StageResult *v1[] = {ok, err};
	assert_int_equal(mlsec_jobproto_verdict(v1, 2, 0, MLSEC_SEV_HIGH), 1);
	const Mlsec__V1__StageResult *v2[] = {err, alert};
	assert_int_equal(mlsec_jobproto_verdict(v2, 2, 0, MLSEC_SEV_HIGH), 2); /* 2 beats 1 */
	const Mlsec__V1__StageResult *v3[] = {ok};
	assert_int_equal(mlsec_jobproto_verdict(v3, 1, 0, MLSEC_SEV_HIGH), 0);
	assert_int_equal(mlsec_jobproto_verdict(v3, 1, 1, MLSEC_SEV_HIGH), 1); /* a missing stage */
	assert_int_equal(mlsec_jobproto_verdict(NULL, 0, 0, MLSEC_SEV_HIGH), 0);
	mlsec__v1__stage_result__free_unpacked(ok, NULL);
	mlsec__v1__stage_result__free_unpacked(alert, NULL);
	mlsec__v1__stage_result__free_unpacked(err, NULL);
	mlsec_report_free(rep);
	/* out-of-range severities fail closed */
	assert_int_equal(mlsec_jobproto_severity_from_pb((Mlsec__V1__Severity)99),
	                 MLSEC_SEV_CRITICAL);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* TOCTOU: the stamp taken when a file is verified shows a later swap
 * (rename) or modification of the path the engine reopens. */
static void test_stamp(void **state)
{
	(void)state;
	char sdir[] = "/tmp/mlsec-stamp.XXXXXX";
	assert_non_null(mkdtemp(sdir));
	char a[300], b[300];
	snprintf(a, sizeof(a), "%s/model.bin", sdir);
	snprintf(b, sizeof(b), "%s/other.bin", sdir);
	put(a, "verified bytes\n");
	put(b, "swapped in bytes\n");
	char *real = NULL;
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size = 0;
	mlsec_artifact_stamp st;
	mlsec_error err;
	assert_int_equal(mlsec_artifact_resolve_stamped(sdir, "model.bin", 1 << 20, NULL, &real,
	                                                hex, &size, &st, &err),
	                 MLSEC_OK);
	assert_int_equal(size, 15);
	assert_int_equal(mlsec_artifact_stamp_check(real, &st, &err), MLSEC_OK);
	/* a rename swap: same path, other inode */
	assert_int_equal(rename(b, a), 0);
	assert_int_equal(mlsec_artifact_stamp_check(real, &st, &err), MLSEC_ERR_INTEGRITY);
	mlsec_free(real);
	/* an in-place rewrite of the same length: ctime moves */
	assert_int_equal(mlsec_artifact_resolve_stamped(sdir, "model.bin", 1 << 20, NULL, &real,
	                                                NULL, NULL, &st, &err),
	                 MLSEC_OK);
	usleep(20 * 1000);
	put(a, "swapped IN bytes\n");
	assert_int_equal(mlsec_artifact_stamp_check(real, &st, &err), MLSEC_ERR_INTEGRITY);
	/* gone */
	unlink(a);
	assert_int_equal(mlsec_artifact_stamp_check(real, &st, &err), MLSEC_ERR_INTEGRITY);
	mlsec_free(real);
	/* a file larger than the limit is refused while hashing, too */
	put(a, "0123456789");
	assert_int_equal(mlsec_artifact_resolve_stamped(sdir, "model.bin", 4, NULL, &real, NULL,
	                                                NULL, &st, &err),
	                 MLSEC_ERR_LIMIT);
	assert_null(real);
	unlink(a);
	rmdir(sdir);
}

/* auto routing: a model goes to every stage that reads it, primary first. */
static void test_auto_stages(void **state)
{
	(void)state;
	const char *s[MLSEC_JOBPROTO_MAX_AUTO_STAGES];
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_ONNX, s, 2), 2);
	assert_string_equal(s[0], "export");
	assert_string_equal(s[1], "inspect");
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_SAFETENSORS, s, 2), 2);
	assert_string_equal(s[0], "checkpoint");
	assert_string_equal(s[1], "inspect");
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_PYTORCH_ZIP, s, 2), 2);
	assert_string_equal(s[1], "inspect");
	/* inspect cannot read these: checkpoint only */
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_PICKLE, s, 2), 1);
	assert_string_equal(s[0], "checkpoint");
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_NPZ, s, 2), 1);
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_TRITON_CONFIG, s, 2), 1);
	assert_string_equal(s[0], "triton");
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_UNKNOWN, s, 2), 0);
	/* a short buffer gets the primary stage, the count stays right */
	assert_int_equal(mlsec_jobproto_stages_for_format(MLSEC_FMT_ONNX, s, 1), 2);
	assert_string_equal(s[0], "export");
	assert_true(mlsec_jobproto_auto_accepts(MLSEC_FMT_ONNX, "inspect"));
	assert_true(mlsec_jobproto_auto_accepts(MLSEC_FMT_ONNX, "export"));
	assert_false(mlsec_jobproto_auto_accepts(MLSEC_FMT_ONNX, "checkpoint"));
	assert_false(mlsec_jobproto_auto_accepts(MLSEC_FMT_PICKLE, "inspect"));
	assert_true(mlsec_jobproto_auto_accepts(MLSEC_FMT_SAFETENSORS, "checkpoint"));
}

static void test_resolve(void **state)
{
	char root[300];
	snprintf(root, sizeof(root), "%s/root", dir);
	char *res = NULL;
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size = 0;
	mlsec_error err;
	assert_int_equal(
	        mlsec_artifact_resolve(root, "a.pbtxt", 1 << 20, NULL, &res, hex, &size, &err),
	        MLSEC_OK);
	assert_int_equal(size, 10);
	char want[MLSEC_SHA256_HEX_LEN];
	memcpy(want, hex, sizeof(want));
	mlsec_free(res);
	assert_int_equal(
	        mlsec_artifact_resolve(root, "a.pbtxt", 1 << 20, want, &res, NULL, NULL, &err),
	        MLSEC_OK);
	mlsec_free(res);
	want[0] = want[0] == '0' ? '1' : '0';
	assert_int_equal(
	        mlsec_artifact_resolve(root, "a.pbtxt", 1 << 20, want, &res, NULL, NULL, &err),
	        MLSEC_ERR_INTEGRITY);
	assert_int_equal(
	        mlsec_artifact_resolve(root, "a.pbtxt", 1 << 20, "zz", &res, NULL, NULL, &err),
	        MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_artifact_resolve(root, "a.pbtxt", 5, NULL, &res, NULL, NULL, &err),
	                 MLSEC_ERR_LIMIT);
	assert_int_equal(mlsec_artifact_resolve(root, "../outside.txt", 1 << 20, NULL, &res, NULL,
	                                        NULL, &err),
	                 MLSEC_ERR_PERMISSION);
	assert_int_equal(mlsec_artifact_resolve(root, "x/../../outside.txt", 1 << 20, NULL, &res,
	                                        NULL, NULL, &err),
	                 MLSEC_ERR_PERMISSION);
	assert_int_equal(
	        mlsec_artifact_resolve(root, "link.pbtxt", 1 << 20, NULL, &res, NULL, NULL, &err),
	        MLSEC_ERR_PERMISSION);
	assert_int_equal(
	        mlsec_artifact_resolve(root, "/etc/passwd", 1 << 20, NULL, &res, NULL, NULL, &err),
	        MLSEC_ERR_PERMISSION);
	assert_int_equal(mlsec_artifact_resolve(root, "", 1 << 20, NULL, &res, NULL, NULL, &err),
	                 MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_artifact_resolve(root, "s3://bucket/x", 1 << 20, NULL, &res, NULL,
	                                        NULL, &err),
	                 MLSEC_ERR_INVALID_ARG);
	assert_int_equal(
	        mlsec_artifact_resolve(root, "missing", 1 << 20, NULL, &res, NULL, NULL, &err),
	        MLSEC_ERR_NOT_FOUND);
	assert_int_equal(mlsec_artifact_resolve(root, ".", 1 << 20, NULL, &res, NULL, NULL, &err),
	                 MLSEC_ERR_INVALID_ARG); /* a directory */
	assert_null(res);
	/* ".." only as a whole component */
	assert_true(mlsec_artifact_uri_has_dotdot(".."));
	assert_true(mlsec_artifact_uri_has_dotdot("a/../b"));
	assert_false(mlsec_artifact_uri_has_dotdot("a..b/c.."));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_result_and_verdict),
	        cmocka_unit_test(test_resolve),
	        cmocka_unit_test(test_auto_stages),
	        cmocka_unit_test(test_stamp),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
