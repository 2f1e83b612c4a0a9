/*
 * store.h - Redis (hiredis) for mlsec: job records, idempotent stage
 * results, per-job event streams, deadlines, plus generic get/set.
 *
 * Keys (ARCHITECTURE.md §2):
 *   mlsec:job:<id>                 job record (opaque bytes, JSON by convention)
 *   mlsec:job:<id>:stage:<stage>   stage result, written once (SET NX)
 *   mlsec:job:<id>:events          Redis stream, one entry per event (field "e")
 *   mlsec:deadlines                sorted set: member job id, score deadline (ms since epoch)
 * Job ids and stage names are validated ([A-Za-z0-9_-], 1..64 chars):
 * MLSEC_ERR_INVALID_ARG otherwise, so a request can never reach another key.
 *
 * Uploaded artifacts do NOT go to Redis: they are written content-addressed
 * under the shared artifact root on disk (models are far larger than what
 * Redis should hold); Redis only carries their paths and digests.
 *
 * Connection: created lazily from a URL redis://[[user][:password]@]host[:port][/db]
 * (AUTH then SELECT on every (re)connect). Every command has a connect
 * timeout and a command timeout, so nothing hangs: a down or unreachable
 * server gives MLSEC_ERR_UNAVAILABLE within about connect + command timeout.
 * After a connection error the next call reconnects transparently, and a
 * command that failed on a broken connection is retried once on a fresh one
 * (so an append may, rarely, be applied twice: event readers tolerate
 * duplicates; all other operations are idempotent).
 *
 * Threads: an mlsec_store is NOT thread-safe. Use one per thread
 * (mlsec_store_clone() makes another with the same settings).
 * Ownership: out-strings are fresh mlsec_malloc'd, NUL-terminated (binary
 * safe with the length given), freed by the caller with mlsec_free().
 */
#ifndef MLSEC_STORE_H
#define MLSEC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_STORE_MAX_ID 64             /* job id / stage name length */
#define MLSEC_STORE_MAX_VALUE (64u << 20) /* largest value we read back */
#define MLSEC_STORE_MAX_EVENTS 1000       /* per mlsec_store_events_read() */
#define MLSEC_STORE_DEADLINES_KEY "mlsec:deadlines"

typedef struct mlsec_store mlsec_store;

/*
 * Parses the URL (MLSEC_ERR_INVALID_ARG when malformed) and prepares a
 * handle without connecting. Timeouts in ms: 0 = 2000. The URL (with any
 * password) is copied and never logged.
 */
mlsec_err mlsec_store_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                          mlsec_store **out, mlsec_error *err);

/* A new handle with the same URL and timeouts (for another thread). */
mlsec_err mlsec_store_clone(const mlsec_store *s, mlsec_store **out, mlsec_error *err);

void mlsec_store_free(mlsec_store *s); /* closes the connection; NULL ok */

/* Longest password read by mlsec_store_set_password_file. */
#define MLSEC_STORE_MAX_PASSWORD 4096

/*
 * Reads the AUTH password from path (a mounted Secret): the whole file,
 * trailing "\n"/"\r\n" trimmed, at most MLSEC_STORE_MAX_PASSWORD bytes;
 * it replaces any password of the URL (the URL's user, if any, is kept:
 * AUTH user password) and is carried by mlsec_store_clone. Call before
 * the first command. The password is registered with mlsec_log_add_secret
 * and never appears in errors. path NULL or "" = no-op.
 * Errors: MLSEC_ERR_IO (unreadable), MLSEC_ERR_INVALID_ARG (empty, too
 * long, or containing a NUL or newline inside), MLSEC_ERR_NOMEM.
 */
mlsec_err mlsec_store_set_password_file(mlsec_store *s, const char *path, mlsec_error *err);

/* Connects if needed and sends PING: MLSEC_OK or MLSEC_ERR_UNAVAILABLE/_AUTH. */
mlsec_err mlsec_store_ping(mlsec_store *s, mlsec_error *err);

/* ---- generic -------------------------------------------------------- */

/* ttl_ms: 0 = no expiry. */
mlsec_err mlsec_store_set(mlsec_store *s, const char *key, const void *val, size_t len,
                          long long ttl_ms, mlsec_error *err);
/* SET NX: *created = 1 when written, 0 when the key already existed (not an error). */
mlsec_err mlsec_store_set_nx(mlsec_store *s, const char *key, const void *val, size_t len,
                             long long ttl_ms, int *created, mlsec_error *err);
/* MLSEC_ERR_NOT_FOUND when missing. len may be NULL. */
mlsec_err mlsec_store_get(mlsec_store *s, const char *key, char **val, size_t *len,
                          mlsec_error *err);
mlsec_err mlsec_store_del(mlsec_store *s, const char *key, mlsec_error *err);
/* MLSEC_ERR_NOT_FOUND when the key does not exist. */
mlsec_err mlsec_store_expire(mlsec_store *s, const char *key, long long ttl_ms, mlsec_error *err);

/* Hash fields (e.g. counters or per-stage state of a job). */
mlsec_err mlsec_store_hset(mlsec_store *s, const char *key, const char *field, const void *val,
                           size_t len, mlsec_error *err);
/* HSETNX: *created as for set_nx. */
mlsec_err mlsec_store_hset_nx(mlsec_store *s, const char *key, const char *field, const void *val,
                              size_t len, int *created, mlsec_error *err);
/* MLSEC_ERR_NOT_FOUND when the key or field is missing. */
mlsec_err mlsec_store_hget(mlsec_store *s, const char *key, const char *field, char **val,
                           size_t *len, mlsec_error *err);
/* HINCRBY; *out (may be NULL) receives the new value. */
mlsec_err mlsec_store_hincr(mlsec_store *s, const char *key, const char *field, long long by,
                            long long *out, mlsec_error *err);

/* ---- jobs ----------------------------------------------------------- */

/* Writes mlsec:job:<id> (overwrites). ttl_ms 0 = no expiry. */
mlsec_err mlsec_store_job_put(mlsec_store *s, const char *job_id, const void *rec, size_t len,
                              long long ttl_ms, mlsec_error *err);
/* Creates mlsec:job:<id> only if absent (*created as for set_nx). */
mlsec_err mlsec_store_job_create(mlsec_store *s, const char *job_id, const void *rec, size_t len,
                                 long long ttl_ms, int *created, mlsec_error *err);
/* MLSEC_ERR_NOT_FOUND for an unknown (or expired) job. */
mlsec_err mlsec_store_job_get(mlsec_store *s, const char *job_id, char **rec, size_t *len,
                              mlsec_error *err);

/*
 * Idempotent stage-result write to mlsec:job:<id>:stage:<stage> (SET NX):
 * the first write wins, a redelivered duplicate leaves it untouched and
 * gets *created = 0 (not an error).
 */
mlsec_err mlsec_store_result_put(mlsec_store *s, const char *job_id, const char *stage,
                                 const void *res, size_t len, long long ttl_ms, int *created,
                                 mlsec_error *err);
/* MLSEC_ERR_NOT_FOUND when the stage has not answered. */
mlsec_err mlsec_store_result_get(mlsec_store *s, const char *job_id, const char *stage, char **res,
                                 size_t *len, mlsec_error *err);

/* ---- events (Redis stream per job) ------------------------------------ */

/* Stream entry ids look like "1700000000000-0"; this fits any of them. */
#define MLSEC_STORE_EVENT_ID_MAX 48

typedef struct mlsec_store_event {
	char id[MLSEC_STORE_EVENT_ID_MAX];
	char *data; /* owned by the events list */
	size_t len;
} mlsec_store_event;

typedef struct mlsec_store_events {
	mlsec_store_event *items;
	size_t count;
} mlsec_store_events;

/* Frees the items and leaves ev empty. */
void mlsec_store_events_clear(mlsec_store_events *ev);

/*
 * XADD to mlsec:job:<id>:events (trimmed to about max_len entries, 0 =
 * 10000), refreshing the stream's TTL when ttl_ms > 0. id_out (may be
 * NULL) receives the new entry id.
 */
mlsec_err mlsec_store_event_append(mlsec_store *s, const char *job_id, const void *data, size_t len,
                                   size_t max_len, long long ttl_ms,
                                   char id_out[MLSEC_STORE_EVENT_ID_MAX], mlsec_error *err);

/*
 * Reads up to max (<= MLSEC_STORE_MAX_EVENTS) events after entry id
 * `after` ("0" = from the start, "$" = only new ones). block_ms > 0 waits
 * that long for something to arrive (XREAD BLOCK); 0 does not block. A
 * timeout is MLSEC_OK with out->count == 0. `out` is cleared first; on
 * error it is left empty.
 */
mlsec_err mlsec_store_events_read(mlsec_store *s, const char *job_id, const char *after, size_t max,
                                  int block_ms, mlsec_store_events *out, mlsec_error *err);

/* ---- deadlines ------------------------------------------------------ */

/* ZADD mlsec:deadlines deadline_ms job_id (updates an existing deadline). */
mlsec_err mlsec_store_deadline_add(mlsec_store *s, const char *job_id, long long deadline_ms,
                                   mlsec_error *err);
/*
 * Removes the job from the deadline set. *claimed (may be NULL) = 1 when
 * this call removed it: among orchestrator replicas racing on an expired
 * job, exactly one gets 1 and handles the timeout.
 */
mlsec_err mlsec_store_deadline_remove(mlsec_store *s, const char *job_id, int *claimed,
                                      mlsec_error *err);
/*
 * Job ids whose deadline is <= now_ms, oldest first, at most max (<= 1000).
 * *ids is a fresh array of fresh strings; free with mlsec_store_ids_free().
 */
mlsec_err mlsec_store_deadline_due(mlsec_store *s, long long now_ms, size_t max, char ***ids,
                                   size_t *count, mlsec_error *err);
void mlsec_store_ids_free(char **ids, size_t count);

/* Milliseconds since the Unix epoch (the clock deadlines use). */
long long mlsec_store_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
