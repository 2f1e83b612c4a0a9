/*
 * main.c - mlsec-orchestratord: the cluster's entry point. Config, the
 * gRPC server (Submit, Get, Watch, Upload, health), the mlsec.results
 * consumer, the deadline sweeper, graceful shutdown.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/log.h"
#include "mlsec/service.h"
#include "mlsec/service_health.h"
#include "mlsec/service_metrics.h"
#include "mlsec/shutdown.h"
#include "orchestrator.h"

#define PROG "mlsec-orchestratord"
#define STOP_GRACE_MS 3000

static const mlsec_config_option orch_options[] = {
        {"grpc-listen", MLSEC_CONFIG_STRING, "127.0.0.1:50051", 0, 0, NULL, "MLSEC_GRPC_LISTEN", 0,
         "gRPC listen address; port 0 picks a free port"},
        {"grpc-threads", MLSEC_CONFIG_INT, "64", 2, MLSEC_RPC_MAX_THREADS, NULL,
         "MLSEC_GRPC_THREADS", 0, "concurrent gRPC calls (each Watch holds one until its verdict)"},
        {"tls-cert", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TLS_CERT", 0,
         "PEM server certificate: serve gRPC over TLS"},
        {"tls-key", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TLS_KEY", 0, "PEM private key"},
        {"tls-ca", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TLS_CA", 0,
         "PEM CA: require and verify client certificates (mutual TLS)"},
        {"auth-token-file", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_AUTH_TOKEN_FILE", 0,
         "file holding the bearer token clients must present (required unless --insecure-local)"},
        {"insecure-local", MLSEC_CONFIG_BOOL, "false", 0, 0, NULL, NULL, 0,
         "no token required; only allowed with a loopback --grpc-listen"},
        {"job-timeout-ms", MLSEC_CONFIG_INT, "60000", 100, ORCH_MAX_JOB_TIMEOUT_MS, NULL,
         "MLSEC_JOB_TIMEOUT_MS", 0, "default job deadline: stages not done by then are errors"},
        {"stage-timeouts", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_STAGE_TIMEOUTS", 0,
         "per-stage deadlines in ms, e.g. triton=30000,adversarial=600000 (never past the job's)"},
        {"max-artifact-bytes", MLSEC_CONFIG_INT, "4294967296", 1, LLONG_MAX, NULL,
         "MLSEC_MAX_ARTIFACT_BYTES", 0, "largest artifact accepted (Submit and Upload)"},
        {"job-ttl-s", MLSEC_CONFIG_INT, "604800", 0, 31536000, NULL, "MLSEC_JOB_TTL_S", 0,
         "lifetime of job records, results and events in Redis (0 = forever)"},
        {"sweep-interval-ms", MLSEC_CONFIG_INT, "200", 10, 60000, NULL, "MLSEC_SWEEP_INTERVAL_MS",
         0, "how often expired job deadlines are checked"},
        {"health-listen", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_HEALTH_LISTEN", 0,
         "also serve grpc.health.v1 alone, in plain text, on HOST:PORT (kubelet probes of a TLS "
         "server); unset = off"},
        {"health-interval-ms", MLSEC_CONFIG_INT, "2000", 100, 60000, NULL,
         "MLSEC_HEALTH_INTERVAL_MS", 0,
         "how often Redis and Kafka are checked for readiness (NOT_SERVING while unreachable)"},
        {"metrics-listen", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_METRICS_LISTEN", 0,
         "serve Prometheus /metrics on HOST:PORT or :PORT (unset = off)"},
        {"kafka-stats-interval-ms", MLSEC_CONFIG_INT, "5000", 100, 3600000, NULL,
         "MLSEC_KAFKA_STATS_INTERVAL_MS", 0,
         "how often consumer lag is refreshed on /metrics (with --metrics-listen)"},
        {"ready-file", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_READY_FILE", 0,
         "write the bound gRPC address here once serving (for scripts and tests)"},
};

/* The results consumer's librdkafka statistics -> consumer lag on
 * /metrics. ctx points at the metrics handle, set before the results
 * thread (which serves these callbacks) starts and freed after it ends. */
static void results_stats(const char *json, size_t len, void *ctx)
{
	mlsec_service_metrics *const *m = ctx;
	mlsec_service_metrics_kafka_stats(*m, json, len);
}

mlsec_store *orch_store_get(orch *o)
{
	mlsec_store *s = NULL;
	pthread_mutex_lock(&o->pool_lock);
	if (o->npool)
		s = o->pool[--o->npool];
	pthread_mutex_unlock(&o->pool_lock);
	if (!s && mlsec_store_clone(o->store_tmpl, &s, NULL) != MLSEC_OK)
		return NULL;
	return s;
}

void orch_store_put(orch *o, mlsec_store *s)
{
	pthread_mutex_lock(&o->pool_lock);
	if (o->npool < ORCH_STORE_POOL) {
		o->pool[o->npool++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&o->pool_lock);
	mlsec_store_free(s);
}

/* 1 when the listen address's host is a loopback address. */
static int listen_is_loopback(const char *listen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	if (!colon)
		return 0;
	size_t n = (size_t)(colon - listen);
	if (n == 0 || n >= sizeof(host))
		return 0;
	memcpy(host, listen, n);
	host[n] = '\0';
	if (host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if (!strcmp(host, "localhost"))
		return 1;
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

typedef struct results_thread {
	orch_results_ctx ctx;
	mlsec_worker *w;
	pthread_t thread;
	int started;
} results_thread;

static void *results_main(void *arg)
{
	results_thread *rt = arg;
	mlsec_error err;
	mlsec_error_clear(&err);
	if (mlsec_worker_run(rt->w, orch_on_result, &rt->ctx, &err) != MLSEC_OK) {
		MLSEC_LOGE("results consumer stopped: %s", err.text);
		mlsec_shutdown_request();
	}
	return NULL;
}

typedef struct sweeper {
	orch *o;
	mlsec_store *store;
	int interval_ms;
	pthread_t thread;
	int started;
} sweeper;

static void *sweeper_main(void *arg)
{
	sweeper *sw = arg;
	while (!mlsec_shutdown_wait(sw->interval_ms))
		orch_sweep(sw->o, sw->store);
	return NULL;
}

int main(int argc, char **argv)
{
	orch o;
	memset(&o, 0, sizeof(o));
	atomic_init(&o.watches, 0);
	pthread_mutex_init(&o.pool_lock, NULL);
	mlsec_error err;
	mlsec_error_clear(&err);
	int rc = 1;
	char *token = NULL;
	mlsec_rpc_server *srv = NULL;
	results_thread rt;
	sweeper sw;
	const char **cprops = NULL;
	mlsec_service_metrics *metrics = NULL;
	mlsec_service_health *health = NULL;
	memset(&rt, 0, sizeof(rt));
	memset(&sw, 0, sizeof(sw));

	o.cfg = mlsec_config_new(
	        PROG,
	        "mlsec orchestrator: Submit/Get/Watch/Upload, fan-out to stage services, verdicts",
	        "[options]");
	mlsec_config_help help = MLSEC_CONFIG_HELP_NONE;
	if (!o.cfg ||
	    mlsec_config_add_std(o.cfg,
	                         MLSEC_CONFIG_STD_LOG | MLSEC_CONFIG_STD_KAFKA |
	                                 MLSEC_CONFIG_STD_REDIS | MLSEC_CONFIG_STD_ARTIFACT_ROOT,
	                         &err) != MLSEC_OK ||
	    mlsec_config_add(o.cfg, orch_options, sizeof(orch_options) / sizeof(orch_options[0]),
	                     &err) != MLSEC_OK ||
	    mlsec_config_parse(o.cfg, argc, argv, &help, &err) != MLSEC_OK) {
		fprintf(stderr, PROG ": %s\n", err.text[0] ? err.text : "out of memory");
		goto out;
	}
	if (help != MLSEC_CONFIG_HELP_NONE) {
		if (help == MLSEC_CONFIG_HELP_TEXT)
			mlsec_config_print_help(o.cfg, stdout);
		else
			mlsec_config_print_markdown(o.cfg, stdout);
		rc = 0;
		goto out;
	}
	if (mlsec_config_argc(o.cfg) > 0) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", mlsec_config_argv(o.cfg)[0]);
		goto out;
	}
	mlsec_log_level lvl = MLSEC_LOG_INFO;
	mlsec_log_format fmt = MLSEC_LOG_TEXT;
	mlsec_log_level_parse(mlsec_config_get(o.cfg, "log-level"), &lvl);
	mlsec_log_format_parse(mlsec_config_get(o.cfg, "log-format"), &fmt);
	mlsec_log_setup(lvl, fmt, -1, PROG);

	const char *listen = mlsec_config_get(o.cfg, "grpc-listen");
	const char *tf = mlsec_config_get(o.cfg, "auth-token-file");
	int insecure = mlsec_config_get_bool(o.cfg, "insecure-local");
	if (insecure && !listen_is_loopback(listen)) {
		fprintf(stderr, PROG ": --insecure-local only binds loopback, not %s\n", listen);
		goto out;
	}
	if (!insecure && !(tf && *tf)) {
		fprintf(stderr, PROG ": set --auth-token-file / MLSEC_AUTH_TOKEN_FILE "
		                     "(or --insecure-local on loopback)\n");
		goto out;
	}
	if (!insecure && mlsec_rpc_token_read(tf, &token, &err) != MLSEC_OK) {
		fprintf(stderr, PROG ": %s\n", err.text);
		goto out;
	}
	if (token)
		mlsec_log_add_secret(token);
	mlsec_config_log_effective(o.cfg);

	o.root = mlsec_config_get(o.cfg, "artifact-root");
	o.root_real = o.root ? realpath(o.root, NULL) : NULL;
	if (!o.root_real) {
		fprintf(stderr, PROG ": artifact root %s does not exist\n",
		        o.root ? o.root : "(unset)");
		goto out;
	}
	o.max_bytes = (uint64_t)mlsec_config_get_int(o.cfg, "max-artifact-bytes");
	orch_upload_clean_stale(&o, ORCH_UPLOAD_STALE_S);
	o.job_timeout_ms = mlsec_config_get_int(o.cfg, "job-timeout-ms");
	o.ttl_ms = mlsec_config_get_int(o.cfg, "job-ttl-s") * 1000;
	if (orch_stage_timeouts_parse(&o, mlsec_config_get(o.cfg, "stage-timeouts"), &err) !=
	    MLSEC_OK) {
		fprintf(stderr, PROG ": %s\n", err.text);
		goto out;
	}
	if (mlsec_shutdown_install(&err) != MLSEC_OK) {
		fprintf(stderr, PROG ": %s\n", err.text);
		goto out;
	}
	int rto = (int)mlsec_config_get_int(o.cfg, "redis-timeout-ms");
	if (mlsec_store_new(mlsec_config_get(o.cfg, "redis-url"), rto, rto, &o.store_tmpl, &err) !=
	            MLSEC_OK ||
	    mlsec_store_set_password_file(o.store_tmpl,
	                                  mlsec_config_get(o.cfg, "redis-password-file"),
	                                  &err) != MLSEC_OK) {
		MLSEC_LOGE("redis: %s", err.text);
		goto out;
	}
	mlsec_queue_conf qc = {mlsec_config_get(o.cfg, "kafka-brokers"), PROG,
	                       mlsec_config_kafka_props(o.cfg)};
	if (mlsec_producer_new(&qc, &o.producer, &err) != MLSEC_OK) {
		MLSEC_LOGE("kafka: %s", err.text);
		goto out;
	}

	const char *topics[] = {MLSEC_TOPIC_RESULTS, NULL};
	mlsec_worker_conf wc = {0};
	wc.queue = qc;
	cprops = mlsec_service_consumer_props(qc.props);
	if (!cprops)
		goto out;
	wc.queue.props = cprops;
	wc.group = MLSEC_GROUP_PREFIX "orchestrator";
	wc.topics = topics;
	wc.watch_shutdown = 1;
	const char *ml = mlsec_config_get(o.cfg, "metrics-listen");
	if (ml && *ml) {
		wc.stats_cb = results_stats;
		wc.stats_ctx = &metrics;
		wc.stats_interval_ms = (int)mlsec_config_get_int(o.cfg, "kafka-stats-interval-ms");
	}
	rt.ctx.o = &o;
	if (mlsec_store_clone(o.store_tmpl, &rt.ctx.store, &err) != MLSEC_OK ||
	    mlsec_worker_new(&wc, &rt.w, &err) != MLSEC_OK) {
		MLSEC_LOGE("kafka: %s", err.text);
		goto out;
	}
	sw.o = &o;
	sw.interval_ms = (int)mlsec_config_get_int(o.cfg, "sweep-interval-ms");
	if (mlsec_store_clone(o.store_tmpl, &sw.store, &err) != MLSEC_OK)
		goto out;

	mlsec_rpc_server_opts so = {0};
	so.listen = listen;
	so.cert_file = mlsec_config_get(o.cfg, "tls-cert");
	so.key_file = mlsec_config_get(o.cfg, "tls-key");
	so.ca_file = mlsec_config_get(o.cfg, "tls-ca");
	so.auth_token = token;
	so.threads = (int)mlsec_config_get_int(o.cfg, "grpc-threads");
	o.max_watches = so.threads > ORCH_RESERVED_THREADS ? so.threads - ORCH_RESERVED_THREADS : 1;
	if (mlsec_rpc_server_new(&so, &srv, &err) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Orchestrator/Submit", MLSEC_RPC_UNARY,
	                                orch_submit, &o, 0) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Orchestrator/Get", MLSEC_RPC_UNARY,
	                                orch_get, &o, 0) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Orchestrator/Watch",
	                                MLSEC_RPC_SERVER_STREAM, orch_watch, &o, 0) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Orchestrator/Upload",
	                                MLSEC_RPC_CLIENT_STREAM, orch_upload, &o, 0) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Baselines/Get", MLSEC_RPC_UNARY,
	                                orch_baseline_get, &o, 0) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Baselines/Set", MLSEC_RPC_UNARY,
	                                orch_baseline_set, &o, 0) != MLSEC_OK ||
	    mlsec_service_metrics_start(PROG, mlsec_config_get(o.cfg, "metrics-listen"), srv,
	                                &metrics, &err) != MLSEC_OK ||
	    mlsec_rpc_server_start(srv, &err) != MLSEC_OK) {
		MLSEC_LOGE("grpc: %s", err.text[0] ? err.text : "cannot start");
		goto out;
	}
	if (pthread_create(&rt.thread, NULL, results_main, &rt) == 0)
		rt.started = 1;
	if (pthread_create(&sw.thread, NULL, sweeper_main, &sw) == 0)
		sw.started = 1;
	if (!rt.started || !sw.started) {
		MLSEC_LOGE("cannot start threads");
		mlsec_shutdown_request();
	}
	mlsec_rpc_server_set_serving(srv, "mlsec.v1.Orchestrator", 1);
	mlsec_service_health_conf hc = {0};
	hc.srv = srv;
	hc.service = "mlsec.v1.Orchestrator";
	hc.store = o.store_tmpl;
	hc.producer = o.producer;
	hc.interval_ms = (int)mlsec_config_get_int(o.cfg, "health-interval-ms");
	hc.listen = mlsec_config_get(o.cfg, "health-listen");
	if (mlsec_service_health_start(&hc, &health, &err) != MLSEC_OK) {
		MLSEC_LOGE("health: %s", err.text);
		mlsec_shutdown_request();
	}
	const char *ready = mlsec_config_get(o.cfg, "ready-file");
	if (ready && *ready) {
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "127.0.0.1:%d\n", mlsec_rpc_server_port(srv));
		if (mlsec_file_write_atomic(ready, buf, (size_t)n, 0644, &err) != MLSEC_OK)
			MLSEC_LOGW("cannot write ready file %s", ready);
	}
	MLSEC_LOGI("serving on port %d%s", mlsec_rpc_server_port(srv),
	           insecure ? " (insecure-local: no token)" : "");
	mlsec_shutdown_wait(-1);
	MLSEC_LOGI("shutting down");
	rc = 0;
out:
	o.stopping = 1;
	if (srv) {
		mlsec_rpc_server_set_serving(srv, "", 0);
		mlsec_rpc_server_set_serving(srv, "mlsec.v1.Orchestrator", 0);
	}
	if (rt.w)
		mlsec_worker_stop(rt.w);
	mlsec_shutdown_request(); /* wakes the sweeper */
	if (rt.started)
		pthread_join(rt.thread, NULL);
	if (sw.started)
		pthread_join(sw.thread, NULL);
	mlsec_service_health_stop(health);
	if (srv)
		mlsec_rpc_server_stop(srv, STOP_GRACE_MS);
	mlsec_rpc_server_free(srv);
	mlsec_service_metrics_stop(metrics);
	mlsec_worker_free(rt.w);
	mlsec_free(cprops);
	mlsec_store_free(rt.ctx.store);
	mlsec_store_free(sw.store);
	mlsec_producer_free(o.producer);
	for (size_t i = 0; i < o.npool; i++)
		mlsec_store_free(o.pool[i]);
	mlsec_store_free(o.store_tmpl);
	pthread_mutex_destroy(&o.pool_lock);
	free(o.root_real);
	if (token) {
		memset(token, 0, strlen(token));
		mlsec_free(token);
	}
	mlsec_config_free(o.cfg);
	mlsec_shutdown_uninstall();
	mlsec_log_shutdown();
	return rc;
}
