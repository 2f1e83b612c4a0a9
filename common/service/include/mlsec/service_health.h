/*
 * service_health.h - readiness for the stage services and the
 * orchestrator: a monitor thread that pings Redis and Kafka and reports
 * the API service (e.g. "mlsec.v1.Analyzer") NOT_SERVING on the gRPC
 * health service while either is unreachable (SERVING again once both
 * answer), and optionally the plain-text health-only listener
 * (--health-listen) that shares the same serving state, so kubelet gRPC
 * probes work when the main port uses TLS. The server-wide name "" is not
 * touched: it stays the liveness signal.
 */
#ifndef MLSEC_SERVICE_HEALTH_H
#define MLSEC_SERVICE_HEALTH_H

#include "mlsec/err.h"
#include "mlsec/queue.h"
#include "mlsec/rpc.h"
#include "mlsec/store.h"

/* Default time between two dependency checks. */
#define MLSEC_SERVICE_HEALTH_INTERVAL_MS 2000
/* Longest a Kafka metadata request of one check may take. */
#define MLSEC_SERVICE_HEALTH_KAFKA_TIMEOUT_MS 2000

typedef struct mlsec_service_health_conf {
	mlsec_rpc_server *srv;    /* started; its health table is updated */
	const char *service;      /* API service name set (NOT_)SERVING */
	const mlsec_store *store; /* NULL = no Redis; cloned for the monitor */
	mlsec_producer *producer; /* NULL = no Kafka; borrowed (thread-safe) */
	int interval_ms;          /* 0 = MLSEC_SERVICE_HEALTH_INTERVAL_MS */
	const char *listen;       /* NULL/"" = no health-only listener */
} mlsec_service_health_conf;

typedef struct mlsec_service_health mlsec_service_health;

/*
 * Checks the dependencies once (so the state is right from the start),
 * sets c->service accordingly, starts the monitor thread (only when there
 * is a dependency) and the health-only listener (when c->listen is set).
 * MLSEC_ERR_UNAVAILABLE when the listener cannot bind, NOMEM.
 */
mlsec_err mlsec_service_health_start(const mlsec_service_health_conf *c, mlsec_service_health **out,
                                     mlsec_error *err);

/* The health-only listener's bound port, 0 when there is none. */
int mlsec_service_health_port(const mlsec_service_health *h);

/* Stops the monitor and the listener, frees. Call before stopping c->srv.
 * NULL ok. */
void mlsec_service_health_stop(mlsec_service_health *h);

#endif
