/*
 * loadgen.c - mlsec-loadgen: a bounded load generator for the cluster.
 * N client threads each loop Submit -> Watch-until-verdict against the
 * orchestrator (gRPC C core through common/rpc) and record the
 * submit->verdict latency of every job. Stops after --count jobs or
 * --duration seconds, whichever comes first; loopback endpoints only.
 *
 *   mlsec-loadgen --endpoint 127.0.0.1:P --uri config.pbtxt [--concurrency 8]
 *                 [--count 2000] [--duration 10] [--stages triton] [--token-file F]
 *
 * Prints jobs, errors, throughput (jobs/s) and p50/p95/p99/max latency (ms);
 * exit 0 when every job got a verdict, 1 otherwise.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlsec/alloc.h"
#include "mlsec/jobproto.h"
#include "mlsec/rpc.h"
#include "mlsec/v1/orchestrator.pb-c.h"

#define MAX_CONCURRENCY 256
#define MAX_COUNT 1000000
#define MAX_DURATION_S 600
#define CALL_TIMEOUT_MS 30000

typedef struct lg {
	const char *endpoint;
	const char *uri;
	const char *stage;
	char *token;
	int concurrency;
	long count;
	long duration_s;
	atomic_long issued;
	atomic_long errors;
	atomic_long verdicts[3];
	double deadline; /* monotonic seconds */
	double *lat_ms;  /* one slot per issued job */
	atomic_long nlat;
} lg;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One job: Submit, then Watch until the verdict. Returns the exit code of
 * the verdict (0..2) or -1 on failure. */
static int one_job(lg *g, mlsec_rpc_client *c)
{
	Mlsec__V1__Artifact art = MLSEC__V1__ARTIFACT__INIT;
	art.uri = (char *)g->uri;
	Mlsec__V1__Artifact *arts[] = {&art};
	char *stages[] = {(char *)g->stage};
	Mlsec__V1__SubmitRequest req = MLSEC__V1__SUBMIT_REQUEST__INIT;
	req.artifacts = arts;
	req.n_artifacts = 1;
	req.stages = stages;
	req.n_stages = 1;
	req.submitter = "loadgen";
	uint8_t *buf = NULL, *resp = NULL;
	size_t len = 0, resp_len = 0;
	mlsec_rpc_status st;
	if (mlsec_jobproto_pack(&req.base, &buf, &len) != MLSEC_OK)
		return -1;
	mlsec_err e = mlsec_rpc_client_unary(c, "/mlsec.v1.Orchestrator/Submit", buf, len,
	                                     CALL_TIMEOUT_MS, &resp, &resp_len, &st);
	mlsec_free(buf);
	if (e != MLSEC_OK) {
		fprintf(stderr, "submit: %s: %s\n", mlsec_rpc_status_name(st.code), st.message);
		return -1;
	}
	Mlsec__V1__SubmitResponse *sr = mlsec__v1__submit_response__unpack(NULL, resp_len, resp);
	mlsec_free(resp);
	if (!sr)
		return -1;
	Mlsec__V1__WatchRequest wr = MLSEC__V1__WATCH_REQUEST__INIT;
	wr.job_id = sr->job_id;
	int verdict = -1;
	if (mlsec_jobproto_pack(&wr.base, &buf, &len) == MLSEC_OK) {
		mlsec_rpc_stream *s = NULL;
		if (mlsec_rpc_client_open(c, "/mlsec.v1.Orchestrator/Watch",
		                          MLSEC_RPC_SERVER_STREAM, buf, len, CALL_TIMEOUT_MS, &s,
		                          NULL) == MLSEC_OK) {
			uint8_t *msg;
			size_t mlen;
			while (verdict < 0 && mlsec_rpc_stream_recv(s, 0, &msg, &mlen) == 1) {
				Mlsec__V1__JobEvent *ev =
				        mlsec__v1__job_event__unpack(NULL, mlen, msg);
				mlsec_free(msg);
				if (ev && ev->type == MLSEC__V1__EVENT_TYPE__EVENT_TYPE_VERDICT &&
				    ev->verdict)
					verdict = ev->verdict->exit_code;
				if (ev)
					mlsec__v1__job_event__free_unpacked(ev, NULL);
			}
			mlsec_rpc_stream_finish(s, NULL, NULL, &st);
			mlsec_rpc_stream_free(s);
		}
		mlsec_free(buf);
	}
	mlsec__v1__submit_response__free_unpacked(sr, NULL);
	return verdict >= 0 && verdict <= 2 ? verdict : -1;
}

static void *client_main(void *arg)
{
	lg *g = arg;
	mlsec_rpc_client_opts co = {0};
	co.target = g->endpoint;
	co.token = g->token;
	mlsec_rpc_client *c = NULL;
	if (mlsec_rpc_client_new(&co, &c, NULL) != MLSEC_OK) {
		atomic_fetch_add(&g->errors, 1);
		return NULL;
	}
	for (;;) {
		long n = atomic_fetch_add(&g->issued, 1);
		if (n >= g->count || now_s() >= g->deadline) {
			atomic_fetch_sub(&g->issued, 1);
			break;
		}
		double t0 = now_s();
		int v = one_job(g, c);
		double ms = (now_s() - t0) * 1000.0;
		if (v < 0) {
			atomic_fetch_add(&g->errors, 1);
			continue;
		}
		atomic_fetch_add(&g->verdicts[v], 1);
		g->lat_ms[atomic_fetch_add(&g->nlat, 1)] = ms;
	}
	mlsec_rpc_client_free(c);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
	if (n == 0)
		return 0;
	long i = (long)(p * (double)(n - 1) + 0.5);
	return v[i];
}

static int loopback_endpoint(const char *ep)
{
	char host[128];
	const char *colon = strrchr(ep, ':');
	if (!colon || (size_t)(colon - ep) >= sizeof(host))
		return 0;
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	struct in_addr a;
	if (!strcmp(host, "localhost") || !strcmp(host, "[::1]"))
		return 1;
	return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static void usage(void)
{
	fprintf(stderr, "usage: mlsec-loadgen --endpoint 127.0.0.1:PORT --uri ARTIFACT_URI "
	                "[--concurrency N] [--count N] [--duration SECS] [--stages STAGE] "
	                "[--token-file F]\n");
}

int main(int argc, char **argv)
{
	static lg g;
	g.endpoint = getenv("MLSEC_ENDPOINT");
	g.stage = "triton";
	g.concurrency = 8;
	g.count = 2000;
	g.duration_s = 10;
	const char *token_file = getenv("MLSEC_TOKEN_FILE");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 1;
		}
		if (!strcmp(a, "--endpoint"))
			g.endpoint = v;
		else if (!strcmp(a, "--uri"))
			g.uri = v;
		else if (!strcmp(a, "--stages"))
			g.stage = v;
		else if (!strcmp(a, "--token-file"))
			token_file = v;
		else if (!strcmp(a, "--concurrency"))
			g.concurrency = atoi(v);
		else if (!strcmp(a, "--count"))
			g.count = atol(v);
		else if (!strcmp(a, "--duration"))
			g.duration_s = atol(v);
		else {
			usage();
			return 1;
		}
		i++;
	}
	if (!g.endpoint || !g.uri || g.concurrency < 1 || g.concurrency > MAX_CONCURRENCY ||
	    g.count < 1 || g.count > MAX_COUNT || g.duration_s < 1 ||
	    g.duration_s > MAX_DURATION_S) {
		usage();
		return 1;
	}
	if (!loopback_endpoint(g.endpoint)) {
		fprintf(stderr, "mlsec-loadgen: loopback endpoints only, not %s\n", g.endpoint);
		return 1;
	}
	if (token_file && *token_file &&
	    mlsec_rpc_token_read(token_file, &g.token, NULL) != MLSEC_OK) {
		fprintf(stderr, "mlsec-loadgen: cannot read token file %s\n", token_file);
		return 1;
	}
	g.lat_ms = mlsec_calloc((size_t)g.count, sizeof(double));
	pthread_t *th = mlsec_calloc((size_t)g.concurrency, sizeof(pthread_t));
	if (!g.lat_ms || !th)
		return 1;
	double t0 = now_s();
	g.deadline = t0 + (double)g.duration_s;
	int started = 0;
	for (int i = 0; i < g.concurrency; i++)
		if (pthread_create(&th[i], NULL, client_main, &g) == 0)
			started++;
		else
			break;
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double wall = now_s() - t0;
	long n = atomic_load(&g.nlat);
	qsort(g.lat_ms, (size_t)n, sizeof(double), cmp_double);
	long errors = atomic_load(&g.errors);
	printf("mlsec-loadgen: concurrency=%d jobs=%ld errors=%ld verdicts(0/1/2)=%ld/%ld/%ld "
	       "wall=%.2fs\n",
	       g.concurrency, n, errors, atomic_load(&g.verdicts[0]), atomic_load(&g.verdicts[1]),
	       atomic_load(&g.verdicts[2]), wall);
	printf("throughput: %.1f jobs/s\n", wall > 0 ? (double)n / wall : 0.0);
	printf("latency submit->verdict ms: p50=%.2f p95=%.2f p99=%.2f max=%.2f\n",
	       pct(g.lat_ms, n, 0.50), pct(g.lat_ms, n, 0.95), pct(g.lat_ms, n, 0.99),
	       n ? g.lat_ms[n - 1] : 0.0);
	mlsec_free(g.lat_ms);
	mlsec_free(th);
	if (g.token)
		mlsec_free(g.token);
	return errors == 0 && n > 0 ? 0 : 1;
}
