/*
 * orchestrator.h - internals of mlsec-orchestratord, shared by its files:
 * main.c (config, lifecycle, store pool), jobs.c (Submit, results,
 * verdicts, deadlines), watch.c (Get, Watch), upload.c (Upload).
 *
 * All job state lives in Redis (keys in store.h), so any replica serves any
 * job and a restarted orchestrator picks up where the last one stopped:
 *   mlsec:job:<id>               JSON job record (stages, gate, deadline, ...)
 *   mlsec:job:<id>:stage:<stage> packed StageResult (first write wins)
 *   mlsec:job:<id>:events        stream of packed JobEvents
 *   mlsec:job:<id>:verdict       packed Verdict (SET NX: one replica decides)
 *   mlsec:job:<id>:seen          hash stage -> 1 once its event was appended
 *   mlsec:deadlines              job deadlines (sweeper)
 */
#ifndef MLSEC_ORCHESTRATOR_H
#define MLSEC_ORCHESTRATOR_H

#include <pthread.h>
#include <stdatomic.h>

#include "mlsec/config.h"
#include "mlsec/queue.h"
#include "mlsec/rpc.h"
#include "mlsec/store.h"
#include "mlsec/v1/orchestrator.pb-c.h"

#define ORCH_MAX_ARTIFACTS 1000 /* per job, after directory expansion */
#define ORCH_MAX_STAGES 16
#define ORCH_MAX_OPTIONS_JSON (64 * 1024)
#define ORCH_MAX_JOB_TIMEOUT_MS (3600 * 1000)
#define ORCH_PRODUCE_TIMEOUT_MS 5000
#define ORCH_WATCH_BLOCK_MS 250 /* XREAD BLOCK slice between liveness checks */
#define ORCH_STORE_POOL 128     /* idle Redis connections kept */
/* gRPC workers a Watch may never take: Submit, Get, Upload and health
 * checks always find a free worker, however many clients watch. */
#define ORCH_RESERVED_THREADS 4
#define ORCH_UPLOAD_DIR "uploads"
#define ORCH_MAX_UPLOAD_NAME 128
/* A temporary upload untouched this long is a leftover of a crash (live
 * uploads write continuously and idle streams are cut after
 * MLSEC_RPC_IDLE_MS); replicas sharing the root skip each other's. */
#define ORCH_UPLOAD_STALE_S 600

/* A per-stage deadline from --stage-timeouts. */
typedef struct orch_stage_timeout {
	char stage[33];
	long long ms;
} orch_stage_timeout;

typedef struct orch {
	mlsec_config *cfg;
	const char *root;
	char *root_real;
	uint64_t max_bytes;
	long long job_timeout_ms;
	long long ttl_ms;
	orch_stage_timeout stage_timeouts[ORCH_MAX_STAGES];
	size_t nstage_timeouts;
	mlsec_producer *producer;
	mlsec_store *store_tmpl;
	pthread_mutex_t pool_lock;
	mlsec_store *pool[ORCH_STORE_POOL];
	size_t npool;
	volatile int stopping;
	atomic_int watches; /* Watch calls in progress */
	int max_watches;
} orch;

/*
 * Parses "stage=ms,stage=ms" (--stage-timeouts) into o. MLSEC_ERR_INVALID_ARG
 * with a message for an unknown stage or a bad number.
 */
mlsec_err orch_stage_timeouts_parse(orch *o, const char *spec, mlsec_error *err);

/* Borrow a Redis handle for this thread (NULL on allocation failure);
 * give it back with orch_store_put. */
mlsec_store *orch_store_get(orch *o);
void orch_store_put(orch *o, mlsec_store *s);

/* Key helpers: "mlsec:job:<id>:<suffix>" into buf. */
void orch_key(char *buf, size_t size, const char *job_id, const char *suffix);

/* gRPC handlers (ctx = orch *). */
grpc_status_code orch_submit(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                             size_t *resp_len, void *ctx);
grpc_status_code orch_get(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                          size_t *resp_len, void *ctx);
grpc_status_code orch_watch(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                            size_t *resp_len, void *ctx);
grpc_status_code orch_upload(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                             size_t *resp_len, void *ctx);

/* mlsec.v1.Baselines/Get and /Set (baseline.c). */
grpc_status_code orch_baseline_get(mlsec_rpc_call *c, const uint8_t *req, size_t len,
                                   uint8_t **resp, size_t *resp_len, void *ctx);
grpc_status_code orch_baseline_set(mlsec_rpc_call *c, const uint8_t *req, size_t len,
                                   uint8_t **resp, size_t *resp_len, void *ctx);

/* Removes <root>/uploads/.tmp/up-* files not modified for older_than_s
 * (leftovers of a crash). Returns how many were removed. */
int orch_upload_clean_stale(orch *o, long long older_than_s);

/* Kafka handler for mlsec.results (ctx = orch_results_ctx *). */
typedef struct orch_results_ctx {
	orch *o;
	mlsec_store *store;
} orch_results_ctx;
mlsec_queue_outcome orch_on_result(const mlsec_queue_msg *m, void *ctx);

/* One sweep of due deadlines; returns the number of jobs timed out. */
int orch_sweep(orch *o, mlsec_store *s);

/*
 * Builds the job's current Verdict (packed, mlsec_malloc'd): the stored
 * verdict when decided, else state RUNNING with the results so far.
 */
mlsec_err orch_verdict_current(orch *o, mlsec_store *s, const char *job_id, uint8_t **out,
                               size_t *len, int *decided, mlsec_error *err);

#endif
