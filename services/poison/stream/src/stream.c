/*
 * stream.c - mlsec.gradients -> per-run detectors -> mlsec.alerts, with
 * each run's state checkpointed in Redis (contract in poison_stream.h).
 * Everything runs on the queue worker's thread.
 */
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"
#include "mlsec/poison_stream.h"
#include "mlsec/store.h"

#define STATE_VERSION 1
#define IDLE_SCAN_MS 1000 /* how often idle runs are looked for */

typedef struct run {
	char id[MLSEC_POISON_STREAM_MAX_RUN_ID + 1];
	mlsec_poison_detector *det;
	json_t *outbox; /* array of alert texts not yet delivered */
	unsigned since_save;
	long long last_ms;
} run;

typedef struct stream {
	mlsec_poison_stream_conf c;
	mlsec_producer *prod;
	mlsec_store *store;
	run *runs;
	size_t nruns;
	run *cur; /* the run being fed, for the event callback */
	long long last_scan_ms;
	mlsec_poison_stream_stats st;
} stream;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mlsec_poison_stream_run_id_ok(const char *s, size_t len)
{
	if (!s || len < 1 || len > MLSEC_POISON_STREAM_MAX_RUN_ID)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

static void state_key(const char *id, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s:state", MLSEC_POISON_STREAM_KEY_PREFIX, id);
}

/* Sends one alert; 0 when delivered. */
static int send_alert(stream *s, const run *r, const char *text)
{
	mlsec_error err;
	mlsec_error_clear(&err);
	if (mlsec_producer_send(s->prod, MLSEC_TOPIC_ALERTS, r->id, strlen(r->id), text,
	                        strlen(text), s->c.alert_timeout_ms, &err)) {
		MLSEC_LOGW("poison run %s: alert not delivered yet: %s", r->id, err.text);
		return -1;
	}
	return 0;
}

/* Retries the undelivered alerts of r, oldest first. */
static void drain_outbox(stream *s, run *r)
{
	while (json_array_size(r->outbox)) {
		if (send_alert(s, r, json_string_value(json_array_get(r->outbox, 0))))
			return;
		json_array_remove(r->outbox, 0);
		s->st.alerts++;
	}
}

static void on_event(void *ctx, const mlsec_poison_event *ev)
{
	stream *s = ctx;
	run *r = s->cur;
	json_t *a = json_pack("{s:s, s:s, s:o}", "source", "poison", "run", r->id, "event",
	                      mlsec_poison_event_to_json(ev));
	char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!text) {
		s->st.alerts_failed++;
		return;
	}
	MLSEC_LOGW("poison run %s: %s rank %lld alarm step %lld", r->id,
	           mlsec_poison_event_rule(ev->kind), (long long)ev->rank,
	           (long long)ev->alarm_step);
	/* keep order: behind any alert still waiting */
	if (json_array_size(r->outbox) == 0 && send_alert(s, r, text) == 0) {
		s->st.alerts++;
	} else if (json_array_size(r->outbox) < MLSEC_POISON_STREAM_MAX_OUTBOX) {
		json_array_append_new(r->outbox, json_string(text));
	} else {
		s->st.alerts_failed++;
	}
	free(text);
}

/* Saves r's state; 0 on success. */
static int save_run(stream *s, run *r)
{
	json_t *st = json_object();
	json_t *det = mlsec_poison_detector_to_json(r->det);
	char key[160];
	int rc = -1;
	if (st && det && !json_object_set_new(st, "version", json_integer(STATE_VERSION)) &&
	    !json_object_set(st, "outbox", r->outbox) &&
	    !json_object_set_new(st, "detector", det)) {
		det = NULL;
		char *text = json_dumps(st, JSON_COMPACT);
		if (text) {
			mlsec_error err;
			mlsec_error_clear(&err);
			state_key(r->id, key, sizeof key);
			if (mlsec_store_set(s->store, key, text, strlen(text), s->c.state_ttl_ms,
			                    &err) == MLSEC_OK) {
				rc = 0;
				r->since_save = 0;
				s->st.checkpoints++;
			} else {
				MLSEC_LOGW("poison run %s: state not saved: %s", r->id, err.text);
			}
			free(text);
		}
	}
	json_decref(det);
	json_decref(st);
	return rc;
}

static void free_run(run *r)
{
	mlsec_poison_detector_free(r->det);
	json_decref(r->outbox);
	memset(r, 0, sizeof *r);
}

static void evict(stream *s, size_t i)
{
	save_run(s, &s->runs[i]);
	free_run(&s->runs[i]);
	s->runs[i] = s->runs[--s->nruns];
	s->st.evictions++;
}

/* Loads or creates the run's detector. MLSEC_ERR_UNAVAILABLE when Redis is
 * down (the message is retried later rather than run on a blank state). */
static mlsec_err open_run(stream *s, const char *id, run **out)
{
	for (size_t i = 0; i < s->nruns; i++)
		if (!strcmp(s->runs[i].id, id)) {
			*out = &s->runs[i];
			return MLSEC_OK;
		}
	if (s->nruns >= s->c.max_runs) {
		size_t oldest = 0;
		for (size_t i = 1; i < s->nruns; i++)
			if (s->runs[i].last_ms < s->runs[oldest].last_ms)
				oldest = i;
		evict(s, oldest);
	}
	char key[160];
	state_key(id, key, sizeof key);
	char *text = NULL;
	size_t len = 0;
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_err rc = mlsec_store_get(s->store, key, &text, &len, &err);
	if (rc && rc != MLSEC_ERR_NOT_FOUND) {
		MLSEC_LOGW("poison run %s: cannot load state: %s", id, err.text);
		return MLSEC_ERR_UNAVAILABLE;
	}
	run r;
	memset(&r, 0, sizeof r);
	snprintf(r.id, sizeof r.id, "%s", id);
	if (text) {
		json_t *st = json_loadb(text, len, 0, NULL);
		mlsec_free(text);
		json_t *ob = json_object_get(st, "outbox");
		r.det = mlsec_poison_detector_from_json(json_object_get(st, "detector"), on_event,
		                                        s, &err);
		if (r.det) {
			s->st.restores++;
			if (json_is_array(ob))
				r.outbox = json_incref(ob);
			MLSEC_LOGI("poison run %s: state restored", id);
		} else {
			/* Fail safe: a corrupt state must not stop monitoring. */
			MLSEC_LOGW("poison run %s: stored state unusable (%s); starting afresh", id,
			           err.text);
		}
		json_decref(st);
	}
	if (!r.det)
		r.det = mlsec_poison_detector_new(&s->c.detector, on_event, s, &err);
	if (!r.outbox)
		r.outbox = json_array();
	if (!r.det || !r.outbox) {
		free_run(&r);
		return MLSEC_ERR_NOMEM;
	}
	s->runs[s->nruns] = r;
	*out = &s->runs[s->nruns++];
	return MLSEC_OK;
}

static void scan_idle(stream *s, long long now)
{
	if (now - s->last_scan_ms < IDLE_SCAN_MS)
		return;
	s->last_scan_ms = now;
	for (size_t i = 0; i < s->nruns;) {
		if (now - s->runs[i].last_ms >= s->c.idle_evict_ms)
			evict(s, i);
		else
			i++;
	}
}

static mlsec_queue_outcome handle(const mlsec_queue_msg *m, void *ctx)
{
	stream *s = ctx;
	long long now = now_ms();
	s->st.messages++;
	scan_idle(s, now);
	if (!mlsec_poison_stream_run_id_ok(m->key, m->key_len)) {
		s->st.bad_key++;
		return MLSEC_QUEUE_DONE; /* permanent: retrying cannot fix it */
	}
	mlsec_poison_record rec;
	if (mlsec_poison_record_parse(m->value, m->len, &rec, NULL)) {
		s->st.malformed++;
		return MLSEC_QUEUE_DONE;
	}
	char id[MLSEC_POISON_STREAM_MAX_RUN_ID + 1];
	memcpy(id, m->key, m->key_len);
	id[m->key_len] = '\0';
	run *r;
	mlsec_err rc = open_run(s, id, &r);
	if (rc == MLSEC_ERR_UNAVAILABLE)
		return MLSEC_QUEUE_RETRY;
	if (rc)
		return MLSEC_QUEUE_RETRY;
	r->last_ms = now;
	drain_outbox(s, r);
	s->cur = r;
	mlsec_poison_detector_feed(r->det, &rec, NULL); /* range errors are counted */
	s->cur = NULL;
	s->st.records++;
	if (++r->since_save >= s->c.checkpoint_every)
		save_run(s, r);
	return MLSEC_QUEUE_DONE;
}

/*
 * The group moves partitions away (rebalance or close): their runs' next
 * records go to another member, which restores from Redis. Runs are not
 * tracked by partition, so save and drop them all: a kept run would be
 * stale when its partition comes back. Costs a restore per active run.
 */
static void on_revoke(const mlsec_queue_partition *parts, size_t n, void *ctx)
{
	(void)parts;
	stream *s = ctx;
	size_t saved = s->nruns;
	while (s->nruns) {
		drain_outbox(s, &s->runs[s->nruns - 1]);
		save_run(s, &s->runs[s->nruns - 1]);
		free_run(&s->runs[--s->nruns]);
	}
	if (saved)
		MLSEC_LOGI("poison stream: %zu partition(s) revoked, %zu run(s) checkpointed", n,
		           saved);
}

mlsec_err mlsec_poison_stream_run(const mlsec_poison_stream_conf *conf,
                                  mlsec_poison_stream_stats *stats, mlsec_error *err)
{
	stream s;
	memset(&s, 0, sizeof s);
	s.c = *conf;
	if (!s.c.group)
		s.c.group = MLSEC_POISON_STREAM_GROUP;
	if (!s.c.checkpoint_every)
		s.c.checkpoint_every = 100;
	if (!s.c.state_ttl_ms)
		s.c.state_ttl_ms = 7LL * 24 * 3600 * 1000;
	if (!s.c.max_runs)
		s.c.max_runs = 256;
	if (s.c.max_runs > MLSEC_POISON_STREAM_MAX_RUNS)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "max-runs must be <= %d",
		                       MLSEC_POISON_STREAM_MAX_RUNS);
	if (!s.c.idle_evict_ms)
		s.c.idle_evict_ms = 60000;
	if (!s.c.alert_timeout_ms)
		s.c.alert_timeout_ms = 5000;
	if (!s.c.redis_url)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "a Redis URL is required");
	mlsec_err rc = mlsec_poison_config_check(&s.c.detector, err);
	if (rc)
		return rc;
	s.runs = mlsec_calloc(s.c.max_runs, sizeof *s.runs);
	if (!s.runs)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_worker *w = NULL;
	if ((rc = mlsec_store_new(s.c.redis_url, s.c.redis_timeout_ms, s.c.redis_timeout_ms,
	                          &s.store, err)) ||
	    (rc = mlsec_store_set_password_file(s.store, s.c.redis_password_file, err)) ||
	    (rc = mlsec_producer_new(&s.c.queue, &s.prod, err)))
		goto out;
	const char *topics[] = {MLSEC_TOPIC_GRADIENTS, NULL};
	mlsec_worker_conf wc;
	memset(&wc, 0, sizeof wc);
	wc.queue = s.c.queue;
	wc.group = s.c.group;
	wc.topics = topics;
	wc.watch_shutdown = 1;
	wc.revoke_cb = on_revoke;
	wc.revoke_ctx = &s;
	if ((rc = mlsec_worker_new(&wc, &w, err)))
		goto out;
	MLSEC_LOGI("poison stream: consuming %s as group %s", MLSEC_TOPIC_GRADIENTS, s.c.group);
	rc = mlsec_worker_run(w, handle, &s, err);
out:
	/* Shutdown (or failure): keep every run's state for the next consumer. */
	while (s.nruns) {
		drain_outbox(&s, &s.runs[s.nruns - 1]);
		save_run(&s, &s.runs[s.nruns - 1]);
		free_run(&s.runs[--s.nruns]);
	}
	mlsec_worker_free(w);
	mlsec_producer_free(s.prod);
	mlsec_store_free(s.store);
	mlsec_free(s.runs);
	MLSEC_LOGI("poison stream: %llu messages, %llu records, %llu malformed, %llu bad keys, "
	           "%llu alerts (%llu failed), %llu checkpoints, %llu restores",
	           (unsigned long long)s.st.messages, (unsigned long long)s.st.records,
	           (unsigned long long)s.st.malformed, (unsigned long long)s.st.bad_key,
	           (unsigned long long)s.st.alerts, (unsigned long long)s.st.alerts_failed,
	           (unsigned long long)s.st.checkpoints, (unsigned long long)s.st.restores);
	if (stats)
		*stats = s.st;
	return rc;
}
