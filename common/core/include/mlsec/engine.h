/*
 * engine.h - the interface every stage engine exposes, so that the CLI,
 * the stage services and the orchestrator can drive any engine the same way.
 *
 * An engine is pure: it reads artifacts from disk and fills a report. It
 * never touches Kafka, Redis or gRPC, never prints, and never executes
 * anything from an artifact.
 *
 * analyze() returns MLSEC_OK when it produced a report, even one full of
 * findings. An artifact that cannot be parsed is a finding
 * (<STAGE>-MALFORMED, high), not an error. A non-OK return means the engine
 * could not do its job at all (bad options, missing path, out of memory):
 * the caller turns it into exit code 1 / a stage ERROR.
 */
#ifndef MLSEC_ENGINE_H
#define MLSEC_ENGINE_H

#include <jansson.h>

#include "mlsec/err.h"
#include "mlsec/report.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlsec_engine_request {
	const char *const *paths; /* artifact paths (files or directories) */
	size_t npaths;
	/* Stage options as a JSON object of name -> value (borrowed, may be
	 * NULL). Names are the CLI long flags without dashes, e.g.
	 * {"threshold": 100, "launch-args": "/root/args.txt"}. */
	const json_t *options;
	/* When not NULL, every path read must resolve under this directory
	 * (services set it; the CLI leaves it NULL). */
	const char *artifact_root;
	/* Polled on long work; non-zero asks the engine to stop early and
	 * return MLSEC_ERR_TIMEOUT. May be NULL. */
	const volatile int *cancel;
	/* Optional progress callback (done/total in engine units). */
	void (*progress)(void *ctx, const char *what, double done, double total);
	void *progress_ctx;
} mlsec_engine_request;

/*
 * State the cluster keeps for an engine between jobs (e.g. the adversarial
 * baselines), while the engine itself stays pure: the stage service loads
 * the stored JSON document under Redis key "mlsec:<name>:<key>" and passes
 * it inline as option in_option (unless the request already sets that
 * option, which must then be a JSON object: a path would name a file on
 * the service's disk); after an analysis that returned MLSEC_OK, an
 * artifact detail out_detail holding a JSON object replaces the stored
 * document (only its member named like the key when it has one). The key is
 * the string option key_option or, without it and with exactly one
 * artifact, the stem of that artifact's file name (uploads keep the
 * client's file name); keys are [A-Za-z0-9._-]{1,128}. With no key the
 * state is skipped, except that a request setting update_option true then
 * fails (a stage ERROR).
 */
typedef struct mlsec_engine_state {
	const char *name;          /* "baseline" */
	const char *key_option;    /* "model-name" */
	const char *in_option;     /* "baseline" */
	const char *out_detail;    /* "baseline_update" */
	const char *update_option; /* "update-baseline"; may be NULL */
} mlsec_engine_state;

typedef struct mlsec_engine {
	const char *stage;       /* "triton", "checkpoint", ... */
	const char *rule_prefix; /* "TRITON", "CKPT", ... */
	const char *summary;     /* one line for --help */
	mlsec_err (*analyze)(const mlsec_engine_request *req, mlsec_report *rep, mlsec_error *err);
	/* Optional (NULL = stateless); see mlsec_engine_state. */
	const mlsec_engine_state *state;
} mlsec_engine;

#ifdef __cplusplus
}
#endif
#endif
