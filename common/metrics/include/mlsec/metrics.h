/*
 * metrics.h - Prometheus metrics for mlsec services.
 *
 * A registry holds metric families (counter, gauge, histogram), each with a
 * fixed list of label names; a family holds one series per distinct tuple of
 * label values. mlsec_metrics_render() produces the Prometheus text
 * exposition format 0.0.4; metrics_http.h serves it on its own port.
 *
 * Thread safety: every function here may be called from any thread at any
 * time, including while a scrape renders the registry, except
 * mlsec_metrics_free(), which must run after every other user is done.
 *
 * Cardinality is bounded: a family keeps at most MLSEC_METRICS_MAX_SERIES
 * series and label values longer than MLSEC_METRICS_MAX_LABEL_VALUE bytes
 * are refused, so a hostile job (say, a crafted topic name) cannot grow the
 * registry without limit. Updates that hit a limit return MLSEC_ERR_LIMIT
 * and are counted in mlsec_metrics_dropped_total (rendered last).
 *
 * Besides the generic API, mlsec_metrics_new_service() builds the registry
 * every mlsec service exposes, with helpers for the events the harness sees
 * (a job finished, findings, a gRPC call, librdkafka statistics).
 */
#ifndef MLSEC_METRICS_H
#define MLSEC_METRICS_H

#include <stddef.h>

#include "mlsec/err.h"
#include "mlsec/report.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_METRICS_MAX_SERIES 1000     /* per family */
#define MLSEC_METRICS_MAX_LABELS 8        /* label names per family */
#define MLSEC_METRICS_MAX_LABEL_VALUE 256 /* bytes per label value */
#define MLSEC_METRICS_MAX_BUCKETS 32      /* histogram bounds, +Inf implied */

typedef struct mlsec_metrics mlsec_metrics; /* registry */
typedef struct mlsec_metric mlsec_metric;   /* one family, owned by the registry */

/*
 * Label lists are NULL-terminated arrays of strings. MLSEC_LABELS builds one
 * in place: mlsec_metric_inc(jobs, MLSEC_LABELS("inspect", "ok")).
 */
#define MLSEC_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define MLSEC_NO_LABELS ((const char *const *)NULL)

/* A new empty registry, or NULL when out of memory. Free with _free. */
mlsec_metrics *mlsec_metrics_new(void);

/* Frees the registry and every family in it. reg may be NULL. */
void mlsec_metrics_free(mlsec_metrics *reg);

/*
 * Register a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", not "le" for histograms);
 * help is any text (escaped on output). Names and help are copied.
 * Returns a family borrowed from the registry (valid until _free), or NULL
 * with err filled: INVALID_ARG for a bad or duplicate name, NOMEM.
 */
mlsec_metric *mlsec_metrics_counter(mlsec_metrics *reg, const char *name, const char *help,
                                    const char *const *label_names, mlsec_error *err);
mlsec_metric *mlsec_metrics_gauge(mlsec_metrics *reg, const char *name, const char *help,
                                  const char *const *label_names, mlsec_error *err);
/*
 * bounds: nbounds strictly increasing finite upper bounds (the +Inf bucket
 * is implied), at most MLSEC_METRICS_MAX_BUCKETS.
 */
mlsec_metric *mlsec_metrics_histogram(mlsec_metrics *reg, const char *name, const char *help,
                                      const char *const *label_names, const double *bounds,
                                      size_t nbounds, mlsec_error *err);

/*
 * Updates. values holds exactly one value per label name of the family
 * (NULL when it has none). Errors: INVALID_ARG (wrong type of family, wrong
 * number of values, negative counter increment, NaN), LIMIT (see top),
 * NOMEM. A failed update changes nothing.
 */
mlsec_err mlsec_metric_inc(mlsec_metric *m, const char *const *values);
mlsec_err mlsec_metric_add(mlsec_metric *m, const char *const *values,
                           double delta); /* counter (delta >= 0) or gauge */
mlsec_err mlsec_metric_set(mlsec_metric *m, const char *const *values,
                           double value); /* gauge only */
mlsec_err mlsec_metric_observe(mlsec_metric *m, const char *const *values,
                               double value); /* histogram only */

/* Drop every series of the family (e.g. lag gauges after a rebalance). */
void mlsec_metric_clear(mlsec_metric *m);

/*
 * Current value of a series: counter/gauge value, histogram observation
 * count; 0 when the series does not exist yet. For tests and for /healthz
 * style summaries; scrapes use mlsec_metrics_render().
 */
double mlsec_metric_value(mlsec_metric *m, const char *const *values);

/*
 * The whole registry in Prometheus text format 0.0.4, families in
 * registration order, series in creation order. Returns a NUL-terminated
 * mlsec_malloc'd string the caller frees with mlsec_free (its length in
 * *len when len is non-NULL), or NULL when out of memory.
 */
char *mlsec_metrics_render(mlsec_metrics *reg, size_t *len);

/* ---- The standard service registry ------------------------------------ */

/*
 * A registry with the families every mlsec service exposes:
 *   mlsec_build_info{service,version}                gauge, always 1
 *   mlsec_process_start_time_seconds                 gauge
 *   mlsec_jobs_total{stage,outcome}                  counter
 *   mlsec_analysis_duration_seconds{stage}           histogram
 *   mlsec_findings_total{stage,severity}             counter
 *   mlsec_kafka_consumer_lag{topic,partition,client} gauge
 *   mlsec_grpc_requests_total{method,code}           counter
 * (mlsec_metrics_dropped_total, a counter of updates refused by a limit,
 * ends every rendered registry, standard or not.)
 * service is e.g. "mlsec-inspectd". NULL when out of memory.
 * Every family starts without series (no fake zeros), except build info and
 * start time.
 */
mlsec_metrics *mlsec_metrics_new_service(const char *service);

/*
 * A job (one StageRequest) finished on stage: outcome is "ok", "alert" or
 * "error" (StageResult status, lower case); seconds is the analysis wall
 * time. No-op on a registry not made by mlsec_metrics_new_service().
 */
mlsec_err mlsec_metrics_job_done(mlsec_metrics *reg, const char *stage, const char *outcome,
                                 double seconds);

/* count findings of severity ("info" ... "critical") reported by stage. */
mlsec_err mlsec_metrics_findings(mlsec_metrics *reg, const char *stage, const char *severity,
                                 unsigned long count);

/*
 * Everything one finished analysis contributes, in one call: the job with
 * its outcome and duration, and the report's findings by severity. rc is
 * what the engine returned; rep may be NULL (the job failed before a report
 * existed). Outcome: "error" when rc != MLSEC_OK, else by
 * mlsec_report_exit_code(rep, gate): 2 "alert", 1 "error", 0 "ok".
 */
mlsec_err mlsec_metrics_analysis_done(mlsec_metrics *reg, const char *stage, mlsec_err rc,
                                      const mlsec_report *rep, mlsec_severity gate, double seconds);

/*
 * A gRPC call finished. method is the full path ("/mlsec.v1.Analyzer/
 * Analyze"); code is the numeric grpc_status_code (0..16), rendered by name
 * ("OK", "UNAVAILABLE"; "UNKNOWN" outside the range).
 */
mlsec_err mlsec_metrics_grpc_request(mlsec_metrics *reg, const char *method, int code);

/* Static name of a gRPC status code, "UNKNOWN" when out of range. */
const char *mlsec_metrics_grpc_code_name(int code);

/*
 * Feed one librdkafka statistics JSON document (the stats_cb payload,
 * enabled with statistics.interval.ms; safe to call from the stats_cb of
 * several consumers). Replaces the mlsec_kafka_consumer_lag series of that
 * client (the document's "name", e.g. "rdkafka#consumer-1") with the
 * consumer_lag of each partition it reports (partitions reporting -1,
 * i.e. unknown, and the internal partition -1 are skipped). Errors: PARSE when json is not a
 * statistics document; LIMIT past MLSEC_METRICS_MAX_SERIES partitions.
 */
mlsec_err mlsec_metrics_kafka_stats(mlsec_metrics *reg, const char *json, size_t len);

#ifdef __cplusplus
}
#endif
#endif
