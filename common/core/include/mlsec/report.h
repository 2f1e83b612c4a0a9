/*
 * report.h - the one findings model and report of every mlsec stage.
 *
 * A report holds artifacts; an artifact holds findings and free-form
 * stage details (a jansson object). The JSON schema is documented in
 * docs/report-format.md; writers for JSON, SARIF 2.1.0 and a human table
 * live in report_json.c, report_sarif.c and report_table.c.
 *
 * Ownership: the report owns everything added to it. Pointers returned by
 * mlsec_report_add_artifact / mlsec_artifact_add_finding and the details
 * object are borrowed and live until mlsec_report_free(). Strings passed in
 * are copied. Not thread-safe: one report per thread.
 *
 * Functions that can fail on allocation return NULL / MLSEC_ERR_NOMEM and
 * leave the report consistent.
 */
#ifndef MLSEC_REPORT_H
#define MLSEC_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_VERSION "0.1.0"
#define MLSEC_TOOL_NAME "mlsec"

typedef enum mlsec_severity {
	MLSEC_SEV_INFO = 0,
	MLSEC_SEV_LOW,
	MLSEC_SEV_MEDIUM,
	MLSEC_SEV_HIGH,
	MLSEC_SEV_CRITICAL,
	MLSEC_SEV__COUNT
} mlsec_severity;

/* "info".."critical"; "unknown" for out-of-range values. */
const char *mlsec_severity_name(mlsec_severity s);
/* Case-insensitive name -> severity. Returns MLSEC_ERR_INVALID_ARG if unknown. */
mlsec_err mlsec_severity_parse(const char *name, mlsec_severity *out);

/* A finding. Fields are owned by the report: read them, do not free them. */
typedef struct mlsec_finding {
	const char *rule_id; /* stable id, e.g. "TRITON-QUEUE-UNBOUNDED" */
	mlsec_severity severity;
	const char *title;       /* one line */
	char *detail;            /* may be NULL */
	char *file;              /* location: file (may be NULL = the artifact path) */
	long line;               /* 1-based, 0 = unknown */
	long column;             /* 1-based, 0 = unknown */
	long long offset;        /* byte offset, -1 = unknown */
	char *field;             /* field path / tensor / node name, may be NULL */
	json_t *evidence;        /* JSON object of key -> value, never NULL; read-only: write
	                          * it with mlsec_finding_set_evidence*() (a finding
	                          * without evidence shares one empty object) */
	const char *remediation; /* may be NULL */
} mlsec_finding;

typedef struct mlsec_report mlsec_report;
typedef struct mlsec_artifact mlsec_artifact;

/* stage: "triton", "checkpoint", ... or "cluster" for merged reports. */
mlsec_report *mlsec_report_new(const char *stage);
void mlsec_report_free(mlsec_report *r);
const char *mlsec_report_stage(const mlsec_report *r);

/*
 * Adds an artifact. format may be NULL ("unknown"). The artifact's stage
 * defaults to the report's. sha256/size are filled by
 * mlsec_artifact_set_digest or mlsec_artifact_hash_file.
 */
mlsec_artifact *mlsec_report_add_artifact(mlsec_report *r, const char *path, const char *format);
size_t mlsec_report_artifact_count(const mlsec_report *r);
mlsec_artifact *mlsec_report_artifact(const mlsec_report *r, size_t i);

const char *mlsec_artifact_path(const mlsec_artifact *a);
const char *mlsec_artifact_format(const mlsec_artifact *a);
const char *mlsec_artifact_stage(const mlsec_artifact *a);
const char *mlsec_artifact_sha256(const mlsec_artifact *a); /* "" if unknown */
uint64_t mlsec_artifact_size(const mlsec_artifact *a);
mlsec_err mlsec_artifact_set_format(mlsec_artifact *a, const char *format);
mlsec_err mlsec_artifact_set_stage(mlsec_artifact *a, const char *stage);
mlsec_err mlsec_artifact_set_digest(mlsec_artifact *a, const char *sha256hex, uint64_t size);
/* Hashes the artifact's path (regular files only; directories are skipped). */
mlsec_err mlsec_artifact_hash_file(mlsec_artifact *a, mlsec_error *err);
/* Stage-specific details: a JSON object, borrowed, made on first use;
 * NULL only when out of memory (jansson's setters then fail harmlessly). */
json_t *mlsec_artifact_details(mlsec_artifact *a);

/*
 * Fills details on demand: fn(details, copy of data) runs once, the first
 * time the details are read (mlsec_artifact_details, the JSON writers), so
 * a run that only prints a table never builds them. data (size bytes) is
 * copied into the report. A later call replaces a pending fill. fn's
 * failures (MLSEC_ERR_NOMEM) leave the details partial.
 */
typedef mlsec_err (*mlsec_details_fill_fn)(json_t *details, const void *data);
mlsec_err mlsec_artifact_set_details_fill(mlsec_artifact *a, mlsec_details_fill_fn fn,
                                          const void *data, size_t size);

/*
 * Adds a finding; detail is printf-style and may be NULL. Returns the
 * finding (borrowed) so that location/evidence/remediation can be set.
 */
mlsec_finding *mlsec_artifact_add_finding(mlsec_artifact *a, const char *rule_id,
                                          mlsec_severity sev, const char *title,
                                          const char *detail_fmt, ...)
        __attribute__((format(printf, 5, 6)));
/*
 * As mlsec_artifact_add_finding with a detail already formatted (copied),
 * but rule_id and title are referenced, not copied: they must outlive the
 * report (string literals, a static rule table). For engines that add
 * many findings from a fixed catalogue.
 */
mlsec_finding *mlsec_artifact_add_finding_static(mlsec_artifact *a, const char *rule_id,
                                                 mlsec_severity sev, const char *title,
                                                 const char *detail);
size_t mlsec_artifact_finding_count(const mlsec_artifact *a);
const mlsec_finding *mlsec_artifact_finding(const mlsec_artifact *a, size_t i);

/*
 * The fail-closed finding for an artifact we cannot parse:
 * rule "<PREFIX>-MALFORMED" (prefix e.g. "TRITON"), severity high, with
 * err's file/line/column/offset as the location and err's text as detail.
 */
mlsec_finding *mlsec_artifact_add_malformed(mlsec_artifact *a, const char *rule_prefix,
                                            const mlsec_error *err);

/* Setters; NULL strings clear. Return MLSEC_OK or MLSEC_ERR_NOMEM. */
mlsec_err mlsec_finding_set_location(mlsec_finding *f, const char *file, long line, long column,
                                     const char *field);
mlsec_err mlsec_finding_set_offset(mlsec_finding *f, long long offset);
mlsec_err mlsec_finding_set_remediation(mlsec_finding *f, const char *text);
/* The same for a text that outlives the report: referenced, not copied. */
void mlsec_finding_set_remediation_static(mlsec_finding *f, const char *text);
/* evidence[key] = printf-formatted string. */
mlsec_err mlsec_finding_set_evidence(mlsec_finding *f, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* evidence[key] = value (steals the reference, like json_object_set_new). */
mlsec_err mlsec_finding_set_evidence_json(mlsec_finding *f, const char *key, json_t *value);

/*
 * Moves every artifact (with its findings) and every error of src to the
 * end of dst, in order, then frees src. For engines that fill one report
 * per batch of files in worker threads and join them in file order.
 * MLSEC_ERR_NOMEM leaves both reports as they were.
 */
mlsec_err mlsec_report_adopt(mlsec_report *dst, mlsec_report *src);

/*
 * Orders the artifacts from index first_artifact on by path, and the
 * errors from index first_error on by text (byte order, ties kept in
 * their order): for engines whose worker threads each fill a report of
 * files met in no global order. MLSEC_ERR_NOMEM changes nothing.
 */
mlsec_err mlsec_report_sort(mlsec_report *r, size_t first_artifact, size_t first_error);

/* Report-level errors: the stage could not fully run (not a finding). */
mlsec_err mlsec_report_add_error(mlsec_report *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
size_t mlsec_report_error_count(const mlsec_report *r);
const char *mlsec_report_error(const mlsec_report *r, size_t i);

/* counts[sev] = number of findings of that severity, over all artifacts. */
void mlsec_report_counts(const mlsec_report *r, size_t counts[MLSEC_SEV__COUNT]);
/* 2 if any finding >= gate, else 1 if the report has errors, else 0. */
int mlsec_report_exit_code(const mlsec_report *r, mlsec_severity gate);

/*
 * JSON: a new reference the caller must json_decref(). The exit_code field
 * is computed with gate. NULL on allocation failure.
 */
json_t *mlsec_report_to_json(const mlsec_report *r, mlsec_severity gate);
/*
 * Parses a report produced by mlsec_report_to_json (e.g. from a stage
 * service) and appends its artifacts and errors to r. Unknown keys are
 * ignored; structural errors return MLSEC_ERR_PARSE.
 */
mlsec_err mlsec_report_merge_json(mlsec_report *r, const json_t *json, mlsec_error *err);
mlsec_err mlsec_report_write_json(const mlsec_report *r, mlsec_severity gate, FILE *out);
mlsec_err mlsec_report_write_sarif(const mlsec_report *r, FILE *out);

typedef struct mlsec_table_opts {
	int color;   /* ANSI colours */
	int verbose; /* detail, evidence and remediation under each finding */
	int summary; /* one line per artifact with counts, no findings */
	mlsec_severity gate;
} mlsec_table_opts;
void mlsec_report_print_table(const mlsec_report *r, const mlsec_table_opts *o, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
