/*
 * triton_int.h - internals shared by the Triton auditor's files.
 */
#ifndef MLSEC_TRITON_INT_H
#define MLSEC_TRITON_INT_H

#include <stddef.h>

#include "model_config.pb-c.h"
#include "mlsec/pbtxt.h"
#include "mlsec/triton.h"

/* Index into the rule table (triton_rules.c); order must match it. */
typedef enum triton_rule_ix {
	R_MALFORMED,
	R_OP_LIBRARY,
	R_PYTHON_EXEC_ENV,
	R_PYTHON_BACKEND,
	R_REPO_AGENT,
	R_PATH_ESCAPE,
	R_PLAINTEXT_SECRET,
	R_INPUT_UNBOUNDED,
	R_INPUT_DYNAMIC_DIM,
	R_QUEUE_UNBOUNDED,
	R_QUEUE_DELAY_NO_TIMEOUT,
	R_ENSEMBLE_INFLIGHT,
	R_NO_RATE_LIMITER,
	R_INSTANCE_COUNT,
	R_VERSION_POLICY_ALL,
	R_AUTH_UNKNOWN,
	R_LAUNCH_MODEL_CONTROL,
	R_LAUNCH_API_UNRESTRICTED,
	R_LAUNCH_HTTP_EXPOSED,
	R_LAUNCH_METRICS_EXPOSED,
	R_LAUNCH_GRPC_NO_TLS,
	R_LAUNCH_EXIT_ON_ERROR,
	R_LAUNCH_RATE_LIMIT_OFF,
	R__COUNT
} triton_rule_ix;

struct mlsec_triton_auditor {
	mlsec_pbtxt *parser;
	char *buf; /* reused read buffer */
	size_t cap;
	/* When set, files whose path starts with base[0..base_len) are opened
	 * relative to base_fd: the kernel then resolves only the last few
	 * components instead of the whole path for every file. */
	int base_fd;
	const char *base;
	size_t base_len;
	long max_instances;
	/* Cross-checks for the launch flags. */
	size_t configs;
	size_t rate_limited_configs;
	char first_rate_limited[512];
	int auth_noted;
};

/* What a rule check needs: where findings go and how to locate fields. */
typedef struct triton_ctx {
	mlsec_triton_auditor *aud;
	mlsec_artifact *art;
	const char *path; /* the artifact path (for locations) */
	mlsec_err rc;     /* first allocation failure */
} triton_ctx;

/*
 * Adds a finding of rule r located at field `field`[index] of msg (line and
 * column from the last parse; msg may be NULL), with field path fpath and a
 * printf-style detail. Returns the finding or NULL (ctx->rc set on NOMEM).
 */
mlsec_finding *triton_add(triton_ctx *c, triton_rule_ix r, const void *msg, const char *field,
                          size_t index, const char *fpath, const char *fmt, ...)
        __attribute__((format(printf, 7, 8)));

/* Same with an explicit line (0 = unknown). */
mlsec_finding *triton_add_at(triton_ctx *c, triton_rule_ix r, long line, long col,
                             const char *fpath, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));

/*
 * snprintf for field paths and details: %s %d %u %ld %lu %lld %llu %zu and
 * %% are formatted here (same output and truncation), anything else by
 * vsnprintf. In the mlsec binary every printf call takes glibc's slow
 * positional path because libquadmath registers printf hooks.
 */
void triton_snprintf(char *buf, size_t n, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Runs every config rule on a parsed config. */
void triton_check_config(triton_ctx *c, const Inference__ModelConfig *cfg);

/* Launch-flag audit of already-read text (triton_launch.c). */
mlsec_err triton_launch_audit(mlsec_triton_auditor *a, mlsec_report *rep, const char *path,
                              const char *text, size_t len, int is_yaml, mlsec_error *err);

/* 1 when the string looks like a credential (token formats, keys). */
int triton_value_looks_secret(const char *v);
/* 1 when the key names a credential (password, token, secret, ...). */
int triton_key_looks_secret(const char *k);
/*
 * 1 when path is absolute or climbs more than `up_allowed` levels above the
 * directory it is relative to. $$TRITON_MODEL_DIRECTORY prefixes count as
 * the model directory, which is up_allowed levels above the base.
 */
int triton_path_escapes(const char *path, int up_allowed);

#endif
