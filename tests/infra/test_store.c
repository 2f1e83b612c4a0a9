/*
 * test_store.c - mlsec_store against a real redis-server started on a free
 * loopback port: URLs and AUTH, idempotent results, streams with blocking
 * reads, deadlines, reconnect after a restart, and bounded failures when
 * Redis is down or silent.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/store.h"
#include "testenv.h"

static mlsec_testenv_proc g_redis;
static char g_url[sizeof g_redis.addr];

static int group_setup(void **state)
{
	(void)state;
	if (mlsec_testenv_redis_start(&g_redis, 0, NULL) != 0)
		return -1;
	snprintf(g_url, sizeof g_url, "%s", g_redis.addr);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mlsec_testenv_stop(&g_redis);
	return 0;
}

static mlsec_store *open_store(int timeout_ms)
{
	mlsec_store *s = NULL;
	mlsec_error err;
	assert_int_equal(mlsec_store_new(g_url, timeout_ms, timeout_ms, &s, &err), MLSEC_OK);
	return s;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_urls(void **state)
{
	(void)state;
	static const char *const bad[] = {
	        "http://127.0.0.1:6379", "redis://",         "redis://:pw@",       "redis://host:0",
	        "redis://host:65536",    "redis://host:12x", "redis://host/abc",   "redis://[::1",
	        "redis://@host",         "redis://ho st",    "redis://:p%zz@host", NULL};
	mlsec_store *s;
	mlsec_error err;
	for (size_t i = 0; bad[i]; i++) {
		assert_int_equal(mlsec_store_new(bad[i], 0, 0, &s, &err), MLSEC_ERR_INVALID_ARG);
		assert_null(s);
	}
	assert_int_equal(mlsec_store_new("rediss://127.0.0.1:6380", 0, 0, &s, &err),
	                 MLSEC_ERR_UNSUPPORTED);
	/* The password never shows up in the error. */
	assert_int_equal(mlsec_store_new("redis://:hunter22@ho st:1/0", 0, 0, &s, &err),
	                 MLSEC_ERR_INVALID_ARG);
	assert_null(strstr(err.text, "hunter22"));
	static const char *const good[] = {"redis://127.0.0.1",
	                                   "redis://localhost:6380/2",
	                                   "redis://:p%40ss@127.0.0.1:1/0",
	                                   "redis://user:pw@h:2",
	                                   "redis://[::1]:6379/1",
	                                   "redis://user@h:2/1",
	                                   NULL};
	for (size_t i = 0; good[i]; i++) {
		assert_int_equal(mlsec_store_new(good[i], 0, 0, &s, &err), MLSEC_OK);
		mlsec_store_free(s);
	}
}

static void test_generic(void **state)
{
	(void)state;
	mlsec_store *s = open_store(2000);
	mlsec_error err;
	char *v;
	size_t len;
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_OK);
	static const char bin[] = {'a', 0, 'b', '\n', (char)0xff};
	assert_int_equal(mlsec_store_set(s, "t:bin", bin, sizeof bin, 0, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_get(s, "t:bin", &v, &len, &err), MLSEC_OK);
	assert_int_equal(len, sizeof bin);
	assert_memory_equal(v, bin, sizeof bin);
	mlsec_free(v);
	assert_int_equal(mlsec_store_get(s, "t:missing", &v, &len, &err), MLSEC_ERR_NOT_FOUND);
	assert_null(v);

	int created = -1;
	assert_int_equal(mlsec_store_set_nx(s, "t:nx", "1", 1, 0, &created, &err), MLSEC_OK);
	assert_int_equal(created, 1);
	assert_int_equal(mlsec_store_set_nx(s, "t:nx", "2", 1, 0, &created, &err), MLSEC_OK);
	assert_int_equal(created, 0);
	assert_int_equal(mlsec_store_get(s, "t:nx", &v, NULL, &err), MLSEC_OK);
	assert_string_equal(v, "1");
	mlsec_free(v);
	assert_int_equal(mlsec_store_del(s, "t:nx", &err), MLSEC_OK);
	assert_int_equal(mlsec_store_get(s, "t:nx", &v, NULL, &err), MLSEC_ERR_NOT_FOUND);

	/* TTL: gone after it passes, present before. */
	assert_int_equal(mlsec_store_set(s, "t:ttl", "x", 1, 150, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_get(s, "t:ttl", &v, NULL, &err), MLSEC_OK);
	mlsec_free(v);
	sleep_ms(300);
	assert_int_equal(mlsec_store_get(s, "t:ttl", &v, NULL, &err), MLSEC_ERR_NOT_FOUND);
	assert_int_equal(mlsec_store_expire(s, "t:ttl", 1000, &err), MLSEC_ERR_NOT_FOUND);
	assert_int_equal(mlsec_store_set(s, "t:ttl", "x", 1, -1, &err), MLSEC_ERR_INVALID_ARG);

	long long n = 0;
	assert_int_equal(mlsec_store_hset(s, "t:h", "state", "running", 7, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_hget(s, "t:h", "state", &v, &len, &err), MLSEC_OK);
	assert_string_equal(v, "running");
	mlsec_free(v);
	assert_int_equal(mlsec_store_hset_nx(s, "t:h", "state", "done", 4, &created, &err),
	                 MLSEC_OK);
	assert_int_equal(created, 0);
	assert_int_equal(mlsec_store_hget(s, "t:h", "nope", &v, &len, &err), MLSEC_ERR_NOT_FOUND);
	assert_int_equal(mlsec_store_hincr(s, "t:h", "done", 2, &n, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_hincr(s, "t:h", "done", 1, &n, &err), MLSEC_OK);
	assert_int_equal(n, 3);
	/* A wrong-type operation is an error reply, not a crash or hang. */
	assert_int_equal(mlsec_store_get(s, "t:h", &v, NULL, &err), MLSEC_ERR_INTERNAL);
	assert_non_null(strstr(err.text, "WRONGTYPE"));
	mlsec_store_free(s);
}

static void test_jobs_and_results(void **state)
{
	(void)state;
	mlsec_store *s = open_store(2000);
	mlsec_error err;
	char *v;
	size_t len;
	int created;
	const char *job = "0123456789abcdef0123456789abcdef";
	assert_int_equal(
	        mlsec_store_job_create(s, job, "{\"state\":\"queued\"}", 18, 60000, &created, &err),
	        MLSEC_OK);
	assert_int_equal(created, 1);
	assert_int_equal(mlsec_store_job_create(s, job, "{}", 2, 60000, &created, &err), MLSEC_OK);
	assert_int_equal(created, 0);
	assert_int_equal(mlsec_store_job_put(s, job, "{\"state\":\"done\"}", 16, 60000, &err),
	                 MLSEC_OK);
	assert_int_equal(mlsec_store_job_get(s, job, &v, &len, &err), MLSEC_OK);
	assert_string_equal(v, "{\"state\":\"done\"}");
	mlsec_free(v);
	assert_int_equal(mlsec_store_job_get(s, "ffff", &v, &len, &err), MLSEC_ERR_NOT_FOUND);
	/* The record really lives at the documented key. */
	char key[128];
	snprintf(key, sizeof key, "mlsec:job:%s", job);
	assert_int_equal(mlsec_store_get(s, key, &v, NULL, &err), MLSEC_OK);
	mlsec_free(v);

	/* A redelivered duplicate must not create a second result. */
	assert_int_equal(
	        mlsec_store_result_put(s, job, "triton", "first", 5, 60000, &created, &err),
	        MLSEC_OK);
	assert_int_equal(created, 1);
	assert_int_equal(
	        mlsec_store_result_put(s, job, "triton", "second", 6, 60000, &created, &err),
	        MLSEC_OK);
	assert_int_equal(created, 0);
	assert_int_equal(mlsec_store_result_get(s, job, "triton", &v, &len, &err), MLSEC_OK);
	assert_string_equal(v, "first");
	mlsec_free(v);
	snprintf(key, sizeof key, "mlsec:job:%s:stage:triton", job);
	assert_int_equal(mlsec_store_get(s, key, &v, NULL, &err), MLSEC_OK);
	mlsec_free(v);
	assert_int_equal(mlsec_store_result_get(s, job, "poison", &v, &len, &err),
	                 MLSEC_ERR_NOT_FOUND);

	/* Ids that could reach other keys are refused before Redis sees them. */
	static const char *const bad[] = {
	        "",     "a:b",
	        "../x", "a b",
	        "a*",   "0123456789012345678901234567890123456789012345678901234567890123456789",
	        NULL};
	for (size_t i = 0; bad[i]; i++) {
		assert_int_equal(mlsec_store_job_get(s, bad[i], &v, &len, &err),
		                 MLSEC_ERR_INVALID_ARG);
		assert_int_equal(mlsec_store_result_put(s, job, bad[i], "x", 1, 0, &created, &err),
		                 MLSEC_ERR_INVALID_ARG);
	}
	mlsec_store_free(s);
}

typedef struct reader_arg {
	mlsec_store *s;
	mlsec_store_events ev;
	mlsec_err rc;
	long long waited_ms;
} reader_arg;

static void *blocking_reader(void *p)
{
	reader_arg *a = p;
	long long t0 = mlsec_testenv_now_ms();
	a->rc = mlsec_store_events_read(a->s, "jobev2", "$", 10, 5000, &a->ev, NULL);
	a->waited_ms = mlsec_testenv_now_ms() - t0;
	return NULL;
}

static void test_events(void **state)
{
	(void)state;
	mlsec_store *s = open_store(1000);
	mlsec_error err;
	char id[3][MLSEC_STORE_EVENT_ID_MAX];
	for (int i = 0; i < 3; i++) {
		char data[32];
		int n = snprintf(data, sizeof data, "{\"n\":%d}", i);
		assert_int_equal(mlsec_store_event_append(s, "jobev", data, (size_t)n, 0, 60000,
		                                          id[i], &err),
		                 MLSEC_OK);
		assert_true(strlen(id[i]) > 2);
	}
	mlsec_store_events ev;
	assert_int_equal(mlsec_store_events_read(s, "jobev", "0", 10, 0, &ev, &err), MLSEC_OK);
	assert_int_equal(ev.count, 3);
	assert_string_equal(ev.items[0].data, "{\"n\":0}");
	assert_string_equal(ev.items[2].data, "{\"n\":2}");
	assert_string_equal(ev.items[1].id, id[1]);
	mlsec_store_events_clear(&ev);

	/* Resume after an id; max bounds the batch. */
	assert_int_equal(mlsec_store_events_read(s, "jobev", id[0], 1, 0, &ev, &err), MLSEC_OK);
	assert_int_equal(ev.count, 1);
	assert_string_equal(ev.items[0].id, id[1]);
	mlsec_store_events_clear(&ev);

	/* Blocking read with nothing new: returns empty after ~block_ms, even
	 * when block_ms exceeds the command timeout (1000 ms). */
	long long t0 = mlsec_testenv_now_ms();
	assert_int_equal(mlsec_store_events_read(s, "jobev", id[2], 10, 1300, &ev, &err), MLSEC_OK);
	long long waited = mlsec_testenv_now_ms() - t0;
	assert_int_equal(ev.count, 0);
	assert_true(waited >= 1200 && waited < 2500);

	/* A blocked reader wakes as soon as an event is appended. */
	reader_arg a = {0};
	assert_int_equal(mlsec_store_clone(s, &a.s, &err), MLSEC_OK);
	pthread_t t;
	pthread_create(&t, NULL, blocking_reader, &a);
	sleep_ms(300);
	assert_int_equal(mlsec_store_event_append(s, "jobev2", "verdict", 7, 0, 0, NULL, &err),
	                 MLSEC_OK);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, MLSEC_OK);
	assert_int_equal(a.ev.count, 1);
	assert_string_equal(a.ev.items[0].data, "verdict");
	assert_true(a.waited_ms < 2000);
	mlsec_store_events_clear(&a.ev);
	mlsec_store_free(a.s);

	assert_int_equal(mlsec_store_events_read(s, "bad:id", "0", 10, 0, &ev, &err),
	                 MLSEC_ERR_INVALID_ARG);
	mlsec_store_free(s);
}

static void test_deadlines(void **state)
{
	(void)state;
	mlsec_store *s = open_store(1000);
	mlsec_error err;
	long long now = mlsec_store_now_ms();
	assert_int_equal(mlsec_store_deadline_add(s, "late2", now - 5, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_deadline_add(s, "late1", now - 10, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_deadline_add(s, "future", now + 100000, &err), MLSEC_OK);
	char **ids;
	size_t n;
	assert_int_equal(mlsec_store_deadline_due(s, now, 10, &ids, &n, &err), MLSEC_OK);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "late1"); /* oldest first */
	assert_string_equal(ids[1], "late2");
	mlsec_store_ids_free(ids, n);
	assert_int_equal(mlsec_store_deadline_due(s, now, 1, &ids, &n, &err), MLSEC_OK);
	assert_int_equal(n, 1);
	mlsec_store_ids_free(ids, n);

	/* Exactly one claimant wins. */
	int claimed;
	assert_int_equal(mlsec_store_deadline_remove(s, "late1", &claimed, &err), MLSEC_OK);
	assert_int_equal(claimed, 1);
	assert_int_equal(mlsec_store_deadline_remove(s, "late1", &claimed, &err), MLSEC_OK);
	assert_int_equal(claimed, 0);
	assert_int_equal(mlsec_store_deadline_due(s, now, 10, &ids, &n, &err), MLSEC_OK);
	assert_int_equal(n, 1);
	mlsec_store_ids_free(ids, n);
	mlsec_store_free(s);
}

static void test_auth_and_db(void **state)
{
	(void)state;
	mlsec_testenv_proc r;
	assert_int_equal(mlsec_testenv_redis_start(&r, 0, "s3cret-pw"), 0);
	char url[400];
	mlsec_store *s;
	mlsec_error err;

	snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", r.port);
	assert_int_equal(mlsec_store_new(url, 1000, 1000, &s, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_ERR_AUTH);
	mlsec_store_free(s);

	snprintf(url, sizeof url, "redis://:wrong-pw@127.0.0.1:%d/0", r.port);
	assert_int_equal(mlsec_store_new(url, 1000, 1000, &s, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_ERR_AUTH);
	assert_null(strstr(err.text, "wrong-pw"));
	mlsec_store_free(s);

	snprintf(url, sizeof url, "redis://:s3cret-pw@127.0.0.1:%d/3", r.port);
	assert_int_equal(mlsec_store_new(url, 1000, 1000, &s, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_set(s, "in-db-3", "x", 1, 0, &err), MLSEC_OK);
	mlsec_store *s0;
	snprintf(url, sizeof url, "redis://:s3cret-pw@127.0.0.1:%d/0", r.port);
	assert_int_equal(mlsec_store_new(url, 1000, 1000, &s0, &err), MLSEC_OK);
	char *v;
	assert_int_equal(mlsec_store_get(s0, "in-db-3", &v, NULL, &err), MLSEC_ERR_NOT_FOUND);
	assert_int_equal(mlsec_store_get(s, "in-db-3", &v, NULL, &err), MLSEC_OK);
	mlsec_free(v);
	mlsec_store_free(s0);
	mlsec_store_free(s);

	/* The password from a file (a mounted Secret): trailing newline
	 * trimmed, it replaces the URL's, clones carry it, never in errors. */
	char dir[] = "/tmp/mlsec-store-pw.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char pwf[300], bad[300];
	snprintf(pwf, sizeof pwf, "%s/password", dir);
	snprintf(bad, sizeof bad, "%s/bad", dir);
	FILE *f = fopen(pwf, "w");
	assert_non_null(f);
	fputs("s3cret-pw\r\n", f);
	fclose(f);
	f = fopen(bad, "w");
	assert_non_null(f);
	fputs("s3cret-pw\nsecond line\n", f);
	fclose(f);
	snprintf(url, sizeof url, "redis://:wrong-pw@127.0.0.1:%d/3", r.port);
	assert_int_equal(mlsec_store_new(url, 1000, 1000, &s, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_set_password_file(s, pwf, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_get(s, "in-db-3", &v, NULL, &err), MLSEC_OK);
	mlsec_free(v);
	assert_int_equal(mlsec_store_clone(s, &s0, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_ping(s0, &err), MLSEC_OK);
	mlsec_store_free(s0);
	assert_int_equal(mlsec_store_set_password_file(s, bad, &err), MLSEC_ERR_INVALID_ARG);
	assert_null(strstr(err.text, "s3cret"));
	snprintf(bad, sizeof bad, "%s/missing", dir);
	assert_int_equal(mlsec_store_set_password_file(s, bad, &err), MLSEC_ERR_IO);
	mlsec_store_free(s);
	/* redis://user@host: the default ACL user, password from the file */
	snprintf(url, sizeof url, "redis://default@127.0.0.1:%d/0", r.port);
	assert_int_equal(mlsec_store_new(url, 1000, 1000, &s, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_ERR_AUTH);
	assert_int_equal(mlsec_store_set_password_file(s, pwf, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_OK);
	mlsec_store_free(s);
	unlink(pwf);
	unlink(bad);
	rmdir(dir);
	mlsec_testenv_stop(&r);
}

static void test_reconnect_and_down(void **state)
{
	(void)state;
	mlsec_testenv_proc r;
	assert_int_equal(mlsec_testenv_redis_start(&r, 0, NULL), 0);
	int port = r.port;
	mlsec_store *s;
	mlsec_error err;
	assert_int_equal(mlsec_store_new(r.addr, 500, 500, &s, &err), MLSEC_OK);
	assert_int_equal(mlsec_store_set(s, "k", "1", 1, 0, &err), MLSEC_OK);

	/* Restart: the next call reconnects by itself. */
	mlsec_testenv_stop(&r);
	assert_int_equal(mlsec_testenv_redis_start(&r, port, NULL), 0);
	assert_int_equal(mlsec_store_set(s, "k", "2", 1, 0, &err), MLSEC_OK);
	char *v;
	assert_int_equal(mlsec_store_get(s, "k", &v, NULL, &err), MLSEC_OK);
	assert_string_equal(v, "2");
	mlsec_free(v);

	/* Down: a clear error within the timeout, for every call, no hang. */
	mlsec_testenv_stop(&r);
	for (int i = 0; i < 3; i++) {
		long long t0 = mlsec_testenv_now_ms();
		assert_int_equal(mlsec_store_get(s, "k", &v, NULL, &err), MLSEC_ERR_UNAVAILABLE);
		assert_true(mlsec_testenv_now_ms() - t0 < 1500);
		assert_non_null(strstr(err.text, "redis"));
	}
	long long t0 = mlsec_testenv_now_ms();
	mlsec_store_events ev;
	assert_int_equal(mlsec_store_events_read(s, "j", "0", 1, 1000, &ev, &err),
	                 MLSEC_ERR_UNAVAILABLE);
	assert_true(mlsec_testenv_now_ms() - t0 < 1500);

	/* Back again: works without a new handle. */
	assert_int_equal(mlsec_testenv_redis_start(&r, port, NULL), 0);
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_OK);
	mlsec_store_free(s);
	mlsec_testenv_stop(&r);
}

static void test_silent_server_times_out(void **state)
{
	(void)state;
	/* A peer that accepts connections but never answers (a hung Redis). */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	char url[64];
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
	mlsec_store *s;
	mlsec_error err;
	assert_int_equal(mlsec_store_new(url, 300, 300, &s, &err), MLSEC_OK);
	long long t0 = mlsec_testenv_now_ms();
	assert_int_equal(mlsec_store_ping(s, &err), MLSEC_ERR_UNAVAILABLE);
	long long took = mlsec_testenv_now_ms() - t0;
	assert_true(took >= 250 && took < 1000); /* one timeout, not retried */
	assert_non_null(strstr(err.text, "timed out"));
	mlsec_store_free(s);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_urls),
	        cmocka_unit_test(test_generic),
	        cmocka_unit_test(test_jobs_and_results),
	        cmocka_unit_test(test_events),
	        cmocka_unit_test(test_deadlines),
	        cmocka_unit_test(test_auth_and_db),
	        cmocka_unit_test(test_reconnect_and_down),
	        cmocka_unit_test(test_silent_server_times_out),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
