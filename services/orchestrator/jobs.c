/*
 * jobs.c - the job life cycle: Submit (validate, pick stages, store,
 * fan out), stage results from mlsec.results, deadlines, and the verdict.
 *
 * Exactly-once decisions among replicas rest on Redis primitives: a stage
 * result is SET NX (the first of a real result and a deadline error wins),
 * the verdict is SET NX (one replica decides), and an expired deadline is
 * claimed by ZREM (one replica times the job out).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "mlsec/alloc.h"
#include "mlsec/artifacts.h"
#include "mlsec/fsutil.h"
#include "mlsec/jobproto.h"
#include "mlsec/log.h"
#include "orchestrator.h"

void orch_key(char *buf, size_t size, const char *job_id, const char *suffix)
{
	snprintf(buf, size, "mlsec:job:%s:%s", job_id, suffix);
}

static int stage_known(const char *s)
{
	for (size_t i = 0; mlsec_queue_stages[i]; i++)
		if (!strcmp(mlsec_queue_stages[i], s))
			return 1;
	return 0;
}

mlsec_err orch_stage_timeouts_parse(orch *o, const char *spec, mlsec_error *err)
{
	o->nstage_timeouts = 0;
	if (!spec || !*spec)
		return MLSEC_OK;
	const char *p = spec;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char item[96];
		if (n == 0 || n >= sizeof(item))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "--stage-timeouts: bad entry near '%.32s'", p);
		memcpy(item, p, n);
		item[n] = '\0';
		char *eq = strchr(item, '=');
		char *num_end = NULL;
		long long ms = eq ? strtoll(eq + 1, &num_end, 10) : 0;
		if (!eq || !num_end || *num_end || ms < 100 || ms > ORCH_MAX_JOB_TIMEOUT_MS)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "--stage-timeouts: '%s' is not STAGE=MS (100..%d)",
			                       item, ORCH_MAX_JOB_TIMEOUT_MS);
		*eq = '\0';
		if (!stage_known(item) || o->nstage_timeouts == ORCH_MAX_STAGES)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "--stage-timeouts: unknown stage '%s'", item);
		orch_stage_timeout *t = &o->stage_timeouts[o->nstage_timeouts++];
		snprintf(t->stage, sizeof(t->stage), "%.32s", item);
		t->ms = ms;
		p += n;
		if (*p == ',')
			p++;
	}
	return MLSEC_OK;
}

/* The deadline of one stage of a job created at `now` with job deadline
 * `job_deadline`: its own timeout when configured, never past the job's. */
static long long stage_deadline(const orch *o, const char *stage, long long now,
                                long long job_deadline)
{
	for (size_t i = 0; i < o->nstage_timeouts; i++)
		if (!strcmp(o->stage_timeouts[i].stage, stage) &&
		    now + o->stage_timeouts[i].ms < job_deadline)
			return now + o->stage_timeouts[i].ms;
	return job_deadline;
}

/* A stage's deadline from the job record (the job's when not recorded). */
static long long job_stage_deadline(const json_t *job, const char *stage)
{
	json_t *d = json_object_get(json_object_get(job, "stage_deadlines"), stage);
	if (json_is_integer(d))
		return (long long)json_integer_value(d);
	return (long long)json_integer_value(json_object_get(job, "deadline_ms"));
}

/* A resolved artifact of a job being submitted. */
typedef struct sub_art {
	char *uri; /* relative to the root */
	char sha[MLSEC_SHA256_HEX_LEN];
	uint64_t size;
	mlsec_format fmt;
} sub_art;

typedef struct submission {
	sub_art *arts;
	size_t n, cap;
} submission;

static void submission_free(submission *s)
{
	for (size_t i = 0; i < s->n; i++)
		mlsec_free(s->arts[i].uri);
	mlsec_free(s->arts);
}

static mlsec_err submission_add(orch *o, submission *sub, const char *uri, const char *sha,
                                mlsec_error *err)
{
	if (sub->n >= ORCH_MAX_ARTIFACTS)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "more than %d artifacts",
		                       ORCH_MAX_ARTIFACTS);
	char *real = NULL;
	sub_art a;
	memset(&a, 0, sizeof(a));
	mlsec_err e =
	        mlsec_artifact_resolve(o->root, uri, o->max_bytes, sha, &real, a.sha, &a.size, err);
	if (e != MLSEC_OK)
		return e;
	a.fmt = mlsec_format_sniff(real);
	a.uri = mlsec_strdup(mlsec_artifact_relative(o->root_real, real));
	mlsec_free(real);
	if (!a.uri)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (sub->n == sub->cap) {
		size_t cap = sub->cap ? sub->cap * 2 : 8;
		sub_art *arts = mlsec_reallocarray(sub->arts, cap, sizeof(*arts));
		if (!arts) {
			mlsec_free(a.uri);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
		sub->arts = arts;
		sub->cap = cap;
	}
	sub->arts[sub->n++] = a;
	return MLSEC_OK;
}

/* Directory expansion keeps the files a requested stage analyses (any
 * stage in auto mode); a stage without known formats takes every file. */
typedef struct walk_filter {
	const char *const *stages;
	size_t n; /* 0 = auto */
} walk_filter;

static int walk_accept(const char *path, const char *base, void *ctx)
{
	const walk_filter *wf = ctx;
	const char *st = mlsec_jobproto_stage_for_format(mlsec_format_sniff(path));
	if (wf->n == 0)
		return st != NULL;
	for (size_t i = 0; i < wf->n; i++)
		if (!mlsec_jobproto_stage_has_formats(wf->stages[i]) ||
		    (st && !strcmp(st, wf->stages[i])))
			return 1;
	return 0;
}

/* Adds an artifact uri: a file, or a directory expanded to its files (each
 * one confined again, so a symlink inside cannot escape). */
static mlsec_err submission_add_uri(orch *o, submission *sub, const Mlsec__V1__Artifact *a,
                                    const walk_filter *wf, mlsec_error *err)
{
	const char *uri = a->uri ? a->uri : "";
	if (!*uri)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "artifact without uri");
	if (strnlen(uri, MLSEC_ARTIFACT_MAX_URI + 1) > MLSEC_ARTIFACT_MAX_URI)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "artifact uri too long");
	if (mlsec_artifact_uri_has_dotdot(uri))
		return mlsec_error_set(err, MLSEC_ERR_PERMISSION,
		                       "artifact %.256s: '..' is not allowed in artifact paths",
		                       uri);
	char *path = uri[0] == '/' ? mlsec_strdup(uri) : mlsec_sprintf("%s/%s", o->root, uri);
	if (!path)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	char *real = NULL;
	mlsec_err e = mlsec_path_confine(o->root, path, &real, err);
	mlsec_free(path);
	if (e == MLSEC_ERR_PERMISSION)
		return mlsec_error_set(err, e, "artifact %.256s is outside the artifact root", uri);
	if (e != MLSEC_OK)
		return mlsec_error_set(err, e, "artifact %.256s: %s", uri,
		                       e == MLSEC_ERR_NOT_FOUND ? "not found" : err->text);
	if (mlsec_format_sniff(real) != MLSEC_FMT_DIRECTORY) {
		mlsec_free(real);
		return submission_add(o, sub, uri, a->sha256, err);
	}
	if (a->sha256 && *a->sha256) {
		mlsec_free(real);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "artifact %.256s is a directory: sha256 applies to files",
		                       uri);
	}
	mlsec_strlist files = {0};
	const char *targets[] = {real};
	e = mlsec_targets_expand(targets, 1, walk_accept, (void *)wf, &files, err);
	mlsec_free(real);
	for (size_t i = 0; e == MLSEC_OK && i < files.count; i++)
		e = submission_add(o, sub, files.items[i], NULL, err);
	mlsec_strlist_free(&files);
	return e;
}

static void random_id(char out[33])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1) {
		/* never expected; fall back to a time+pid mix rather than fail */
		long long t = mlsec_jobproto_now_ms();
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)((t >> (i % 8 * 8)) ^ (i * 131));
	}
	mlsec_hex_encode(b, sizeof(b), out);
}

static mlsec_err append_event(orch *o, mlsec_store *s, Mlsec__V1__JobEvent *ev, mlsec_error *err)
{
	uint8_t *buf;
	size_t len;
	ev->unix_ms = mlsec_jobproto_now_ms();
	if (mlsec_jobproto_pack(&ev->base, &buf, &len) != MLSEC_OK)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err e = mlsec_store_event_append(s, ev->job_id, buf, len, 0, o->ttl_ms, NULL, err);
	mlsec_free(buf);
	return e;
}

static grpc_status_code fail(mlsec_rpc_call *c, mlsec_err e, const mlsec_error *err)
{
	mlsec_rpc_call_set_message(c, "%s", err->text[0] ? err->text : mlsec_strerror(e));
	return mlsec_rpc_status_from_err(e);
}

/* Produces one StageRequest per stage (asynchronously, then one flush). */
static mlsec_err fan_out(orch *o, const char *job_id, const submission *sub, int auto_mode,
                         const char *const *stages, size_t nstages, const char *options,
                         Mlsec__V1__Severity gate, const long long *deadlines, mlsec_error *err)
{
	Mlsec__V1__Artifact *arts = mlsec_calloc(sub->n, sizeof(*arts));
	Mlsec__V1__Artifact **ptrs = mlsec_calloc(sub->n, sizeof(*ptrs));
	if (!arts || !ptrs) {
		mlsec_free(arts);
		mlsec_free(ptrs);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	mlsec_err e = MLSEC_OK;
	for (size_t k = 0; k < nstages && e == MLSEC_OK; k++) {
		size_t n = 0;
		for (size_t i = 0; i < sub->n; i++) {
			if (auto_mode && !mlsec_jobproto_auto_accepts(sub->arts[i].fmt, stages[k]))
				continue;
			mlsec__v1__artifact__init(&arts[n]);
			arts[n].uri = sub->arts[i].uri;
			arts[n].sha256 = (char *)sub->arts[i].sha;
			arts[n].size = sub->arts[i].size;
			arts[n].media_type = (char *)mlsec_format_name(sub->arts[i].fmt);
			ptrs[n] = &arts[n];
			n++;
		}
		Mlsec__V1__StageRequest req = MLSEC__V1__STAGE_REQUEST__INIT;
		req.job_id = (char *)job_id;
		req.stage = (char *)stages[k];
		req.artifacts = ptrs;
		req.n_artifacts = n;
		req.options_json = (char *)(options ? options : "");
		req.deadline_unix_ms = deadlines[k];
		req.gate = gate;
		uint8_t *buf;
		size_t len;
		char topic[128];
		if (mlsec_queue_stage_topic(stages[k], topic, sizeof(topic)) != MLSEC_OK) {
			e = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "bad stage name");
			break;
		}
		if (mlsec_jobproto_pack(&req.base, &buf, &len) != MLSEC_OK) {
			e = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			break;
		}
		e = mlsec_producer_send_async(o->producer, topic, job_id, strlen(job_id), buf, len,
		                              err);
		mlsec_free(buf);
	}
	mlsec_free(arts);
	mlsec_free(ptrs);
	if (e == MLSEC_OK)
		e = mlsec_producer_flush(o->producer, ORCH_PRODUCE_TIMEOUT_MS, err);
	return e;
}

grpc_status_code orch_submit(mlsec_rpc_call *c, const uint8_t *in, size_t in_len, uint8_t **resp,
                             size_t *resp_len, void *ctx)
{
	orch *o = ctx;
	mlsec_error err;
	mlsec_error_clear(&err);
	Mlsec__V1__SubmitRequest *req = mlsec__v1__submit_request__unpack(NULL, in_len, in);
	if (!req) {
		mlsec_rpc_call_set_message(c, "malformed SubmitRequest");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	grpc_status_code st = GRPC_STATUS_OK;
	submission sub = {0};
	const char *stages[ORCH_MAX_STAGES];
	size_t nstages = 0;
	int auto_mode = 0;
	json_t *job = NULL;
	char *job_text = NULL;
	mlsec_store *s = NULL;
	char job_id[33];
	mlsec_err e;

	if (req->n_artifacts == 0) {
		mlsec_rpc_call_set_message(c, "no artifacts given");
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	if (req->n_artifacts > ORCH_MAX_ARTIFACTS || req->n_stages > ORCH_MAX_STAGES) {
		mlsec_rpc_call_set_message(c, "too many artifacts or stages (max %d / %d)",
		                           ORCH_MAX_ARTIFACTS, ORCH_MAX_STAGES);
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	if (req->has_gate && (req->gate < MLSEC__V1__SEVERITY__SEVERITY_INFO ||
	                      req->gate > MLSEC__V1__SEVERITY__SEVERITY_CRITICAL)) {
		mlsec_rpc_call_set_message(c, "unknown gate severity %d", (int)req->gate);
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	if (req->options_json && *req->options_json) {
		json_error_t je;
		json_t *opt = strlen(req->options_json) > ORCH_MAX_OPTIONS_JSON
		                      ? NULL
		                      : json_loads(req->options_json, JSON_REJECT_DUPLICATES, &je);
		int ok = json_is_object(opt);
		json_decref(opt);
		if (!ok) {
			mlsec_rpc_call_set_message(
			        c, "options_json must be a JSON object of at most %d bytes",
			        ORCH_MAX_OPTIONS_JSON);
			st = GRPC_STATUS_INVALID_ARGUMENT;
			goto out;
		}
	}
	if (req->timeout_ms > ORCH_MAX_JOB_TIMEOUT_MS) {
		mlsec_rpc_call_set_message(c, "timeout_ms above %d", ORCH_MAX_JOB_TIMEOUT_MS);
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	for (size_t i = 0; i < req->n_stages; i++) {
		const char *name = req->stages[i];
		if (!strcmp(name, "auto")) {
			auto_mode = 1;
			continue;
		}
		if (!stage_known(name)) {
			mlsec_rpc_call_set_message(c, "unknown stage '%.64s'", name);
			st = GRPC_STATUS_INVALID_ARGUMENT;
			goto out;
		}
		int dup = 0;
		for (size_t k = 0; k < nstages; k++)
			dup |= !strcmp(stages[k], name);
		if (!dup)
			stages[nstages++] = name;
	}
	if (auto_mode && nstages) {
		mlsec_rpc_call_set_message(c, "'auto' cannot be combined with explicit stages");
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	if (!nstages)
		auto_mode = 1;
	walk_filter wf = {stages, auto_mode ? 0 : nstages};
	for (size_t i = 0; i < req->n_artifacts; i++) {
		e = submission_add_uri(o, &sub, req->artifacts[i], &wf, &err);
		if (e != MLSEC_OK) {
			st = fail(c, e, &err);
			goto out;
		}
	}
	if (auto_mode) {
		for (size_t i = 0; i < sub.n; i++) {
			const char *names[MLSEC_JOBPROTO_MAX_AUTO_STAGES];
			size_t nn = mlsec_jobproto_stages_for_format(
			        sub.arts[i].fmt, names, MLSEC_JOBPROTO_MAX_AUTO_STAGES);
			for (size_t j = 0; j < nn; j++) {
				int dup = 0;
				for (size_t k = 0; k < nstages; k++)
					dup |= !strcmp(stages[k], names[j]);
				if (!dup && nstages < ORCH_MAX_STAGES)
					stages[nstages++] = names[j];
			}
		}
		if (!nstages) {
			mlsec_rpc_call_set_message(
			        c, "no stage handles these artifacts (formats: %s%s)",
			        mlsec_format_name(sub.arts[0].fmt), sub.n > 1 ? ", ..." : "");
			st = GRPC_STATUS_INVALID_ARGUMENT;
			goto out;
		}
	}

	Mlsec__V1__Severity gate = req->has_gate ? req->gate : MLSEC__V1__SEVERITY__SEVERITY_HIGH;
	long long timeout = req->timeout_ms ? req->timeout_ms : o->job_timeout_ms;
	long long now = mlsec_jobproto_now_ms();
	long long deadline = now + timeout;
	long long deadlines[ORCH_MAX_STAGES];
	long long first_due = deadline;
	for (size_t k = 0; k < nstages; k++) {
		deadlines[k] = stage_deadline(o, stages[k], now, deadline);
		if (deadlines[k] < first_due)
			first_due = deadlines[k];
	}
	random_id(job_id);
	mlsec_log_set_job(job_id);

	job = json_pack("{s:s, s:[], s:s, s:I, s:I, s:s, s:s, s:b}", "id", job_id, "stages", "gate",
	                mlsec_severity_name(mlsec_jobproto_severity_from_pb(gate)), "deadline_ms",
	                (json_int_t)deadline, "created_ms", (json_int_t)now, "submitter",
	                req->submitter ? req->submitter : "", "peer", mlsec_rpc_call_peer(c),
	                "auto", auto_mode);
	json_t *sd = json_object();
	for (size_t k = 0; job && k < nstages; k++) {
		json_array_append_new(json_object_get(job, "stages"), json_string(stages[k]));
		json_object_set_new(sd, stages[k], json_integer((json_int_t)deadlines[k]));
	}
	if (job)
		json_object_set_new(job, "stage_deadlines", sd);
	else
		json_decref(sd);
	job_text = job ? json_dumps(job, JSON_COMPACT) : NULL;
	s = orch_store_get(o);
	if (!job_text || !s) {
		mlsec_rpc_call_set_message(c, "out of memory");
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	int created = 0;
	e = mlsec_store_job_create(s, job_id, job_text, strlen(job_text), o->ttl_ms, &created,
	                           &err);
	if (e == MLSEC_OK && !created)
		e = mlsec_error_set(&err, MLSEC_ERR_INTERNAL, "job id collision");
	if (e == MLSEC_OK)
		e = mlsec_store_deadline_add(s, job_id, first_due, &err);
	if (e == MLSEC_OK) {
		Mlsec__V1__JobEvent ev = MLSEC__V1__JOB_EVENT__INIT;
		ev.job_id = job_id;
		ev.type = MLSEC__V1__EVENT_TYPE__EVENT_TYPE_SUBMITTED;
		ev.stages = (char **)stages;
		ev.n_stages = nstages;
		e = append_event(o, s, &ev, &err);
	}
	if (e != MLSEC_OK) {
		MLSEC_LOGW("submit: redis: %s", err.text);
		mlsec_rpc_call_set_message(c, "job store unavailable: %s", err.text);
		st = GRPC_STATUS_UNAVAILABLE;
		goto out;
	}
	e = fan_out(o, job_id, &sub, auto_mode, stages, nstages, req->options_json, gate, deadlines,
	            &err);
	if (e != MLSEC_OK) {
		/* The deadline still ends the job; say so to the caller now. */
		MLSEC_LOGW("submit: kafka: %s", err.text);
		mlsec_rpc_call_set_message(c, "job queue unavailable: %s", err.text);
		st = GRPC_STATUS_UNAVAILABLE;
		goto out;
	}

	Mlsec__V1__SubmitResponse r = MLSEC__V1__SUBMIT_RESPONSE__INIT;
	r.job_id = job_id;
	r.stages = (char **)stages;
	r.n_stages = nstages;
	r.deadline_unix_ms = deadline;
	Mlsec__V1__Artifact *arts = mlsec_calloc(sub.n, sizeof(*arts));
	Mlsec__V1__Artifact **ptrs = mlsec_calloc(sub.n, sizeof(*ptrs));
	if (!arts || !ptrs) {
		mlsec_free(arts);
		mlsec_free(ptrs);
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	for (size_t i = 0; i < sub.n; i++) {
		mlsec__v1__artifact__init(&arts[i]);
		arts[i].uri = sub.arts[i].uri;
		arts[i].sha256 = sub.arts[i].sha;
		arts[i].size = sub.arts[i].size;
		arts[i].media_type = (char *)mlsec_format_name(sub.arts[i].fmt);
		ptrs[i] = &arts[i];
	}
	r.artifacts = ptrs;
	r.n_artifacts = sub.n;
	if (mlsec_jobproto_pack(&r.base, resp, resp_len) != MLSEC_OK)
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
	mlsec_free(arts);
	mlsec_free(ptrs);
	MLSEC_LOGI("submitted: %zu artifact(s), %zu stage(s)", sub.n, nstages);
out:
	mlsec_log_set_job(NULL);
	if (s)
		orch_store_put(o, s);
	free(job_text);
	json_decref(job);
	submission_free(&sub);
	mlsec__v1__submit_request__free_unpacked(req, NULL);
	return st;
}

/* Loads the job record; MLSEC_ERR_NOT_FOUND for unknown jobs. */
static mlsec_err job_load(mlsec_store *s, const char *job_id, json_t **job, mlsec_error *err)
{
	char *text = NULL;
	size_t len = 0;
	*job = NULL;
	mlsec_err e = mlsec_store_job_get(s, job_id, &text, &len, err);
	if (e != MLSEC_OK)
		return e;
	json_error_t je;
	*job = json_loadb(text, len, 0, &je);
	mlsec_free(text);
	if (!*job || !json_is_array(json_object_get(*job, "stages"))) {
		json_decref(*job);
		*job = NULL;
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "job record of %s is corrupt", job_id);
	}
	return MLSEC_OK;
}

static mlsec_severity job_gate(const json_t *job)
{
	mlsec_severity g = MLSEC_SEV_HIGH;
	const char *name = json_string_value(json_object_get(job, "gate"));
	if (name)
		mlsec_severity_parse(name, &g);
	return g;
}

/*
 * Collects the stored results of every stage of the job into a Verdict and
 * packs it. *missing = stages without a result.
 */
static mlsec_err verdict_build(mlsec_store *s, const char *job_id, const json_t *job, int decided,
                               uint8_t **out, size_t *len, size_t *missing, mlsec_error *err)
{
	json_t *stages = json_object_get(job, "stages");
	size_t n = json_array_size(stages);
	Mlsec__V1__StageResult **res = mlsec_calloc(n ? n : 1, sizeof(*res));
	char **pending = mlsec_calloc(n ? n : 1, sizeof(*pending));
	size_t nres = 0, npend = 0;
	mlsec_err e = (res && pending) ? MLSEC_OK : MLSEC_ERR_NOMEM;
	for (size_t i = 0; e == MLSEC_OK && i < n; i++) {
		const char *stage = json_string_value(json_array_get(stages, i));
		char *buf = NULL;
		size_t blen = 0;
		e = mlsec_store_result_get(s, job_id, stage ? stage : "", &buf, &blen, err);
		if (e == MLSEC_ERR_NOT_FOUND) {
			pending[npend++] = (char *)stage;
			e = MLSEC_OK;
			continue;
		}
		if (e != MLSEC_OK)
			break;
		Mlsec__V1__StageResult *r =
		        mlsec__v1__stage_result__unpack(NULL, blen, (const uint8_t *)buf);
		mlsec_free(buf);
		if (!r) { /* a corrupt result counts as missing: fail closed */
			pending[npend++] = (char *)stage;
			continue;
		}
		res[nres++] = r;
	}
	if (e == MLSEC_OK) {
		mlsec_severity gate = job_gate(job);
		Mlsec__V1__Verdict v = MLSEC__V1__VERDICT__INIT;
		v.job_id = (char *)job_id;
		v.state = decided ? MLSEC__V1__JOB_STATE__JOB_STATE_DONE
		                  : MLSEC__V1__JOB_STATE__JOB_STATE_RUNNING;
		v.exit_code = mlsec_jobproto_verdict((const Mlsec__V1__StageResult *const *)res,
		                                     nres, npend, gate);
		v.stages = res;
		v.n_stages = nres;
		v.pending_stages = pending;
		v.n_pending_stages = npend;
		v.gate = mlsec_jobproto_severity_to_pb(gate);
		if (mlsec_jobproto_pack(&v.base, out, len) != MLSEC_OK)
			e = MLSEC_ERR_NOMEM;
		if (missing)
			*missing = npend;
	}
	for (size_t i = 0; i < nres; i++)
		mlsec__v1__stage_result__free_unpacked(res[i], NULL);
	mlsec_free(res);
	mlsec_free(pending);
	if (e == MLSEC_ERR_NOMEM)
		mlsec_error_set(err, e, "out of memory");
	return e;
}

/* Decides the job when every stage answered (or force: the deadline
 * passed). Idempotent across replicas. */
static mlsec_err job_try_finish(orch *o, mlsec_store *s, const char *job_id, const json_t *job,
                                int force, mlsec_error *err)
{
	char key[160];
	orch_key(key, sizeof(key), job_id, "verdict");
	uint8_t *v = NULL;
	size_t vlen = 0, missing = 0;
	mlsec_err e = verdict_build(s, job_id, job, 1, &v, &vlen, &missing, err);
	if (e != MLSEC_OK)
		return e;
	if (missing && !force) {
		mlsec_free(v);
		return MLSEC_OK;
	}
	int created = 0;
	e = mlsec_store_set_nx(s, key, v, vlen, o->ttl_ms, &created, err);
	if (e == MLSEC_OK && created) {
		Mlsec__V1__Verdict *vd = mlsec__v1__verdict__unpack(NULL, vlen, v);
		Mlsec__V1__JobEvent ev = MLSEC__V1__JOB_EVENT__INIT;
		ev.job_id = (char *)job_id;
		ev.type = MLSEC__V1__EVENT_TYPE__EVENT_TYPE_VERDICT;
		ev.verdict = vd;
		e = append_event(o, s, &ev, err);
		if (vd) {
			MLSEC_LOG(MLSEC_LOG_INFO, job_id, "verdict: exit %d", (int)vd->exit_code);
			mlsec__v1__verdict__free_unpacked(vd, NULL);
		}
		if (e == MLSEC_OK)
			e = mlsec_store_deadline_remove(s, job_id, NULL, err);
	}
	mlsec_free(v);
	return e;
}

/* Appends the STAGE_DONE event for a stage once (best effort against
 * duplicates: readers tolerate the rare repeat after a crash). */
static mlsec_err stage_event(orch *o, mlsec_store *s, const char *job_id, Mlsec__V1__StageResult *r,
                             mlsec_error *err)
{
	char key[160];
	orch_key(key, sizeof(key), job_id, "seen");
	char *val = NULL;
	mlsec_err e = mlsec_store_hget(s, key, r->stage, &val, NULL, err);
	mlsec_free(val);
	if (e == MLSEC_OK)
		return MLSEC_OK; /* already announced */
	if (e != MLSEC_ERR_NOT_FOUND)
		return e;
	Mlsec__V1__JobEvent ev = MLSEC__V1__JOB_EVENT__INIT;
	ev.job_id = (char *)job_id;
	ev.type = MLSEC__V1__EVENT_TYPE__EVENT_TYPE_STAGE_DONE;
	ev.stage = r->stage;
	ev.result = r;
	e = append_event(o, s, &ev, err);
	if (e == MLSEC_OK)
		e = mlsec_store_hset(s, key, r->stage, "1", 1, err);
	if (e == MLSEC_OK && o->ttl_ms > 0)
		e = mlsec_store_expire(s, key, o->ttl_ms, err);
	return e;
}

mlsec_queue_outcome orch_on_result(const mlsec_queue_msg *m, void *ctx)
{
	orch_results_ctx *rc = ctx;
	orch *o = rc->o;
	mlsec_store *s = rc->store;
	mlsec_error err;
	mlsec_error_clear(&err);
	Mlsec__V1__StageResult *r =
	        mlsec__v1__stage_result__unpack(NULL, m->len, (const uint8_t *)m->value);
	if (!r || !r->job_id || !*r->job_id || !r->stage || !*r->stage) {
		MLSEC_LOGW("dropping malformed StageResult");
		if (r)
			mlsec__v1__stage_result__free_unpacked(r, NULL);
		return MLSEC_QUEUE_DONE;
	}
	mlsec_queue_outcome out = MLSEC_QUEUE_RETRY;
	json_t *job = NULL;
	char key[160];
	char *verdict = NULL;
	mlsec_err e = job_load(s, r->job_id, &job, &err);
	if (e == MLSEC_ERR_NOT_FOUND || e == MLSEC_ERR_PARSE || e == MLSEC_ERR_INVALID_ARG) {
		MLSEC_LOG(MLSEC_LOG_WARN, r->job_id, "result for unknown job dropped (%s)",
		          err.text);
		out = MLSEC_QUEUE_DONE;
		goto done;
	}
	if (e != MLSEC_OK)
		goto done;
	int member = 0;
	json_t *stages = json_object_get(job, "stages");
	for (size_t i = 0; i < json_array_size(stages); i++) {
		const char *name = json_string_value(json_array_get(stages, i));
		member |= name && !strcmp(name, r->stage);
	}
	if (!member) {
		MLSEC_LOG(MLSEC_LOG_WARN, r->job_id,
		          "result for stage %.32s not in the job dropped", r->stage);
		out = MLSEC_QUEUE_DONE;
		goto done;
	}
	orch_key(key, sizeof(key), r->job_id, "verdict");
	e = mlsec_store_get(s, key, &verdict, NULL, &err);
	if (e == MLSEC_OK) { /* decided already (late or duplicate result) */
		out = MLSEC_QUEUE_DONE;
		goto done;
	}
	if (e != MLSEC_ERR_NOT_FOUND)
		goto done;
	/* The stored result is authoritative (the first write won: a stage
	 * result or a deadline error). The message is normally the same. */
	char *stored = NULL;
	size_t slen = 0;
	e = mlsec_store_result_get(s, r->job_id, r->stage, &stored, &slen, &err);
	if (e == MLSEC_ERR_NOT_FOUND) {
		int created = 0;
		e = mlsec_store_result_put(s, r->job_id, r->stage, m->value, m->len, o->ttl_ms,
		                           &created, &err);
	} else if (e == MLSEC_OK) {
		Mlsec__V1__StageResult *sr =
		        mlsec__v1__stage_result__unpack(NULL, slen, (const uint8_t *)stored);
		if (sr) {
			mlsec__v1__stage_result__free_unpacked(r, NULL);
			r = sr;
		}
	}
	mlsec_free(stored);
	if (e != MLSEC_OK)
		goto done;
	MLSEC_LOG(MLSEC_LOG_INFO, r->job_id, "stage %s: status %d, %zu finding(s)", r->stage,
	          (int)r->status, r->n_findings);
	e = stage_event(o, s, r->job_id, r, &err);
	if (e == MLSEC_OK)
		e = job_try_finish(o, s, r->job_id, job, 0, &err);
	if (e == MLSEC_OK)
		out = MLSEC_QUEUE_DONE;
done:
	if (out == MLSEC_QUEUE_RETRY)
		MLSEC_LOG(MLSEC_LOG_WARN, r->job_id, "result handling failed: %s (will retry)",
		          err.text);
	mlsec_free(verdict);
	json_decref(job);
	mlsec__v1__stage_result__free_unpacked(r, NULL);
	return out;
}

/*
 * A due deadline of a job: every stage without a result whose own deadline
 * passed gets an ERROR result; then the verdict when nothing is missing,
 * else the job goes back to the deadline set for the next stage's deadline.
 */
static mlsec_err job_expire(orch *o, mlsec_store *s, const char *job_id, mlsec_error *err)
{
	json_t *job = NULL;
	mlsec_err e = job_load(s, job_id, &job, err);
	if (e == MLSEC_ERR_NOT_FOUND)
		return MLSEC_OK;
	if (e != MLSEC_OK)
		return e;
	long long now = mlsec_jobproto_now_ms();
	long long next_due = 0;
	json_t *stages = json_object_get(job, "stages");
	for (size_t i = 0; e == MLSEC_OK && i < json_array_size(stages); i++) {
		const char *stage = json_string_value(json_array_get(stages, i));
		if (!stage)
			continue;
		char *buf = NULL;
		e = mlsec_store_result_get(s, job_id, stage, &buf, NULL, err);
		mlsec_free(buf);
		if (e != MLSEC_ERR_NOT_FOUND)
			continue;
		e = MLSEC_OK;
		long long due = job_stage_deadline(job, stage);
		if (due > now) { /* this stage still has time */
			if (!next_due || due < next_due)
				next_due = due;
			continue;
		}
		uint8_t *res = NULL;
		size_t rlen = 0;
		char msg[160];
		snprintf(msg, sizeof(msg), "stage %s did not answer before its deadline", stage);
		e = mlsec_jobproto_result_pack(job_id, stage, NULL, MLSEC_ERR_TIMEOUT, msg, NULL,
		                               job_gate(job), 0, "orchestrator", &res, &rlen);
		if (e != MLSEC_OK)
			break;
		int created = 0;
		e = mlsec_store_result_put(s, job_id, stage, res, rlen, o->ttl_ms, &created, err);
		if (e == MLSEC_OK) {
			Mlsec__V1__StageResult *r =
			        mlsec__v1__stage_result__unpack(NULL, rlen, res);
			if (r && created) {
				MLSEC_LOG(MLSEC_LOG_WARN, job_id, "%s", msg);
				e = stage_event(o, s, job_id, r, err);
			}
			if (r)
				mlsec__v1__stage_result__free_unpacked(r, NULL);
		}
		mlsec_free(res);
	}
	if (e == MLSEC_OK && next_due)
		e = mlsec_store_deadline_add(s, job_id, next_due, err);
	if (e == MLSEC_OK)
		e = job_try_finish(o, s, job_id, job, 0, err);
	json_decref(job);
	return e;
}

int orch_sweep(orch *o, mlsec_store *s)
{
	char **ids = NULL;
	size_t n = 0;
	mlsec_error err;
	mlsec_error_clear(&err);
	if (mlsec_store_deadline_due(s, mlsec_jobproto_now_ms(), 100, &ids, &n, &err) != MLSEC_OK) {
		MLSEC_LOGD("sweep: %s", err.text);
		return 0;
	}
	int done = 0;
	for (size_t i = 0; i < n; i++) {
		int claimed = 0;
		if (mlsec_store_deadline_remove(s, ids[i], &claimed, &err) != MLSEC_OK || !claimed)
			continue;
		if (job_expire(o, s, ids[i], &err) != MLSEC_OK) {
			/* hand it back so that a later sweep (or replica) retries */
			MLSEC_LOG(MLSEC_LOG_WARN, ids[i], "deadline handling failed: %s", err.text);
			mlsec_store_deadline_add(s, ids[i], mlsec_jobproto_now_ms() + 1000, NULL);
			continue;
		}
		done++;
	}
	mlsec_store_ids_free(ids, n);
	return done;
}

mlsec_err orch_verdict_current(orch *o, mlsec_store *s, const char *job_id, uint8_t **out,
                               size_t *len, int *decided, mlsec_error *err)
{
	(void)o;
	char key[160];
	json_t *job = NULL;
	*decided = 0;
	mlsec_err e = job_load(s, job_id, &job, err);
	if (e != MLSEC_OK)
		return e;
	orch_key(key, sizeof(key), job_id, "verdict");
	char *v = NULL;
	size_t vlen = 0;
	e = mlsec_store_get(s, key, &v, &vlen, err);
	if (e == MLSEC_OK) {
		*out = (uint8_t *)v;
		*len = vlen;
		*decided = 1;
	} else if (e == MLSEC_ERR_NOT_FOUND) {
		e = verdict_build(s, job_id, job, 0, out, len, NULL, err);
	}
	json_decref(job);
	return e;
}
