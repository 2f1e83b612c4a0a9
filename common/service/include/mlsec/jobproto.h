/*
 * jobproto.h - the glue between mlsec's report model and the mlsec.v1
 * protobuf messages (protoc-c), shared by the stage services, the
 * orchestrator and mlsec-submit: severities, StageResult from a report,
 * per-stage exit codes and the job verdict rule.
 *
 * Messages built here are owned by the caller and released with the
 * matching *_clear function (never protobuf_c_message_free_unpacked, which
 * is only for messages that came from *_unpack).
 */
#ifndef MLSEC_JOBPROTO_H
#define MLSEC_JOBPROTO_H

#include "mlsec/fsutil.h"
#include "mlsec/report.h"
#include "mlsec/v1/common.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest report_json carried in a StageResult; a larger report is dropped
 * from the message (findings are kept) and an error says so. Six stages'
 * reports must fit one Verdict under MLSEC_RPC_MAX_MESSAGE (16 MiB). */
#define MLSEC_JOBPROTO_MAX_REPORT_JSON (2u * 1024 * 1024)

Mlsec__V1__Severity mlsec_jobproto_severity_to_pb(mlsec_severity s);
/* Out-of-range protobuf values clamp to CRITICAL (fail closed). */
mlsec_severity mlsec_jobproto_severity_from_pb(Mlsec__V1__Severity s);

/*
 * Packs a StageResult for a finished report into a fresh mlsec_malloc'd
 * buffer: status ALERT when a finding >= gate, ERROR when engine_rc !=
 * MLSEC_OK or the report holds errors, else OK; findings copied;
 * report_json the compact JSON report with artifact paths under root made
 * relative to it (root may be NULL). error_text may be NULL. rep may be
 * NULL (then only the error is carried: status ERROR).
 */
mlsec_err mlsec_jobproto_result_pack(const char *job_id, const char *stage, const mlsec_report *rep,
                                     mlsec_err engine_rc, const char *error_text, const char *root,
                                     mlsec_severity gate, long long duration_ms, const char *worker,
                                     uint8_t **out, size_t *len);

/* Packs a message into a fresh mlsec_malloc'd buffer. */
mlsec_err mlsec_jobproto_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len);

/*
 * A stage's contribution to the verdict: 2 when a finding >= gate, else 1
 * when the stage errored (or status is unknown), else 0.
 */
int mlsec_jobproto_stage_exit(const Mlsec__V1__StageResult *r, mlsec_severity gate);

/* The verdict over stages: max rule (2 beats 1 beats 0), with missing
 * stages (nmissing > 0) counted as errors. */
int mlsec_jobproto_verdict(const Mlsec__V1__StageResult *const *results, size_t n, size_t nmissing,
                           mlsec_severity gate);

/*
 * The stage that analyses a sniffed format in `auto` mode, NULL when no
 * stage does (orchestrator stage selection, mlsec-submit's directory walk).
 */
const char *mlsec_jobproto_stage_for_format(mlsec_format f);

/*
 * Every stage `auto` mode runs on a sniffed format, the primary one
 * (mlsec_jobproto_stage_for_format) first: ONNX -> export, inspect;
 * safetensors and PyTorch zip checkpoints -> checkpoint, inspect; other
 * checkpoint-like files -> checkpoint (inspect cannot read them). Writes
 * at most max names (static strings) to out; returns how many there are.
 */
#define MLSEC_JOBPROTO_MAX_AUTO_STAGES 2
size_t mlsec_jobproto_stages_for_format(mlsec_format f, const char **out, size_t max);

/* 1 when `auto` mode sends files of format f to stage. */
int mlsec_jobproto_auto_accepts(mlsec_format f, const char *stage);

/* 1 when some format maps to stage (a stage with no format, such as
 * adversarial, takes whatever it is given). */
int mlsec_jobproto_stage_has_formats(const char *stage);

/* Milliseconds since the Unix epoch. */
long long mlsec_jobproto_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
