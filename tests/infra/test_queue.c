/*
 * test_queue.c - producer and worker loop against mlsec-devbroker over
 * TCP: produce/consume, offsets committed only after DONE, hand-back on
 * stop, redelivery after a consumer crashes without committing, and two
 * members of one group sharing the partitions.
 *
 * The crash case needs a process that dies mid-message: the test binary
 * re-executes itself with "--crash-worker" for that.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/log.h"
#include "mlsec/queue.h"
#include "testenv.h"

#define MAX_SEEN 512
#define WAIT_MS 30000

static mlsec_testenv_proc g_broker;
static mlsec_producer *g_prod;
static char g_self[4096];

typedef struct sink {
	pthread_mutex_t lock;
	mlsec_worker *w;
	pthread_t thread;
	int n;
	char seen[MAX_SEEN][32];
	int retry_key_once; /* RETRY the first delivery of key "retry-me" */
	int retried;
	int stop_on; /* >0: on the nth message, stop and hand it back */
	int delay_ms;
	mlsec_err rc;
} sink;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static mlsec_queue_outcome on_msg(const mlsec_queue_msg *m, void *ctx)
{
	sink *s = ctx;
	char key[32] = ""; /* the value: send() uses the key as value too */
	if (m->len < sizeof key) {
		memcpy(key, m->value, m->len);
		key[m->len] = '\0';
	}
	if (s->delay_ms)
		sleep_ms(s->delay_ms);
	pthread_mutex_lock(&s->lock);
	mlsec_queue_outcome out = MLSEC_QUEUE_DONE;
	if (s->retry_key_once && !s->retried && strcmp(key, "retry-me") == 0) {
		s->retried = 1;
		out = MLSEC_QUEUE_RETRY;
	} else if (s->stop_on && s->n + 1 == s->stop_on) {
		mlsec_worker_stop(s->w);
		out = MLSEC_QUEUE_RETRY; /* hand back: must not be committed */
	} else if (s->n < MAX_SEEN) {
		snprintf(s->seen[s->n++], sizeof s->seen[0], "%s", key);
	}
	pthread_mutex_unlock(&s->lock);
	return out;
}

static void *run_worker(void *p)
{
	sink *s = p;
	s->rc = mlsec_worker_run(s->w, on_msg, s, NULL);
	return NULL;
}

static void start_sink(sink *s, const char *group, const char *topic)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	const char *topics[] = {topic, NULL};
	mlsec_worker_conf wc = {
	        .queue = {.brokers = g_broker.addr, .client_id = "test"},
	        .group = group,
	        .topics = topics,
	        .session_timeout_ms = 3000,
	        .retry_backoff_ms = 100,
	};
	mlsec_error err;
	assert_int_equal(mlsec_worker_new(&wc, &s->w, &err), MLSEC_OK);
}

static void run_sink(sink *s)
{
	assert_int_equal(pthread_create(&s->thread, NULL, run_worker, s), 0);
}

static void stop_sink(sink *s)
{
	mlsec_worker_stop(s->w);
	pthread_join(s->thread, NULL);
	assert_int_equal(s->rc, MLSEC_OK);
	mlsec_worker_free(s->w);
	pthread_mutex_destroy(&s->lock);
}

static int count(sink *s)
{
	pthread_mutex_lock(&s->lock);
	int n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Waits until the sinks together have seen `want` messages. */
static int wait_for(sink *a, sink *b, int want)
{
	for (long long end = mlsec_testenv_now_ms() + WAIT_MS; mlsec_testenv_now_ms() < end;) {
		if (count(a) + (b ? count(b) : 0) >= want)
			return 1;
		sleep_ms(20);
	}
	return 0;
}

/* Waits until the worker has committed `want` offsets; fills *st. */
static int wait_committed(mlsec_worker *w, unsigned long long want, mlsec_worker_stats *st)
{
	for (long long end = mlsec_testenv_now_ms() + WAIT_MS; mlsec_testenv_now_ms() < end;) {
		mlsec_worker_get_stats(w, st);
		if (st->committed >= want)
			return 1;
		sleep_ms(20);
	}
	return 0;
}

static int has(sink *s, const char *key)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->seen[i], key) == 0)
			return 1;
	return 0;
}

static void send(const char *topic, const char *key)
{
	mlsec_error err;
	assert_int_equal(
	        mlsec_producer_send(g_prod, topic, key, strlen(key), key, strlen(key), 10000, &err),
	        MLSEC_OK);
}

static int group_setup(void **state)
{
	(void)state;
	if (mlsec_testenv_broker_start(&g_broker, 4) != 0)
		return -1;
	mlsec_queue_conf qc = {.brokers = g_broker.addr};
	mlsec_error err;
	if (mlsec_producer_new(&qc, &g_prod, &err) != MLSEC_OK) {
		fprintf(stderr, "producer: %s\n", err.text);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mlsec_producer_free(g_prod);
	mlsec_testenv_stop(&g_broker);
	return 0;
}

static void test_names(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(mlsec_queue_stage_topic("triton", buf, sizeof buf), MLSEC_OK);
	assert_string_equal(buf, "mlsec.stage.triton");
	assert_int_equal(mlsec_queue_stage_topic("Triton", buf, sizeof buf), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_queue_stage_topic("a.b", buf, sizeof buf), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_queue_stage_topic("triton", buf, 8), MLSEC_ERR_INVALID_ARG);
	int n = 0;
	while (mlsec_queue_stages[n])
		n++;
	assert_int_equal(n, 6);

	/* A property librdkafka rejects is a configuration error; a secret
	 * value is not echoed. */
	const char *props[] = {"sasl.password", "x", "no.such.property", "hunter22", NULL};
	mlsec_queue_conf qc = {.brokers = g_broker.addr, .props = props};
	mlsec_producer *p;
	mlsec_error err;
	assert_int_equal(mlsec_producer_new(&qc, &p, &err), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "no.such.property"));
	mlsec_queue_conf none = {.brokers = NULL};
	assert_int_equal(mlsec_producer_new(&none, &p, &err), MLSEC_ERR_INVALID_ARG);
}

static void test_produce_consume(void **state)
{
	(void)state;
	sink s;
	start_sink(&s, "mlsec-t1", "mlsec.stage.triton");
	run_sink(&s);
	char key[16];
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "job%d", i);
		send("mlsec.stage.triton", key);
	}
	assert_true(wait_for(&s, NULL, 5));
	stop_sink(&s);
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "job%d", i);
		assert_true(has(&s, key));
	}
	assert_int_equal(s.n, 5);
}

static void test_retry_then_done(void **state)
{
	(void)state;
	sink s;
	start_sink(&s, "mlsec-t2", "mlsec.test.retry");
	s.retry_key_once = 1;
	run_sink(&s);
	send("mlsec.test.retry", "retry-me");
	assert_true(wait_for(&s, NULL, 1));
	/* The handler sees the message before the worker commits it. */
	mlsec_worker_stats st;
	assert_true(wait_committed(s.w, 1, &st));
	stop_sink(&s);
	assert_int_equal(s.retried, 1);
	assert_string_equal(s.seen[0], "retry-me"); /* redelivered after RETRY */
	assert_int_equal(st.received, 2);
	assert_int_equal(st.retried, 1);
	assert_int_equal(st.committed, 1);
}

static void test_commit_only_after_done(void **state)
{
	(void)state;
	const char *topic = "mlsec.test.commit";
	sink a;
	start_sink(&a, "mlsec-t3", topic);
	a.stop_on = 2; /* DONE for m1, then stop and hand m2 back */
	run_sink(&a);
	mlsec_error err;
	for (int i = 1; i <= 3; i++) {
		char v[8];
		snprintf(v, sizeof v, "m%d", i);
		/* One key: one partition, so m1, m2, m3 arrive in order. */
		assert_int_equal(
		        mlsec_producer_send(g_prod, topic, "k", 1, v, strlen(v), 10000, &err),
		        MLSEC_OK);
	}
	pthread_join(a.thread, NULL); /* returns by itself after the hand-back */
	assert_int_equal(a.rc, MLSEC_OK);
	mlsec_worker_stats st;
	mlsec_worker_get_stats(a.w, &st);
	assert_int_equal(st.committed, 1);
	assert_int_equal(st.received, 2);
	mlsec_worker_free(a.w);
	pthread_mutex_destroy(&a.lock);

	/* A new member of the group resumes at m2: m1 was committed, m2 not. */
	sink b;
	start_sink(&b, "mlsec-t3", topic);
	run_sink(&b);
	assert_true(wait_for(&b, NULL, 2));
	sleep_ms(500); /* nothing more may arrive */
	stop_sink(&b);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.seen[0], "m2");
	assert_string_equal(b.seen[1], "m3");
}

static void test_crash_redelivery(void **state)
{
	(void)state;
	const char *topic = "mlsec.test.crash";
	send(topic, "crash-job");
	/* The child consumes the message and dies with SIGKILL before DONE. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(g_self, g_self, "--crash-worker", g_broker.addr, topic, "mlsec-t4",
		      (char *)NULL);
		_exit(127);
	}
	int st;
	long long t0 = mlsec_testenv_now_ms();
	while (waitpid(pid, &st, WNOHANG) == 0 && mlsec_testenv_now_ms() - t0 < WAIT_MS)
		sleep_ms(20);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("crash worker never received the message");
	}
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	/* The group still has the dead member until its session times out;
	 * then the message comes again to the new member. */
	sink s;
	start_sink(&s, "mlsec-t4", topic);
	run_sink(&s);
	assert_true(wait_for(&s, NULL, 1));
	stop_sink(&s);
	assert_string_equal(s.seen[0], "crash-job");
}

static void test_two_members_share(void **state)
{
	(void)state;
	const char *topic = "mlsec.stage.checkpoint";
	sink a, b;
	start_sink(&a, "mlsec-t5", topic);
	start_sink(&b, "mlsec-t5", topic);
	a.delay_ms = b.delay_ms = 20;
	run_sink(&a);
	run_sink(&b);
	sleep_ms(4000); /* both joined and got partitions */
	char key[16];
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "share%d", i);
		send(topic, key);
	}
	assert_true(wait_for(&a, &b, 40));
	stop_sink(&a);
	stop_sink(&b);
	assert_true(a.n > 0);
	assert_true(b.n > 0);
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "share%d", i);
		assert_true(has(&a, key) || has(&b, key));
	}
}

typedef struct revokes {
	int calls;
	int parts;
	int bad_topic;
} revokes;

static void on_revoke(const mlsec_queue_partition *p, size_t n, void *ctx)
{
	revokes *r = ctx;
	r->calls++;
	r->parts += (int)n;
	for (size_t i = 0; i < n; i++)
		if (strcmp(p[i].topic, "mlsec.stage.inspect") || p[i].partition < 0)
			r->bad_topic++;
}

/* The revoke hook runs before partitions go: when a second member joins
 * (rebalance) and when the worker closes; consuming is unaffected. */
static void test_revoke_callback(void **state)
{
	(void)state;
	const char *topic = "mlsec.stage.inspect";
	const char *topics[] = {topic, NULL};
	revokes rv = {0};
	sink a, b;
	memset(&a, 0, sizeof a);
	pthread_mutex_init(&a.lock, NULL);
	mlsec_worker_conf wc = {
	        .queue = {.brokers = g_broker.addr, .client_id = "test"},
	        .group = "mlsec-t-revoke",
	        .topics = topics,
	        .session_timeout_ms = 3000,
	        .retry_backoff_ms = 100,
	        .revoke_cb = on_revoke,
	        .revoke_ctx = &rv,
	};
	mlsec_error err;
	assert_int_equal(mlsec_worker_new(&wc, &a.w, &err), MLSEC_OK);
	run_sink(&a);
	send(topic, "rv1");
	assert_true(wait_for(&a, NULL, 1));
	assert_int_equal(rv.calls, 0);
	start_sink(&b, "mlsec-t-revoke", topic);
	run_sink(&b);
	for (long long end = mlsec_testenv_now_ms() + WAIT_MS;
	     rv.calls == 0 && mlsec_testenv_now_ms() < end;)
		sleep_ms(50);
	assert_true(rv.calls >= 1); /* the join took a's partitions back */
	send(topic, "rv2");
	assert_true(wait_for(&a, &b, 2));
	stop_sink(&b);
	int before = rv.calls;
	stop_sink(&a);
	assert_true(rv.parts >= 1);
	assert_true(rv.calls >= before); /* closing revokes whatever a still had */
	assert_int_equal(rv.bad_topic, 0);
}

static void test_unreachable_broker(void **state)
{
	(void)state;
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", mlsec_testenv_free_port());
	const char *props[] = {"message.timeout.ms", "1000", NULL};
	mlsec_queue_conf qc = {.brokers = addr, .props = props};
	mlsec_producer *p;
	mlsec_error err;
	assert_int_equal(mlsec_producer_new(&qc, &p, &err), MLSEC_OK);
	long long t0 = mlsec_testenv_now_ms();
	mlsec_err rc = mlsec_producer_send(p, "mlsec.results", NULL, 0, "x", 1, 3000, &err);
	assert_true(rc == MLSEC_ERR_UNAVAILABLE || rc == MLSEC_ERR_TIMEOUT);
	assert_true(mlsec_testenv_now_ms() - t0 < 3500);
	assert_int_equal(mlsec_producer_send_async(p, "mlsec.results", NULL, 0, "y", 1, &err),
	                 MLSEC_OK);
	assert_int_not_equal(mlsec_producer_flush(p, 2000, &err), MLSEC_OK);
	mlsec_producer_free(p);
}

/* Child: consume one message, then die without committing. */
static mlsec_queue_outcome crash_handler(const mlsec_queue_msg *m, void *ctx)
{
	(void)m;
	(void)ctx;
	kill(getpid(), SIGKILL);
	return MLSEC_QUEUE_DONE; /* never reached */
}

static int crash_worker(const char *brokers, const char *topic, const char *group)
{
	const char *topics[] = {topic, NULL};
	mlsec_worker_conf wc = {.queue = {.brokers = brokers},
	                        .group = group,
	                        .topics = topics,
	                        .session_timeout_ms = 3000};
	mlsec_worker *w;
	mlsec_error err;
	if (mlsec_worker_new(&wc, &w, &err))
		return 1;
	mlsec_worker_run(w, crash_handler, NULL, &err);
	return 1;
}

int main(int argc, char **argv)
{
	mlsec_log_setup(MLSEC_LOG_WARN, MLSEC_LOG_TEXT, -1, "test_queue");
	if (argc == 5 && strcmp(argv[1], "--crash-worker") == 0)
		return crash_worker(argv[2], argv[3], argv[4]);
	ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
	if (n <= 0)
		return 1;
	g_self[n] = '\0';
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_produce_consume),
	        cmocka_unit_test(test_retry_then_done),
	        cmocka_unit_test(test_commit_only_after_done),
	        cmocka_unit_test(test_crash_redelivery),
	        cmocka_unit_test(test_two_members_share),
	        cmocka_unit_test(test_revoke_callback),
	        cmocka_unit_test(test_unreachable_broker),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	mlsec_log_shutdown();
	return rc;
}
