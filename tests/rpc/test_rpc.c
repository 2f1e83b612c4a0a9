/*
 * test_rpc.c - common/rpc over loopback: unary, server and client
 * streaming, calls served concurrently (a blocked handler does not stop
 * others), bearer-token auth with a public health check, unknown methods,
 * deadlines, and a stop that does not wait for endless streams.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/rpc.h"

#define TOKEN "test-token-0123456789"

static atomic_int block_release;
static atomic_int block_entered;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static grpc_status_code echo(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                             size_t *resp_len, void *ctx)
{
	*resp = mlsec_malloc(len ? len : 1);
	memcpy(*resp, req, len);
	*resp_len = len;
	return GRPC_STATUS_OK;
}

/* Blocks until released (or cancelled / 10 s). */
static grpc_status_code block(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                              size_t *resp_len, void *ctx)
{
	atomic_fetch_add(&block_entered, 1);
	long long until = now_ms() + 10000;
	while (!atomic_load(&block_release) && !mlsec_rpc_call_cancelled(c) && now_ms() < until)
		usleep(5000);
	*resp = mlsec_malloc(1);
	**resp = 'b';
	*resp_len = 1;
	return GRPC_STATUS_OK;
}

/* Streams req[0] messages, each one byte holding its index; req[0] == 0:
 * streams until the client or the server goes away. */
static grpc_status_code stream(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                               size_t *resp_len, void *ctx)
{
	int n = len ? req[0] : 0;
	for (int i = 0; n == 0 || i < n; i++) {
		uint8_t b = (uint8_t)i;
		if (mlsec_rpc_call_send(c, &b, 1) != MLSEC_OK)
			return GRPC_STATUS_CANCELLED;
		if (n == 0)
			usleep(10000);
	}
	return GRPC_STATUS_OK;
}

/* Sums the lengths of all messages received. */
static grpc_status_code sum(mlsec_rpc_call *c, const uint8_t *req, size_t len, uint8_t **resp,
                            size_t *resp_len, void *ctx)
{
	size_t total = 0;
	uint8_t *m;
	size_t ml;
	int r;
	while ((r = mlsec_rpc_call_recv(c, &m, &ml)) == 1) {
		total += ml;
		mlsec_free(m);
	}
	if (r < 0)
		return GRPC_STATUS_CANCELLED;
	*resp = mlsec_malloc(32);
	*resp_len = (size_t)snprintf((char *)*resp, 32, "%zu", total);
	return GRPC_STATUS_OK;
}

typedef struct fixture {
	mlsec_rpc_server *srv;
	char target[64];
} fixture;

static int setup(void **state)
{
	static fixture f;
	mlsec_rpc_server_opts o = {0};
	o.listen = "127.0.0.1:0";
	o.threads = 4;
	o.auth_token = TOKEN;
	mlsec_error err;
	assert_int_equal(mlsec_rpc_server_new(&o, &f.srv, &err), MLSEC_OK);
	assert_int_equal(
	        mlsec_rpc_server_add_method(f.srv, "/t.T/Echo", MLSEC_RPC_UNARY, echo, NULL, 0),
	        MLSEC_OK);
	assert_int_equal(
	        mlsec_rpc_server_add_method(f.srv, "/t.T/Block", MLSEC_RPC_UNARY, block, NULL, 0),
	        MLSEC_OK);
	assert_int_equal(mlsec_rpc_server_add_method(f.srv, "/t.T/Stream", MLSEC_RPC_SERVER_STREAM,
	                                             stream, NULL, 0),
	                 MLSEC_OK);
	assert_int_equal(mlsec_rpc_server_add_method(f.srv, "/t.T/Sum", MLSEC_RPC_CLIENT_STREAM,
	                                             sum, NULL, 0),
	                 MLSEC_OK);
	assert_int_equal(mlsec_rpc_server_start(f.srv, &err), MLSEC_OK);
	snprintf(f.target, sizeof(f.target), "127.0.0.1:%d", mlsec_rpc_server_port(f.srv));
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	mlsec_rpc_server_free(f->srv);
	return 0;
}

static mlsec_rpc_client *client(fixture *f, const char *token)
{
	mlsec_rpc_client_opts o = {0};
	o.target = f->target;
	o.token = token;
	mlsec_rpc_client *c = NULL;
	assert_int_equal(mlsec_rpc_client_new(&o, &c, NULL), MLSEC_OK);
	return c;
}

static void test_unary_echo(void **state)
{
	mlsec_rpc_client *c = client(*state, TOKEN);
	uint8_t *resp;
	size_t len;
	mlsec_rpc_status st;
	assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Echo", (const uint8_t *)"hello", 5, 5000,
	                                        &resp, &len, &st),
	                 MLSEC_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(resp, "hello", 5);
	mlsec_free(resp);
	/* empty messages pack to 0 bytes and still work */
	assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Echo", (const uint8_t *)"", 0, 5000, &resp,
	                                        &len, &st),
	                 MLSEC_OK);
	assert_int_equal(len, 0);
	mlsec_free(resp);
	mlsec_rpc_client_free(c);
}

static void test_auth(void **state)
{
	uint8_t *resp = NULL;
	size_t len;
	mlsec_rpc_status st;
	mlsec_rpc_client *none = client(*state, NULL);
	assert_int_equal(mlsec_rpc_client_unary(none, "/t.T/Echo", (const uint8_t *)"x", 1, 5000,
	                                        &resp, &len, &st),
	                 MLSEC_ERR_AUTH);
	assert_int_equal(st.code, GRPC_STATUS_UNAUTHENTICATED);
	assert_null(resp);
	/* health is public */
	int serving = 0;
	assert_int_equal(mlsec_rpc_health_check(none, "", 5000, &serving, &st), MLSEC_OK);
	assert_int_equal(serving, 1);
	assert_int_equal(mlsec_rpc_health_check(none, "no.such.Service", 5000, &serving, &st),
	                 MLSEC_ERR_NOT_FOUND);
	mlsec_rpc_client_free(none);
	/* a prefix of the token, and the token plus a byte, are both wrong */
	const char *wrong[] = {"test-token-012345678", TOKEN "0", "x"};
	for (size_t i = 0; i < 3; i++) {
		mlsec_rpc_client *c = client(*state, wrong[i]);
		assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Echo", (const uint8_t *)"x", 1,
		                                        5000, &resp, &len, &st),
		                 MLSEC_ERR_AUTH);
		mlsec_rpc_client_free(c);
	}
	assert_true(mlsec_rpc_token_equal("abc", "abc"));
	assert_false(mlsec_rpc_token_equal("abc", "abd"));
	assert_false(mlsec_rpc_token_equal("abc", "abcd"));
}

/* The health-only listener answers from the main server's table (shared
 * state), serves nothing else, and needs no token. */
static void test_health_server(void **state)
{
	fixture *f = *state;
	mlsec_rpc_server *hs = NULL;
	mlsec_error err;
	assert_int_equal(mlsec_rpc_health_server_start("127.0.0.1:0", f->srv, &hs, &err), MLSEC_OK);
	fixture hf = {0};
	snprintf(hf.target, sizeof(hf.target), "127.0.0.1:%d", mlsec_rpc_server_port(hs));
	mlsec_rpc_client *c = client(&hf, NULL);
	mlsec_rpc_status st;
	int serving = -1;
	mlsec_rpc_server_set_serving(f->srv, "t.T", 1);
	assert_int_equal(mlsec_rpc_health_check(c, "t.T", 5000, &serving, &st), MLSEC_OK);
	assert_int_equal(serving, 1);
	mlsec_rpc_server_set_serving(f->srv, "t.T", 0);
	assert_int_equal(mlsec_rpc_health_check(c, "t.T", 5000, &serving, &st), MLSEC_OK);
	assert_int_equal(serving, 0);
	assert_int_equal(mlsec_rpc_health_check(c, "", 5000, &serving, &st), MLSEC_OK);
	assert_int_equal(serving, 1);
	assert_int_equal(mlsec_rpc_health_check(c, "no.such.Service", 5000, &serving, &st),
	                 MLSEC_ERR_NOT_FOUND);
	uint8_t *resp = NULL;
	size_t len;
	mlsec_rpc_client *t = client(&hf, TOKEN);
	assert_int_not_equal(mlsec_rpc_client_unary(t, "/t.T/Echo", (const uint8_t *)"x", 1, 5000,
	                                            &resp, &len, &st),
	                     MLSEC_OK);
	assert_int_equal(st.code, GRPC_STATUS_UNIMPLEMENTED);
	mlsec_rpc_client_free(t);
	mlsec_rpc_client_free(c);
	mlsec_rpc_server_free(hs);
	/* an address that cannot be bound is an error, not a crash (a TCP port
	 * in use is not one: gRPC binds with SO_REUSEPORT) */
	assert_int_equal(mlsec_rpc_health_server_start("unix:/nonexistent-mlsec-dir/h.sock", f->srv,
	                                               &hs, &err),
	                 MLSEC_ERR_UNAVAILABLE);
	assert_null(hs);
}

/* A client stream refused before the server reads it (no token) must end
 * at once with UNAUTHENTICATED, never wait for its deadline. */
static void test_client_stream_refused(void **state)
{
	mlsec_rpc_client *c = client(*state, NULL);
	for (int i = 0; i < 200; i++) {
		long long t0 = now_ms();
		mlsec_rpc_stream *s;
		assert_int_equal(mlsec_rpc_client_open(c, "/t.T/Sum", MLSEC_RPC_CLIENT_STREAM, NULL,
		                                       0, 5000, &s, NULL),
		                 MLSEC_OK);
		uint8_t buf[64] = {0};
		long long t1 = now_ms();
		mlsec_rpc_stream_send(s, buf, sizeof(buf));
		long long t2 = now_ms();
		uint8_t *resp = NULL;
		size_t len;
		mlsec_rpc_status st;
		mlsec_err e = mlsec_rpc_stream_finish(s, &resp, &len, &st);
		long long t3 = now_ms();
		if (t3 - t0 > 1000)
			fprintf(stderr, "iter %d: open %lld send %lld finish %lld ms, code %d\n", i,
			        t1 - t0, t2 - t1, t3 - t2, (int)st.code);
		assert_int_equal(e, MLSEC_ERR_AUTH);
		assert_true(t3 - t0 < 1000);
		mlsec_rpc_stream_free(s);
	}
	mlsec_rpc_client_free(c);
}

/* The same for a server stream refused before its first message. */
static void test_server_stream_refused(void **state)
{
	mlsec_rpc_client *c = client(*state, "wrong-token");
	for (int i = 0; i < 100; i++) {
		long long t0 = now_ms();
		uint8_t n = 3;
		mlsec_rpc_stream *s;
		assert_int_equal(mlsec_rpc_client_open(c, "/t.T/Stream", MLSEC_RPC_SERVER_STREAM,
		                                       &n, 1, 5000, &s, NULL),
		                 MLSEC_OK);
		uint8_t *m = NULL;
		size_t len;
		assert_true(mlsec_rpc_stream_recv(s, 0, &m, &len) <= 0);
		mlsec_rpc_status st;
		assert_int_equal(mlsec_rpc_stream_finish(s, NULL, NULL, &st), MLSEC_ERR_AUTH);
		assert_true(now_ms() - t0 < 1000);
		mlsec_rpc_stream_free(s);
	}
	mlsec_rpc_client_free(c);
}

static void test_unknown_method(void **state)
{
	mlsec_rpc_client *c = client(*state, TOKEN);
	uint8_t *resp;
	size_t len;
	mlsec_rpc_status st;
	assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Nope", (const uint8_t *)"x", 1, 5000,
	                                        &resp, &len, &st),
	                 MLSEC_ERR_UNSUPPORTED);
	assert_int_equal(st.code, GRPC_STATUS_UNIMPLEMENTED);
	mlsec_rpc_client_free(c);
}

static void test_server_stream(void **state)
{
	mlsec_rpc_client *c = client(*state, TOKEN);
	uint8_t n = 100;
	mlsec_rpc_stream *s;
	assert_int_equal(mlsec_rpc_client_open(c, "/t.T/Stream", MLSEC_RPC_SERVER_STREAM, &n, 1,
	                                       5000, &s, NULL),
	                 MLSEC_OK);
	uint8_t *m;
	size_t len;
	int i = 0, r;
	while ((r = mlsec_rpc_stream_recv(s, 0, &m, &len)) == 1) {
		assert_int_equal(len, 1);
		assert_int_equal(m[0], (uint8_t)i);
		mlsec_free(m);
		i++;
	}
	assert_int_equal(r, 0);
	assert_int_equal(i, 100);
	mlsec_rpc_status st;
	assert_int_equal(mlsec_rpc_stream_finish(s, NULL, NULL, &st), MLSEC_OK);
	mlsec_rpc_stream_free(s);
	mlsec_rpc_client_free(c);
}

static void test_client_stream(void **state)
{
	mlsec_rpc_client *c = client(*state, TOKEN);
	mlsec_rpc_stream *s;
	assert_int_equal(mlsec_rpc_client_open(c, "/t.T/Sum", MLSEC_RPC_CLIENT_STREAM, NULL, 0,
	                                       5000, &s, NULL),
	                 MLSEC_OK);
	uint8_t buf[1000];
	memset(buf, 7, sizeof(buf));
	for (int i = 0; i < 50; i++)
		assert_int_equal(mlsec_rpc_stream_send(s, buf, sizeof(buf)), MLSEC_OK);
	uint8_t *resp;
	size_t len;
	mlsec_rpc_status st;
	assert_int_equal(mlsec_rpc_stream_finish(s, &resp, &len, &st), MLSEC_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(resp, "50000", 5);
	mlsec_free(resp);
	mlsec_rpc_stream_free(s);
	mlsec_rpc_client_free(c);
}

static void *blocker(void *arg)
{
	fixture *f = arg;
	mlsec_rpc_client_opts o = {0};
	o.target = f->target;
	o.token = TOKEN;
	mlsec_rpc_client *c = NULL;
	mlsec_rpc_client_new(&o, &c, NULL);
	uint8_t *resp = NULL;
	size_t len;
	mlsec_rpc_status st;
	mlsec_err e = mlsec_rpc_client_unary(c, "/t.T/Block", (const uint8_t *)"", 0, 20000, &resp,
	                                     &len, &st);
	mlsec_free(resp);
	mlsec_rpc_client_free(c);
	return (void *)(intptr_t)e;
}

/* Three handlers blocked at once (of four workers): unary and streaming
 * calls still complete. Fails if calls were served one at a time. */
static void test_concurrent(void **state)
{
	fixture *f = *state;
	atomic_store(&block_release, 0);
	atomic_store(&block_entered, 0);
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, blocker, f);
	long long until = now_ms() + 5000;
	while (atomic_load(&block_entered) < 3 && now_ms() < until)
		usleep(1000);
	assert_int_equal(atomic_load(&block_entered), 3);
	mlsec_rpc_client *c = client(f, TOKEN);
	uint8_t *resp;
	size_t len;
	mlsec_rpc_status st;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Echo", (const uint8_t *)"ok", 2,
		                                        3000, &resp, &len, &st),
		                 MLSEC_OK);
		mlsec_free(resp);
	}
	assert_int_equal(atomic_load(&block_entered), 3); /* still blocked */
	atomic_store(&block_release, 1);
	for (int i = 0; i < 3; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		assert_int_equal((intptr_t)rv, MLSEC_OK);
	}
	mlsec_rpc_client_free(c);
}

static void test_deadline(void **state)
{
	atomic_store(&block_release, 0);
	mlsec_rpc_client *c = client(*state, TOKEN);
	uint8_t *resp = NULL;
	size_t len;
	mlsec_rpc_status st;
	long long t0 = now_ms();
	assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Block", (const uint8_t *)"", 0, 200, &resp,
	                                        &len, &st),
	                 MLSEC_ERR_TIMEOUT);
	assert_int_equal(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_true(now_ms() - t0 < 2000);
	mlsec_rpc_client_free(c);
	/* the handler sees the cancellation and frees its worker */
	usleep(100000);
	atomic_store(&block_release, 1);
}

static void test_unreachable(void **state)
{
	mlsec_rpc_client_opts o = {0};
	o.target = "127.0.0.1:1";
	mlsec_rpc_client *c = NULL;
	assert_int_equal(mlsec_rpc_client_new(&o, &c, NULL), MLSEC_OK);
	uint8_t *resp = NULL;
	size_t len;
	mlsec_rpc_status st;
	long long t0 = now_ms();
	assert_int_equal(mlsec_rpc_client_unary(c, "/t.T/Echo", (const uint8_t *)"x", 1, 5000,
	                                        &resp, &len, &st),
	                 MLSEC_ERR_UNAVAILABLE);
	assert_true(now_ms() - t0 < 4000);
	mlsec_rpc_client_free(c);
}

/* A stop with an endless stream in flight returns within the grace time. */
static void test_stop_inflight(void **state)
{
	mlsec_rpc_server_opts o = {0};
	o.listen = "127.0.0.1:0";
	o.threads = 2;
	mlsec_rpc_server *srv = NULL;
	assert_int_equal(mlsec_rpc_server_new(&o, &srv, NULL), MLSEC_OK);
	mlsec_rpc_server_add_method(srv, "/t.T/Stream", MLSEC_RPC_SERVER_STREAM, stream, NULL, 0);
	assert_int_equal(mlsec_rpc_server_start(srv, NULL), MLSEC_OK);
	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", mlsec_rpc_server_port(srv));
	mlsec_rpc_client_opts co = {0};
	co.target = target;
	mlsec_rpc_client *c = NULL;
	assert_int_equal(mlsec_rpc_client_new(&co, &c, NULL), MLSEC_OK);
	uint8_t zero = 0;
	mlsec_rpc_stream *s;
	assert_int_equal(mlsec_rpc_client_open(c, "/t.T/Stream", MLSEC_RPC_SERVER_STREAM, &zero, 1,
	                                       10000, &s, NULL),
	                 MLSEC_OK);
	uint8_t *m;
	size_t len;
	assert_int_equal(mlsec_rpc_stream_recv(s, 0, &m, &len), 1);
	mlsec_free(m);
	long long t0 = now_ms();
	mlsec_rpc_server_stop(srv, 200);
	assert_true(now_ms() - t0 < 3000);
	while (mlsec_rpc_stream_recv(s, 0, &m, &len) == 1)
		mlsec_free(m);
	mlsec_rpc_status st;
	assert_int_not_equal(mlsec_rpc_stream_finish(s, NULL, NULL, &st), MLSEC_OK);
	mlsec_rpc_stream_free(s);
	mlsec_rpc_client_free(c);
	mlsec_rpc_server_free(srv);
}

static void test_bad_options(void **state)
{
	mlsec_rpc_server *srv = NULL;
	mlsec_rpc_server_opts o = {0};
	mlsec_error err;
	assert_int_equal(mlsec_rpc_server_new(&o, &srv, &err), MLSEC_ERR_INVALID_ARG);
	o.listen = "127.0.0.1:0";
	o.cert_file = "/nonexistent.pem";
	assert_int_equal(mlsec_rpc_server_new(&o, &srv, &err), MLSEC_ERR_INVALID_ARG); /* no key */
	o.key_file = "/nonexistent.key";
	assert_int_not_equal(mlsec_rpc_server_new(&o, &srv, &err), MLSEC_OK);
	assert_null(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_unary_echo),
	        cmocka_unit_test(test_auth),
	        cmocka_unit_test(test_health_server),
	        cmocka_unit_test(test_unknown_method),
	        cmocka_unit_test(test_client_stream_refused),
	        cmocka_unit_test(test_server_stream_refused),
	        cmocka_unit_test(test_server_stream),
	        cmocka_unit_test(test_client_stream),
	        cmocka_unit_test(test_concurrent),
	        cmocka_unit_test(test_deadline),
	        cmocka_unit_test(test_unreachable),
	};
	const struct CMUnitTest solo[] = {
	        cmocka_unit_test(test_stop_inflight),
	        cmocka_unit_test(test_bad_options),
	};
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	return rc | cmocka_run_group_tests(solo, NULL, NULL);
}
