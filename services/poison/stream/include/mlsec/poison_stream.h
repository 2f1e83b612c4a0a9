/*
 * poison_stream.h - the cluster shell of the poison monitor: consumes
 * gradient records from Kafka topic mlsec.gradients (key = run id, value =
 * one record in the gradient-log format), runs one streaming detector per
 * run, publishes every event to mlsec.alerts (key = run id) and keeps each
 * run's detector state in Redis (mlsec:poison:run:<run>:state) so that a
 * restarted or replacement consumer resumes where the last one stopped.
 *
 * Delivery and durability (see docs/poison.md "Cluster"):
 *  - offsets are committed per message (the queue worker's contract);
 *  - a run's state is saved every `checkpoint_every` records, when the run
 *    has been idle `idle_evict_ms`, when it is evicted for room, and on
 *    shutdown. A crash loses at most checkpoint_every records of detector
 *    input per run (they look like missing steps; detection continues);
 *  - alerts are produced synchronously when raised; one that cannot be
 *    delivered stays in the run's outbox and is retried, and is saved with
 *    the state.
 * Message values are untrusted: malformed or oversized ones are counted and
 * skipped; run ids are restricted to [A-Za-z0-9_.-]{1,64}.
 */
#ifndef MLSEC_POISON_STREAM_H
#define MLSEC_POISON_STREAM_H

#include <stdint.h>

#include "mlsec/config.h"
#include "mlsec/err.h"
#include "mlsec/poison.h"
#include "mlsec/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_POISON_STREAM_GROUP "mlsec-poison-gradients"
#define MLSEC_POISON_STREAM_KEY_PREFIX "mlsec:poison:run:"
#define MLSEC_POISON_STREAM_MAX_RUN_ID 64
#define MLSEC_POISON_STREAM_MAX_RUNS 4096   /* detectors in memory */
#define MLSEC_POISON_STREAM_MAX_OUTBOX 1000 /* undelivered alerts kept per run */

typedef struct mlsec_poison_stream_conf {
	mlsec_queue_conf queue;          /* brokers etc. (borrowed) */
	const char *group;               /* NULL = MLSEC_POISON_STREAM_GROUP */
	const char *redis_url;           /* required */
	int redis_timeout_ms;            /* 0 = 2000 */
	const char *redis_password_file; /* NULL = the URL's password, if any */
	mlsec_poison_config detector;    /* for new runs (restored runs keep theirs) */
	unsigned checkpoint_every;       /* records per run between saves; 0 = 100 */
	long long state_ttl_ms;          /* Redis TTL of a run's state; 0 = 7 days */
	unsigned max_runs;               /* 0 = 256 */
	long long idle_evict_ms;         /* 0 = 60000 */
	int alert_timeout_ms;            /* 0 = 5000 */
} mlsec_poison_stream_conf;

typedef struct mlsec_poison_stream_stats {
	uint64_t messages, malformed, bad_key, records, alerts, alerts_failed;
	uint64_t checkpoints, restores, evictions;
} mlsec_poison_stream_stats;

/*
 * Runs the consumer until mlsec_shutdown_requested() (SIGTERM/SIGINT via
 * shutdown.h), then saves every run's state and returns MLSEC_OK.
 * Errors: bad configuration (MLSEC_ERR_INVALID_ARG), a fatal consumer
 * error. Redis or broker outages are retried, not fatal.
 */
mlsec_err mlsec_poison_stream_run(const mlsec_poison_stream_conf *conf,
                                  mlsec_poison_stream_stats *stats, mlsec_error *err);

/* Adds the stream's options (group, detector thresholds, checkpointing;
 * MLSEC_POISON_* environment) to cfg. The Kafka/Redis/log options are the
 * standard groups (mlsec_config_add_std), added by the caller. */
mlsec_err mlsec_poison_stream_add_options(mlsec_config *cfg, mlsec_error *err);

/* Fills *c from a parsed cfg holding those options and the standard
 * Kafka/Redis ones (strings borrowed from cfg). INVALID_ARG for a bad
 * number. */
mlsec_err mlsec_poison_stream_conf_from_config(const mlsec_config *cfg, const char *client_id,
                                               mlsec_poison_stream_conf *c, mlsec_error *err);

/* 1 when s is a valid run id ([A-Za-z0-9_.-]{1,64}). */
int mlsec_poison_stream_run_id_ok(const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
