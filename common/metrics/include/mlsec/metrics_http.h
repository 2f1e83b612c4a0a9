/*
 * metrics_http.h - serve a metrics registry over HTTP for Prometheus.
 *
 * GET (or HEAD) /metrics answers the registry in text format 0.0.4; any
 * other path is 404, any other method 405, a request body 413. The server
 * runs on its own thread (libmicrohttpd internal polling), on a port apart
 * from gRPC so that scraping needs neither TLS client certificates nor the
 * bearer token, and a NetworkPolicy can open it to the monitoring namespace
 * only. Connections are bounded (MLSEC_METRICS_HTTP_MAX_CONN, idle timeout
 * MLSEC_METRICS_HTTP_TIMEOUT_S).
 */
#ifndef MLSEC_METRICS_HTTP_H
#define MLSEC_METRICS_HTTP_H

#include "mlsec/err.h"
#include "mlsec/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_METRICS_HTTP_MAX_CONN 32
#define MLSEC_METRICS_HTTP_TIMEOUT_S 10
#define MLSEC_METRICS_DEFAULT_LISTEN ":9090"

typedef struct mlsec_metrics_server mlsec_metrics_server;

/*
 * Start serving reg (borrowed: it must outlive the server). listen is
 * "HOST:PORT" with a numeric IPv4 host, "[IPV6]:PORT", or ":PORT" for every
 * IPv4 interface (what a pod needs); PORT 0 picks a free port (see _port).
 * On success *out owns the server: stop it with _stop.
 * Errors: INVALID_ARG (bad address), UNAVAILABLE (cannot bind), NOMEM.
 */
mlsec_err mlsec_metrics_server_start(mlsec_metrics *reg, const char *listen,
                                     mlsec_metrics_server **out, mlsec_error *err);

/* The TCP port actually bound (useful after asking for port 0). */
unsigned short mlsec_metrics_server_port(const mlsec_metrics_server *srv);

/* Stops the thread, closes the socket, frees srv. srv may be NULL. */
void mlsec_metrics_server_stop(mlsec_metrics_server *srv);

#ifdef __cplusplus
}
#endif
#endif
