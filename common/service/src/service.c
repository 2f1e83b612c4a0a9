/*
 * service.c - mlsec_service_main(): config, Kafka workers, Redis, gRPC
 * Analyzer + health, graceful shutdown (see service.h).
 *
 * Threads: the main thread parses config, starts everything and waits for
 * SIGTERM/SIGINT; each Kafka worker thread owns one mlsec_worker and one
 * mlsec_store (stores are not thread-safe); the producer is shared; gRPC
 * handlers run on the rpc layer's worker pool and touch neither Kafka nor
 * Redis.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/artifacts.h"
#include "mlsec/config.h"
#include "mlsec/fsutil.h"
#include "mlsec/jobproto.h"
#include "mlsec/log.h"
#include "mlsec/queue.h"
#include "mlsec/rpc.h"
#include "mlsec/service.h"
#include "mlsec/service_health.h"
#include "mlsec/service_metrics.h"
#include "mlsec/shutdown.h"
#include "mlsec/store.h"
#include "service_state.h"
#include "mlsec/v1/analyzer.pb-c.h"

#define SERVICE_MAX_WORKERS 64
#define SERVICE_MAX_ARTIFACTS 10000 /* per request */
#define SERVICE_MAX_OPTIONS_JSON (64 * 1024)
#define SERVICE_PRODUCE_TIMEOUT_MS 10000
#define SERVICE_STOP_GRACE_MS 5000

typedef struct service {
	const mlsec_engine *engine;
	mlsec_config *cfg;
	const char *root; /* as configured */
	char *root_real;  /* realpath, for relative uris */
	uint64_t max_bytes;
	long long result_ttl_ms;
	char worker_id[128];
	char topic[128];
	char group[128];
	mlsec_producer *producer;
	mlsec_store *store;             /* template, cloned per worker thread */
	volatile int cancel;            /* set on shutdown: engines stop early */
	mlsec_service_metrics *metrics; /* NULL when --metrics-listen is unset */
} service;

typedef struct kworker {
	service *svc;
	pthread_t thread;
	int started;
	mlsec_worker *w;
	mlsec_store *store;
	mlsec_err rc;
} kworker;

static const mlsec_config_option service_options[] = {
        {"grpc-listen", MLSEC_CONFIG_STRING, "127.0.0.1:50061", 0, 0, NULL, "MLSEC_GRPC_LISTEN", 0,
         "gRPC listen address (Analyzer/Analyze, health); port 0 picks a free port"},
        {"grpc-threads", MLSEC_CONFIG_INT, "8", 1, MLSEC_RPC_MAX_THREADS, NULL,
         "MLSEC_GRPC_THREADS", 0, "concurrent gRPC calls served"},
        {"tls-cert", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TLS_CERT", 0,
         "PEM server certificate: serve gRPC over TLS"},
        {"tls-key", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TLS_KEY", 0, "PEM private key"},
        {"tls-ca", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TLS_CA", 0,
         "PEM CA: require and verify client certificates (mutual TLS)"},
        {"auth-token-file", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_AUTH_TOKEN_FILE", 0,
         "file holding the bearer token Analyze callers must present"},
        {"kafka-workers", MLSEC_CONFIG_INT, "1", 0, SERVICE_MAX_WORKERS, NULL,
         "MLSEC_KAFKA_WORKERS", 0, "Kafka consumer threads (0 = gRPC only, no Kafka/Redis)"},
        {"max-artifact-bytes", MLSEC_CONFIG_INT, "4294967296", 1, LLONG_MAX, NULL,
         "MLSEC_MAX_ARTIFACT_BYTES", 0, "largest artifact analysed"},
        {"result-ttl-s", MLSEC_CONFIG_INT, "604800", 0, 31536000, NULL, "MLSEC_RESULT_TTL_S", 0,
         "lifetime of stage results in Redis (0 = forever)"},
        {"metrics-listen", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_METRICS_LISTEN", 0,
         "serve Prometheus /metrics on HOST:PORT or :PORT (unset = off)"},
        {"health-listen", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_HEALTH_LISTEN", 0,
         "also serve grpc.health.v1 alone, in plain text, on HOST:PORT (kubelet probes of a TLS "
         "server); unset = off"},
        {"health-interval-ms", MLSEC_CONFIG_INT, "2000", 100, 60000, NULL,
         "MLSEC_HEALTH_INTERVAL_MS", 0,
         "how often Redis and Kafka are checked for readiness (NOT_SERVING while unreachable)"},
        {"kafka-stats-interval-ms", MLSEC_CONFIG_INT, "5000", 100, 3600000, NULL,
         "MLSEC_KAFKA_STATS_INTERVAL_MS", 0,
         "how often consumer lag is refreshed on /metrics (with --metrics-listen)"},
        {"ready-file", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_READY_FILE", 0,
         "write the bound gRPC address here once serving (for scripts and tests)"},
};

/* Reads the whole of the request's artifacts through the confinement and
 * digest checks, runs the engine, packs a StageResult. Never fails except
 * on allocation: problems become an ERROR result. */
static mlsec_err service_run_request(service *svc, mlsec_store *store,
                                     const Mlsec__V1__StageRequest *req, uint8_t **out, size_t *len)
{
	char state_key[MLSEC_SERVICE_STATE_MAX_KEY + 1] = "";
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const char *stage = svc->engine->stage;
	mlsec_severity gate = mlsec_jobproto_severity_from_pb(req->gate);
	mlsec_error err;
	mlsec_error_clear(&err);
	char msg[1024] = "";
	mlsec_err rc = MLSEC_OK;
	char **paths = NULL;
	mlsec_artifact_stamp *stamps = NULL;
	size_t npaths = 0;
	json_t *options = NULL;
	mlsec_report *rep = NULL;

	if (req->n_artifacts == 0 || req->n_artifacts > SERVICE_MAX_ARTIFACTS) {
		rc = MLSEC_ERR_INVALID_ARG;
		snprintf(msg, sizeof(msg), "request must carry 1..%d artifacts",
		         SERVICE_MAX_ARTIFACTS);
	} else if (req->stage && *req->stage && strcmp(req->stage, stage)) {
		rc = MLSEC_ERR_INVALID_ARG;
		snprintf(msg, sizeof(msg), "request for stage %.64s sent to the %s service",
		         req->stage, stage);
	} else if (req->deadline_unix_ms > 0 && mlsec_jobproto_now_ms() > req->deadline_unix_ms) {
		rc = MLSEC_ERR_TIMEOUT;
		snprintf(msg, sizeof(msg), "deadline passed before the %s stage started", stage);
	}
	if (rc == MLSEC_OK && req->options_json && *req->options_json) {
		json_error_t je;
		if (strlen(req->options_json) > SERVICE_MAX_OPTIONS_JSON ||
		    !(options = json_loads(req->options_json, JSON_REJECT_DUPLICATES, &je)) ||
		    !json_is_object(options)) {
			rc = MLSEC_ERR_INVALID_ARG;
			snprintf(msg, sizeof(msg), "options_json must be a JSON object");
		}
	}
	if (rc == MLSEC_OK) {
		paths = mlsec_calloc(req->n_artifacts, sizeof(char *));
		stamps = mlsec_calloc(req->n_artifacts, sizeof(*stamps));
		if (!paths || !stamps) {
			mlsec_free(paths);
			mlsec_free(stamps);
			json_decref(options);
			return MLSEC_ERR_NOMEM;
		}
		for (size_t i = 0; i < req->n_artifacts && rc == MLSEC_OK; i++) {
			const Mlsec__V1__Artifact *a = req->artifacts[i];
			rc = mlsec_artifact_resolve_stamped(svc->root, a->uri, svc->max_bytes,
			                                    a->sha256, &paths[i], NULL, NULL,
			                                    &stamps[i], &err);
			if (rc == MLSEC_OK)
				npaths++;
			else
				snprintf(msg, sizeof(msg), "%s", err.text);
		}
	}
	if (rc == MLSEC_OK) {
		mlsec_error_clear(&err);
		rc = service_state_load(svc->engine, store, req, &options, state_key,
		                        sizeof(state_key), &err);
		if (rc == MLSEC_ERR_UNAVAILABLE) { /* Redis: retry the job later */
			MLSEC_LOG(MLSEC_LOG_WARN, req->job_id, "redis: %s (will retry)", err.text);
			for (size_t i = 0; paths && i < req->n_artifacts; i++)
				mlsec_free(paths[i]);
			mlsec_free(paths);
			mlsec_free(stamps);
			json_decref(options);
			return MLSEC_ERR_UNAVAILABLE;
		}
		if (rc != MLSEC_OK)
			snprintf(msg, sizeof(msg), "%s", err.text);
	}
	if (rc == MLSEC_OK) {
		rep = mlsec_report_new(stage);
		if (!rep) {
			rc = MLSEC_ERR_NOMEM;
		} else {
			mlsec_engine_request er = {0};
			er.paths = (const char *const *)paths;
			er.npaths = npaths;
			er.options = options;
			er.artifact_root = svc->root;
			er.cancel = &svc->cancel;
			mlsec_error_clear(&err);
			rc = svc->engine->analyze(&er, rep, &err);
			if (rc != MLSEC_OK)
				snprintf(msg, sizeof(msg), "%s: %s", mlsec_strerror(rc),
				         err.text[0] ? err.text : "engine failed");
		}
	}
	/* The engine reopened the paths: if any file was swapped or modified
	 * since it was verified, the report may describe other bytes. Never a
	 * clean result: a stage ERROR. */
	for (size_t i = 0; rep && i < npaths; i++) {
		mlsec_error_clear(&err);
		if (mlsec_artifact_stamp_check(paths[i], &stamps[i], &err) != MLSEC_OK) {
			rc = MLSEC_ERR_INTEGRITY;
			snprintf(msg, sizeof(msg), "%s", err.text);
			mlsec_report_free(rep);
			rep = NULL;
			break;
		}
	}
	if (rc == MLSEC_OK && state_key[0]) {
		mlsec_error_clear(&err);
		if (service_state_save(svc->engine, store, state_key, rep, &err) != MLSEC_OK) {
			MLSEC_LOG(MLSEC_LOG_WARN, req->job_id, "redis: %s (will retry)", err.text);
			mlsec_report_free(rep);
			for (size_t i = 0; paths && i < req->n_artifacts; i++)
				mlsec_free(paths[i]);
			mlsec_free(paths);
			mlsec_free(stamps);
			json_decref(options);
			return MLSEC_ERR_UNAVAILABLE;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long long ms =
	        (long long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	mlsec_err pe =
	        mlsec_jobproto_result_pack(req->job_id, stage, rep, rc, msg[0] ? msg : NULL,
	                                   svc->root_real, gate, ms, svc->worker_id, out, len);
	if (rc != MLSEC_OK)
		MLSEC_LOG(MLSEC_LOG_WARN, req->job_id, "stage error: %s", msg);
	if (!(rc == MLSEC_ERR_TIMEOUT && svc->cancel)) /* a handed-back job is not done */
		mlsec_service_metrics_analysis(svc->metrics, stage, rc, rep, gate,
		                               (double)ms / 1000.0);
	mlsec_report_free(rep);
	for (size_t i = 0; paths && i < req->n_artifacts; i++)
		mlsec_free(paths[i]);
	mlsec_free(paths);
	mlsec_free(stamps);
	json_decref(options);
	return pe == MLSEC_OK && rc == MLSEC_ERR_TIMEOUT && svc->cancel ? MLSEC_ERR_TIMEOUT : pe;
}

/* Kafka: one StageRequest. */
static mlsec_queue_outcome service_handle(const mlsec_queue_msg *m, void *ctx)
{
	kworker *kw = ctx;
	service *svc = kw->svc;
	mlsec_error err;
	mlsec_error_clear(&err);
	Mlsec__V1__StageRequest *req =
	        mlsec__v1__stage_request__unpack(NULL, m->len, (const uint8_t *)m->value);
	if (!req || !req->job_id || !*req->job_id) {
		MLSEC_LOGW("dropping malformed StageRequest at %s[%d]@%lld", m->topic,
		           (int)m->partition, (long long)m->offset);
		if (req)
			mlsec__v1__stage_request__free_unpacked(req, NULL);
		return MLSEC_QUEUE_DONE;
	}
	mlsec_log_set_job(req->job_id);
	const char *stage = svc->engine->stage;
	uint8_t *res = NULL;
	size_t res_len = 0;
	char *stored = NULL;
	size_t stored_len = 0;
	mlsec_queue_outcome out = MLSEC_QUEUE_RETRY;

	/* A redelivery after a crash between store and commit: publish the
	 * stored result again rather than analysing twice. */
	mlsec_err e =
	        mlsec_store_result_get(kw->store, req->job_id, stage, &stored, &stored_len, &err);
	if (e == MLSEC_ERR_INVALID_ARG) {
		MLSEC_LOGW("dropping StageRequest with a bad job id");
		out = MLSEC_QUEUE_DONE;
		goto done;
	}
	if (e != MLSEC_OK && e != MLSEC_ERR_NOT_FOUND) {
		MLSEC_LOGW("redis: %s (will retry)", err.text);
		goto done;
	}
	if (e == MLSEC_ERR_NOT_FOUND) {
		MLSEC_LOGD("analysing %zu artifact(s)", req->n_artifacts);
		e = service_run_request(svc, kw->store, req, &res, &res_len);
		if (e == MLSEC_ERR_TIMEOUT) { /* shutting down: hand the job back */
			mlsec_free(res);
			res = NULL;
			goto done;
		}
		if (e != MLSEC_OK)
			goto done;
		int created = 0;
		e = mlsec_store_result_put(kw->store, req->job_id, stage, res, res_len,
		                           svc->result_ttl_ms, &created, &err);
		if (e != MLSEC_OK) {
			MLSEC_LOGW("redis: %s (will retry)", err.text);
			goto done;
		}
		if (!created) { /* another replica won: publish its result */
			mlsec_free(res);
			res = NULL;
			e = mlsec_store_result_get(kw->store, req->job_id, stage, &stored,
			                           &stored_len, &err);
			if (e != MLSEC_OK)
				goto done;
		}
	} else {
		MLSEC_LOGI("result already stored: re-publishing");
	}
	const void *pub = res ? (const void *)res : (const void *)stored;
	size_t pub_len = res ? res_len : stored_len;
	e = mlsec_producer_send(svc->producer, MLSEC_TOPIC_RESULTS, req->job_id,
	                        strlen(req->job_id), pub, pub_len, SERVICE_PRODUCE_TIMEOUT_MS,
	                        &err);
	if (e != MLSEC_OK) {
		MLSEC_LOGW("kafka: %s (will retry)", err.text);
		goto done;
	}
	MLSEC_LOGI("result published");
	out = MLSEC_QUEUE_DONE;
done:
	mlsec_free(res);
	mlsec_free(stored);
	mlsec__v1__stage_request__free_unpacked(req, NULL);
	return out;
}

const char **mlsec_service_consumer_props(const char *const *user)
{
	static const char *const defaults[] = {"fetch.wait.max.ms", "5", NULL};
	size_t nd = 0, nu = 0;
	while (defaults[nd])
		nd++;
	while (user && user[nu])
		nu++;
	const char **out = mlsec_calloc(nd + nu + 1, sizeof(char *));
	if (!out)
		return NULL;
	memcpy(out, defaults, nd * sizeof(char *));
	if (nu)
		memcpy(out + nd, user, nu * sizeof(char *));
	return out;
}

static void *kworker_main(void *arg)
{
	kworker *kw = arg;
	mlsec_error err;
	mlsec_error_clear(&err);
	kw->rc = mlsec_worker_run(kw->w, service_handle, kw, &err);
	if (kw->rc != MLSEC_OK) {
		MLSEC_LOGE("kafka worker stopped: %s", err.text);
		mlsec_shutdown_request();
	}
	return NULL;
}

/* A worker's librdkafka statistics -> mlsec_kafka_consumer_lag. */
static void kworker_stats(const char *json, size_t len, void *ctx)
{
	mlsec_service_metrics_kafka_stats(ctx, json, len);
}

/* gRPC: mlsec.v1.Analyzer/Analyze. */
static grpc_status_code service_analyze(mlsec_rpc_call *call, const uint8_t *in, size_t in_len,
                                        uint8_t **resp, size_t *resp_len, void *ctx)
{
	service *svc = ctx;
	Mlsec__V1__StageRequest *req = mlsec__v1__stage_request__unpack(NULL, in_len, in);
	if (!req) {
		mlsec_rpc_call_set_message(call, "malformed StageRequest");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (req->n_artifacts == 0) {
		mlsec__v1__stage_request__free_unpacked(req, NULL);
		mlsec_rpc_call_set_message(call, "no artifacts");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	mlsec_err e = service_run_request(svc, NULL, req, resp, resp_len);
	mlsec__v1__stage_request__free_unpacked(req, NULL);
	if (e != MLSEC_OK) {
		mlsec_rpc_call_set_message(call, "%s", mlsec_strerror(e));
		return mlsec_rpc_status_from_err(e);
	}
	return GRPC_STATUS_OK;
}

static int write_ready_file(const char *path, int port)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "127.0.0.1:%d\n", port);
	mlsec_error err;
	return mlsec_file_write_atomic(path, buf, (size_t)n, 0644, &err) == MLSEC_OK ? 0 : -1;
}

typedef struct hook_thread {
	const mlsec_service_hooks *hooks;
	const mlsec_config *cfg;
	pthread_t thread;
	int started;
} hook_thread;

static void *hook_main(void *arg)
{
	hook_thread *ht = arg;
	mlsec_error err;
	mlsec_error_clear(&err);
	const char *name = ht->hooks->name ? ht->hooks->name : "extension";
	mlsec_err e = ht->hooks->worker(ht->cfg, ht->hooks->ctx, &err);
	if (e != MLSEC_OK) {
		MLSEC_LOGE("%s stopped: %s", name, err.text[0] ? err.text : mlsec_strerror(e));
		mlsec_shutdown_request();
	}
	return NULL;
}

int mlsec_service_main(int argc, char **argv, const mlsec_engine *engine)
{
	return mlsec_service_main_ex(argc, argv, engine, NULL);
}

int mlsec_service_main_ex(int argc, char **argv, const mlsec_engine *engine,
                          const mlsec_service_hooks *hooks)
{
	hook_thread ht;
	memset(&ht, 0, sizeof(ht));
	service svc;
	memset(&svc, 0, sizeof(svc));
	svc.engine = engine;
	char prog[96];
	snprintf(prog, sizeof(prog), "mlsec-%sd", engine->stage);
	mlsec_error err;
	mlsec_error_clear(&err);
	int rc = 1;
	mlsec_rpc_server *srv = NULL;
	kworker *kws = NULL;
	long long nworkers = 0;
	char *token = NULL;
	const char **cprops = NULL;
	mlsec_service_health *health = NULL;

	svc.cfg = mlsec_config_new(prog, engine->summary, "[options]");
	mlsec_config_help help = MLSEC_CONFIG_HELP_NONE;
	if (!svc.cfg ||
	    mlsec_config_add_std(svc.cfg,
	                         MLSEC_CONFIG_STD_LOG | MLSEC_CONFIG_STD_KAFKA |
	                                 MLSEC_CONFIG_STD_REDIS | MLSEC_CONFIG_STD_ARTIFACT_ROOT,
	                         &err) != MLSEC_OK ||
	    mlsec_config_add(svc.cfg, service_options,
	                     sizeof(service_options) / sizeof(service_options[0]),
	                     &err) != MLSEC_OK ||
	    (hooks && hooks->add_options && hooks->add_options(svc.cfg, &err) != MLSEC_OK) ||
	    mlsec_config_parse(svc.cfg, argc, argv, &help, &err) != MLSEC_OK) {
		fprintf(stderr, "%s: %s\n", prog, err.text[0] ? err.text : "out of memory");
		goto out;
	}
	if (help == MLSEC_CONFIG_HELP_TEXT) {
		mlsec_config_print_help(svc.cfg, stdout);
		rc = 0;
		goto out;
	}
	if (help == MLSEC_CONFIG_HELP_MARKDOWN) {
		mlsec_config_print_markdown(svc.cfg, stdout);
		rc = 0;
		goto out;
	}
	if (mlsec_config_argc(svc.cfg) > 0) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog,
		        mlsec_config_argv(svc.cfg)[0]);
		goto out;
	}
	mlsec_log_level lvl = MLSEC_LOG_INFO;
	mlsec_log_format fmt = MLSEC_LOG_TEXT;
	mlsec_log_level_parse(mlsec_config_get(svc.cfg, "log-level"), &lvl);
	mlsec_log_format_parse(mlsec_config_get(svc.cfg, "log-format"), &fmt);
	mlsec_log_setup(lvl, fmt, -1, prog);
	mlsec_config_log_effective(svc.cfg);

	svc.root = mlsec_config_get(svc.cfg, "artifact-root");
	svc.root_real = svc.root ? realpath(svc.root, NULL) : NULL;
	if (!svc.root_real) {
		MLSEC_LOGE("artifact root %s does not exist", svc.root ? svc.root : "(unset)");
		goto out;
	}
	svc.max_bytes = (uint64_t)mlsec_config_get_int(svc.cfg, "max-artifact-bytes");
	svc.result_ttl_ms = mlsec_config_get_int(svc.cfg, "result-ttl-s") * 1000;
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(svc.worker_id, sizeof(svc.worker_id), "%s:%ld", host, (long)getpid());
	if (mlsec_queue_stage_topic(engine->stage, svc.topic, sizeof(svc.topic)) != MLSEC_OK) {
		MLSEC_LOGE("bad stage name %s", engine->stage);
		goto out;
	}
	snprintf(svc.group, sizeof(svc.group), "%s%s", MLSEC_GROUP_PREFIX, engine->stage);
	if (mlsec_shutdown_install(&err) != MLSEC_OK) {
		MLSEC_LOGE("%s", err.text);
		goto out;
	}

	const char *tf = mlsec_config_get(svc.cfg, "auth-token-file");
	if (tf && *tf && mlsec_rpc_token_read(tf, &token, &err) != MLSEC_OK) {
		MLSEC_LOGE("%s", err.text);
		goto out;
	}
	if (token)
		mlsec_log_add_secret(token);

	nworkers = mlsec_config_get_int(svc.cfg, "kafka-workers");
	if (nworkers > 0) {
		const char *url = mlsec_config_get(svc.cfg, "redis-url");
		int rto = (int)mlsec_config_get_int(svc.cfg, "redis-timeout-ms");
		if (mlsec_store_new(url, rto, rto, &svc.store, &err) != MLSEC_OK ||
		    mlsec_store_set_password_file(svc.store,
		                                  mlsec_config_get(svc.cfg, "redis-password-file"),
		                                  &err) != MLSEC_OK) {
			MLSEC_LOGE("redis: %s", err.text);
			goto out;
		}
		mlsec_queue_conf qc = {mlsec_config_get(svc.cfg, "kafka-brokers"), prog,
		                       mlsec_config_kafka_props(svc.cfg)};
		if (mlsec_producer_new(&qc, &svc.producer, &err) != MLSEC_OK) {
			MLSEC_LOGE("kafka: %s", err.text);
			goto out;
		}
	}

	mlsec_rpc_server_opts so = {0};
	so.listen = mlsec_config_get(svc.cfg, "grpc-listen");
	so.cert_file = mlsec_config_get(svc.cfg, "tls-cert");
	so.key_file = mlsec_config_get(svc.cfg, "tls-key");
	so.ca_file = mlsec_config_get(svc.cfg, "tls-ca");
	so.auth_token = token;
	so.threads = (int)mlsec_config_get_int(svc.cfg, "grpc-threads");
	if (mlsec_rpc_server_new(&so, &srv, &err) != MLSEC_OK ||
	    mlsec_rpc_server_add_method(srv, "/mlsec.v1.Analyzer/Analyze", MLSEC_RPC_UNARY,
	                                service_analyze, &svc, 0) != MLSEC_OK ||
	    mlsec_service_metrics_start(prog, mlsec_config_get(svc.cfg, "metrics-listen"), srv,
	                                &svc.metrics, &err) != MLSEC_OK ||
	    mlsec_rpc_server_start(srv, &err) != MLSEC_OK) {
		MLSEC_LOGE("grpc: %s", err.text[0] ? err.text : "cannot start");
		goto out;
	}
	mlsec_rpc_server_set_serving(srv, "mlsec.v1.Analyzer", 1);
	mlsec_service_health_conf hc = {0};
	hc.srv = srv;
	hc.service = "mlsec.v1.Analyzer";
	hc.store = svc.store;
	hc.producer = svc.producer;
	hc.interval_ms = (int)mlsec_config_get_int(svc.cfg, "health-interval-ms");
	hc.listen = mlsec_config_get(svc.cfg, "health-listen");
	if (mlsec_service_health_start(&hc, &health, &err) != MLSEC_OK) {
		MLSEC_LOGE("health: %s", err.text);
		goto out;
	}

	if (nworkers > 0) {
		kws = mlsec_calloc((size_t)nworkers, sizeof(kworker));
		if (!kws)
			goto out;
		const char *topics[] = {svc.topic, NULL};
		cprops = mlsec_service_consumer_props(mlsec_config_kafka_props(svc.cfg));
		if (!cprops)
			goto out;
		for (long long i = 0; i < nworkers; i++) {
			kworker *kw = &kws[i];
			kw->svc = &svc;
			mlsec_worker_conf wc = {0};
			wc.queue.brokers = mlsec_config_get(svc.cfg, "kafka-brokers");
			wc.queue.client_id = prog;
			wc.queue.props = cprops;
			wc.group = svc.group;
			wc.topics = topics;
			wc.watch_shutdown = 1;
			if (svc.metrics) {
				wc.stats_cb = kworker_stats;
				wc.stats_ctx = svc.metrics;
				wc.stats_interval_ms = (int)mlsec_config_get_int(
				        svc.cfg, "kafka-stats-interval-ms");
			}
			if (mlsec_store_clone(svc.store, &kw->store, &err) != MLSEC_OK ||
			    mlsec_worker_new(&wc, &kw->w, &err) != MLSEC_OK) {
				MLSEC_LOGE("kafka worker: %s", err.text);
				goto out;
			}
			if (pthread_create(&kw->thread, NULL, kworker_main, kw) != 0) {
				MLSEC_LOGE("cannot start a worker thread");
				goto out;
			}
			kw->started = 1;
		}
	}
	if (hooks && hooks->worker) {
		ht.hooks = hooks;
		ht.cfg = svc.cfg;
		if (pthread_create(&ht.thread, NULL, hook_main, &ht) != 0) {
			MLSEC_LOGE("cannot start the %s thread",
			           hooks->name ? hooks->name : "extension");
			goto out;
		}
		ht.started = 1;
	}
	const char *ready = mlsec_config_get(svc.cfg, "ready-file");
	if (ready && *ready && write_ready_file(ready, mlsec_rpc_server_port(srv)) != 0)
		MLSEC_LOGW("cannot write ready file %s", ready);
	MLSEC_LOGI("serving stage %s on 127.0.0.1:%d (gRPC), %lld Kafka worker(s) on %s",
	           engine->stage, mlsec_rpc_server_port(srv), nworkers, svc.topic);

	mlsec_shutdown_wait(-1);
	MLSEC_LOGI("shutting down");
	rc = 0;
out:
	svc.cancel = 1;
	if (srv) {
		mlsec_rpc_server_set_serving(srv, "", 0);
		mlsec_rpc_server_set_serving(srv, "mlsec.v1.Analyzer", 0);
	}
	if (ht.started) { /* it watches the shutdown flag */
		mlsec_shutdown_request();
		pthread_join(ht.thread, NULL);
	}
	for (long long i = 0; kws && i < nworkers; i++)
		if (kws[i].w)
			mlsec_worker_stop(kws[i].w);
	for (long long i = 0; kws && i < nworkers; i++) {
		if (kws[i].started)
			pthread_join(kws[i].thread, NULL);
		mlsec_worker_free(kws[i].w);
		mlsec_store_free(kws[i].store);
	}
	mlsec_free(kws);
	mlsec_free(cprops);
	mlsec_service_health_stop(health);
	if (srv)
		mlsec_rpc_server_stop(srv, SERVICE_STOP_GRACE_MS);
	mlsec_rpc_server_free(srv);
	mlsec_service_metrics_stop(svc.metrics);
	mlsec_producer_free(svc.producer);
	mlsec_store_free(svc.store);
	free(svc.root_real);
	if (token) {
		memset(token, 0, strlen(token));
		mlsec_free(token);
	}
	mlsec_config_free(svc.cfg);
	mlsec_shutdown_uninstall();
	mlsec_log_shutdown();
	return rc;
}
