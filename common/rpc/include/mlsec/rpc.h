/*
 * rpc.h - a small gRPC layer over the gRPC C core (1.51) for mlsec's
 * services and clients: raw protobuf bytes in and out, one function per
 * call shape (unary, server streaming, client streaming).
 *
 * Server model: a pool of worker threads, each with its own notification
 * and call completion queues, each serving one call at a time from
 * request to status. `threads` calls are served concurrently; further calls
 * wait in the core until a worker is free. A handler runs on its worker
 * thread and may block (Redis, a stream's next event): only its own call
 * waits.
 *
 * Security: TLS when cert and key are given, mutual TLS (client certificate
 * required and verified) when a CA is also given. When auth_token is set,
 * every method not registered MLSEC_RPC_PUBLIC needs the metadata
 * "authorization: Bearer <token>" (compared in constant time); otherwise the
 * call ends with UNAUTHENTICATED before the handler runs.
 *
 * grpc.health.v1.Health/Check is always served (public): "" and every name
 * passed to mlsec_rpc_server_set_serving.
 */
#ifndef MLSEC_RPC_H
#define MLSEC_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_RPC_DEFAULT_THREADS 16
#define MLSEC_RPC_MAX_THREADS 256
/* Largest message accepted by servers and clients (Upload chunks are far
 * smaller; StageResults with big reports are the largest messages). */
#define MLSEC_RPC_MAX_MESSAGE (16u * 1024 * 1024)
/* Longest a server waits for one message from, or one send to, a peer
 * before cancelling the call (DEADLINE_EXCEEDED). */
#define MLSEC_RPC_IDLE_MS 60000
/* Longest bearer token read from a token file. */
#define MLSEC_RPC_MAX_TOKEN 4096

typedef struct mlsec_rpc_server mlsec_rpc_server;
typedef struct mlsec_rpc_call mlsec_rpc_call;

typedef struct mlsec_rpc_server_opts {
	const char *listen;    /* "127.0.0.1:50051"; port 0 picks a free port */
	const char *cert_file; /* PEM; TLS when cert_file and key_file are set */
	const char *key_file;
	const char *ca_file;    /* PEM; with TLS: client certificates required */
	const char *auth_token; /* NULL = no auth; copied */
	int threads;            /* 0 = MLSEC_RPC_DEFAULT_THREADS */
} mlsec_rpc_server_opts;

typedef enum mlsec_rpc_kind {
	MLSEC_RPC_UNARY = 0,
	MLSEC_RPC_SERVER_STREAM, /* one request, a stream of responses */
	MLSEC_RPC_CLIENT_STREAM  /* a stream of requests, one response */
} mlsec_rpc_kind;

/* Flags for mlsec_rpc_server_add_method. */
#define MLSEC_RPC_PUBLIC 1 /* no bearer token needed (health probes) */

/*
 * A method handler. Runs on a worker thread.
 * - UNARY / SERVER_STREAM: req/req_len is the request (borrowed for the
 *   call). CLIENT_STREAM: req is NULL; read with mlsec_rpc_call_recv().
 * - UNARY / CLIENT_STREAM: on GRPC_STATUS_OK set *resp to an
 *   mlsec_malloc'd buffer (ownership moves to the layer) and *resp_len.
 * - SERVER_STREAM: send with mlsec_rpc_call_send(); resp is unused.
 * Returns the call's status; a message may be set with
 * mlsec_rpc_call_set_message().
 */
typedef grpc_status_code (*mlsec_rpc_handler)(mlsec_rpc_call *call, const uint8_t *req,
                                              size_t req_len, uint8_t **resp, size_t *resp_len,
                                              void *ctx);

/* Validates options and loads TLS files. *out owned by caller. */
mlsec_err mlsec_rpc_server_new(const mlsec_rpc_server_opts *o, mlsec_rpc_server **out,
                               mlsec_error *err);

/* path is "/package.Service/Method" (copied). Before start only. */
mlsec_err mlsec_rpc_server_add_method(mlsec_rpc_server *s, const char *path, mlsec_rpc_kind kind,
                                      mlsec_rpc_handler fn, void *ctx, int flags);

/*
 * Called on the worker thread after each call's status went out, with the
 * registered method path (or "unknown" for unregistered paths, so that
 * callers cannot grow label sets) and the status. Set before start.
 */
typedef void (*mlsec_rpc_observer)(const char *method, grpc_status_code code, void *ctx);
void mlsec_rpc_server_set_observer(mlsec_rpc_server *s, mlsec_rpc_observer fn, void *ctx);

/* Health status of a service name ("" = the whole server). Thread-safe. */
void mlsec_rpc_server_set_serving(mlsec_rpc_server *s, const char *service, int serving);

/*
 * A second, plain-text server on listen that serves only
 * grpc.health.v1.Health/Check, answering from state's health table (the
 * names set with mlsec_rpc_server_set_serving on state, and state's
 * stopping): kubelet gRPC probes cannot present a client certificate or
 * trust a private CA, so a TLS server publishes its health here. Started on
 * return; stop and free it before state. MLSEC_ERR_UNAVAILABLE when the
 * address cannot be bound.
 */
mlsec_err mlsec_rpc_health_server_start(const char *listen, mlsec_rpc_server *state,
                                        mlsec_rpc_server **out, mlsec_error *err);

/* Binds and starts the workers. MLSEC_ERR_UNAVAILABLE when the address
 * cannot be bound. */
mlsec_err mlsec_rpc_server_start(mlsec_rpc_server *s, mlsec_error *err);

/* The bound port (after start). */
int mlsec_rpc_server_port(const mlsec_rpc_server *s);

/*
 * Graceful stop: health NOT_SERVING, no new calls, in-flight calls get
 * grace_ms to finish, then are cancelled; workers joined. Idempotent.
 */
void mlsec_rpc_server_stop(mlsec_rpc_server *s, int grace_ms);

/* Stops if needed and frees. NULL is fine. */
void mlsec_rpc_server_free(mlsec_rpc_server *s);

/*
 * Server streaming: sends one message and waits until the core took it.
 * Returns MLSEC_OK, or MLSEC_ERR_UNAVAILABLE when the client went away or
 * the server is stopping (the handler should then return promptly).
 */
mlsec_err mlsec_rpc_call_send(mlsec_rpc_call *c, const uint8_t *msg, size_t len);

/*
 * Client streaming: receives the next message into a fresh mlsec_malloc'd
 * buffer (*msg, *len). Returns 1 for a message, 0 at the end of the
 * client's stream, -1 when the call failed (cancelled, too large).
 */
int mlsec_rpc_call_recv(mlsec_rpc_call *c, uint8_t **msg, size_t *len);

/* Non-zero when the client cancelled / disconnected or the server stops.
 * Cheap; long-running handlers poll it. */
int mlsec_rpc_call_cancelled(mlsec_rpc_call *c);

/* Milliseconds left before the client's deadline (INT64_MAX = none). */
int64_t mlsec_rpc_call_remaining_ms(const mlsec_rpc_call *c);

/* The peer address, e.g. "ipv4:127.0.0.1:5123" (borrowed). */
const char *mlsec_rpc_call_peer(const mlsec_rpc_call *c);

/* Status message sent with the handler's status (printf-style). */
void mlsec_rpc_call_set_message(mlsec_rpc_call *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Maps an mlsec_err to the gRPC status code at the edge. */
grpc_status_code mlsec_rpc_status_from_err(mlsec_err e);
/* Maps a gRPC status to an mlsec_err (OK -> MLSEC_OK). */
mlsec_err mlsec_rpc_err_from_status(grpc_status_code s);
/* "UNAUTHENTICATED" etc. */
const char *mlsec_rpc_status_name(grpc_status_code s);

/*
 * Reads a token file: trims surrounding whitespace; empty or longer than
 * MLSEC_RPC_MAX_TOKEN is MLSEC_ERR_INVALID_ARG. *token mlsec_malloc'd.
 */
mlsec_err mlsec_rpc_token_read(const char *path, char **token, mlsec_error *err);

/* 1 when a == b, comparing in time independent of their content. */
int mlsec_rpc_token_equal(const char *a, const char *b);

/* ---- client ---- */

typedef struct mlsec_rpc_client mlsec_rpc_client;
typedef struct mlsec_rpc_stream mlsec_rpc_stream;

typedef struct mlsec_rpc_client_opts {
	const char *target;    /* "127.0.0.1:50051" */
	int tls;               /* TLS even without ca_file (system roots) */
	const char *ca_file;   /* PEM roots; implies TLS */
	const char *cert_file; /* client certificate for mutual TLS */
	const char *key_file;
	const char *server_name; /* TLS name override (tests), may be NULL */
	const char *token;       /* bearer token, copied; NULL = none */
} mlsec_rpc_client_opts;

/* The final status of a client call. */
typedef struct mlsec_rpc_status {
	grpc_status_code code;
	char message[512];
} mlsec_rpc_status;

mlsec_err mlsec_rpc_client_new(const mlsec_rpc_client_opts *o, mlsec_rpc_client **out,
                               mlsec_error *err);
void mlsec_rpc_client_free(mlsec_rpc_client *c);

/*
 * Unary call with a timeout (ms, > 0). On OK, *resp is mlsec_malloc'd
 * (caller frees). Returns MLSEC_OK when the call completed with status OK;
 * otherwise the mapped error, with st (may be NULL) holding the status.
 */
mlsec_err mlsec_rpc_client_unary(mlsec_rpc_client *c, const char *method, const uint8_t *req,
                                 size_t req_len, int timeout_ms, uint8_t **resp, size_t *resp_len,
                                 mlsec_rpc_status *st);

/*
 * Opens a streaming call. SERVER_STREAM: req is sent and the stream
 * half-closed; read with _recv. CLIENT_STREAM: req must be NULL; write with
 * _send, then _finish. The stream is owned by the caller (_free).
 */
mlsec_err mlsec_rpc_client_open(mlsec_rpc_client *c, const char *method, mlsec_rpc_kind kind,
                                const uint8_t *req, size_t req_len, int timeout_ms,
                                mlsec_rpc_stream **out, mlsec_error *err);

/* CLIENT_STREAM: sends one message, waiting until the core took it. */
mlsec_err mlsec_rpc_stream_send(mlsec_rpc_stream *s, const uint8_t *msg, size_t len);

/*
 * SERVER_STREAM: next message (mlsec_malloc'd). 1 = message, 0 = end of
 * stream (call _finish for the status), -1 = failure. wait_ms bounds the
 * wait for this one message (<= 0: until the call's deadline); on expiry
 * returns -2 and the stream stays usable.
 */
int mlsec_rpc_stream_recv(mlsec_rpc_stream *s, int wait_ms, uint8_t **msg, size_t *len);

/*
 * Ends the call and returns its status. CLIENT_STREAM: half-closes and
 * receives the single response into *resp (may be NULL for other kinds).
 */
mlsec_err mlsec_rpc_stream_finish(mlsec_rpc_stream *s, uint8_t **resp, size_t *resp_len,
                                  mlsec_rpc_status *st);

/* Cancels if still open, frees. NULL is fine. */
void mlsec_rpc_stream_free(mlsec_rpc_stream *s);

/*
 * grpc.health.v1.Health/Check against target. Returns MLSEC_OK and
 * *serving (1 SERVING, 0 otherwise) or the call's error.
 */
mlsec_err mlsec_rpc_health_check(mlsec_rpc_client *c, const char *service, int timeout_ms,
                                 int *serving, mlsec_rpc_status *st);

#ifdef __cplusplus
}
#endif
#endif
