/*
 * bench_infra - how long the cluster plumbing takes per job step, on this
 * machine: a synchronous acks=all produce, produce -> worker handler
 * (through mlsec-devbroker over TCP), handler -> offset committed, and the
 * Redis operations a stage does per job (result SET NX + event XADD).
 * Prints p50/p95/p99 and ratios against the produce round trip measured in
 * the same run.   bench_infra [messages (default 300)] [fetch.wait.max.ms]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlsec/log.h"
#include "mlsec/queue.h"
#include "mlsec/store.h"
#include "testenv.h"

#define BENCH_MAX 5000

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

#define IDLE_S 3

static double cpu_self(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* utime + stime of another process, in seconds. */
static double cpu_pid(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static double pct(long long *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i] / 1000.0;
}

typedef struct shared {
	atomic_llong recv_at;
	atomic_int got;
} shared;

static mlsec_queue_outcome handler(const mlsec_queue_msg *m, void *ctx)
{
	shared *s = ctx;
	(void)m;
	atomic_store(&s->recv_at, now_us());
	atomic_fetch_add(&s->got, 1);
	return MLSEC_QUEUE_DONE;
}

typedef struct wctx {
	mlsec_worker *w;
	shared *s;
} wctx;

static void *run(void *p)
{
	wctx *c = p;
	mlsec_worker_run(c->w, handler, c->s, NULL);
	return NULL;
}

static void report(const char *what, long long *v, int n, double base_p50)
{
	double p50 = pct(v, n, 0.50), p95 = pct(v, n, 0.95), p99 = pct(v, n, 0.99);
	printf("%-34s p50 %7.2f ms  p95 %7.2f ms  p99 %7.2f ms", what, p50, p95, p99);
	if (base_p50 > 0)
		printf("  (p50 x%.2f of produce ack)", p50 / base_p50);
	printf("\n");
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 300;
	if (n < 10 || n > BENCH_MAX) {
		fprintf(stderr, "usage: bench_infra [10..%d]\n", BENCH_MAX);
		return 1;
	}
	mlsec_log_setup(MLSEC_LOG_ERROR, MLSEC_LOG_TEXT, -1, "bench_infra");
	mlsec_testenv_proc broker, redis;
	if (mlsec_testenv_broker_start(&broker, 4) || mlsec_testenv_redis_start(&redis, 0, NULL))
		return 1;
	static long long ack[BENCH_MAX], e2e[BENCH_MAX], redis_us[BENCH_MAX];
	mlsec_error err;
	mlsec_producer *p;
	mlsec_queue_conf qc = {.brokers = broker.addr};
	if (mlsec_producer_new(&qc, &p, &err)) {
		fprintf(stderr, "%s\n", err.text);
		return 1;
	}
	const char *topics[] = {"mlsec.stage.triton", NULL};
	/* Optional 2nd argument: the consumer's fetch.wait.max.ms, to compare. */
	const char *props[] = {"fetch.wait.max.ms", argc > 2 ? argv[2] : NULL, NULL};
	mlsec_worker_conf wc = {.queue = qc, .group = "mlsec-bench", .topics = topics};
	if (argc > 2)
		wc.queue.props = props;
	shared s = {0};
	wctx c = {.s = &s};
	if (mlsec_worker_new(&wc, &c.w, &err)) {
		fprintf(stderr, "%s\n", err.text);
		return 1;
	}
	pthread_t t;
	pthread_create(&t, NULL, run, &c);
	/* Warm up: until the worker has joined the group and sees messages. */
	long long t0 = now_us();
	while (atomic_load(&s.got) == 0 && now_us() - t0 < 30000000LL) {
		mlsec_producer_send(p, topics[0], "warm", 4, "w", 1, 5000, &err);
		struct timespec ts = {0, 100000000L};
		nanosleep(&ts, NULL);
	}
	struct timespec settle = {1, 0};
	nanosleep(&settle, NULL);
	int measured = 0;
	for (int i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof key, "job%d", i);
		int before = atomic_load(&s.got);
		long long a = now_us();
		if (mlsec_producer_send(p, topics[0], key, strlen(key), key, strlen(key), 5000,
		                        &err))
			break;
		long long b = now_us();
		while (atomic_load(&s.got) == before && now_us() - a < 5000000LL)
			;
		ack[measured] = b - a;
		e2e[measured] = atomic_load(&s.recv_at) - a;
		measured++;
	}
	/* Idle cost of the polling consumer: CPU used by us and the broker
	 * during IDLE_S seconds without messages. */
	double self0 = cpu_self(), broker0 = cpu_pid(broker.pid);
	struct timespec idle = {IDLE_S, 0};
	nanosleep(&idle, NULL);
	double self_idle = (cpu_self() - self0) / IDLE_S * 100.0;
	double broker_idle = (cpu_pid(broker.pid) - broker0) / IDLE_S * 100.0;
	mlsec_worker_stop(c.w);
	pthread_join(t, NULL);
	mlsec_worker_free(c.w);

	mlsec_store *st;
	if (mlsec_store_new(redis.addr, 1000, 1000, &st, &err) || mlsec_store_ping(st, &err)) {
		fprintf(stderr, "%s\n", err.text);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char job[32];
		snprintf(job, sizeof job, "job%d", i);
		int created;
		long long a = now_us();
		if (mlsec_store_result_put(st, job, "triton", "{\"status\":\"ok\"}", 15, 60000,
		                           &created, &err) ||
		    mlsec_store_event_append(st, job, "{\"stage\":\"triton\"}", 18, 0, 60000, NULL,
		                             &err)) {
			fprintf(stderr, "redis: %s\n", err.text);
			return 1;
		}
		redis_us[i] = now_us() - a;
	}
	mlsec_store_free(st);
	mlsec_producer_free(p);
	mlsec_testenv_stop(&broker);
	mlsec_testenv_stop(&redis);

	printf("bench_infra: %d messages, 1 producer, 1 worker, mlsec-devbroker + redis-server on "
	       "loopback\n",
	       measured);
	long long copy[BENCH_MAX];
	memcpy(copy, ack, sizeof(long long) * (size_t)measured);
	double base = pct(copy, measured, 0.50);
	report("produce ack (acks=all, idempotent)", ack, measured, 0);
	report("produce -> worker handler", e2e, measured, base);
	report("redis result SET NX + event XADD", redis_us, n, base);
	printf("idle worker CPU: consumer %.1f%%, devbroker %.1f%% of one core\n", self_idle,
	       broker_idle);
	mlsec_log_shutdown();
	return 0;
}
