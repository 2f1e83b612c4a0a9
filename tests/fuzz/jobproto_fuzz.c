/*
 * jobproto_fuzz.c - libFuzzer harness for the cluster's protobuf inputs
 * (protobuf-c unpack + the checks built on it). The first byte picks the
 * message, the rest is its wire bytes:
 *   0 StageRequest (a stage service's Kafka/Analyze input): options_json,
 *     and every artifact uri resolved under a scratch artifact root that
 *     holds symlinks out of it - a uri that resolves must stay under root;
 *   1 StageResult (the orchestrator's results topic): stage exit code and
 *     its report_json merged like mlsec-submit does;
 *   2 Verdict (mlsec-submit's Get/Watch answer): verdict rule and merge;
 *   3 SubmitRequest: gate/options checks and stage selection.
 * Invariants: exit codes in 0..2, severities clamp into range, decoded
 * messages re-pack.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/artifacts.h"
#include "mlsec/jobproto.h"
#include "mlsec/v1/orchestrator.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[PATH_MAX];
static size_t root_len;
static const char *const root_entries[] = {"sub/up", "sub/a.pt", "sub", "model.onnx",
                                           "etc",    "passwd",   "loop"};

/* The scratch root goes when the process ends (replays under ctest). */
static void remove_root(void)
{
	char p[PATH_MAX + 32];
	for (size_t i = 0; i < sizeof root_entries / sizeof *root_entries; i++) {
		snprintf(p, sizeof p, "%s/%s", root, root_entries[i]);
		if (unlink(p) != 0)
			rmdir(p);
	}
	rmdir(root);
}

/* A root with a file, a subdirectory and links that leave it. */
static void make_root(void)
{
	char tmpl[PATH_MAX];
	const char *t = getenv("TMPDIR");
	snprintf(tmpl, sizeof tmpl, "%s/jobproto_fuzz.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpl) || !realpath(tmpl, root))
		abort();
	atexit(remove_root);
	root_len = strlen(root);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/model.onnx", root);
	FILE *f = fopen(p, "w");
	if (!f)
		abort();
	fputs("not a model", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/sub", root);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/sub/a.pt", root);
	if ((f = fopen(p, "w")))
		fclose(f);
	snprintf(p, sizeof p, "%s/etc", root);
	if (symlink("/etc", p) != 0)
		abort();
	snprintf(p, sizeof p, "%s/passwd", root);
	if (symlink("/etc/passwd", p) != 0)
		abort();
	snprintf(p, sizeof p, "%s/sub/up", root);
	if (symlink("../..", p) != 0)
		abort();
	snprintf(p, sizeof p, "%s/loop", root);
	if (symlink("loop", p) != 0)
		abort();
}

static void check_severity(int pb)
{
	mlsec_severity s = mlsec_jobproto_severity_from_pb((Mlsec__V1__Severity)pb);
	if ((int)s < MLSEC_SEV_INFO || (int)s > MLSEC_SEV_CRITICAL)
		abort();
}

static void check_repack(const ProtobufCMessage *m)
{
	uint8_t *out = NULL;
	size_t len = 0;
	if (mlsec_jobproto_pack(m, &out, &len) == MLSEC_OK)
		mlsec_free(out);
}

static void merge_report(const char *text)
{
	if (!text || !*text)
		return;
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		return;
	mlsec_report *rep = mlsec_report_new("cluster");
	mlsec_error err;
	if (rep)
		mlsec_report_merge_json(rep, j, &err);
	mlsec_report_free(rep);
	json_decref(j);
}

static void stage_request(const uint8_t *d, size_t n)
{
	Mlsec__V1__StageRequest *r = mlsec__v1__stage_request__unpack(NULL, n, d);
	if (!r)
		return;
	check_severity(r->gate);
	check_repack(&r->base);
	if (r->options_json && *r->options_json) {
		json_error_t je;
		json_decref(json_loads(r->options_json, JSON_REJECT_DUPLICATES, &je));
	}
	for (size_t i = 0; i < r->n_artifacts && i < 8; i++) {
		const Mlsec__V1__Artifact *a = r->artifacts[i];
		char *path = NULL;
		char sha[MLSEC_SHA256_HEX_LEN];
		uint64_t sz = 0;
		mlsec_error err;
		int dotdot = a->uri ? mlsec_artifact_uri_has_dotdot(a->uri) : 0;
		if (mlsec_artifact_resolve(root, a->uri, 1u << 16, a->sha256, &path, sha, &sz,
		                           &err) == MLSEC_OK) {
			/* Confinement: a resolved artifact is a path under root. */
			if (dotdot || strncmp(path, root, root_len) != 0 || path[root_len] != '/')
				abort();
			mlsec_artifact_relative(root, path);
			mlsec_free(path);
		}
	}
	mlsec__v1__stage_request__free_unpacked(r, NULL);
}

static void stage_result(const uint8_t *d, size_t n)
{
	Mlsec__V1__StageResult *r = mlsec__v1__stage_result__unpack(NULL, n, d);
	if (!r)
		return;
	for (int g = MLSEC_SEV_INFO; g <= MLSEC_SEV_CRITICAL; g++) {
		int x = mlsec_jobproto_stage_exit(r, (mlsec_severity)g);
		if (x < 0 || x > 2)
			abort();
	}
	for (size_t i = 0; i < r->n_findings; i++)
		check_severity(r->findings[i]->severity);
	check_repack(&r->base);
	merge_report(r->report_json);
	mlsec__v1__stage_result__free_unpacked(r, NULL);
}

static void verdict(const uint8_t *d, size_t n)
{
	Mlsec__V1__Verdict *v = mlsec__v1__verdict__unpack(NULL, n, d);
	if (!v)
		return;
	check_severity(v->gate);
	int x = mlsec_jobproto_verdict((const Mlsec__V1__StageResult *const *)v->stages,
	                               v->n_stages, v->n_pending_stages,
	                               mlsec_jobproto_severity_from_pb(v->gate));
	if (x < 0 || x > 2 || (v->n_pending_stages && x == 0))
		abort();
	for (size_t i = 0; i < v->n_stages && i < 8; i++)
		merge_report(v->stages[i]->report_json);
	check_repack(&v->base);
	mlsec__v1__verdict__free_unpacked(v, NULL);
}

static void submit_request(const uint8_t *d, size_t n)
{
	Mlsec__V1__SubmitRequest *r = mlsec__v1__submit_request__unpack(NULL, n, d);
	if (!r)
		return;
	check_severity(r->gate);
	for (size_t i = 0; i < r->n_stages; i++)
		mlsec_jobproto_stage_has_formats(r->stages[i]);
	if (r->options_json && *r->options_json) {
		json_error_t je;
		json_decref(json_loads(r->options_json, JSON_REJECT_DUPLICATES, &je));
	}
	for (size_t i = 0; i < r->n_artifacts; i++)
		if (r->artifacts[i]->uri)
			mlsec_artifact_uri_has_dotdot(r->artifacts[i]->uri);
	check_repack(&r->base);
	mlsec__v1__submit_request__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root_len)
		make_root();
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		stage_request(data + 1, size - 1);
		break;
	case 1:
		stage_result(data + 1, size - 1);
		break;
	case 2:
		verdict(data + 1, size - 1);
		break;
	default:
		submit_request(data + 1, size - 1);
	}
	return 0;
}
