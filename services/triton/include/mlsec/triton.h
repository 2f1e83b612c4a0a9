/*
 * triton.h - the Triton Inference Server auditor: checks config.pbtxt files
 * (parsed against Triton's schema, proto/triton) and, optionally, the
 * tritonserver command line (a file of arguments, or a Kubernetes manifest
 * / rendered Helm chart holding the container's command and args).
 *
 * Rule ids are stable (TRITON-*, listed with severities and remediations in
 * docs/triton.md). A config that does not parse or that Triton would reject
 * is a TRITON-MALFORMED finding (high), never an error.
 *
 * Two ways in:
 *  - mlsec_engine_triton: the generic engine (options: "launch-args" path,
 *    "max-instance-count" integer), used by the stage service.
 *  - mlsec_triton_auditor: one auditor for a batch of files, reusing its
 *    read buffer and parser arena, so auditing thousands of configs costs
 *    no per-file process or heap churn beyond the report itself.
 *
 * The auditor never prints and never executes anything it reads.
 */
#ifndef MLSEC_TRITON_H
#define MLSEC_TRITON_H

#include <stddef.h>

#include "mlsec/engine.h"
#include "mlsec/err.h"
#include "mlsec/report.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const mlsec_engine mlsec_engine_triton;

#define MLSEC_TRITON_RULE_PREFIX "TRITON"
#define MLSEC_TRITON_CONFIG_NAME "config.pbtxt"
/* A config larger than this is malformed for us (Triton's are a few KiB). */
#define MLSEC_TRITON_MAX_CONFIG (4u << 20)
/* A launch-args file or manifest larger than this is malformed. */
#define MLSEC_TRITON_MAX_LAUNCH_FILE (4u << 20)
/* Instances per group (count x GPUs) above which TRITON-INSTANCE-COUNT fires. */
#define MLSEC_TRITON_DEFAULT_MAX_INSTANCES 16

typedef struct mlsec_triton_auditor mlsec_triton_auditor;

/* NULL on allocation failure. Free with mlsec_triton_auditor_free(). */
mlsec_triton_auditor *mlsec_triton_auditor_new(void);
void mlsec_triton_auditor_free(mlsec_triton_auditor *a);

/* Per-group instance threshold (default MLSEC_TRITON_DEFAULT_MAX_INSTANCES). */
void mlsec_triton_auditor_set_max_instances(mlsec_triton_auditor *a, long n);

/*
 * Audits one config.pbtxt: reads it once, hashes it, parses it and runs
 * every rule, adding one artifact with its findings to rep. Returns MLSEC_OK
 * even for hostile or broken files (they become findings); a file that
 * cannot be opened or read is recorded as a report error and returns
 * MLSEC_ERR_IO / MLSEC_ERR_NOT_FOUND; MLSEC_ERR_NOMEM on allocation failure.
 */
mlsec_err mlsec_triton_audit_file(mlsec_triton_auditor *a, mlsec_report *rep, const char *path,
                                  mlsec_error *err);

/* Same for text already in memory; path names the artifact and its
 * directory is taken as the model directory. No digest is set. */
mlsec_err mlsec_triton_audit_text(mlsec_triton_auditor *a, mlsec_report *rep, const char *path,
                                  const char *text, size_t len, mlsec_error *err);

/*
 * Audits the tritonserver launch flags in path (plain arguments, shell
 * style, or YAML manifests). Call after the configs: the rate-limit check
 * uses what the configs declared. Adds one artifact.
 */
mlsec_err mlsec_triton_audit_launch_args(mlsec_triton_auditor *a, mlsec_report *rep,
                                         const char *path, mlsec_error *err);

/* Same for launch text in memory (is_yaml: -1 = detect). */
mlsec_err mlsec_triton_audit_launch_text(mlsec_triton_auditor *a, mlsec_report *rep,
                                         const char *path, const char *text, size_t len,
                                         int is_yaml, mlsec_error *err);

/*
 * Without launch flags, says once (an info finding on the first config
 * artifact of rep) that authentication cannot be judged from config.pbtxt
 * alone. Does nothing when rep holds no artifact.
 */
mlsec_err mlsec_triton_note_auth_unknown(mlsec_triton_auditor *a, mlsec_report *rep);

/* Rule catalogue, for docs and tests. */
typedef struct mlsec_triton_rule {
	const char *id;
	mlsec_severity severity;
	const char *title;
	const char *remediation;
} mlsec_triton_rule;
size_t mlsec_triton_rule_count(void);
const mlsec_triton_rule *mlsec_triton_rule_at(size_t i);
const mlsec_triton_rule *mlsec_triton_rule_find(const char *id);

#ifdef __cplusplus
}
#endif
#endif
