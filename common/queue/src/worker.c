/*
 * worker.c - the at-least-once consumer loop: one message at a time, the
 * offset committed synchronously only after the handler reports the result
 * durably stored and published; a RETRY seeks back so the same message
 * comes again; shutdown finishes the current message and leaves the group.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"
#include "mlsec/shutdown.h"
#include "queue_int.h"

#define WORKER_POLL_MS 100
#define WORKER_MAX_TOPICS 64
#define WORKER_SEEK_TIMEOUT_MS 2000
#define WORKER_JOB_ID_MAX 64

struct mlsec_worker {
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *topics;
	int retry_backoff_ms;
	int watch_shutdown;
	int ran;
	mlsec_queue_stats_cb stats_cb;
	void *stats_ctx;
	mlsec_queue_revoke_cb revoke_cb;
	void *revoke_ctx;
	atomic_int stop;
	atomic_ullong received, committed, retried, commit_failures;
};

/* Served by rd_kafka_consumer_poll() on the run() thread; 0 = librdkafka
 * frees the document. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	mlsec_worker *w = opaque;
	if (w && w->stats_cb)
		w->stats_cb(json, len, w->stats_ctx);
	return 0;
}

#define WORKER_MAX_REVOKE 1024

/* Only installed with a revoke_cb: librdkafka then leaves (un)assigning
 * to us, so the callback runs before the partitions are given up. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	mlsec_worker *w = opaque;
	int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
	rd_kafka_error_t *xe = NULL;
	rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
	if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (coop)
			xe = rd_kafka_incremental_assign(rk, parts);
		else
			re = rd_kafka_assign(rk, parts);
	} else {
		if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && w->revoke_cb && parts->cnt > 0) {
			mlsec_queue_partition list[64];
			mlsec_queue_partition *p = list;
			size_t n = parts->cnt < WORKER_MAX_REVOKE ? (size_t)parts->cnt
			                                          : WORKER_MAX_REVOKE;
			if (n > 64 && !(p = mlsec_calloc(n, sizeof *p))) {
				p = list;
				n = 64; /* the callback still runs; the list is cut short */
			}
			for (size_t i = 0; i < n; i++) {
				p[i].topic = parts->elems[i].topic;
				p[i].partition = parts->elems[i].partition;
			}
			w->revoke_cb(p, n, w->revoke_ctx);
			if (p != list)
				mlsec_free(p);
		}
		if (coop)
			xe = rd_kafka_incremental_unassign(rk, parts);
		else
			re = rd_kafka_assign(rk, NULL);
	}
	if (xe) {
		MLSEC_LOGW("kafka: rebalance: %s", rd_kafka_error_string(xe));
		rd_kafka_error_destroy(xe);
	} else if (re) {
		MLSEC_LOGW("kafka: rebalance: %s", rd_kafka_err2str(re));
	}
}

mlsec_err mlsec_worker_new(const mlsec_worker_conf *conf, mlsec_worker **out, mlsec_error *err)
{
	*out = NULL;
	if (!conf->group || !*conf->group || !conf->topics || !conf->topics[0])
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "kafka worker: group and topics are required");
	char session[16], heartbeat[16], poll_iv[16];
	int st = conf->session_timeout_ms > 0 ? conf->session_timeout_ms : 10000;
	snprintf(session, sizeof session, "%d", st);
	snprintf(heartbeat, sizeof heartbeat, "%d", st / 3 > 100 ? st / 3 : 100);
	snprintf(poll_iv, sizeof poll_iv, "%d",
	         conf->max_poll_interval_ms > 0 ? conf->max_poll_interval_ms : 300000);
	const char *const defaults[] = {
	        "group.id", conf->group, "enable.auto.commit", "false", "enable.auto.offset.store",
	        "false", "auto.offset.reset", "earliest", "session.timeout.ms", session,
	        "heartbeat.interval.ms", heartbeat, "max.poll.interval.ms", poll_iv,
	        /* Latency of a new message. Real Kafka answers a
	         * fetch as soon as data arrives, but the mock
	         * cluster (mlsec-devbroker) holds it for the whole
	         * wait: 100 ms gave p50 103 ms produce->handler,
	         * 5 ms gives 5.3 ms for ~1% CPU per idle consumer
	         * (bench/infra). Override with
	         * MLSEC_KAFKA_FETCH_WAIT_MAX_MS on big clusters. */
	        "fetch.wait.max.ms", "5", NULL};
	mlsec_worker *w = mlsec_calloc(1, sizeof *w);
	if (!w)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	w->retry_backoff_ms = conf->retry_backoff_ms > 0 ? conf->retry_backoff_ms : 500;
	w->watch_shutdown = conf->watch_shutdown;
	w->topics = rd_kafka_topic_partition_list_new(4);
	for (size_t i = 0; conf->topics[i]; i++) {
		if (i == WORKER_MAX_TOPICS || !*conf->topics[i]) {
			rd_kafka_topic_partition_list_destroy(w->topics);
			mlsec_free(w);
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "kafka worker: bad topic list");
		}
		rd_kafka_topic_partition_list_add(w->topics, conf->topics[i],
		                                  RD_KAFKA_PARTITION_UA);
	}
	rd_kafka_conf_t *kc = queue_conf_new(&conf->queue, defaults, err);
	if (!kc) {
		rd_kafka_topic_partition_list_destroy(w->topics);
		mlsec_free(w);
		return err ? err->code : MLSEC_ERR_INVALID_ARG;
	}
	if (conf->stats_cb) {
		char iv[16];
		snprintf(iv, sizeof iv, "%d",
		         conf->stats_interval_ms > 0 ? conf->stats_interval_ms : 5000);
		char es[256];
		if (rd_kafka_conf_set(kc, "statistics.interval.ms", iv, es, sizeof es) !=
		    RD_KAFKA_CONF_OK) {
			rd_kafka_conf_destroy(kc);
			rd_kafka_topic_partition_list_destroy(w->topics);
			mlsec_free(w);
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "kafka: %s", es);
		}
		w->stats_cb = conf->stats_cb;
		w->stats_ctx = conf->stats_ctx;
		rd_kafka_conf_set_stats_cb(kc, on_stats);
	}
	if (conf->revoke_cb) {
		w->revoke_cb = conf->revoke_cb;
		w->revoke_ctx = conf->revoke_ctx;
		rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
	}
	rd_kafka_conf_set_opaque(kc, w);
	char es[512];
	w->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, es, sizeof es);
	if (!w->rk) {
		rd_kafka_conf_destroy(kc);
		rd_kafka_topic_partition_list_destroy(w->topics);
		mlsec_free(w);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "kafka consumer: %s", es);
	}
	rd_kafka_poll_set_consumer(w->rk);
	*out = w;
	return MLSEC_OK;
}

int mlsec_worker_stopping(const mlsec_worker *w)
{
	return atomic_load(&w->stop) || (w->watch_shutdown && mlsec_shutdown_requested());
}

void mlsec_worker_stop(mlsec_worker *w)
{
	atomic_store(&w->stop, 1);
}

void mlsec_worker_get_stats(const mlsec_worker *w, mlsec_worker_stats *out)
{
	out->received = atomic_load(&w->received);
	out->committed = atomic_load(&w->committed);
	out->retried = atomic_load(&w->retried);
	out->commit_failures = atomic_load(&w->commit_failures);
}

/* The message key is the job id by convention: use it as the log's job
 * when it looks like one (printable, short). */
static void set_log_job(const rd_kafka_message_t *m)
{
	char id[WORKER_JOB_ID_MAX + 1];
	if (!m->key || m->key_len == 0 || m->key_len > WORKER_JOB_ID_MAX)
		return;
	const char *k = m->key;
	for (size_t i = 0; i < m->key_len; i++)
		if (k[i] <= ' ' || k[i] > '~')
			return;
	memcpy(id, k, m->key_len);
	id[m->key_len] = '\0';
	mlsec_log_set_job(id);
}

static void commit(mlsec_worker *w, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
	        m->offset + 1;
	rd_kafka_resp_err_t e = rd_kafka_commit(w->rk, l, 0 /* synchronous */);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		/* Typically the partition moved in a rebalance: the message will be
		 * redelivered and the idempotent result write absorbs it. */
		atomic_fetch_add(&w->commit_failures, 1);
		MLSEC_LOGW("kafka: commit of %s[%d]@%lld failed: %s", rd_kafka_topic_name(m->rkt),
		           (int)m->partition, (long long)m->offset, rd_kafka_err2str(e));
	} else {
		atomic_fetch_add(&w->committed, 1);
	}
}

/* Rewinds the partition so the message is fetched again. */
static void seek_back(mlsec_worker *w, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
	        m->offset;
	rd_kafka_error_t *e = rd_kafka_seek_partitions(w->rk, l, WORKER_SEEK_TIMEOUT_MS);
	if (e) {
		MLSEC_LOGW("kafka: seek back on %s[%d] failed: %s", rd_kafka_topic_name(m->rkt),
		           (int)m->partition, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	} else if (l->elems[0].err) {
		MLSEC_LOGW("kafka: seek back on %s[%d] failed: %s", rd_kafka_topic_name(m->rkt),
		           (int)m->partition, rd_kafka_err2str(l->elems[0].err));
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Sleeps up to ms, waking early on stop. */
static void backoff(mlsec_worker *w, int ms)
{
	for (int slept = 0; slept < ms && !mlsec_worker_stopping(w); slept += 50) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

mlsec_err mlsec_worker_run(mlsec_worker *w, mlsec_queue_handler handler, void *ctx,
                           mlsec_error *err)
{
	if (w->ran)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "kafka worker: run called twice");
	w->ran = 1;
	rd_kafka_resp_err_t e = rd_kafka_subscribe(w->rk, w->topics);
	if (e)
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "kafka: subscribe: %s",
		                       rd_kafka_err2str(e));
	mlsec_err rc = MLSEC_OK;
	while (!mlsec_worker_stopping(w)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, WORKER_POLL_MS);
		if (!m)
			continue;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				char fes[256];
				if (rd_kafka_fatal_error(w->rk, fes, sizeof fes)) {
					rc = mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE,
					                     "kafka consumer: fatal: %s", fes);
					rd_kafka_message_destroy(m);
					break;
				}
				MLSEC_LOGW("kafka consumer: %s", rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (mlsec_worker_stopping(w)) {
			/* Taken from the local queue but not started: not ours any more. */
			rd_kafka_message_destroy(m);
			break;
		}
		atomic_fetch_add(&w->received, 1);
		mlsec_queue_msg msg = {
		        .topic = rd_kafka_topic_name(m->rkt),
		        .partition = m->partition,
		        .offset = m->offset,
		        .key = m->key,
		        .key_len = m->key_len,
		        .value = m->payload,
		        .len = m->len,
		        .timestamp_ms = rd_kafka_message_timestamp(m, NULL),
		};
		set_log_job(m);
		mlsec_queue_outcome out = handler(&msg, ctx);
		mlsec_log_set_job(NULL);
		if (out == MLSEC_QUEUE_DONE) {
			commit(w, m);
		} else {
			atomic_fetch_add(&w->retried, 1);
			if (!mlsec_worker_stopping(w)) {
				seek_back(w, m);
				backoff(w, w->retry_backoff_ms);
			}
		}
		rd_kafka_message_destroy(m);
	}
	/* Leave the group now so the partitions move to other replicas at once;
	 * nothing unfinished was committed. */
	rd_kafka_consumer_close(w->rk);
	return rc;
}

void mlsec_worker_free(mlsec_worker *w)
{
	if (!w)
		return;
	if (!w->ran)
		rd_kafka_consumer_close(w->rk);
	rd_kafka_destroy(w->rk);
	rd_kafka_topic_partition_list_destroy(w->topics);
	mlsec_free(w);
}
