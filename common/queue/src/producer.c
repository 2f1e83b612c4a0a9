/*
 * producer.c - idempotent, acks=all producer with a synchronous "send and
 * wait for the acknowledgement" call. A background thread polls for
 * delivery reports; a synchronous sender waits on a small shared record
 * that whoever finishes last (sender or report) frees, so a sender that
 * gives up on time never leaves a dangling pointer behind.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"
#include "queue_int.h"

#define PRODUCER_POLL_MS 100
#define PRODUCER_FREE_FLUSH_MS 5000
#define PRODUCER_QUEUE_FULL_WAIT_MS 10

struct mlsec_producer {
	rd_kafka_t *rk;
	pthread_t poller;
	atomic_int stop;
	atomic_ulong async_failed;
};

/* Shared by a synchronous sender and the delivery report. */
typedef struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs; /* 2 while both sides hold it */
	int done;
	rd_kafka_resp_err_t err;
} sync_wait;

static void sync_release(sync_wait *w)
{
	pthread_mutex_lock(&w->lock);
	int last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (last) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		mlsec_free(w);
	}
}

/* Runs on the poller thread (or in flush/destroy). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	mlsec_producer *p = opaque;
	sync_wait *w = m->_private;
	if (!w) {
		if (m->err) {
			atomic_fetch_add(&p->async_failed, 1);
			MLSEC_LOGW("kafka: delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
			           rd_kafka_err2str(m->err));
		}
		return;
	}
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	w->err = m->err;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	sync_release(w);
}

static void *poll_main(void *arg)
{
	mlsec_producer *p = arg;
	while (!atomic_load(&p->stop))
		rd_kafka_poll(p->rk, PRODUCER_POLL_MS);
	return NULL;
}

mlsec_err mlsec_producer_new(const mlsec_queue_conf *conf, mlsec_producer **out, mlsec_error *err)
{
	static const char *const defaults[] = {
	        "enable.idempotence", "true", "acks", "all", "linger.ms", "1",
	        /* Bounded: a broker outage turns into an error, not a hang. */
	        "message.timeout.ms", "30000", NULL};
	*out = NULL;
	mlsec_producer *p = mlsec_calloc(1, sizeof *p);
	if (!p)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	rd_kafka_conf_t *kc = queue_conf_new(conf, defaults, err);
	if (!kc) {
		mlsec_free(p);
		return err ? err->code : MLSEC_ERR_INVALID_ARG;
	}
	rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
	rd_kafka_conf_set_opaque(kc, p);
	char es[512];
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, es, sizeof es);
	if (!p->rk) {
		rd_kafka_conf_destroy(kc); /* not taken on failure */
		mlsec_free(p);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "kafka producer: %s", es);
	}
	if (pthread_create(&p->poller, NULL, poll_main, p) != 0) {
		rd_kafka_destroy(p->rk);
		mlsec_free(p);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "kafka producer: cannot start thread");
	}
	*out = p;
	return MLSEC_OK;
}

mlsec_err mlsec_producer_ping(mlsec_producer *p, int timeout_ms, mlsec_error *err)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms);
	if (md)
		rd_kafka_metadata_destroy(md);
	if (e)
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "kafka: %s",
		                       rd_kafka_err2str(e));
	return MLSEC_OK;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

static mlsec_err map_err(rd_kafka_resp_err_t e, const char *topic, mlsec_error *err)
{
	if (e == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || e == RD_KAFKA_RESP_ERR__TIMED_OUT)
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE,
		                       "kafka: %s: not delivered (%s): brokers unreachable?", topic,
		                       rd_kafka_err2str(e));
	if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "kafka: %s: %s", topic,
		                       rd_kafka_err2str(e));
	if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
	    e == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		return mlsec_error_set(err, MLSEC_ERR_AUTH, "kafka: %s: %s", topic,
		                       rd_kafka_err2str(e));
	return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "kafka: %s: %s", topic,
	                       rd_kafka_err2str(e));
}

/* producev, waiting out a full local queue until deadline. */
static mlsec_err produce(mlsec_producer *p, const char *topic, const void *key, size_t key_len,
                         const void *value, size_t len, sync_wait *w, long long deadline,
                         mlsec_error *err)
{
	if (!topic || !*topic)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "kafka: no topic");
	if (len > MLSEC_QUEUE_MAX_MESSAGE)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "kafka: message of %zu bytes exceeds %u", len,
		                       MLSEC_QUEUE_MAX_MESSAGE);
	for (;;) {
		rd_kafka_resp_err_t e =
		        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
		                          RD_KAFKA_V_KEY((void *)key, key ? key_len : 0),
		                          RD_KAFKA_V_VALUE((void *)value, len),
		                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                          RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
			return MLSEC_OK;
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return map_err(e, topic, err);
		if (mono_ms() >= deadline)
			return mlsec_error_set(err, MLSEC_ERR_TIMEOUT,
			                       "kafka: %s: local queue full", topic);
		struct timespec ts = {0, PRODUCER_QUEUE_FULL_WAIT_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

mlsec_err mlsec_producer_send(mlsec_producer *p, const char *topic, const void *key, size_t key_len,
                              const void *value, size_t len, int timeout_ms, mlsec_error *err)
{
	long long deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	sync_wait *w = mlsec_calloc(1, sizeof *w);
	if (!w)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->refs = 2;
	mlsec_err rc = produce(p, topic, key, key_len, value, len, w, deadline, err);
	if (rc) {
		w->refs = 1; /* the report will never come */
		sync_release(w);
		return rc;
	}
	struct timespec abs = {deadline / 1000, (deadline % 1000) * 1000000L};
	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &abs) == ETIMEDOUT)
			break;
	}
	int done = w->done;
	rd_kafka_resp_err_t e = w->err;
	pthread_mutex_unlock(&w->lock);
	sync_release(w);
	if (!done)
		return mlsec_error_set(err, MLSEC_ERR_TIMEOUT,
		                       "kafka: %s: no acknowledgement within %d ms", topic,
		                       timeout_ms);
	return e ? map_err(e, topic, err) : MLSEC_OK;
}

mlsec_err mlsec_producer_send_async(mlsec_producer *p, const char *topic, const void *key,
                                    size_t key_len, const void *value, size_t len, mlsec_error *err)
{
	return produce(p, topic, key, key_len, value, len, NULL, mono_ms() + 1000, err);
}

mlsec_err mlsec_producer_flush(mlsec_producer *p, int timeout_ms, mlsec_error *err)
{
	rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
	unsigned long failed = atomic_exchange(&p->async_failed, 0);
	if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
		return mlsec_error_set(err, MLSEC_ERR_TIMEOUT,
		                       "kafka: %d message(s) still undelivered after %d ms",
		                       rd_kafka_outq_len(p->rk), timeout_ms);
	if (failed)
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE,
		                       "kafka: %lu message(s) could not be delivered", failed);
	return MLSEC_OK;
}

void mlsec_producer_free(mlsec_producer *p)
{
	if (!p)
		return;
	if (rd_kafka_flush(p->rk, PRODUCER_FREE_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
		MLSEC_LOGW("kafka: %d message(s) undelivered at shutdown",
		           rd_kafka_outq_len(p->rk));
	atomic_store(&p->stop, 1);
	pthread_join(p->poller, NULL);
	rd_kafka_destroy(p->rk);
	mlsec_free(p);
}
