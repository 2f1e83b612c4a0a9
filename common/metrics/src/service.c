/*
 * service.c - the metric families every mlsec service exposes, and the
 * helpers the service harness calls when something happens. Keeping the
 * names here (not in each service) makes dashboards and alerts portable
 * across stages.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "metrics_int.h"

#define JOBS "mlsec_jobs_total"
#define DURATION "mlsec_analysis_duration_seconds"
#define FINDINGS "mlsec_findings_total"
#define KAFKA_LAG "mlsec_kafka_consumer_lag"
#define GRPC "mlsec_grpc_requests_total"

/* Seconds: analyses range from milliseconds (configs) to minutes (attacks). */
static const double duration_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    30,   60,  120,  300, 600};

/* Stops the librdkafka statistics walk on a hostile or runaway document. */
#define KAFKA_STATS_MAX_TOPICS 256
#define KAFKA_STATS_MAX_BYTES (8u << 20)

mlsec_metrics *mlsec_metrics_new_service(const char *service)
{
	mlsec_metrics *reg = mlsec_metrics_new();
	if (!reg)
		return NULL;
	mlsec_metric *info = mlsec_metrics_gauge(reg, "mlsec_build_info",
	                                         "mlsec build and service name (always 1).",
	                                         MLSEC_LABELS("service", "version"), NULL);
	mlsec_metric *start =
	        mlsec_metrics_gauge(reg, "mlsec_process_start_time_seconds",
	                            "Start time of the process since the Unix epoch in seconds.",
	                            MLSEC_NO_LABELS, NULL);
	int ok = info && start &&
	         mlsec_metrics_counter(reg, JOBS,
	                               "Stage jobs finished, by stage and outcome "
	                               "(ok, alert, error).",
	                               MLSEC_LABELS("stage", "outcome"), NULL) &&
	         mlsec_metrics_histogram(
	                 reg, DURATION, "Wall time of one stage analysis in seconds.",
	                 MLSEC_LABELS("stage"), duration_bounds,
	                 sizeof(duration_bounds) / sizeof(duration_bounds[0]), NULL) &&
	         mlsec_metrics_counter(reg, FINDINGS, "Findings reported, by stage and severity.",
	                               MLSEC_LABELS("stage", "severity"), NULL) &&
	         mlsec_metrics_gauge(reg, KAFKA_LAG,
	                             "Messages behind the partition high watermark "
	                             "for this consumer (librdkafka consumer_lag).",
	                             MLSEC_LABELS("topic", "partition", "client"), NULL) &&
	         mlsec_metrics_counter(reg, GRPC, "gRPC calls served, by method and status code.",
	                               MLSEC_LABELS("method", "code"), NULL);
	if (ok)
		ok = mlsec_metric_set(info,
		                      MLSEC_LABELS(service ? service : "mlsec", MLSEC_VERSION),
		                      1) == MLSEC_OK &&
		     mlsec_metric_set(start, MLSEC_NO_LABELS, (double)time(NULL)) == MLSEC_OK;
	if (!ok) {
		mlsec_metrics_free(reg);
		return NULL;
	}
	return reg;
}

static mlsec_metric *family(mlsec_metrics *reg, const char *name)
{
	return reg ? mlsec_metrics_find_(reg, name) : NULL;
}

mlsec_err mlsec_metrics_job_done(mlsec_metrics *reg, const char *stage, const char *outcome,
                                 double seconds)
{
	mlsec_metric *jobs = family(reg, JOBS);
	mlsec_metric *dur = family(reg, DURATION);
	if (!jobs || !dur || !stage || !outcome)
		return MLSEC_ERR_INVALID_ARG;
	mlsec_err rc = mlsec_metric_inc(jobs, MLSEC_LABELS(stage, outcome));
	if (rc == MLSEC_OK && seconds >= 0)
		rc = mlsec_metric_observe(dur, MLSEC_LABELS(stage), seconds);
	return rc;
}

mlsec_err mlsec_metrics_findings(mlsec_metrics *reg, const char *stage, const char *severity,
                                 unsigned long count)
{
	mlsec_metric *f = family(reg, FINDINGS);
	if (!f || !stage || !severity)
		return MLSEC_ERR_INVALID_ARG;
	return mlsec_metric_add(f, MLSEC_LABELS(stage, severity), (double)count);
}

mlsec_err mlsec_metrics_analysis_done(mlsec_metrics *reg, const char *stage, mlsec_err rc,
                                      const mlsec_report *rep, mlsec_severity gate, double seconds)
{
	const char *outcome = "error";
	if (rc == MLSEC_OK && rep) {
		int code = mlsec_report_exit_code(rep, gate);
		outcome = code == 2 ? "alert" : code == 1 ? "error" : "ok";
	}
	mlsec_err e = mlsec_metrics_job_done(reg, stage, outcome, seconds);
	if (e != MLSEC_OK || !rep)
		return e;
	size_t counts[MLSEC_SEV__COUNT];
	mlsec_report_counts(rep, counts);
	for (int s = 0; s < MLSEC_SEV__COUNT && e == MLSEC_OK; s++)
		if (counts[s])
			e = mlsec_metrics_findings(
			        reg, stage, mlsec_severity_name((mlsec_severity)s), counts[s]);
	return e;
}

const char *mlsec_metrics_grpc_code_name(int code)
{
	/* grpc_status_code values, fixed by the gRPC protocol. */
	static const char *const names[] = {"OK",
	                                    "CANCELLED",
	                                    "UNKNOWN",
	                                    "INVALID_ARGUMENT",
	                                    "DEADLINE_EXCEEDED",
	                                    "NOT_FOUND",
	                                    "ALREADY_EXISTS",
	                                    "PERMISSION_DENIED",
	                                    "RESOURCE_EXHAUSTED",
	                                    "FAILED_PRECONDITION",
	                                    "ABORTED",
	                                    "OUT_OF_RANGE",
	                                    "UNIMPLEMENTED",
	                                    "INTERNAL",
	                                    "UNAVAILABLE",
	                                    "DATA_LOSS",
	                                    "UNAUTHENTICATED"};
	if (code < 0 || code >= (int)(sizeof(names) / sizeof(names[0])))
		return "UNKNOWN";
	return names[code];
}

mlsec_err mlsec_metrics_grpc_request(mlsec_metrics *reg, const char *method, int code)
{
	mlsec_metric *g = family(reg, GRPC);
	if (!g || !method)
		return MLSEC_ERR_INVALID_ARG;
	return mlsec_metric_inc(g, MLSEC_LABELS(method, mlsec_metrics_grpc_code_name(code)));
}

mlsec_err mlsec_metrics_kafka_stats(mlsec_metrics *reg, const char *json, size_t len)
{
	mlsec_metric *lag = family(reg, KAFKA_LAG);
	if (!lag || !json)
		return MLSEC_ERR_INVALID_ARG;
	if (len > KAFKA_STATS_MAX_BYTES)
		return MLSEC_ERR_LIMIT;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *topics = json_is_object(root) ? json_object_get(root, "topics") : NULL;
	json_t *jname = json_is_object(root) ? json_object_get(root, "name") : NULL;
	if (!json_is_object(topics)) {
		json_decref(root);
		return MLSEC_ERR_PARSE;
	}
	/*
	 * Several consumers (one per worker thread) report separately: replace
	 * only this client's series, so partitions it lost in a rebalance
	 * disappear and the other clients' stay.
	 */
	const char *client = json_is_string(jname) ? json_string_value(jname) : "";
	mlsec_metric_remove_where_(lag, 2, client);
	mlsec_err rc = MLSEC_OK;
	size_t ntopics = 0;
	const char *tname;
	json_t *topic;
	json_object_foreach(topics, tname, topic)
	{
		if (++ntopics > KAFKA_STATS_MAX_TOPICS) {
			rc = MLSEC_ERR_LIMIT;
			break;
		}
		json_t *parts = json_object_get(topic, "partitions");
		if (!json_is_object(parts))
			continue;
		const char *pid;
		json_t *p;
		json_object_foreach(parts, pid, p)
		{
			json_t *cl = json_object_get(p, "consumer_lag");
			if (strcmp(pid, "-1") == 0 || !json_is_integer(cl) ||
			    json_integer_value(cl) < 0)
				continue;
			mlsec_err r = mlsec_metric_set(lag, MLSEC_LABELS(tname, pid, client),
			                               (double)json_integer_value(cl));
			if (r != MLSEC_OK && rc == MLSEC_OK)
				rc = r;
		}
	}
	json_decref(root);
	return rc;
}
