/*
 * queue.h - Kafka for mlsec (librdkafka): a durable producer and the
 * at-least-once worker loop every stage service and the orchestrator use.
 *
 * Topics: MLSEC_TOPIC_STAGE_PREFIX + stage ("mlsec.stage.triton"),
 * MLSEC_TOPIC_RESULTS, MLSEC_TOPIC_GRADIENTS, MLSEC_TOPIC_ALERTS.
 * Consumer group per stage: MLSEC_GROUP_PREFIX + stage ("mlsec-triton").
 *
 * Delivery contract of the worker: the handler is called for each message;
 * the message's offset is committed (synchronously) ONLY when the handler
 * returns MLSEC_QUEUE_DONE, i.e. after it has durably stored and published
 * the result. A crash before that means redelivery to another member of the
 * group, so handlers must be idempotent (the store's SET NX result write).
 * On shutdown the worker takes no new message, lets the current handler
 * finish (the handler may check mlsec_worker_stopping() and return
 * MLSEC_QUEUE_RETRY to hand the message back), commits nothing unfinished
 * and leaves the group so its partitions move to the other replicas.
 *
 * Errors: MLSEC_ERR_INVALID_ARG (bad configuration, e.g. a pass-through
 * property librdkafka rejects), MLSEC_ERR_UNAVAILABLE (brokers unreachable
 * or all brokers down when sending), MLSEC_ERR_TIMEOUT (delivery not
 * acknowledged in time), MLSEC_ERR_NOMEM. Details in the mlsec_error.
 */
#ifndef MLSEC_QUEUE_H
#define MLSEC_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_TOPIC_STAGE_PREFIX "mlsec.stage."
#define MLSEC_TOPIC_RESULTS "mlsec.results"
#define MLSEC_TOPIC_GRADIENTS "mlsec.gradients"
#define MLSEC_TOPIC_ALERTS "mlsec.alerts"
#define MLSEC_GROUP_PREFIX "mlsec-"

/* The six stages (the `mlsec` subcommands' engines), NULL-terminated:
 * triton, checkpoint, adversarial, inspect, export, poison. */
extern const char *const mlsec_queue_stages[];

/* Largest message we produce or accept (requests carry paths, not bytes). */
#define MLSEC_QUEUE_MAX_MESSAGE (8u * 1024u * 1024u)

/* "mlsec.stage.<stage>" into buf; MLSEC_ERR_INVALID_ARG for a bad stage name
 * (allowed: [a-z0-9_-]{1,32}) or a short buffer. */
mlsec_err mlsec_queue_stage_topic(const char *stage, char *buf, size_t size);

/* Connection settings shared by producer and worker (all borrowed). */
typedef struct mlsec_queue_conf {
	const char *brokers;      /* bootstrap.servers; required */
	const char *client_id;    /* NULL = "mlsec" */
	const char *const *props; /* extra librdkafka properties: NULL-terminated
	                             key, value, key, value, ..., NULL (e.g.
	                             mlsec_config_kafka_props()); may be NULL.
	                             Applied last, so they override defaults. */
} mlsec_queue_conf;

/* ---- producer ------------------------------------------------------- */

/*
 * Idempotent producer (enable.idempotence=true, acks=all, linger 1 ms).
 * Thread-safe: one producer can be shared by every thread of a process.
 * A background thread serves delivery reports.
 */
typedef struct mlsec_producer mlsec_producer;

mlsec_err mlsec_producer_new(const mlsec_queue_conf *conf, mlsec_producer **out, mlsec_error *err);

/*
 * Produces one message and waits until the brokers acknowledged it (all
 * in-sync replicas) or timeout_ms passes. key may be NULL. The bytes are
 * copied. MLSEC_ERR_TIMEOUT leaves the message in flight: it may still be
 * delivered later (callers retry; consumers are idempotent).
 */
mlsec_err mlsec_producer_send(mlsec_producer *p, const char *topic, const void *key, size_t key_len,
                              const void *value, size_t len, int timeout_ms, mlsec_error *err);

/*
 * Fire-and-forget produce (copied); check with mlsec_producer_flush().
 * Delivery failures are counted and reported by the next flush.
 */
mlsec_err mlsec_producer_send_async(mlsec_producer *p, const char *topic, const void *key,
                                    size_t key_len, const void *value, size_t len,
                                    mlsec_error *err);

/*
 * Waits until every message produced so far is delivered (MLSEC_OK),
 * failed (MLSEC_ERR_UNAVAILABLE: n async messages failed since the last
 * flush) or timeout_ms passes (MLSEC_ERR_TIMEOUT).
 */
mlsec_err mlsec_producer_flush(mlsec_producer *p, int timeout_ms, mlsec_error *err);

/*
 * Asks the cluster for broker metadata (no topics): MLSEC_OK when a broker
 * answered within timeout_ms, MLSEC_ERR_UNAVAILABLE otherwise. For
 * readiness checks; thread-safe.
 */
mlsec_err mlsec_producer_ping(mlsec_producer *p, int timeout_ms, mlsec_error *err);

/* Flushes for at most 5 s (logging what is lost), then destroys. NULL ok. */
void mlsec_producer_free(mlsec_producer *p);

/* ---- worker --------------------------------------------------------- */

/* A consumed message; every pointer is borrowed for the handler call only. */
typedef struct mlsec_queue_msg {
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *key; /* may be NULL */
	size_t key_len;
	const void *value;
	size_t len;
	int64_t timestamp_ms; /* -1 if unknown */
} mlsec_queue_msg;

typedef enum mlsec_queue_outcome {
	/* The result is durably stored and published: commit the offset. */
	MLSEC_QUEUE_DONE = 0,
	/* Transient failure (store/broker down, shutting down): do not commit;
	 * the message is retried after retry_backoff_ms (or redelivered to
	 * another replica after shutdown or a crash). Permanent failures
	 * (garbage message, bad artifact) are NOT retries: the handler writes
	 * an error result and returns DONE. */
	MLSEC_QUEUE_RETRY
} mlsec_queue_outcome;

/* Runs on the thread that called mlsec_worker_run(). */
typedef mlsec_queue_outcome (*mlsec_queue_handler)(const mlsec_queue_msg *msg, void *ctx);

/* librdkafka statistics: one JSON document (borrowed for the call), on the
 * thread that called mlsec_worker_run() (served by its poll loop). */
typedef void (*mlsec_queue_stats_cb)(const char *json, size_t len, void *ctx);

/* One partition of a rebalance (topic borrowed for the call). */
typedef struct mlsec_queue_partition {
	const char *topic;
	int32_t partition;
} mlsec_queue_partition;

/* The group is taking partitions away from this member (a rebalance, or
 * the member closing): called on the run() thread BEFORE they move, so
 * in-memory state keyed by them can be checkpointed for the next owner.
 * No handler call is in progress. */
typedef void (*mlsec_queue_revoke_cb)(const mlsec_queue_partition *parts, size_t n, void *ctx);

typedef struct mlsec_worker_conf {
	mlsec_queue_conf queue;
	const char *group;         /* group.id, e.g. "mlsec-triton"; required */
	const char *const *topics; /* NULL-terminated; required */
	int session_timeout_ms;    /* 0 = 10000; how fast a dead member is evicted */
	int max_poll_interval_ms;  /* 0 = 300000; longest handler call allowed */
	int retry_backoff_ms;      /* 0 = 500; wait before retrying after RETRY */
	int watch_shutdown;        /* nonzero: also stop when mlsec_shutdown_requested() */
	/* Optional statistics hook (e.g. consumer lag for /metrics): when
	 * stats_cb is set, statistics.interval.ms = stats_interval_ms (0 =
	 * 5000) and each document goes to stats_cb(json, len, stats_ctx). */
	int stats_interval_ms;
	mlsec_queue_stats_cb stats_cb;
	void *stats_ctx;
	/* Optional: see mlsec_queue_revoke_cb (eager and cooperative
	 * rebalancing alike). */
	mlsec_queue_revoke_cb revoke_cb;
	void *revoke_ctx;
} mlsec_worker_conf;

/*
 * A consumer-group member with enable.auto.commit=false and
 * enable.auto.offset.store=false, starting at the earliest offset when the
 * group has none, fetch.wait.max.ms=5 (a new message reaches the handler in
 * ~5 ms on mlsec-devbroker; raise it through the pass-through properties,
 * e.g. MLSEC_KAFKA_FETCH_WAIT_MAX_MS=100, to cut idle fetches on a large
 * real cluster). One worker handles one message at a time: to process
 * several in parallel, run several workers (threads) in the same group.
 */
typedef struct mlsec_worker mlsec_worker;

mlsec_err mlsec_worker_new(const mlsec_worker_conf *conf, mlsec_worker **out, mlsec_error *err);

/*
 * Subscribes and loops: poll, handler, commit, until mlsec_worker_stop()
 * (or a shutdown signal when watch_shutdown is set). Then closes the
 * consumer (leaving the group). Returns MLSEC_OK after a requested stop;
 * an error only for a fatal consumer error (detail in err). Call once.
 * The handler runs on this thread; the log job id is cleared after it.
 */
mlsec_err mlsec_worker_run(mlsec_worker *w, mlsec_queue_handler handler, void *ctx,
                           mlsec_error *err);

/* Asks run() to return after the current message. Thread- and async-signal-safe. */
void mlsec_worker_stop(mlsec_worker *w);

/* Nonzero once stop (or, with watch_shutdown, a shutdown) was requested:
 * long handlers poll it to hand the message back early. Thread-safe. */
int mlsec_worker_stopping(const mlsec_worker *w);

/* Counters since new(); thread-safe snapshots. */
typedef struct mlsec_worker_stats {
	uint64_t received;  /* messages given to the handler */
	uint64_t committed; /* offsets committed after DONE */
	uint64_t retried;   /* RETRY outcomes */
	uint64_t commit_failures;
} mlsec_worker_stats;
void mlsec_worker_get_stats(const mlsec_worker *w, mlsec_worker_stats *out);

/* Destroys (after run() returned, or without running). NULL ok. */
void mlsec_worker_free(mlsec_worker *w);

#ifdef __cplusplus
}
#endif
#endif
