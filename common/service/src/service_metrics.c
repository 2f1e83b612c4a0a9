/*
 * service_metrics.c - glue from the service harness to common/metrics
 * (see service_metrics.h).
 */
#include "mlsec/service_metrics.h"

#include "mlsec/alloc.h"

#ifdef MLSEC_HAVE_METRICS
#include "mlsec/metrics.h"
#include "mlsec/metrics_http.h"

struct mlsec_service_metrics {
	mlsec_metrics *reg;
	mlsec_metrics_server *http;
};

static void on_call(const char *method, grpc_status_code code, void *ctx)
{
	mlsec_service_metrics *m = ctx;
	mlsec_metrics_grpc_request(m->reg, method, (int)code);
}

mlsec_err mlsec_service_metrics_start(const char *service, const char *listen,
                                      mlsec_rpc_server *srv, mlsec_service_metrics **out,
                                      mlsec_error *err)
{
	*out = NULL;
	if (!listen || !*listen)
		return MLSEC_OK;
	mlsec_service_metrics *m = mlsec_calloc(1, sizeof(*m));
	if (!m || !(m->reg = mlsec_metrics_new_service(service))) {
		mlsec_free(m);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	mlsec_err e = mlsec_metrics_server_start(m->reg, listen, &m->http, err);
	if (e != MLSEC_OK) {
		mlsec_metrics_free(m->reg);
		mlsec_free(m);
		return e;
	}
	if (srv)
		mlsec_rpc_server_set_observer(srv, on_call, m);
	*out = m;
	return MLSEC_OK;
}

void mlsec_service_metrics_analysis(mlsec_service_metrics *m, const char *stage, mlsec_err rc,
                                    const mlsec_report *rep, mlsec_severity gate, double seconds)
{
	if (m)
		mlsec_metrics_analysis_done(m->reg, stage, rc, rep, gate, seconds);
}

void mlsec_service_metrics_kafka_stats(mlsec_service_metrics *m, const char *json, size_t len)
{
	if (m)
		mlsec_metrics_kafka_stats(m->reg, json, len);
}

int mlsec_service_metrics_port(const mlsec_service_metrics *m)
{
	return m ? mlsec_metrics_server_port(m->http) : 0;
}

void mlsec_service_metrics_stop(mlsec_service_metrics *m)
{
	if (!m)
		return;
	mlsec_metrics_server_stop(m->http);
	mlsec_metrics_free(m->reg);
	mlsec_free(m);
}

#else /* built without libmicrohttpd */

mlsec_err mlsec_service_metrics_start(const char *service, const char *listen,
                                      mlsec_rpc_server *srv, mlsec_service_metrics **out,
                                      mlsec_error *err)
{
	*out = NULL;
	if (!listen || !*listen)
		return MLSEC_OK;
	return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
	                       "built without metrics support (libmicrohttpd)");
}

void mlsec_service_metrics_analysis(mlsec_service_metrics *m, const char *stage, mlsec_err rc,
                                    const mlsec_report *rep, mlsec_severity gate, double seconds)
{
}

void mlsec_service_metrics_kafka_stats(mlsec_service_metrics *m, const char *json, size_t len)
{
}

int mlsec_service_metrics_port(const mlsec_service_metrics *m)
{
	return 0;
}

void mlsec_service_metrics_stop(mlsec_service_metrics *m)
{
}
#endif
