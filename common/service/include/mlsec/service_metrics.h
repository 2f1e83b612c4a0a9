/*
 * service_metrics.h - Prometheus metrics for the stage services and the
 * orchestrator (common/metrics underneath): the standard service registry
 * served on --metrics-listen, gRPC calls counted through the rpc server's
 * observer, every analysis counted by outcome, duration and findings.
 * Built without libmicrohttpd, starting with a listen address is an error
 * and everything else is a no-op.
 */
#ifndef MLSEC_SERVICE_METRICS_H
#define MLSEC_SERVICE_METRICS_H

#include "mlsec/err.h"
#include "mlsec/report.h"
#include "mlsec/rpc.h"

typedef struct mlsec_service_metrics mlsec_service_metrics;

/*
 * listen NULL or "": *out = NULL and MLSEC_OK (metrics off). Otherwise
 * serves /metrics on listen and, when srv is not NULL, counts its calls
 * (call before mlsec_rpc_server_start). srv must be stopped before
 * mlsec_service_metrics_stop().
 */
mlsec_err mlsec_service_metrics_start(const char *service, const char *listen,
                                      mlsec_rpc_server *srv, mlsec_service_metrics **out,
                                      mlsec_error *err);

/* One finished analysis (thread-safe; m may be NULL). */
void mlsec_service_metrics_analysis(mlsec_service_metrics *m, const char *stage, mlsec_err rc,
                                    const mlsec_report *rep, mlsec_severity gate, double seconds);

/* One librdkafka statistics document (a worker's stats hook): refreshes
 * mlsec_kafka_consumer_lag for that client. Thread-safe; m may be NULL;
 * a document that does not parse is ignored. */
void mlsec_service_metrics_kafka_stats(mlsec_service_metrics *m, const char *json, size_t len);

/* The bound port (0 when off). */
int mlsec_service_metrics_port(const mlsec_service_metrics *m);

/* Stops serving and frees; m may be NULL. */
void mlsec_service_metrics_stop(mlsec_service_metrics *m);

#endif
