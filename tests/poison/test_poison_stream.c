/*
 * test_poison_stream.c - mlsec-poison-streamd against a real redis-server
 * and mlsec-devbroker on loopback: gradient records in on mlsec.gradients,
 * alerts out on mlsec.alerts, and a restart that resumes from the state in
 * Redis (a spike inside what would be a fresh detector's warm-up is only
 * caught when the state was restored).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "mlsec/alloc.h"
#include "mlsec/poison.h"
#include "mlsec/poison_stream.h"
#include "mlsec/queue.h"
#include "mlsec/store.h"
#include "testenv.h"

#define WAIT_MS 60000
#define MAX_ALERTS 64

static mlsec_testenv_proc g_redis, g_broker;
static mlsec_producer *g_prod;
static mlsec_store *g_store;

typedef struct sink {
	pthread_mutex_t lock;
	pthread_t thread;
	mlsec_worker *w;
	char alerts[MAX_ALERTS][1024];
	int n;
} sink;
static sink g_sink;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static mlsec_queue_outcome on_alert(const mlsec_queue_msg *m, void *ctx)
{
	sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->n < MAX_ALERTS) {
		size_t n = m->len < sizeof s->alerts[0] - 1 ? m->len : sizeof s->alerts[0] - 1;
		memcpy(s->alerts[s->n], m->value, n);
		s->alerts[s->n][n] = '\0';
		s->n++;
	}
	pthread_mutex_unlock(&s->lock);
	return MLSEC_QUEUE_DONE;
}

static void *sink_main(void *p)
{
	sink *s = p;
	mlsec_worker_run(s->w, on_alert, s, NULL);
	return NULL;
}

static pid_t start_daemon(void)
{
	char bin[1024];
	mlsec_testenv_bin("mlsec-poison-streamd", bin, sizeof bin);
	pid_t pid = fork();
	if (pid == 0) {
		execl(bin, bin, "--kafka-brokers", g_broker.addr, "--redis-url", g_redis.addr,
		      "--checkpoint-every", "40", "--expected-workers", "4", "--log-level", "warn",
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int stop_daemon(pid_t pid)
{
	kill(pid, SIGTERM);
	int st;
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Produces steps [from, to) of a 4-worker run with a spike on rank 2. */
static void produce(const char *run, int64_t from, int64_t to, int64_t spike_step)
{
	mlsec_poison_sim s;
	mlsec_poison_sim_init(&s);
	s.workers = 4;
	s.steps = to;
	s.seed = 77;
	s.mode = MLSEC_POISON_SIM_SPIKE;
	s.poison_rank = 2;
	s.poison_start = spike_step;
	char buf[512];
	mlsec_error err;
	for (int64_t t = from; t < to; t++)
		for (unsigned r = 0; r < s.workers; r++) {
			mlsec_poison_record rec;
			mlsec_poison_sim_record(&s, r, t, &rec);
			int n = mlsec_poison_record_format(&rec, buf, sizeof buf);
			assert_int_equal(mlsec_producer_send_async(g_prod, MLSEC_TOPIC_GRADIENTS,
			                                           run, strlen(run), buf, (size_t)n,
			                                           &err),
			                 MLSEC_OK);
		}
	assert_int_equal(mlsec_producer_flush(g_prod, 20000, &err), MLSEC_OK);
}

/* Records the stored state says were fed, -1 when there is no state. */
static long long stored_records(const char *run)
{
	char key[160], *text = NULL;
	size_t len;
	snprintf(key, sizeof key, "%s%s:state", MLSEC_POISON_STREAM_KEY_PREFIX, run);
	if (mlsec_store_get(g_store, key, &text, &len, NULL))
		return -1;
	json_t *j = json_loadb(text, len, 0, NULL);
	mlsec_free(text);
	long long n = json_integer_value(json_object_get(
	        json_object_get(json_object_get(j, "detector"), "stats"), "records"));
	json_decref(j);
	return n;
}

static int wait_records(const char *run, long long want)
{
	for (long long end = mlsec_testenv_now_ms() + WAIT_MS; mlsec_testenv_now_ms() < end;) {
		if (stored_records(run) >= want)
			return 1;
		sleep_ms(100);
	}
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	if (mlsec_testenv_redis_start(&g_redis, 0, NULL) ||
	    mlsec_testenv_broker_start(&g_broker, 4))
		return -1;
	mlsec_queue_conf qc = {.brokers = g_broker.addr, .client_id = "test"};
	mlsec_error err;
	if (mlsec_producer_new(&qc, &g_prod, &err) ||
	    mlsec_store_new(g_redis.addr, 0, 0, &g_store, &err)) {
		fprintf(stderr, "setup: %s\n", err.text);
		return -1;
	}
	pthread_mutex_init(&g_sink.lock, NULL);
	const char *topics[] = {MLSEC_TOPIC_ALERTS, NULL};
	mlsec_worker_conf wc = {
	        .queue = qc, .group = "test-alerts", .topics = topics, .session_timeout_ms = 3000};
	if (mlsec_worker_new(&wc, &g_sink.w, &err))
		return -1;
	return pthread_create(&g_sink.thread, NULL, sink_main, &g_sink) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mlsec_worker_stop(g_sink.w);
	pthread_join(g_sink.thread, NULL);
	mlsec_worker_free(g_sink.w);
	mlsec_producer_free(g_prod);
	mlsec_store_free(g_store);
	mlsec_testenv_stop(&g_broker);
	mlsec_testenv_stop(&g_redis);
	return 0;
}

static void test_alert_and_resume(void **state)
{
	(void)state;
	const char *run = "run-A";
	pid_t d = start_daemon();
	/* garbage first: a bad key and a malformed value are skipped */
	mlsec_error err;
	assert_int_equal(mlsec_producer_send(g_prod, MLSEC_TOPIC_GRADIENTS, "bad key!", 8, "{}", 2,
	                                     10000, &err),
	                 MLSEC_OK);
	assert_int_equal(mlsec_producer_send(g_prod, MLSEC_TOPIC_GRADIENTS, run, strlen(run),
	                                     "not json", 8, 10000, &err),
	                 MLSEC_OK);
	produce(run, 0, 200, 205);
	assert_true(wait_records(run, 800)); /* checkpoints every 40 records */
	assert_int_equal(stop_daemon(d), 0);
	assert_int_equal(stored_records(run), 800);

	/* A new consumer resumes: the spike at step 205 falls inside the
	 * warm-up of a fresh detector (50 steps) and is caught only because
	 * the learned scale came back from Redis. */
	d = start_daemon();
	produce(run, 200, 260, 205);
	int found = 0;
	for (long long end = mlsec_testenv_now_ms() + WAIT_MS;
	     !found && mlsec_testenv_now_ms() < end; sleep_ms(100)) {
		pthread_mutex_lock(&g_sink.lock);
		for (int i = 0; i < g_sink.n && !found; i++) {
			json_t *a = json_loads(g_sink.alerts[i], 0, NULL);
			json_t *ev = json_object_get(a, "event");
			found = a && !strcmp(json_string_value(json_object_get(a, "run")), run) &&
			        !strcmp(json_string_value(json_object_get(ev, "rule")),
			                "POISON-SPIKE") &&
			        json_integer_value(json_object_get(ev, "rank")) == 2 &&
			        json_integer_value(json_object_get(ev, "alarm_step")) == 205;
			json_decref(a);
		}
		pthread_mutex_unlock(&g_sink.lock);
	}
	assert_true(found);
	assert_true(wait_records(run, 1040));
	assert_int_equal(stop_daemon(d), 0);
	assert_int_equal(stored_records(run), 1040);
	/* no alert other than the spike's (l2/linf/std on rank 2, step 205) */
	pthread_mutex_lock(&g_sink.lock);
	for (int i = 0; i < g_sink.n; i++)
		assert_non_null(strstr(g_sink.alerts[i], "\"alarm_step\":205"));
	pthread_mutex_unlock(&g_sink.lock);
}

static void test_run_ids(void **state)
{
	(void)state;
	assert_true(mlsec_poison_stream_run_id_ok("run-A.1_b", 9));
	assert_false(mlsec_poison_stream_run_id_ok("", 0));
	assert_false(mlsec_poison_stream_run_id_ok("a:b", 3));
	assert_false(mlsec_poison_stream_run_id_ok("../x", 4));
	char big[80];
	memset(big, 'a', sizeof big);
	assert_false(mlsec_poison_stream_run_id_ok(big, sizeof big));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_run_ids),
	        cmocka_unit_test(test_alert_and_resume),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
