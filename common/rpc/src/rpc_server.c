/*
 * rpc_server.c - the gRPC server: a pool of worker threads, each owning a
 * notification queue (registered with the server) and a pluck queue bound
 * to the call it serves. A worker asks the core for the next call, serves
 * it synchronously from request to status, and asks again. Long handlers
 * (Watch) therefore hold one worker, never the whole server.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "mlsec/alloc.h"
#include "rpc_internal.h"

#define HEALTH_CHECK_PATH "/grpc.health.v1.Health/Check"
#define MAX_METHODS 64
#define MAX_HEALTH_NAMES 32

typedef struct method {
	char *path;
	mlsec_rpc_kind kind;
	mlsec_rpc_handler fn;
	void *ctx;
	int flags;
} method;

typedef struct worker {
	mlsec_rpc_server *srv;
	pthread_t thread;
	int running;
	grpc_completion_queue *notify_cq; /* registered: new calls */
	grpc_completion_queue *call_cq;   /* pluck: the served call's ops */
} worker;

typedef struct health_entry {
	char *name;
	int serving;
} health_entry;

struct mlsec_rpc_server {
	char *listen;
	char *cert_pem, *key_pem, *ca_pem;
	char *token;
	int nthreads;
	method methods[MAX_METHODS];
	size_t nmethods;
	pthread_mutex_t health_lock;
	health_entry health[MAX_HEALTH_NAMES];
	size_t nhealth;
	grpc_server *server;
	grpc_completion_queue *shutdown_cq;
	worker *workers;
	int port;
	int started;
	int stopped;
	int grpc_inited; /* grpc_init() ran: grpc_shutdown() in _free */
	mlsec_rpc_observer observer;
	void *observer_ctx;
	atomic_int stopping;
};

struct mlsec_rpc_call {
	mlsec_rpc_server *srv;
	grpc_call *call;
	worker *w;
	const grpc_call_details *details;
	int cancelled;         /* filled by RECV_CLOSE_ON_SERVER */
	int close_done;        /* RECV_CLOSE_ON_SERVER completed */
	int sent_initial;      /* initial metadata went out */
	grpc_status_code code; /* the status sent */
	char *peer;            /* gpr_malloc'd */
	char message[512];
};

static grpc_status_code health_check(mlsec_rpc_call *c, const uint8_t *req, size_t req_len,
                                     uint8_t **resp, size_t *resp_len, void *ctx);

mlsec_err mlsec_rpc_server_new(const mlsec_rpc_server_opts *o, mlsec_rpc_server **out,
                               mlsec_error *err)
{
	*out = NULL;
	if (!o || !o->listen || !*o->listen)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no listen address");
	if ((o->cert_file && *o->cert_file) != (o->key_file && *o->key_file))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "TLS needs both a certificate and a key");
	if (o->ca_file && *o->ca_file && !(o->cert_file && *o->cert_file))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "mutual TLS (CA file) needs a server certificate and key");
	if (o->threads < 0 || o->threads > MLSEC_RPC_MAX_THREADS)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "threads must be 0..%d",
		                       MLSEC_RPC_MAX_THREADS);
	mlsec_rpc_server *s = mlsec_calloc(1, sizeof(*s));
	if (!s)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&s->health_lock, NULL);
	atomic_init(&s->stopping, 0);
	s->nthreads = o->threads ? o->threads : MLSEC_RPC_DEFAULT_THREADS;
	s->listen = mlsec_strdup(o->listen);
	mlsec_err e = MLSEC_OK;
	if (!s->listen)
		e = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (e == MLSEC_OK && o->auth_token && !(s->token = mlsec_strdup(o->auth_token)))
		e = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (e == MLSEC_OK && o->cert_file && *o->cert_file) {
		e = rpc_pem_load(o->cert_file, &s->cert_pem, err);
		if (e == MLSEC_OK)
			e = rpc_pem_load(o->key_file, &s->key_pem, err);
		if (e == MLSEC_OK && o->ca_file && *o->ca_file)
			e = rpc_pem_load(o->ca_file, &s->ca_pem, err);
	}
	if (e == MLSEC_OK)
		e = mlsec_rpc_server_add_method(s, HEALTH_CHECK_PATH, MLSEC_RPC_UNARY, health_check,
		                                s, MLSEC_RPC_PUBLIC);
	if (e == MLSEC_OK)
		mlsec_rpc_server_set_serving(s, "", 0);
	if (e != MLSEC_OK) {
		mlsec_rpc_server_free(s);
		return e;
	}
	grpc_init();
	s->grpc_inited = 1;
	*out = s;
	return MLSEC_OK;
}

mlsec_err mlsec_rpc_server_add_method(mlsec_rpc_server *s, const char *path, mlsec_rpc_kind kind,
                                      mlsec_rpc_handler fn, void *ctx, int flags)
{
	if (s->started || s->nmethods >= MAX_METHODS || !path || path[0] != '/' || !fn)
		return MLSEC_ERR_INVALID_ARG;
	method *m = &s->methods[s->nmethods];
	if (!(m->path = mlsec_strdup(path)))
		return MLSEC_ERR_NOMEM;
	m->kind = kind;
	m->fn = fn;
	m->ctx = ctx;
	m->flags = flags;
	s->nmethods++;
	return MLSEC_OK;
}

void mlsec_rpc_server_set_observer(mlsec_rpc_server *s, mlsec_rpc_observer fn, void *ctx)
{
	s->observer = fn;
	s->observer_ctx = ctx;
}

void mlsec_rpc_server_set_serving(mlsec_rpc_server *s, const char *service, int serving)
{
	pthread_mutex_lock(&s->health_lock);
	for (size_t i = 0; i < s->nhealth; i++) {
		if (!strcmp(s->health[i].name, service)) {
			s->health[i].serving = serving;
			pthread_mutex_unlock(&s->health_lock);
			return;
		}
	}
	if (s->nhealth < MAX_HEALTH_NAMES) {
		char *name = mlsec_strdup(service);
		if (name) {
			s->health[s->nhealth].name = name;
			s->health[s->nhealth].serving = serving;
			s->nhealth++;
		}
	}
	pthread_mutex_unlock(&s->health_lock);
}

/* Returns 1 serving, 0 not serving, -1 unknown service. */
static int health_lookup(mlsec_rpc_server *s, const char *service)
{
	int r = -1;
	pthread_mutex_lock(&s->health_lock);
	for (size_t i = 0; i < s->nhealth; i++)
		if (!strcmp(s->health[i].name, service))
			r = s->health[i].serving && !atomic_load(&s->stopping);
	pthread_mutex_unlock(&s->health_lock);
	return r;
}

static grpc_status_code health_check(mlsec_rpc_call *c, const uint8_t *req, size_t req_len,
                                     uint8_t **resp, size_t *resp_len, void *ctx)
{
	mlsec_rpc_server *s = ctx;
	Grpc__Health__V1__HealthCheckRequest *in =
	        grpc__health__v1__health_check_request__unpack(NULL, req_len, req);
	if (!in) {
		mlsec_rpc_call_set_message(c, "malformed HealthCheckRequest");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	int st = health_lookup(s, in->service ? in->service : "");
	grpc__health__v1__health_check_request__free_unpacked(in, NULL);
	if (st < 0) {
		mlsec_rpc_call_set_message(c, "unknown service");
		return GRPC_STATUS_NOT_FOUND;
	}
	Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	out.status = st ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
	                : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	size_t n = grpc__health__v1__health_check_response__get_packed_size(&out);
	*resp = mlsec_malloc(n ? n : 1);
	if (!*resp)
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	*resp_len = grpc__health__v1__health_check_response__pack(&out, *resp);
	return GRPC_STATUS_OK;
}

static const method *method_find(const mlsec_rpc_server *s, grpc_slice path)
{
	size_t n = GRPC_SLICE_LENGTH(path);
	const char *p = (const char *)GRPC_SLICE_START_PTR(path);
	for (size_t i = 0; i < s->nmethods; i++)
		if (strlen(s->methods[i].path) == n && !memcmp(s->methods[i].path, p, n))
			return &s->methods[i];
	return NULL;
}

/* Checks "authorization: Bearer <token>" in constant time. */
static int auth_ok(const mlsec_rpc_server *s, const grpc_metadata_array *md)
{
	static const char prefix[] = "Bearer ";
	int ok = 0;
	for (size_t i = 0; i < md->count; i++) {
		const grpc_metadata *m = &md->metadata[i];
		if (!grpc_slice_str_cmp(m->key, "authorization")) {
			size_t n = GRPC_SLICE_LENGTH(m->value);
			if (n <= sizeof(prefix) - 1 || n > MLSEC_RPC_MAX_TOKEN + sizeof(prefix))
				continue;
			const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
			if (memcmp(v, prefix, sizeof(prefix) - 1))
				continue;
			char buf[MLSEC_RPC_MAX_TOKEN + 16];
			size_t tn = n - (sizeof(prefix) - 1);
			memcpy(buf, v + sizeof(prefix) - 1, tn);
			buf[tn] = '\0';
			if (memchr(buf, '\0', tn))
				continue;
			ok |= mlsec_rpc_token_equal(buf, s->token);
		}
	}
	return ok;
}

void mlsec_rpc_call_set_message(mlsec_rpc_call *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
}

const char *mlsec_rpc_call_peer(const mlsec_rpc_call *c)
{
	return c->peer ? c->peer : "unknown";
}

int64_t mlsec_rpc_call_remaining_ms(const mlsec_rpc_call *c)
{
	gpr_timespec dl = gpr_convert_clock_type(c->details->deadline, GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) >= 0 ||
	    dl.tv_sec > INT64_MAX / 2000)
		return INT64_MAX;
	gpr_timespec left = gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC));
	int64_t ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
	return ms < 0 ? 0 : ms;
}

int mlsec_rpc_call_cancelled(mlsec_rpc_call *c)
{
	if (atomic_load(&c->srv->stopping))
		return 1;
	if (!c->close_done &&
	    rpc_pluck(c->w->call_cq, RPC_TAG_CLOSE, gpr_time_0(GPR_CLOCK_MONOTONIC), NULL))
		c->close_done = 1;
	/* Before our status went out, a completed close means the client
	 * cancelled or the connection died. */
	return c->close_done;
}

/* Runs one batch on the call's queue and waits for it. */
/* Runs one batch on the call's queue and waits for it, at most
 * MLSEC_RPC_IDLE_MS: a peer that stops reading or sending (a slow-loris
 * upload, a Watch client that never reads) gets its call cancelled with
 * DEADLINE_EXCEEDED instead of holding a worker forever. */
static int call_batch(mlsec_rpc_call *c, grpc_op *ops, size_t n)
{
	if (grpc_call_start_batch(c->call, ops, n, RPC_TAG_OP, NULL) != GRPC_CALL_OK)
		return 0;
	int timed_out = 0;
	int ok = rpc_pluck(c->w->call_cq, RPC_TAG_OP, rpc_deadline_ms(MLSEC_RPC_IDLE_MS),
	                   &timed_out);
	if (timed_out) {
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED,
		                             "peer idle for too long", NULL);
		rpc_pluck(c->w->call_cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		ok = 0;
	}
	return ok;
}

mlsec_err mlsec_rpc_call_send(mlsec_rpc_call *c, const uint8_t *msg, size_t len)
{
	if (mlsec_rpc_call_cancelled(c))
		return MLSEC_ERR_UNAVAILABLE;
	grpc_op ops[2];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	grpc_byte_buffer *bb = rpc_buffer_from(msg, len);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	int ok = call_batch(c, ops, n);
	grpc_byte_buffer_destroy(bb);
	c->sent_initial = 1;
	return ok ? MLSEC_OK : MLSEC_ERR_UNAVAILABLE;
}

int mlsec_rpc_call_recv(mlsec_rpc_call *c, uint8_t **msg, size_t *len)
{
	grpc_op op;
	grpc_byte_buffer *bb = NULL;
	memset(&op, 0, sizeof(op));
	*msg = NULL;
	*len = 0;
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &bb;
	if (!call_batch(c, &op, 1)) {
		if (bb)
			grpc_byte_buffer_destroy(bb);
		return -1;
	}
	if (!bb)
		return 0;
	mlsec_err e = rpc_buffer_read(bb, msg, len);
	grpc_byte_buffer_destroy(bb);
	return e == MLSEC_OK ? 1 : -1;
}

/* Sends the final status, with resp as the last message when not NULL. */
static void call_finish(mlsec_rpc_call *c, grpc_status_code code, const uint8_t *resp,
                        size_t resp_len)
{
	grpc_op ops[3];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	grpc_byte_buffer *bb = NULL;
	if (resp) {
		bb = rpc_buffer_from(resp, resp_len);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = bb;
		n++;
	}
	grpc_slice details = grpc_slice_from_copied_string(c->message);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	c->code = code;
	ops[n].data.send_status_from_server.status_details = c->message[0] ? &details : NULL;
	n++;
	call_batch(c, ops, n);
	grpc_slice_unref(details);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	c->sent_initial = 1;
}

static void serve_call(worker *w, grpc_call *gc, const grpc_call_details *det,
                       const grpc_metadata_array *md)
{
	mlsec_rpc_server *s = w->srv;
	mlsec_rpc_call c;
	memset(&c, 0, sizeof(c));
	c.srv = s;
	c.call = gc;
	c.w = w;
	c.details = det;
	c.peer = grpc_call_get_peer(gc);

	grpc_op close_op;
	memset(&close_op, 0, sizeof(close_op));
	close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	close_op.data.recv_close_on_server.cancelled = &c.cancelled;
	if (grpc_call_start_batch(gc, &close_op, 1, RPC_TAG_CLOSE, NULL) != GRPC_CALL_OK) {
		gpr_free(c.peer);
		return;
	}

	const method *m = method_find(s, det->method);
	uint8_t *req = NULL, *resp = NULL;
	size_t req_len = 0, resp_len = 0;
	if (!m) {
		mlsec_rpc_call_set_message(&c, "unknown method");
		call_finish(&c, GRPC_STATUS_UNIMPLEMENTED, NULL, 0);
	} else if (s->token && !(m->flags & MLSEC_RPC_PUBLIC) && !auth_ok(s, md)) {
		mlsec_rpc_call_set_message(&c, "missing or invalid bearer token");
		call_finish(&c, GRPC_STATUS_UNAUTHENTICATED, NULL, 0);
	} else if (m->kind != MLSEC_RPC_CLIENT_STREAM &&
	           mlsec_rpc_call_recv(&c, &req, &req_len) != 1) {
		mlsec_rpc_call_set_message(&c, "no request message");
		call_finish(&c, GRPC_STATUS_INVALID_ARGUMENT, NULL, 0);
	} else {
		grpc_status_code st = m->fn(&c, req ? req : (const uint8_t *)"", req_len, &resp,
		                            &resp_len, m->ctx);
		if (st == GRPC_STATUS_OK && m->kind != MLSEC_RPC_SERVER_STREAM && !resp) {
			mlsec_rpc_call_set_message(&c, "handler returned no response");
			st = GRPC_STATUS_INTERNAL;
		}
		if (st == GRPC_STATUS_OK && m->kind != MLSEC_RPC_SERVER_STREAM)
			call_finish(&c, st, resp, resp_len);
		else
			call_finish(&c, st, NULL, 0);
	}
	mlsec_free(req);
	mlsec_free(resp);
	if (s->observer)
		s->observer(m ? m->path : "unknown", c.code, s->observer_ctx);
	if (!c.close_done)
		rpc_pluck(w->call_cq, RPC_TAG_CLOSE, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	gpr_free(c.peer);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	mlsec_rpc_server *s = w->srv;
	while (!atomic_load(&s->stopping)) {
		grpc_call *gc = NULL;
		grpc_call_details det;
		grpc_metadata_array md;
		grpc_call_details_init(&det);
		grpc_metadata_array_init(&md);
		grpc_call_error ce = grpc_server_request_call(s->server, &gc, &det, &md, w->call_cq,
		                                              w->notify_cq, RPC_TAG_NEW);
		int ok = 0;
		if (ce == GRPC_CALL_OK) {
			grpc_event ev = grpc_completion_queue_next(
			        w->notify_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
			ok = ev.type == GRPC_OP_COMPLETE && ev.success;
		}
		if (ok)
			serve_call(w, gc, &det, &md);
		if (gc)
			grpc_call_unref(gc);
		grpc_call_details_destroy(&det);
		grpc_metadata_array_destroy(&md);
		if (!ok)
			break;
	}
	return NULL;
}

mlsec_err mlsec_rpc_server_start(mlsec_rpc_server *s, mlsec_error *err)
{
	if (s->started)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "server already started");
	grpc_arg args[2];
	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = (int)MLSEC_RPC_MAX_MESSAGE;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = (int)MLSEC_RPC_MAX_MESSAGE;
	grpc_channel_args ca = {2, args};
	s->server = grpc_server_create(&ca, NULL);
	s->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);
	s->workers = mlsec_calloc((size_t)s->nthreads, sizeof(worker));
	if (!s->workers)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	for (int i = 0; i < s->nthreads; i++) {
		worker *w = &s->workers[i];
		w->srv = s;
		w->notify_cq = grpc_completion_queue_create_for_next(NULL);
		w->call_cq = grpc_completion_queue_create_for_pluck(NULL);
		grpc_server_register_completion_queue(s->server, w->notify_cq, NULL);
	}
	grpc_server_credentials *creds;
	if (s->cert_pem) {
		grpc_ssl_pem_key_cert_pair pair = {s->key_pem, s->cert_pem};
		creds = grpc_ssl_server_credentials_create_ex(
		        s->ca_pem, &pair, 1,
		        s->ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
		                  : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
		        NULL);
	} else {
		creds = grpc_insecure_server_credentials_create();
	}
	s->port = grpc_server_add_http2_port(s->server, s->listen, creds);
	grpc_server_credentials_release(creds);
	s->started = 1;
	if (s->port <= 0) {
		s->port = 0;
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "cannot listen on %s",
		                       s->listen);
	}
	grpc_server_start(s->server);
	for (int i = 0; i < s->nthreads; i++) {
		if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]))
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "cannot start worker threads");
		s->workers[i].running = 1;
	}
	mlsec_rpc_server_set_serving(s, "", 1);
	return MLSEC_OK;
}

#define HEALTH_SERVER_THREADS 2

mlsec_err mlsec_rpc_health_server_start(const char *listen, mlsec_rpc_server *state,
                                        mlsec_rpc_server **out, mlsec_error *err)
{
	*out = NULL;
	mlsec_rpc_server_opts o = {0};
	o.listen = listen;
	o.threads = HEALTH_SERVER_THREADS;
	mlsec_rpc_server *s = NULL;
	mlsec_err e = mlsec_rpc_server_new(&o, &s, err);
	if (e != MLSEC_OK)
		return e;
	/* The health method, registered first by _new, answers from state. */
	s->methods[0].ctx = state;
	e = mlsec_rpc_server_start(s, err);
	if (e != MLSEC_OK) {
		mlsec_rpc_server_free(s);
		return e;
	}
	*out = s;
	return MLSEC_OK;
}

int mlsec_rpc_server_port(const mlsec_rpc_server *s)
{
	return s->port;
}

void mlsec_rpc_server_stop(mlsec_rpc_server *s, int grace_ms)
{
	if (!s || !s->started || s->stopped)
		return;
	s->stopped = 1;
	atomic_store(&s->stopping, 1);
	grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, RPC_TAG_SHUTDOWN);
	if (!rpc_pluck(s->shutdown_cq, RPC_TAG_SHUTDOWN,
	               rpc_deadline_ms(grace_ms > 0 ? grace_ms : 0), NULL)) {
		grpc_server_cancel_all_calls(s->server);
		rpc_pluck(s->shutdown_cq, RPC_TAG_SHUTDOWN, gpr_inf_future(GPR_CLOCK_MONOTONIC),
		          NULL);
	}
	for (int i = 0; i < s->nthreads; i++)
		if (s->workers[i].running)
			pthread_join(s->workers[i].thread, NULL);
}

void mlsec_rpc_server_free(mlsec_rpc_server *s)
{
	if (!s)
		return;
	/* A server that failed to bind was never started: destroy it as is. */
	if (s->started && s->port > 0)
		mlsec_rpc_server_stop(s, 0);
	if (s->server)
		grpc_server_destroy(s->server);
	if (s->workers) {
		for (int i = 0; i < s->nthreads; i++) {
			worker *w = &s->workers[i];
			if (w->notify_cq) {
				grpc_completion_queue_shutdown(w->notify_cq);
				while (grpc_completion_queue_next(
				               w->notify_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
				               NULL)
				               .type != GRPC_QUEUE_SHUTDOWN)
					;
				grpc_completion_queue_destroy(w->notify_cq);
			}
			rpc_cq_destroy(w->call_cq);
		}
		mlsec_free(s->workers);
	}
	rpc_cq_destroy(s->shutdown_cq);
	for (size_t i = 0; i < s->nmethods; i++)
		mlsec_free(s->methods[i].path);
	for (size_t i = 0; i < s->nhealth; i++)
		mlsec_free(s->health[i].name);
	pthread_mutex_destroy(&s->health_lock);
	mlsec_free(s->listen);
	mlsec_free(s->cert_pem);
	mlsec_free(s->key_pem);
	mlsec_free(s->ca_pem);
	if (s->token) {
		memset(s->token, 0, strlen(s->token));
		mlsec_free(s->token);
	}
	int had_init = s->grpc_inited;
	mlsec_free(s);
	if (had_init)
		grpc_shutdown();
}
