/*
 * test_export_chain.c - the provenance chain end to end: attest the
 * fixture chain (safetensors -> ONNX -> plan), sign it with a fresh
 * Ed25519 key, verify it, then break it in every way the issue lists and
 * check that verify fails (gate high -> exit 2) naming the right stage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/export.h"
#include "mlsec/fsutil.h"

#define CHAIN "tests/data/export/chain/"

typedef struct fx {
	char dir[64];
	char key[128], pub[128], key2[128], pub2[128];
	char src[128], onnx[128], plan[128], att[128];
} fx;

static void path(char *out, const fx *f, const char *name)
{
	snprintf(out, 128, "%s/%s", f->dir, name);
}

static void copy_file(const char *from, const char *to)
{
	char *d = NULL;
	size_t n = 0;
	assert_int_equal(mlsec_file_read_all(from, 1 << 20, &d, &n, NULL), MLSEC_OK);
	assert_int_equal(mlsec_file_write_atomic(to, d, n, 0644, NULL), MLSEC_OK);
	mlsec_free(d);
}

static void write_keys(const char *priv, const char *pub)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(k);
	FILE *f = fopen(priv, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	f = fopen(pub, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
	EVP_PKEY_free(k);
}

/* Attests the fixture chain into att, signed with key (may be NULL). */
static void attest(const fx *f, const char *key, const char *att, const char *src)
{
	mlsec_report *r = mlsec_report_new("export");
	mlsec_artifact *la = NULL;
	mlsec_error err;
	mlsec_export_opts o;
	mlsec_export_opts_init(&o);
	assert_int_equal(mlsec_export_lint_onnx(f->onnx, &o, r, &la, &err), MLSEC_OK);
	mlsec_export_attest_req req = {src ? src : f->src,    f->onnx, f->plan, la, &o, key,
	                               "2026-01-01T00:00:00Z"};
	char *text = NULL;
	size_t len = 0;
	if (mlsec_export_attest(&req, &text, &len, &err) != MLSEC_OK)
		fail_msg("attest: %s", err.text);
	assert_int_equal(mlsec_file_write_atomic(att, text, len, 0644, NULL), MLSEC_OK);
	mlsec_free(text);
	mlsec_report_free(r);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/mlsec-chain-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path(f->key, f, "k.pem");
	path(f->pub, f, "pub.pem");
	path(f->key2, f, "k2.pem");
	path(f->pub2, f, "pub2.pem");
	path(f->src, f, "model.safetensors");
	path(f->onnx, f, "model.onnx");
	path(f->plan, f, "model.plan");
	path(f->att, f, "prov.json");
	write_keys(f->key, f->pub);
	write_keys(f->key2, f->pub2);
	copy_file(CHAIN "model.safetensors", f->src);
	copy_file(CHAIN "model.onnx", f->onnx);
	copy_file(CHAIN "model.plan", f->plan);
	attest(f, f->key, f->att, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Verifies; returns the report (caller frees). */
static mlsec_report *verify(const fx *f, const char *att, const char *key)
{
	mlsec_report *r = mlsec_report_new("export");
	mlsec_export_verify_req vr = {att, key, NULL, 0, NULL};
	mlsec_error err;
	if (mlsec_export_verify(&vr, r, &err) != MLSEC_OK)
		fail_msg("verify: %s", err.text);
	(void)f;
	return r;
}

/* Asserts that rule was reported with field containing stage. */
static void expect(const mlsec_report *r, const char *rule, const char *stage)
{
	mlsec_artifact *a = mlsec_report_artifact(r, 0);
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++) {
		const mlsec_finding *fd = mlsec_artifact_finding(a, i);
		if (!strcmp(fd->rule_id, rule) && fd->field && strstr(fd->field, stage)) {
			assert_int_equal(fd->severity, MLSEC_SEV_CRITICAL);
			return;
		}
	}
	fail_msg("expected %s naming '%s'", rule, stage);
}

static void test_clean(void **state)
{
	fx *f = *state;
	mlsec_report *r = verify(f, f->att, f->pub);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	assert_int_equal(mlsec_artifact_finding_count(mlsec_report_artifact(r, 0)), 0);
	mlsec_report_free(r);
}

static void flip(const char *p, size_t at)
{
	FILE *fp = fopen(p, "r+b");
	assert_non_null(fp);
	fseek(fp, (long)at, SEEK_SET);
	int c = fgetc(fp);
	fseek(fp, (long)at, SEEK_SET);
	fputc(c ^ 0x01, fp);
	fclose(fp);
}

/* Flipping bytes of the attestation itself fails closed, whatever the
 * byte: a parse error, a changed record or a bad signature. */
static void test_flip_attestation(void **state)
{
	fx *f = *state;
	char *d = NULL;
	size_t n = 0;
	assert_int_equal(mlsec_file_read_all(f->att, 1 << 20, &d, &n, NULL), MLSEC_OK);
	mlsec_free(d);
	for (size_t at = 0; at < n; at += 97) {
		flip(f->att, at);
		mlsec_report *r = verify(f, f->att, f->pub);
		if (mlsec_report_exit_code(r, MLSEC_SEV_HIGH) != 2)
			fail_msg("flipping byte %zu of the attestation went unnoticed", at);
		mlsec_report_free(r);
		flip(f->att, at);
	}
}

static void test_flip_each_artifact(void **state)
{
	fx *f = *state;
	const struct {
		const char *p;
		const char *stage;
		size_t at;
	} t[] = {{f->src, "checkpoint", 900}, {f->onnx, "onnx", 700}, {f->plan, "tensorrt", 500}};
	for (size_t i = 0; i < 3; i++) {
		flip(t[i].p, t[i].at);
		mlsec_report *r = verify(f, f->att, f->pub);
		assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
		expect(r, "EXPORT-ATTEST-DIGEST", t[i].stage);
		/* Only the changed stage is named. */
		mlsec_artifact *a = mlsec_report_artifact(r, 0);
		for (size_t k = 0; k < mlsec_artifact_finding_count(a); k++)
			assert_non_null(strstr(mlsec_artifact_finding(a, k)->field, t[i].stage));
		mlsec_report_free(r);
		flip(t[i].p, t[i].at);
	}
	/* Safetensors data byte: the state-dict digest changes too. */
	flip(f->src, 1100);
	mlsec_report *r = verify(f, f->att, f->pub);
	expect(r, "EXPORT-ATTEST-STATE-DICT", "checkpoint");
	mlsec_report_free(r);
	flip(f->src, 1100);
}

/* Loads the attestation, applies fn to (envelope, statement), re-encodes
 * the payload and writes it to out. */
static void tamper(const fx *f, const char *out, void (*fn)(json_t *env, json_t *stmt, void *),
                   void *ctx)
{
	json_t *env = json_load_file(f->att, 0, NULL);
	assert_non_null(env);
	unsigned char *body = NULL;
	size_t blen = 0;
	assert_int_equal(
	        export_b64_decode(json_string_value(json_object_get(env, "payload")), &body, &blen),
	        MLSEC_OK);
	json_t *stmt = json_loadb((char *)body, blen, 0, NULL);
	mlsec_free(body);
	assert_non_null(stmt);
	fn(env, stmt, ctx);
	char *s = json_dumps(stmt, JSON_COMPACT | JSON_SORT_KEYS);
	char *b64 = export_b64_encode((unsigned char *)s, strlen(s));
	json_object_set_new(env, "payload", json_string(b64));
	assert_int_equal(json_dump_file(env, out, JSON_INDENT(2)), 0);
	free(s);
	mlsec_free(b64);
	json_decref(stmt);
	json_decref(env);
}

static json_t *stages(json_t *stmt)
{
	return json_object_get(json_object_get(stmt, "predicate"), "stages");
}

static void do_reorder(json_t *env, json_t *stmt, void *ctx)
{
	json_t *s = stages(stmt);
	json_t *a = json_incref(json_array_get(s, 0));
	json_array_remove(s, 0);
	json_array_insert_new(s, 1, a);
}

static void test_reorder(void **state)
{
	fx *f = *state;
	char out[128];
	path(out, f, "reorder.json");
	tamper(f, out, do_reorder, NULL);
	mlsec_report *r = verify(f, out, f->pub);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	expect(r, "EXPORT-ATTEST-ORDER", "stage[0] onnx");
	expect(r, "EXPORT-ATTEST-SIGNATURE", "signature");
	mlsec_report_free(r);
	/* Unsigned reorder is caught by the chain alone. */
	mlsec_report *r2 = verify(f, out, NULL);
	expect(r2, "EXPORT-ATTEST-ORDER", "onnx");
	mlsec_report_free(r2);
}

static void do_lint(json_t *env, json_t *stmt, void *ctx)
{
	json_t *onnx = json_array_get(stages(stmt), 1);
	json_t *counts = json_object_get(json_object_get(onnx, "lint"), "counts");
	json_object_set_new(counts, "critical", json_integer(1));
	if (ctx) { /* a careful forger re-seals and re-links */
		export_record_seal(onnx, 1,
		                   json_string_value(json_object_get(
		                           json_array_get(stages(stmt), 0), "recordDigest")));
		json_t *plan = json_array_get(stages(stmt), 2);
		export_record_seal(plan, 2,
		                   json_string_value(json_object_get(onnx, "recordDigest")));
	}
}

static void test_edit_lint_summary(void **state)
{
	fx *f = *state;
	char out[128];
	path(out, f, "lint.json");
	tamper(f, out, do_lint, NULL);
	mlsec_report *r = verify(f, out, NULL);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	expect(r, "EXPORT-ATTEST-RECORD", "stage[1] onnx");
	mlsec_report_free(r);
	tamper(f, out, do_lint, "reseal");
	r = verify(f, out, NULL);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	expect(r, "EXPORT-ATTEST-LINT", "stage[1] onnx");
	mlsec_report_free(r);
	r = verify(f, out, f->pub);
	expect(r, "EXPORT-ATTEST-SIGNATURE", "signature");
	mlsec_report_free(r);
}

static json_t *other_sigs;

static void do_swap(json_t *env, json_t *stmt, void *ctx)
{
	json_object_set(env, "signatures", other_sigs);
}

static void test_swap_signature(void **state)
{
	fx *f = *state;
	char other[128], out[128];
	path(other, f, "other.json");
	path(out, f, "swap.json");
	/* Same key, different statement (no checkpoint stage). */
	mlsec_report *r0 = mlsec_report_new("export");
	mlsec_artifact *la = NULL;
	assert_int_equal(mlsec_export_lint_onnx(f->onnx, NULL, r0, &la, NULL), MLSEC_OK);
	mlsec_export_attest_req req = {NULL, f->onnx, NULL, la, NULL, f->key, NULL};
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mlsec_export_attest(&req, &text, &len, NULL), MLSEC_OK);
	json_t *o = json_loadb(text, len, 0, NULL);
	other_sigs = json_incref(json_object_get(o, "signatures"));
	json_decref(o);
	mlsec_free(text);
	mlsec_report_free(r0);
	tamper(f, out, do_swap, NULL);
	json_decref(other_sigs);
	mlsec_report *r = verify(f, out, f->pub);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	expect(r, "EXPORT-ATTEST-SIGNATURE", "signature");
	mlsec_report_free(r);
	/* Right signature, wrong key. */
	r = verify(f, f->att, f->pub2);
	expect(r, "EXPORT-ATTEST-SIGNATURE", "signature");
	mlsec_report_free(r);
}

static void test_unsigned_with_key(void **state)
{
	fx *f = *state;
	char out[128];
	path(out, f, "unsigned.json");
	attest(f, NULL, out, NULL);
	mlsec_report *r = verify(f, out, f->pub);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	expect(r, "EXPORT-ATTEST-UNSIGNED", "signature");
	mlsec_report_free(r);
	/* Without a key an unsigned chain passes the gate, noted low. */
	r = verify(f, out, NULL);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	mlsec_report_free(r);
}

static void test_missing_artifact(void **state)
{
	fx *f = *state;
	char moved[140];
	snprintf(moved, sizeof moved, "%s.gone", f->plan);
	assert_int_equal(rename(f->plan, moved), 0);
	mlsec_report *r = verify(f, f->att, f->pub);
	expect(r, "EXPORT-ATTEST-ARTIFACT-MISSING", "tensorrt");
	mlsec_report_free(r);
	/* Given explicitly under another directory, matched by name. */
	assert_int_equal(rename(moved, f->plan), 0);
}

static void test_pt_source(void **state)
{
	fx *f = *state;
	char pt[128], out[128];
	path(pt, f, "model.pt");
	path(out, f, "pt.json");
	copy_file(CHAIN "model.pt", pt);
	attest(f, f->key, out, pt);
	mlsec_report *r = verify(f, out, f->pub);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	mlsec_report_free(r);
	flip(pt, 300);
	r = verify(f, out, f->pub);
	expect(r, "EXPORT-ATTEST-DIGEST", "checkpoint");
	mlsec_report_free(r);
}

/* A torch.save() checkpoint and its safetensors conversion share the
 * canonical state-dict digest. */
static void test_pt_matches_safetensors(void **state)
{
	(void)state;
	char a[65], b[65];
	size_t na = 0, nb = 0;
	mlsec_error err;
	if (mlsec_export_state_dict_digest(CHAIN "model.pt", a, &na, &err) != MLSEC_OK)
		fail_msg("pt: %s", err.text);
	assert_int_equal(mlsec_export_state_dict_digest(CHAIN "model.safetensors", b, &nb, &err),
	                 MLSEC_OK);
	assert_int_equal(na, 4);
	assert_int_equal(nb, 4);
	assert_string_equal(a, b);
}

/* The state-dict digest ignores header order, not data. */
static void test_state_dict_canonical(void **state)
{
	fx *f = *state;
	const char *h1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
	const char *h2 = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
	const unsigned char d1[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	const unsigned char d2[8] = {5, 6, 7, 8, 1, 2, 3, 4};
	char p1[128], p2[128], x1[65], x2[65];
	path(p1, f, "a.safetensors");
	path(p2, f, "b.safetensors");
	const char *hs[2] = {h1, h2};
	const unsigned char *ds[2] = {d1, d2};
	char *ps[2] = {p1, p2};
	for (int k = 0; k < 2; k++) {
		size_t hl = strlen(hs[k]);
		unsigned char buf[512];
		for (int i = 0; i < 8; i++)
			buf[i] = (unsigned char)(hl >> (8 * i));
		memcpy(buf + 8, hs[k], hl);
		memcpy(buf + 8 + hl, ds[k], 8);
		assert_int_equal(mlsec_file_write_atomic(ps[k], buf, 16 + hl, 0644, NULL),
		                 MLSEC_OK);
	}
	size_t n = 0;
	assert_int_equal(mlsec_export_state_dict_digest(p1, x1, &n, NULL), MLSEC_OK);
	assert_int_equal(n, 2);
	assert_int_equal(mlsec_export_state_dict_digest(p2, x2, &n, NULL), MLSEC_OK);
	assert_string_equal(x1, x2);
	flip(p2, 8 + strlen(h2) + 1);
	assert_int_equal(mlsec_export_state_dict_digest(p2, x2, &n, NULL), MLSEC_OK);
	assert_string_not_equal(x1, x2);
	/* Offsets past the data are malformed, not read. */
	const char *bad = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
	unsigned char buf[256];
	size_t hl = strlen(bad);
	memset(buf, 0, sizeof buf);
	buf[0] = (unsigned char)hl;
	memcpy(buf + 8, bad, hl);
	assert_int_equal(mlsec_file_write_atomic(p1, buf, 8 + hl + 4, 0644, NULL), MLSEC_OK);
	assert_int_equal(mlsec_export_state_dict_digest(p1, x1, &n, NULL), MLSEC_ERR_PARSE);
}

/* The generic engine verifies a JSON artifact against the others. */
static void test_engine_verify(void **state)
{
	fx *f = *state;
	const char *paths[] = {f->att, f->src, f->onnx, f->plan};
	json_t *opt = json_pack("{s:s}", "verify-key", f->pub);
	mlsec_engine_request req = {paths, 4, opt, NULL, NULL, NULL, NULL};
	mlsec_report *r = mlsec_report_new("export");
	mlsec_error err;
	assert_int_equal(mlsec_engine_export.analyze(&req, r, &err), MLSEC_OK);
	/* the attestation, and the ONNX lint of model.onnx; the checkpoint
	 * and plan are chain members, not linted */
	assert_int_equal(mlsec_report_artifact_count(r), 2);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_LOW), 0);
	assert_string_equal(mlsec_artifact_format(mlsec_report_artifact(r, 0)), "attestation");
	assert_int_equal(mlsec_artifact_finding_count(mlsec_report_artifact(r, 0)), 0);
	mlsec_report_free(r);
	flip(f->onnx, 700);
	r = mlsec_report_new("export");
	assert_int_equal(mlsec_engine_export.analyze(&req, r, &err), MLSEC_OK);
	expect(r, "EXPORT-ATTEST-DIGEST", "onnx");
	mlsec_report_free(r);
	json_decref(opt);
}

/* Under an artifact root (services), a stage file that is a symlink out
 * of the root is not followed. */
static void test_verify_confined(void **state)
{
	fx *f = *state;
	char outside[] = "/tmp/mlsec-outside-XXXXXX";
	int fd = mkstemp(outside);
	assert_true(fd >= 0);
	close(fd);
	copy_file(f->plan, outside);
	assert_int_equal(unlink(f->plan), 0);
	assert_int_equal(symlink(outside, f->plan), 0);
	mlsec_report *r = mlsec_report_new("export");
	mlsec_export_verify_req vr = {f->att, f->pub, NULL, 0, f->dir};
	assert_int_equal(mlsec_export_verify(&vr, r, NULL), MLSEC_OK);
	expect(r, "EXPORT-ATTEST-ARTIFACT-MISSING", "tensorrt");
	mlsec_report_free(r);
	/* The same without a root (a local user): followed, and it matches. */
	r = verify(f, f->att, f->pub);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	mlsec_report_free(r);
	unlink(outside);
}

static void test_malformed_attestations(void **state)
{
	(void)state;
	const char *bad[] = {
	        "",
	        "[]",
	        "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"!!\","
	        "\"signatures\":[]}",
	        "{\"payloadType\":\"text/plain\",\"payload\":\"e30=\",\"signatures\":[]}",
	        "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\","
	        "\"signatures\":[]}",
	        "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\","
	        "\"signatures\":[],\"signatures\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		mlsec_report *r = mlsec_report_new("export");
		mlsec_artifact *a = mlsec_report_add_artifact(r, "mem", "attestation");
		assert_int_not_equal(
		        mlsec_export_attestation_check(bad[i], strlen(bad[i]), a, NULL), MLSEC_OK);
		assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
		mlsec_report_free(r);
	}
}

static void test_pae(void **state)
{
	(void)state;
	size_t n = 0;
	unsigned char *p = export_pae("t", (const unsigned char *)"hello", 5, &n);
	assert_int_equal(n, strlen("DSSEv1 1 t 5 hello"));
	assert_memory_equal(p, "DSSEv1 1 t 5 hello", n);
	mlsec_free(p);
	unsigned char *d = NULL;
	assert_int_equal(export_b64_decode("aGVsbG8=", &d, &n), MLSEC_OK);
	assert_int_equal(n, 5);
	assert_memory_equal(d, "hello", 5);
	mlsec_free(d);
	assert_int_equal(export_b64_decode("aGVsbG8", &d, &n), MLSEC_ERR_PARSE);
	assert_int_equal(export_b64_decode("aG=sbG8=", &d, &n), MLSEC_ERR_PARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_flip_each_artifact, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_flip_attestation, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reorder, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_edit_lint_summary, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_swap_signature, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unsigned_with_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_artifact, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pt_source, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_state_dict_canonical, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_verify, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_verify_confined, setup, teardown),
	        cmocka_unit_test(test_pt_matches_safetensors),
	        cmocka_unit_test(test_malformed_attestations),
	        cmocka_unit_test(test_pae),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
