/*
 * verify.c - checks an export attestation: the hardened parse of the DSSE
 * envelope and its in-toto statement, the order and links of the stage
 * records, each artifact's digests (file, state dict, graph), the recorded
 * lint summary (by linting again), and the Ed25519 signature.
 *
 * Every problem is a critical finding whose field names the stage that
 * changed ("stage[1] onnx"), "signature" or "envelope", so exit code 2
 * always says which link of the chain broke.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"

#define V_MAX_STRING 4096  /* any single string field we read */
#define V_MAX_SIG_B64 1024 /* an Ed25519 signature is 88 base64 chars */
#define V_MAX_PAYLOAD_B64 (MLSEC_EXPORT_MAX_ATTESTATION_BYTES)

typedef struct parsed {
	json_t *env;         /* envelope */
	json_t *stmt;        /* decoded statement */
	unsigned char *body; /* decoded payload bytes */
	size_t blen;
	json_t *stages; /* borrowed from stmt */
} parsed;

static void parsed_free(parsed *p)
{
	json_decref(p->env);
	json_decref(p->stmt);
	mlsec_free(p->body);
	memset(p, 0, sizeof *p);
}

static const char *stage_kinds[] = {"checkpoint", "onnx", "tensorrt"};

static int stage_rank(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (s && !strcmp(s, stage_kinds[i]))
			return i;
	return -1;
}

/* "stage[i] kind" for a finding's field. */
static void stage_label(char *buf, size_t n, size_t i, const json_t *rec)
{
	const char *k = json_string_value(json_object_get(rec, "stage"));
	snprintf(buf, n, "stage[%zu] %s", i, k && stage_rank(k) >= 0 ? k : "?");
}

static void add(mlsec_artifact *a, const char *rule, const char *field, const char *title,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(mlsec_artifact *a, const char *rule, const char *field, const char *title,
                const char *fmt, ...)
{
	if (!a)
		return;
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	mlsec_finding *f =
	        mlsec_artifact_add_finding(a, rule, MLSEC_SEV_CRITICAL, title, "%s", detail);
	if (f) {
		mlsec_finding_set_location(f, NULL, 0, 0, field);
		mlsec_finding_set_evidence(f, "stage", "%s", field);
	}
}

static int str_ok(const json_t *j)
{
	return json_is_string(j) && json_string_length(j) <= V_MAX_STRING &&
	       strlen(json_string_value(j)) == json_string_length(j);
}

static int hex_ok(const json_t *j)
{
	return json_is_string(j) && mlsec_sha256_hex_valid(json_string_value(j));
}

/* A stage name is used to find the artifact next to the attestation, so it
 * must be a plain file name. */
static int name_ok(const json_t *j)
{
	if (!str_ok(j))
		return 0;
	const char *s = json_string_value(j);
	return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* Structural check of one record; 1 when usable. */
static int record_ok(const json_t *r, mlsec_artifact *a, const char *label)
{
	const char *why = NULL;
	json_t *dig = json_object_get(r, "digest");
	json_t *prev = json_object_get(r, "previousRecord");
	if (!json_is_object(r))
		why = "record is not an object";
	else if (stage_rank(json_string_value(json_object_get(r, "stage"))) < 0)
		why = "unknown or missing stage kind";
	else if (!name_ok(json_object_get(r, "name")))
		why = "name must be a plain file name";
	else if (!str_ok(json_object_get(r, "path")) || !str_ok(json_object_get(r, "format")) ||
	         !str_ok(json_object_get(r, "timestamp")))
		why = "path/format/timestamp must be strings";
	else if (!json_is_object(dig) || !hex_ok(json_object_get(dig, "sha256")))
		why = "digest.sha256 must be 64 hex characters";
	else if (!json_is_integer(json_object_get(r, "size")) ||
	         json_integer_value(json_object_get(r, "size")) < 0)
		why = "size must be a non-negative integer";
	else if (!json_is_integer(json_object_get(r, "index")))
		why = "index must be an integer";
	else if (!json_is_null(prev) && !hex_ok(prev))
		why = "previousRecord must be null or a digest";
	else if (!hex_ok(json_object_get(r, "recordDigest")))
		why = "recordDigest must be a digest";
	else if (!json_is_object(json_object_get(r, "tools")))
		why = "tools must be an object";
	if (why)
		add(a, "EXPORT-ATTEST-MALFORMED", label, "Malformed stage record", "%s", why);
	return why == NULL;
}

/* Envelope + statement parse with types and bounds checked. */
static mlsec_err parse(const char *data, size_t len, parsed *p, mlsec_artifact *a, mlsec_error *err)
{
	memset(p, 0, sizeof *p);
	const char *why = NULL;
	char whybuf[256];
	if (len > MLSEC_EXPORT_MAX_ATTESTATION_BYTES) {
		why = "attestation larger than the limit";
		goto bad;
	}
	json_error_t je;
	p->env = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!p->env) {
		snprintf(whybuf, sizeof whybuf, "JSON: %s (line %d)", je.text, je.line);
		why = whybuf;
		goto bad;
	}
	json_t *pt = json_object_get(p->env, "payloadType");
	json_t *pl = json_object_get(p->env, "payload");
	json_t *sigs = json_object_get(p->env, "signatures");
	if (!json_is_object(p->env) || !json_is_string(pt) ||
	    strcmp(json_string_value(pt), MLSEC_EXPORT_PAYLOAD_TYPE) || !json_is_string(pl) ||
	    json_string_length(pl) > V_MAX_PAYLOAD_B64 || !json_is_array(sigs) ||
	    json_array_size(sigs) > MLSEC_EXPORT_MAX_SIGNATURES) {
		why = "not a DSSE envelope of an in-toto statement";
		goto bad;
	}
	for (size_t i = 0; i < json_array_size(sigs); i++) {
		json_t *s = json_array_get(sigs, i);
		json_t *sv = json_object_get(s, "sig"), *kid = json_object_get(s, "keyid");
		if (!json_is_object(s) || !json_is_string(sv) ||
		    json_string_length(sv) > V_MAX_SIG_B64 || (kid && !str_ok(kid))) {
			why = "malformed signature entry";
			goto bad;
		}
	}
	if (strlen(json_string_value(pl)) != json_string_length(pl) ||
	    export_b64_decode(json_string_value(pl), &p->body, &p->blen) != MLSEC_OK) {
		why = "payload is not base64";
		goto bad;
	}
	p->stmt = json_loadb((const char *)p->body, p->blen, JSON_REJECT_DUPLICATES, &je);
	json_t *ty = json_object_get(p->stmt, "_type");
	json_t *pty = json_object_get(p->stmt, "predicateType");
	json_t *pred = json_object_get(p->stmt, "predicate");
	json_t *subj = json_object_get(p->stmt, "subject");
	p->stages = json_object_get(pred, "stages");
	if (!json_is_object(p->stmt) || !json_is_string(ty) ||
	    strcmp(json_string_value(ty), MLSEC_EXPORT_STATEMENT_TYPE) || !json_is_string(pty) ||
	    strcmp(json_string_value(pty), MLSEC_EXPORT_PREDICATE_TYPE) || !json_is_object(pred) ||
	    !json_is_array(subj) || !json_is_array(p->stages)) {
		why = "payload is not an mlsec export-chain in-toto statement";
		goto bad;
	}
	size_t n = json_array_size(p->stages);
	if (n == 0 || n > MLSEC_EXPORT_MAX_STAGES ||
	    json_array_size(subj) > MLSEC_EXPORT_MAX_STAGES) {
		why = "stage count out of range";
		goto bad;
	}
	return MLSEC_OK;
bad:
	add(a, "EXPORT-ATTEST-MALFORMED", "envelope", "Malformed attestation", "%s", why);
	parsed_free(p);
	return mlsec_error_set(err, MLSEC_ERR_PARSE, "%s", why);
}

/* Order, self digests, links and subject; no file access. Returns the
 * number of problems found. */
static int check_chain(const parsed *p, mlsec_artifact *a)
{
	int bad = 0;
	size_t n = json_array_size(p->stages);
	int last_rank = -1, onnx = 0;
	const char *prev = NULL;
	char label[64], plabel[64];
	json_t *subj = json_object_get(p->stmt, "subject");
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(p->stages, i);
		stage_label(label, sizeof label, i, r);
		if (!record_ok(r, a, label)) {
			bad++;
			prev = NULL;
			continue;
		}
		int rank = stage_rank(json_string_value(json_object_get(r, "stage")));
		json_int_t idx = json_integer_value(json_object_get(r, "index"));
		if (idx != (json_int_t)i || rank <= last_rank) {
			add(a, "EXPORT-ATTEST-ORDER", label, "Stage out of order",
			    "record at position %zu claims index %lld; stages must run "
			    "checkpoint -> onnx -> tensorrt, each once",
			    i, (long long)idx);
			bad++;
		}
		last_rank = rank > last_rank ? rank : last_rank;
		onnx += rank == 1;

		json_t *copy = json_deep_copy(r);
		char hex[MLSEC_SHA256_HEX_LEN] = "";
		if (copy) {
			json_object_del(copy, "recordDigest");
			export_json_digest(copy, hex);
			json_decref(copy);
		}
		const char *sealed = json_string_value(json_object_get(r, "recordDigest"));
		if (strcmp(hex, sealed)) {
			add(a, "EXPORT-ATTEST-RECORD", label, "Stage record was edited",
			    "the record's content hashes to %s, it is sealed as %s", hex, sealed);
			bad++;
		}
		json_t *pv = json_object_get(r, "previousRecord");
		if (i == 0 && !json_is_null(pv)) {
			add(a, "EXPORT-ATTEST-LINK", label, "First stage links to a predecessor",
			    "the first record must have previousRecord null");
			bad++;
		} else if (i > 0 &&
		           (!json_is_string(pv) || !prev || strcmp(json_string_value(pv), prev))) {
			stage_label(plabel, sizeof plabel, i - 1, json_array_get(p->stages, i - 1));
			add(a, "EXPORT-ATTEST-LINK", plabel, "Chain link broken",
			    "%s no longer matches the previousRecord held by %s", plabel, label);
			bad++;
		}
		prev = sealed;

		json_t *s = json_array_get(subj, i);
		const char *want =
		        json_string_value(json_object_get(json_object_get(r, "digest"), "sha256"));
		const char *got =
		        json_string_value(json_object_get(json_object_get(s, "digest"), "sha256"));
		if (!json_is_object(s) || !got || !want || strcmp(got, want) ||
		    !json_equal(json_object_get(s, "name"), json_object_get(r, "name"))) {
			add(a, "EXPORT-ATTEST-SUBJECT", label, "Subject does not match the stage",
			    "subject[%zu] must name the stage's file and digest", i);
			bad++;
		}
	}
	if (json_array_size(subj) != n) {
		add(a, "EXPORT-ATTEST-SUBJECT", "envelope", "Subject count differs from stages",
		    "%zu subjects for %zu stages", json_array_size(subj), n);
		bad++;
	}
	if (onnx != 1) {
		add(a, "EXPORT-ATTEST-ORDER", "envelope", "Chain must hold exactly one ONNX stage",
		    "found %d", onnx);
		bad++;
	}
	return bad;
}

mlsec_err mlsec_export_attestation_check(const char *data, size_t len, mlsec_artifact *a,
                                         mlsec_error *err)
{
	parsed p;
	mlsec_err rc = parse(data, len, &p, a, err);
	if (rc != MLSEC_OK)
		return rc;
	int bad = check_chain(&p, a);
	parsed_free(&p);
	return bad ? mlsec_error_set(err, MLSEC_ERR_INTEGRITY, "%d problem(s)", bad) : MLSEC_OK;
}

/* A key that cannot be loaded is the caller's error, not a finding. */
static mlsec_err check_signature(const parsed *p, const char *key_path, mlsec_artifact *a,
                                 mlsec_error *err)
{
	json_t *sigs = json_object_get(p->env, "signatures");
	size_t ns = json_array_size(sigs);
	if (!key_path) {
		mlsec_finding *f = mlsec_artifact_add_finding(
		        a, ns ? "EXPORT-ATTEST-SIGNATURE-UNCHECKED" : "EXPORT-ATTEST-UNSIGNED",
		        MLSEC_SEV_LOW,
		        ns ? "Signature present but not checked (no --verify-key)"
		           : "Attestation is not signed",
		        "digests and links were checked; authenticity was not");
		if (f)
			mlsec_finding_set_location(f, NULL, 0, 0, "signature");
		return MLSEC_OK;
	}
	export_key *k = NULL;
	mlsec_err rc = export_key_load(key_path, 0, &k, err);
	if (rc != MLSEC_OK)
		return rc;
	if (ns == 0) {
		add(a, "EXPORT-ATTEST-UNSIGNED", "signature", "Attestation is not signed",
		    "a verification key was given but the envelope carries no signature");
		export_key_free(k);
		return MLSEC_OK;
	}
	size_t plen = 0;
	unsigned char *pae = export_pae(MLSEC_EXPORT_PAYLOAD_TYPE, p->body, p->blen, &plen);
	int ok = 0;
	for (size_t i = 0; pae && i < ns && !ok; i++) {
		unsigned char *sig = NULL;
		size_t slen = 0;
		json_t *e = json_array_get(sigs, i);
		const char *s64 = json_string_value(json_object_get(e, "sig"));
		const char *kid = json_string_value(json_object_get(e, "keyid"));
		/* A signature that names another key is not ours to accept,
		 * even if the bytes verify: the keyid is part of what the
		 * signer asserted. */
		if (kid && *kid && strcmp(kid, export_key_id(k)))
			continue;
		if (export_b64_decode(s64, &sig, &slen) == MLSEC_OK)
			ok = export_key_verify(k, pae, plen, sig, slen);
		mlsec_free(sig);
	}
	mlsec_free(pae);
	if (!ok)
		add(a, "EXPORT-ATTEST-SIGNATURE", "signature", "Signature does not verify",
		    "no signature in the envelope verifies over the payload with key %s",
		    export_key_id(k));
	export_key_free(k);
	return MLSEC_OK;
}

/* Where the artifact of a stage is: an explicit path with the same file
 * name wins, then the recorded path, then the file next to the
 * attestation. Returns a fresh string or NULL when none exists. */
static char *locate(const mlsec_export_verify_req *req, const json_t *r)
{
	const char *name = json_string_value(json_object_get(r, "name"));
	const char *path = json_string_value(json_object_get(r, "path"));
	struct stat st;
	char *cand = NULL;
	for (size_t i = 0; i < req->nartifacts && !cand; i++)
		if (!strcmp(export_basename(req->artifacts[i]), name))
			cand = mlsec_strdup(req->artifacts[i]);
	/* A recorded path is the attestation's word: only a local user who
	 * named no artifacts gets it followed. */
	if (!cand && !req->artifact_root && req->nartifacts == 0 && stat(path, &st) == 0 &&
	    S_ISREG(st.st_mode))
		cand = mlsec_strdup(path);
	if (!cand) {
		const char *slash = strrchr(req->attestation, '/');
		cand = slash ? mlsec_sprintf("%.*s/%s", (int)(slash - req->attestation),
		                             req->attestation, name)
		             : mlsec_strdup(name);
	}
	if (cand && req->artifact_root) {
		char *real = NULL;
		if (mlsec_path_confine(req->artifact_root, cand, &real, NULL) != MLSEC_OK)
			real = NULL;
		mlsec_free(cand);
		cand = real;
	}
	if (cand && stat(cand, &st) == 0 && S_ISREG(st.st_mode))
		return cand;
	mlsec_free(cand);
	return NULL;
}

static void check_digest_field(mlsec_artifact *a, const char *label, const char *rule,
                               const char *title, const char *what, const char *want,
                               const char *got)
{
	if (!want || strcmp(want, got))
		add(a, rule, label, title, "%s is now %s, the attestation records %s", what, got,
		    want ? want : "(missing)");
}

/* Reads the recorded lint options into o (dv holds the domain strings);
 * 0 after reporting why they are unusable. */
static int lint_options(const json_t *lint, const char **dv, mlsec_export_opts *o,
                        mlsec_artifact *a, const char *label)
{
	json_t *opt = json_object_get(lint, "options");
	json_t *doms = json_object_get(opt, "allowedDomains");
	json_t *thr = json_object_get(opt, "constantThreshold");
	mlsec_export_opts_init(o);
	const char *why = NULL;
	if (!json_is_object(lint) || !json_is_array(doms) ||
	    json_array_size(doms) > MLSEC_EXPORT_MAX_ALLOWED_DOMAINS || !str_ok(thr))
		why = "the ONNX stage must record its lint summary and options";
	for (size_t i = 0; !why && i < json_array_size(doms); i++)
		if (!(dv[i] = json_string_value(json_array_get(doms, i))))
			why = "allowedDomains must hold strings";
	if (!why) {
		char *end = NULL;
		o->constant_threshold = strtod(json_string_value(thr), &end);
		if (!end || *end || !(o->constant_threshold > 0))
			why = "constantThreshold must be a positive number";
	}
	if (why) {
		mlsec_export_opts_init(o);
		add(a, "EXPORT-ATTEST-LINT", label, "Lint summary or options malformed", "%s", why);
		return 0;
	}
	o->allowed_domains = dv;
	o->nallowed = json_array_size(doms);
	return 1;
}

/* Lints the ONNX file again with the recorded options: one read gives the
 * file digest, the graph digest and the summary, all compared with the
 * record, so an edited summary is caught even when the forger re-sealed
 * and re-linked every record. */
static mlsec_err check_onnx(const json_t *r, const char *path, mlsec_artifact *a, const char *label,
                            mlsec_error *err)
{
	json_t *lint = json_object_get(r, "lint");
	const char *dv[MLSEC_EXPORT_MAX_ALLOWED_DOMAINS];
	mlsec_export_opts o;
	int opts_ok = lint_options(lint, dv, &o, a, label);
	mlsec_report *tmp = mlsec_report_new("export");
	if (!tmp)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_artifact *la = NULL;
	mlsec_error lerr;
	mlsec_error_clear(&lerr);
	mlsec_err rc = mlsec_export_lint_onnx(path, &o, tmp, &la, &lerr);
	if (rc == MLSEC_ERR_NOMEM) {
		mlsec_report_free(tmp);
		return mlsec_error_set(err, rc, "out of memory");
	}
	if (rc != MLSEC_OK) {
		add(a, "EXPORT-ATTEST-ARTIFACT-MISSING", label, "Artifact unreadable", "%s",
		    lerr.text);
		mlsec_report_free(tmp);
		return MLSEC_OK;
	}
	check_digest_field(
	        a, label, "EXPORT-ATTEST-DIGEST", "Artifact changed", "file sha256",
	        json_string_value(json_object_get(json_object_get(r, "digest"), "sha256")),
	        mlsec_artifact_sha256(la));
	const char *g =
	        json_string_value(json_object_get(mlsec_artifact_details(la), "graph_sha256"));
	if (!g)
		add(a, "EXPORT-ATTEST-GRAPH", label, "ONNX model no longer parses",
		    "the file is not a valid ONNX model any more");
	else
		check_digest_field(
		        a, label, "EXPORT-ATTEST-GRAPH", "Graph changed", "graph digest",
		        json_string_value(json_object_get(json_object_get(r, "graph"), "sha256")),
		        g);
	json_t *now = export_lint_summary(la);
	json_t *was = json_deep_copy(lint);
	if (!now || !was) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	} else if (opts_ok) {
		json_object_del(was, "options");
		if (!json_equal(now, was)) {
			char *ns = json_dumps(json_object_get(now, "counts"),
			                      JSON_COMPACT | JSON_SORT_KEYS);
			char *ws = json_dumps(json_object_get(was, "counts"),
			                      JSON_COMPACT | JSON_SORT_KEYS);
			add(a, "EXPORT-ATTEST-LINT", label,
			    "Lint summary differs from a fresh lint",
			    "linting the ONNX file now gives %s, the attestation records %s",
			    ns ? ns : "?", ws ? ws : "?");
			free(ns);
			free(ws);
		}
	}
	json_decref(now);
	json_decref(was);
	mlsec_report_free(tmp);
	return rc;
}

/* Recomputes the digests of one stage's artifact. */
static mlsec_err check_stage_files(const mlsec_export_verify_req *req, const json_t *r, size_t i,
                                   mlsec_artifact *a, json_t *status, mlsec_error *err)
{
	char label[64];
	stage_label(label, sizeof label, i, r);
	size_t before = mlsec_artifact_finding_count(a);
	char *path = locate(req, r);
	if (!path) {
		add(a, "EXPORT-ATTEST-ARTIFACT-MISSING", label, "Artifact not found",
		    "'%s' is neither given on the command line nor next to the attestation",
		    json_string_value(json_object_get(r, "name")));
		json_object_set_new(status, "status", json_string("missing"));
		return MLSEC_OK;
	}
	json_object_set_new(status, "artifact", json_string(path));
	mlsec_err rc = MLSEC_OK;
	const char *kind = json_string_value(json_object_get(r, "stage"));
	if (!strcmp(kind, "onnx")) {
		rc = check_onnx(r, path, a, label, err);
		goto out;
	}
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size = 0;
	mlsec_error ferr;
	mlsec_error_clear(&ferr);
	if (mlsec_sha256_file(path, hex, &size, &ferr) != MLSEC_OK) {
		add(a, "EXPORT-ATTEST-ARTIFACT-MISSING", label, "Artifact unreadable", "%s",
		    ferr.text);
		goto out;
	}
	const char *want =
	        json_string_value(json_object_get(json_object_get(r, "digest"), "sha256"));
	check_digest_field(a, label, "EXPORT-ATTEST-DIGEST", "Artifact changed", "file sha256",
	                   want, hex);
	if (!strcmp(kind, "checkpoint")) {
		json_t *sd = json_object_get(r, "stateDict");
		const char *alg = json_string_value(json_object_get(sd, "algorithm"));
		if (alg && !strcmp(alg, "mlsec-state-dict-v1")) {
			size_t nt = 0;
			if (mlsec_export_state_dict_digest(path, hex, &nt, &ferr) != MLSEC_OK)
				add(a, "EXPORT-ATTEST-STATE-DICT", label,
				    "Checkpoint no longer parses", "%s", ferr.text);
			else
				check_digest_field(a, label, "EXPORT-ATTEST-STATE-DICT",
				                   "State dict changed", "state-dict digest",
				                   json_string_value(json_object_get(sd, "sha256")),
				                   hex);
		}
	} else {
		json_t *ft = json_object_get(r, "ftrtHeader");
		if (!json_is_boolean(ft) || json_is_true(ft) != export_plan_has_ftrt(path))
			add(a, "EXPORT-ATTEST-DIGEST", label, "TensorRT header changed",
			    "the ftrt header presence differs from the attestation");
	}
out:
	json_object_set_new(
	        status, "status",
	        json_string(mlsec_artifact_finding_count(a) > before ? "changed" : "ok"));
	mlsec_free(path);
	return rc;
}

mlsec_err mlsec_export_verify(const mlsec_export_verify_req *req, mlsec_report *rep,
                              mlsec_error *err)
{
	if (!req || !req->attestation)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "an attestation is required");
	char *data = NULL;
	size_t len = 0;
	mlsec_err rc = mlsec_file_read_all(req->attestation, MLSEC_EXPORT_MAX_ATTESTATION_BYTES,
	                                   &data, &len, err);
	mlsec_artifact *a = NULL;
	if (rc == MLSEC_ERR_LIMIT) {
		a = mlsec_report_add_artifact(rep, req->attestation, "attestation");
		if (!a)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		add(a, "EXPORT-ATTEST-MALFORMED", "envelope", "Malformed attestation",
		    "larger than %zu bytes", (size_t)MLSEC_EXPORT_MAX_ATTESTATION_BYTES);
		return MLSEC_OK;
	}
	if (rc != MLSEC_OK)
		return rc;
	a = mlsec_report_add_artifact(rep, req->attestation, "attestation");
	if (!a) {
		mlsec_free(data);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	mlsec_artifact_set_stage(a, "export");
	mlsec_artifact_hash_file(a, NULL);
	parsed p;
	mlsec_error perr;
	mlsec_error_clear(&perr);
	if (parse(data, len, &p, a, &perr) != MLSEC_OK) {
		mlsec_free(data);
		return MLSEC_OK; /* the finding says why */
	}
	mlsec_free(data);
	check_chain(&p, a);
	json_t *status = json_array();
	json_object_set_new(mlsec_artifact_details(a), "stages", status);
	for (size_t i = 0; i < json_array_size(p.stages) && rc == MLSEC_OK; i++) {
		json_t *r = json_array_get(p.stages, i);
		char label[64];
		stage_label(label, sizeof label, i, r);
		json_t *st = json_pack("{s:s}", "stage", label);
		json_array_append_new(status, st);
		if (!record_ok(r, NULL, label)) {
			json_object_set_new(st, "status", json_string("malformed"));
			continue;
		}
		rc = check_stage_files(req, r, i, a, st, err);
	}
	/* Every artifact the caller named must be a stage of the chain: one
	 * that is not was never verified, and exit 0 would say it was. */
	for (size_t k = 0; rc == MLSEC_OK && k < req->nartifacts; k++) {
		const char *base = export_basename(req->artifacts[k]);
		int covered = 0;
		/* Stages are found by file name: a second file of the same name
		 * would be vouched for by the first one's check. */
		for (size_t j = 0; j < k && !covered; j++)
			if (!strcmp(export_basename(req->artifacts[j]), base))
				covered = -1;
		if (covered < 0) {
			add(a, "EXPORT-ATTEST-UNATTESTED", req->artifacts[k],
			    "Artifact not covered by the attestation",
			    "'%s' has the same file name as another artifact given; only one "
			    "of them was verified",
			    req->artifacts[k]);
			continue;
		}
		for (size_t i = 0; !covered && i < json_array_size(p.stages); i++) {
			const char *name = json_string_value(
			        json_object_get(json_array_get(p.stages, i), "name"));
			covered = name && !strcmp(name, base);
		}
		if (!covered)
			add(a, "EXPORT-ATTEST-UNATTESTED", req->artifacts[k],
			    "Artifact not covered by the attestation",
			    "'%s' was given for verification but no stage of the chain records it",
			    req->artifacts[k]);
	}
	if (rc == MLSEC_OK)
		rc = check_signature(&p, req->verify_key_path, a, err);
	/* A stage whose record (not only its file) was flagged changed too. */
	for (size_t i = 0; i < json_array_size(status); i++) {
		json_t *st = json_array_get(status, i);
		const char *label = json_string_value(json_object_get(st, "stage"));
		const char *now = json_string_value(json_object_get(st, "status"));
		for (size_t k = 0;
		     label && now && !strcmp(now, "ok") && k < mlsec_artifact_finding_count(a);
		     k++) {
			const mlsec_finding *f = mlsec_artifact_finding(a, k);
			if (f->severity >= MLSEC_SEV_HIGH && f->field && !strcmp(f->field, label)) {
				json_object_set_new(st, "status", json_string("changed"));
				now = "changed";
			}
		}
	}
	parsed_free(&p);
	return rc;
}
