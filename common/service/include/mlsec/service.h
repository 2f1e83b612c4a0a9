/*
 * service.h - the generic stage service: one engine wired to Kafka, Redis
 * and gRPC. Every services/<stage>/main.c is
 *
 *     #include "mlsec/service.h"
 *     int main(int argc, char **argv)
 *     { return mlsec_service_main(argc, argv, &mlsec_engine_<stage>); }
 *
 * What it runs (config from flags with MLSEC_* environment fallbacks, see
 * --help):
 *  - Kafka workers consuming mlsec.stage.<stage> in group mlsec-<stage>.
 *    For each StageRequest: each artifact must resolve under the artifact
 *    root (no "..", no symlink escape) and match its sha256 before the
 *    engine reads it; then engine->analyze; the StageResult is written to
 *    Redis idempotently (mlsec:job:<id>:stage:<stage>, first write wins),
 *    produced to mlsec.results, and only then is the offset committed. A
 *    redelivered request whose result is already stored re-publishes the
 *    stored result instead of analysing again (no duplicate results).
 *  - gRPC mlsec.v1.Analyzer/Analyze (same checks, synchronous, nothing
 *    stored) and grpc.health.v1.Health/Check.
 *  - SIGTERM/SIGINT: health NOT_SERVING, no new messages, the current job
 *    finishes or is handed back uncommitted, exit 0.
 *
 * Returns the process exit code: 0 after a clean shutdown or --help, 1
 * when the service cannot start (bad config, port in use, ...).
 */
#ifndef MLSEC_SERVICE_H
#define MLSEC_SERVICE_H

#include <stddef.h>

#include "mlsec/config.h"
#include "mlsec/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

int mlsec_service_main(int argc, char **argv, const mlsec_engine *engine);

/*
 * Extensions for a stage service that does more than its engine (e.g.
 * mlsec-poisond also consuming the live gradient stream). Every member
 * may be NULL.
 */
typedef struct mlsec_service_hooks {
	/* Adds the extension's options to the service's config (before
	 * parsing, so --help lists them). */
	mlsec_err (*add_options)(mlsec_config *cfg, mlsec_error *err);
	/* Runs on its own thread once the service serves, with the parsed
	 * config (borrowed, read-only). It must return soon after
	 * mlsec_shutdown_requested() turns true. MLSEC_OK ends just this
	 * thread (e.g. the extension is switched off); an error is logged and
	 * shuts the whole service down. */
	mlsec_err (*worker)(const mlsec_config *cfg, void *ctx, mlsec_error *err);
	void *ctx;
	const char *name; /* for logs, e.g. "gradient stream" */
} mlsec_service_hooks;

/* mlsec_service_main with hooks (NULL = none). */
int mlsec_service_main_ex(int argc, char **argv, const mlsec_engine *engine,
                          const mlsec_service_hooks *hooks);

/*
 * Consumer properties for a job worker: low-latency fetch settings
 * (fetch.wait.max.ms 5: jobs are small and latency-bound) followed by the
 * user's pass-through properties (user, may be NULL), which therefore win.
 * Returns a fresh NULL-terminated key/value array (mlsec_free; the strings
 * are borrowed), NULL on allocation failure.
 */
const char **mlsec_service_consumer_props(const char *const *user);

/* Engine state (mlsec_engine_state) in Redis: "mlsec:<name>:<key>". */
#define MLSEC_SERVICE_STATE_MAX_KEY 128

/* 1 when key matches [A-Za-z0-9._-]{1,128} and does not start with '.'. */
int mlsec_service_state_key_ok(const char *key);

/* "mlsec:<name>:<key>" into buf; -1 for a bad key or a short buffer. */
int mlsec_service_state_redis_key(const char *name, const char *key, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
