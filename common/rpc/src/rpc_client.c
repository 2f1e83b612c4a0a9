/*
 * rpc_client.c - the gRPC client: one channel per mlsec_rpc_client, one
 * pluck queue per call, every call bounded by a deadline. The channel is
 * thread-safe; a stream is used by one thread at a time.
 */
#include <stdio.h>
#include <string.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "mlsec/alloc.h"
#include "rpc_internal.h"

struct mlsec_rpc_client {
	grpc_channel *channel;
	char *auth; /* "Bearer <token>" or NULL */
};

struct mlsec_rpc_stream {
	mlsec_rpc_client *client;
	mlsec_rpc_kind kind;
	grpc_call *call;
	grpc_completion_queue *cq;
	grpc_metadata_array initial_md;
	grpc_byte_buffer *recv_bb; /* target of a pending RECV_MESSAGE */
	int recv_pending;
	int failed; /* an op failed: the call is over, only status remains */
	int closed; /* half-closed */
	int finished;
	int initial_received;
};

static void status_set(mlsec_rpc_status *st, grpc_status_code code, const char *msg)
{
	if (!st)
		return;
	st->code = code;
	snprintf(st->message, sizeof(st->message), "%s", msg ? msg : "");
}

mlsec_err mlsec_rpc_client_new(const mlsec_rpc_client_opts *o, mlsec_rpc_client **out,
                               mlsec_error *err)
{
	*out = NULL;
	if (!o || !o->target || !*o->target)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no endpoint given");
	char *ca = NULL, *cert = NULL, *key = NULL;
	mlsec_err e = MLSEC_OK;
	if (o->ca_file && *o->ca_file)
		e = rpc_pem_load(o->ca_file, &ca, err);
	if (e == MLSEC_OK && o->cert_file && *o->cert_file)
		e = rpc_pem_load(o->cert_file, &cert, err);
	if (e == MLSEC_OK && o->key_file && *o->key_file)
		e = rpc_pem_load(o->key_file, &key, err);
	if (e == MLSEC_OK && (!cert) != (!key))
		e = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                    "a client certificate needs its key (and vice versa)");
	mlsec_rpc_client *c = NULL;
	if (e == MLSEC_OK && !(c = mlsec_calloc(1, sizeof(*c))))
		e = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (e == MLSEC_OK && o->token) {
		if (!*o->token || strlen(o->token) > MLSEC_RPC_MAX_TOKEN)
			e = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "bad token length");
		else if (!(c->auth = mlsec_sprintf("Bearer %s", o->token)))
			e = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	if (e != MLSEC_OK) {
		if (c)
			mlsec_free(c->auth);
		mlsec_free(c);
		mlsec_free(ca);
		mlsec_free(cert);
		mlsec_free(key);
		return e;
	}
	grpc_init();
	grpc_arg args[3];
	size_t nargs = 0;
	memset(args, 0, sizeof(args));
	args[nargs].type = GRPC_ARG_INTEGER;
	args[nargs].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[nargs].value.integer = (int)MLSEC_RPC_MAX_MESSAGE;
	nargs++;
	args[nargs].type = GRPC_ARG_INTEGER;
	args[nargs].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[nargs].value.integer = (int)MLSEC_RPC_MAX_MESSAGE;
	nargs++;
	if (o->server_name && *o->server_name) {
		args[nargs].type = GRPC_ARG_STRING;
		args[nargs].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		args[nargs].value.string = (char *)o->server_name;
		nargs++;
	}
	grpc_channel_args ca_args = {nargs, args};
	grpc_channel_credentials *creds;
	if (o->tls || ca || cert) {
		grpc_ssl_pem_key_cert_pair pair = {key, cert};
		creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
	} else {
		creds = grpc_insecure_credentials_create();
	}
	c->channel = grpc_channel_create(o->target, creds, &ca_args);
	grpc_channel_credentials_release(creds);
	mlsec_free(ca);
	mlsec_free(cert);
	if (key) {
		memset(key, 0, strlen(key));
		mlsec_free(key);
	}
	*out = c;
	return MLSEC_OK;
}

void mlsec_rpc_client_free(mlsec_rpc_client *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->channel);
	if (c->auth) {
		memset(c->auth, 0, strlen(c->auth));
		mlsec_free(c->auth);
	}
	mlsec_free(c);
	grpc_shutdown();
}

static grpc_call *call_create(mlsec_rpc_client *c, grpc_completion_queue *cq, const char *method,
                              int timeout_ms)
{
	grpc_slice m = grpc_slice_from_copied_string(method);
	grpc_call *call =
	        grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
	                                 rpc_deadline_ms(timeout_ms > 0 ? timeout_ms : 1), NULL);
	grpc_slice_unref(m);
	return call;
}

/* Fills op with SEND_INITIAL_METADATA carrying the bearer token, if any. */
static void initial_md_op(mlsec_rpc_client *c, grpc_op *op, grpc_metadata *md)
{
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->auth) {
		md->key = grpc_slice_from_static_string("authorization");
		md->value = grpc_slice_from_static_string(c->auth);
		op->data.send_initial_metadata.count = 1;
		op->data.send_initial_metadata.metadata = md;
	}
}

/* Receives the status on its own batch (it always completes). */
static mlsec_err call_status(grpc_call *call, grpc_completion_queue *cq, mlsec_rpc_status *st)
{
	grpc_op op;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_metadata_array trailing;
	grpc_metadata_array_init(&trailing);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op.data.recv_status_on_client.status = &code;
	op.data.recv_status_on_client.status_details = &details;
	op.data.recv_status_on_client.trailing_metadata = &trailing;
	if (grpc_call_start_batch(call, &op, 1, RPC_TAG_STATUS, NULL) == GRPC_CALL_OK)
		rpc_pluck(cq, RPC_TAG_STATUS, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	char *msg = grpc_slice_to_c_string(details);
	status_set(st, code, msg);
	gpr_free(msg);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&trailing);
	return mlsec_rpc_err_from_status(code);
}

mlsec_err mlsec_rpc_client_unary(mlsec_rpc_client *c, const char *method, const uint8_t *req,
                                 size_t req_len, int timeout_ms, uint8_t **resp, size_t *resp_len,
                                 mlsec_rpc_status *st)
{
	*resp = NULL;
	*resp_len = 0;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_call *call = call_create(c, cq, method, timeout_ms);
	grpc_op ops[5];
	grpc_metadata md;
	grpc_metadata_array initial;
	grpc_byte_buffer *out = rpc_buffer_from(req, req_len), *in = NULL;
	grpc_metadata_array_init(&initial);
	memset(ops, 0, sizeof(ops));
	initial_md_op(c, &ops[0], &md);
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = out;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &in;
	if (grpc_call_start_batch(call, ops, 5, RPC_TAG_OP, NULL) == GRPC_CALL_OK)
		rpc_pluck(cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	mlsec_err e = call_status(call, cq, st);
	if (e == MLSEC_OK) {
		if (!in) {
			status_set(st, GRPC_STATUS_INTERNAL, "no response message");
			e = MLSEC_ERR_INTERNAL;
		} else if (rpc_buffer_read(in, resp, resp_len) != MLSEC_OK) {
			status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
			e = MLSEC_ERR_NOMEM;
		}
	}
	if (in)
		grpc_byte_buffer_destroy(in);
	grpc_byte_buffer_destroy(out);
	grpc_metadata_array_destroy(&initial);
	grpc_call_unref(call);
	rpc_cq_destroy(cq);
	return e;
}

mlsec_err mlsec_rpc_client_open(mlsec_rpc_client *c, const char *method, mlsec_rpc_kind kind,
                                const uint8_t *req, size_t req_len, int timeout_ms,
                                mlsec_rpc_stream **out, mlsec_error *err)
{
	*out = NULL;
	if (kind == MLSEC_RPC_UNARY || (kind == MLSEC_RPC_SERVER_STREAM) != (req != NULL))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "bad stream kind or request");
	mlsec_rpc_stream *s = mlsec_calloc(1, sizeof(*s));
	if (!s)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	s->client = c;
	s->kind = kind;
	s->cq = grpc_completion_queue_create_for_pluck(NULL);
	s->call = call_create(c, s->cq, method, timeout_ms);
	grpc_metadata_array_init(&s->initial_md);
	grpc_op ops[3];
	grpc_metadata md;
	size_t n = 0;
	grpc_byte_buffer *bb = NULL;
	memset(ops, 0, sizeof(ops));
	initial_md_op(c, &ops[n++], &md);
	if (kind == MLSEC_RPC_SERVER_STREAM) {
		bb = rpc_buffer_from(req, req_len);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = bb;
		n++;
		ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		n++;
		s->closed = 1;
	}
	int ok = grpc_call_start_batch(s->call, ops, n, RPC_TAG_OP, NULL) == GRPC_CALL_OK &&
	         rpc_pluck(s->cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	if (!ok)
		s->failed = 1; /* the status will say why */
	*out = s;
	return MLSEC_OK;
}

mlsec_err mlsec_rpc_stream_send(mlsec_rpc_stream *s, const uint8_t *msg, size_t len)
{
	if (s->failed || s->closed || s->kind != MLSEC_RPC_CLIENT_STREAM)
		return MLSEC_ERR_UNAVAILABLE;
	grpc_op op;
	memset(&op, 0, sizeof(op));
	grpc_byte_buffer *bb = rpc_buffer_from(msg, len);
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = bb;
	int ok = grpc_call_start_batch(s->call, &op, 1, RPC_TAG_OP, NULL) == GRPC_CALL_OK &&
	         rpc_pluck(s->cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	grpc_byte_buffer_destroy(bb);
	if (!ok)
		s->failed = 1;
	return ok ? MLSEC_OK : MLSEC_ERR_UNAVAILABLE;
}

/* Starts RECV_MESSAGE (with RECV_INITIAL_METADATA the first time). */
static int recv_start(mlsec_rpc_stream *s)
{
	grpc_op ops[2];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	if (!s->initial_received) {
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
		n++;
		s->initial_received = 1;
	}
	s->recv_bb = NULL;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &s->recv_bb;
	n++;
	if (grpc_call_start_batch(s->call, ops, n, RPC_TAG_OP, NULL) != GRPC_CALL_OK)
		return 0;
	s->recv_pending = 1;
	return 1;
}

int mlsec_rpc_stream_recv(mlsec_rpc_stream *s, int wait_ms, uint8_t **msg, size_t *len)
{
	*msg = NULL;
	*len = 0;
	/* Even after a failed send the read is attempted: it consumes the
	 * server's answer, without which the core never delivers the status. */
	if (s->finished)
		return -1;
	if (!s->recv_pending && !recv_start(s)) {
		s->failed = 1;
		return -1;
	}
	int timed_out = 0;
	int ok = rpc_pluck(s->cq, RPC_TAG_OP,
	                   wait_ms > 0 ? rpc_deadline_ms(wait_ms)
	                               : gpr_inf_future(GPR_CLOCK_MONOTONIC),
	                   &timed_out);
	if (timed_out)
		return -2;
	s->recv_pending = 0;
	if (!ok || !s->recv_bb) {
		if (s->recv_bb)
			grpc_byte_buffer_destroy(s->recv_bb);
		s->recv_bb = NULL;
		s->failed = !ok;
		if (ok)
			return 0; /* clean end of stream */
		return -1;
	}
	mlsec_err e = rpc_buffer_read(s->recv_bb, msg, len);
	grpc_byte_buffer_destroy(s->recv_bb);
	s->recv_bb = NULL;
	return e == MLSEC_OK ? 1 : -1;
}

mlsec_err mlsec_rpc_stream_finish(mlsec_rpc_stream *s, uint8_t **resp, size_t *resp_len,
                                  mlsec_rpc_status *st)
{
	if (resp) {
		*resp = NULL;
		*resp_len = 0;
	}
	if (s->finished) {
		status_set(st, GRPC_STATUS_INTERNAL, "stream already finished");
		return MLSEC_ERR_INTERNAL;
	}
	grpc_byte_buffer *in = NULL;
	if (s->kind == MLSEC_RPC_CLIENT_STREAM) {
		grpc_op ops[3];
		size_t n = 0;
		memset(ops, 0, sizeof(ops));
		/* After a failed send the server has already answered: no close,
		 * but the initial metadata and message must still be read, since
		 * the core delivers the status only after them. */
		if (!s->failed && !s->closed) {
			ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
			s->closed = 1;
		}
		if (!s->initial_received) {
			ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
			ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
			n++;
			s->initial_received = 1;
		}
		ops[n].op = GRPC_OP_RECV_MESSAGE;
		ops[n].data.recv_message.recv_message = &in;
		n++;
		if (grpc_call_start_batch(s->call, ops, n, RPC_TAG_OP, NULL) == GRPC_CALL_OK)
			rpc_pluck(s->cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	} else if (s->kind == MLSEC_RPC_SERVER_STREAM && s->recv_pending) {
		/* the caller stops early: cancel and collect the pending read */
		grpc_call_cancel(s->call, NULL);
		rpc_pluck(s->cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		s->recv_pending = 0;
		if (s->recv_bb)
			grpc_byte_buffer_destroy(s->recv_bb);
		s->recv_bb = NULL;
	}
	mlsec_err e = call_status(s->call, s->cq, st);
	s->finished = 1;
	if (e == MLSEC_OK && s->kind == MLSEC_RPC_CLIENT_STREAM) {
		if (!in) {
			status_set(st, GRPC_STATUS_INTERNAL, "no response message");
			e = MLSEC_ERR_INTERNAL;
		} else if (resp && rpc_buffer_read(in, resp, resp_len) != MLSEC_OK) {
			e = MLSEC_ERR_NOMEM;
		}
	}
	if (in)
		grpc_byte_buffer_destroy(in);
	return e;
}

void mlsec_rpc_stream_free(mlsec_rpc_stream *s)
{
	if (!s)
		return;
	if (!s->finished) {
		grpc_call_cancel(s->call, NULL);
		if (s->recv_pending) {
			rpc_pluck(s->cq, RPC_TAG_OP, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
			if (s->recv_bb)
				grpc_byte_buffer_destroy(s->recv_bb);
		}
		call_status(s->call, s->cq, NULL);
	}
	grpc_metadata_array_destroy(&s->initial_md);
	grpc_call_unref(s->call);
	rpc_cq_destroy(s->cq);
	mlsec_free(s);
}

mlsec_err mlsec_rpc_health_check(mlsec_rpc_client *c, const char *service, int timeout_ms,
                                 int *serving, mlsec_rpc_status *st)
{
	*serving = 0;
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	req.service = (char *)(service ? service : "");
	uint8_t buf[512];
	if (grpc__health__v1__health_check_request__get_packed_size(&req) > sizeof(buf))
		return MLSEC_ERR_INVALID_ARG;
	size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	mlsec_err e = mlsec_rpc_client_unary(c, "/grpc.health.v1.Health/Check", buf, n, timeout_ms,
	                                     &resp, &resp_len, st);
	if (e != MLSEC_OK)
		return e;
	Grpc__Health__V1__HealthCheckResponse *r =
	        grpc__health__v1__health_check_response__unpack(NULL, resp_len, resp);
	mlsec_free(resp);
	if (!r)
		return MLSEC_ERR_PARSE;
	*serving = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	grpc__health__v1__health_check_response__free_unpacked(r, NULL);
	return MLSEC_OK;
}
