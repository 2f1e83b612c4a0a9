/*
 * watch.c - Get (the job's verdict so far) and Watch (the job's event
 * stream until the verdict). Both read only Redis, so any replica serves
 * any job, and a client whose Watch broke (orchestrator restart) resumes
 * with after_id = the last event id it saw.
 */
#include <stdio.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/jobproto.h"
#include "mlsec/log.h"
#include "orchestrator.h"

/* Checks the job id before it reaches any key (store.h validates too). */
static int job_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > MLSEC_STORE_MAX_ID)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

grpc_status_code orch_get(mlsec_rpc_call *c, const uint8_t *in, size_t in_len, uint8_t **resp,
                          size_t *resp_len, void *ctx)
{
	orch *o = ctx;
	Mlsec__V1__GetRequest *req = mlsec__v1__get_request__unpack(NULL, in_len, in);
	if (!req || !job_id_ok(req->job_id)) {
		if (req)
			mlsec__v1__get_request__free_unpacked(req, NULL);
		mlsec_rpc_call_set_message(c, "malformed GetRequest or job id");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	mlsec_store *s = orch_store_get(o);
	if (!s) {
		mlsec__v1__get_request__free_unpacked(req, NULL);
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	mlsec_error err;
	mlsec_error_clear(&err);
	int decided = 0;
	mlsec_err e = orch_verdict_current(o, s, req->job_id, resp, resp_len, &decided, &err);
	orch_store_put(o, s);
	grpc_status_code st = GRPC_STATUS_OK;
	if (e == MLSEC_ERR_NOT_FOUND) {
		mlsec_rpc_call_set_message(c, "no job %s", req->job_id);
		st = GRPC_STATUS_NOT_FOUND;
	} else if (e != MLSEC_OK) {
		mlsec_rpc_call_set_message(c, "job store: %s", err.text);
		st = mlsec_rpc_status_from_err(e == MLSEC_ERR_PARSE ? MLSEC_ERR_INTERNAL : e);
	}
	mlsec__v1__get_request__free_unpacked(req, NULL);
	return st;
}

/* Sends one stored event with its stream id filled in. Returns 1 when it
 * was the verdict, 0 otherwise, -1 when the client is gone. */
static int send_event(mlsec_rpc_call *c, const mlsec_store_event *ev)
{
	Mlsec__V1__JobEvent *je =
	        mlsec__v1__job_event__unpack(NULL, ev->len, (const uint8_t *)ev->data);
	if (!je)
		return 0; /* not ours; skip */
	char *old = je->id;
	je->id = (char *)ev->id;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;
	if (mlsec_jobproto_pack(&je->base, &buf, &len) == MLSEC_OK &&
	    mlsec_rpc_call_send(c, buf, len) == MLSEC_OK)
		rc = je->type == MLSEC__V1__EVENT_TYPE__EVENT_TYPE_VERDICT;
	mlsec_free(buf);
	je->id = old;
	mlsec__v1__job_event__free_unpacked(je, NULL);
	return rc;
}

/* The verdict key exists but its event is missing (a replica died between
 * the two writes): send a synthesised VERDICT event. */
static int send_stored_verdict(orch *o, mlsec_rpc_call *c, mlsec_store *s, const char *job_id)
{
	uint8_t *v = NULL;
	size_t vlen = 0;
	int decided = 0;
	mlsec_error err;
	if (orch_verdict_current(o, s, job_id, &v, &vlen, &decided, &err) != MLSEC_OK || !decided) {
		mlsec_free(v);
		return 0;
	}
	Mlsec__V1__Verdict *vd = mlsec__v1__verdict__unpack(NULL, vlen, v);
	mlsec_free(v);
	if (!vd)
		return 0;
	Mlsec__V1__JobEvent ev = MLSEC__V1__JOB_EVENT__INIT;
	ev.job_id = (char *)job_id;
	ev.type = MLSEC__V1__EVENT_TYPE__EVENT_TYPE_VERDICT;
	ev.verdict = vd;
	ev.unix_ms = mlsec_jobproto_now_ms();
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;
	if (mlsec_jobproto_pack(&ev.base, &buf, &len) == MLSEC_OK &&
	    mlsec_rpc_call_send(c, buf, len) == MLSEC_OK)
		rc = 1;
	mlsec_free(buf);
	mlsec__v1__verdict__free_unpacked(vd, NULL);
	return rc;
}

grpc_status_code orch_watch(mlsec_rpc_call *c, const uint8_t *in, size_t in_len, uint8_t **resp,
                            size_t *resp_len, void *ctx)
{
	orch *o = ctx;
	Mlsec__V1__WatchRequest *req = mlsec__v1__watch_request__unpack(NULL, in_len, in);
	if (!req || !job_id_ok(req->job_id) ||
	    strlen(req->after_id ? req->after_id : "") >= MLSEC_STORE_EVENT_ID_MAX) {
		if (req)
			mlsec__v1__watch_request__free_unpacked(req, NULL);
		mlsec_rpc_call_set_message(c, "malformed WatchRequest or job id");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (atomic_fetch_add(&o->watches, 1) >= o->max_watches) {
		atomic_fetch_sub(&o->watches, 1);
		mlsec__v1__watch_request__free_unpacked(req, NULL);
		mlsec_rpc_call_set_message(c, "too many concurrent watches (%d); retry shortly",
		                           o->max_watches);
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	mlsec_store *s = orch_store_get(o);
	if (!s) {
		atomic_fetch_sub(&o->watches, 1);
		mlsec__v1__watch_request__free_unpacked(req, NULL);
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	grpc_status_code st = GRPC_STATUS_OK;
	mlsec_error err;
	mlsec_error_clear(&err);
	char after[MLSEC_STORE_EVENT_ID_MAX];
	snprintf(after, sizeof(after), "%s", req->after_id && *req->after_id ? req->after_id : "0");
	char *rec = NULL;
	mlsec_err e = mlsec_store_job_get(s, req->job_id, &rec, NULL, &err);
	mlsec_free(rec);
	if (e != MLSEC_OK) {
		mlsec_rpc_call_set_message(c,
		                           e == MLSEC_ERR_NOT_FOUND ? "no job %s" : "job store: %s",
		                           e == MLSEC_ERR_NOT_FOUND ? req->job_id : err.text);
		st = mlsec_rpc_status_from_err(e);
		goto out;
	}
	int idle = 0;
	for (;;) {
		if (mlsec_rpc_call_cancelled(c) || o->stopping) {
			mlsec_rpc_call_set_message(c, "server shutting down or client gone");
			st = GRPC_STATUS_UNAVAILABLE;
			break;
		}
		mlsec_store_events evs = {0};
		e = mlsec_store_events_read(s, req->job_id, after, 100, ORCH_WATCH_BLOCK_MS, &evs,
		                            &err);
		if (e != MLSEC_OK) {
			mlsec_rpc_call_set_message(c, "job store: %s", err.text);
			st = GRPC_STATUS_UNAVAILABLE;
			break;
		}
		int verdict = 0, gone = 0;
		for (size_t i = 0; i < evs.count && !verdict && !gone; i++) {
			int r = send_event(c, &evs.items[i]);
			snprintf(after, sizeof(after), "%s", evs.items[i].id);
			verdict = r == 1;
			gone = r < 0;
		}
		size_t got = evs.count;
		mlsec_store_events_clear(&evs);
		if (verdict)
			break;
		if (gone) {
			st = GRPC_STATUS_CANCELLED;
			break;
		}
		/* Every ~2 s without news, look for a verdict whose event is
		 * missing (written by a replica that died just after). */
		idle = got ? 0 : idle + 1;
		if (idle >= 8) {
			idle = 0;
			int r = send_stored_verdict(o, c, s, req->job_id);
			if (r)
				break;
		}
	}
out:
	orch_store_put(o, s);
	atomic_fetch_sub(&o->watches, 1);
	mlsec__v1__watch_request__free_unpacked(req, NULL);
	return st;
}
