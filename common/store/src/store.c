/*
 * store.c - the Redis side of the cluster over one blocking hiredis
 * connection per handle: lazy connect with AUTH/SELECT, socket timeouts on
 * every command, one transparent retry on a fresh connection, and the
 * mlsec key layout (jobs, results, events, deadlines).
 */
#include "mlsec/store.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/log.h"
#include "store_int.h"

#define STORE_DEFAULT_TIMEOUT_MS 2000
#define STORE_KEY_MAX 256
#define STORE_DEFAULT_STREAM_MAX 10000
#define STORE_MAX_DUE 1000
#define STORE_MAX_ARGS 12

struct mlsec_store {
	char *url;
	store_url u;
	int connect_timeout_ms;
	int command_timeout_ms;
	redisContext *c;
};

long long mlsec_store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

static struct timeval tv_ms(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return tv;
}

mlsec_err mlsec_store_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                          mlsec_store **out, mlsec_error *err)
{
	*out = NULL;
	if (connect_timeout_ms < 0 || command_timeout_ms < 0)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "negative redis timeout");
	mlsec_store *s = mlsec_calloc(1, sizeof *s);
	if (!s)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc = store_url_parse(url, &s->u, err);
	if (rc) {
		mlsec_free(s);
		return rc;
	}
	if (!(s->url = mlsec_strdup(url))) {
		store_url_clear(&s->u);
		mlsec_free(s);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	s->connect_timeout_ms = connect_timeout_ms ? connect_timeout_ms : STORE_DEFAULT_TIMEOUT_MS;
	s->command_timeout_ms = command_timeout_ms ? command_timeout_ms : STORE_DEFAULT_TIMEOUT_MS;
	*out = s;
	return MLSEC_OK;
}

static void drop(mlsec_store *s)
{
	if (s->c) {
		redisFree(s->c);
		s->c = NULL;
	}
}

static void password_wipe(store_url *u)
{
	if (u->password) {
		memset(u->password, 0, strlen(u->password));
		mlsec_free(u->password);
		u->password = NULL;
	}
}

mlsec_err mlsec_store_clone(const mlsec_store *s, mlsec_store **out, mlsec_error *err)
{
	mlsec_err rc =
	        mlsec_store_new(s->url, s->connect_timeout_ms, s->command_timeout_ms, out, err);
	if (rc != MLSEC_OK || !s->u.password)
		return rc;
	/* The password may have come from a file rather than the URL. */
	password_wipe(&(*out)->u);
	if (!((*out)->u.password = mlsec_strdup(s->u.password))) {
		mlsec_store_free(*out);
		*out = NULL;
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	return MLSEC_OK;
}

mlsec_err mlsec_store_set_password_file(mlsec_store *s, const char *path, mlsec_error *err)
{
	if (!path || !*path)
		return MLSEC_OK;
	char *buf = NULL;
	size_t len = 0;
	mlsec_error ferr;
	mlsec_error_clear(&ferr);
	mlsec_err rc = mlsec_file_read_all(path, MLSEC_STORE_MAX_PASSWORD + 2, &buf, &len, &ferr);
	if (rc == MLSEC_ERR_NOMEM)
		return mlsec_error_set(err, rc, "out of memory");
	if (rc != MLSEC_OK)
		return mlsec_error_set(err,
		                       rc == MLSEC_ERR_LIMIT ? MLSEC_ERR_INVALID_ARG : MLSEC_ERR_IO,
		                       "redis password file %s: %s", path,
		                       rc == MLSEC_ERR_LIMIT ? "too long" : "cannot read");
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	rc = MLSEC_OK;
	if (len == 0 || len > MLSEC_STORE_MAX_PASSWORD)
		rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "redis password file %s: %s", path,
		                     len ? "too long" : "empty");
	for (size_t i = 0; rc == MLSEC_OK && i < len; i++)
		if (buf[i] == '\0' || buf[i] == '\n' || buf[i] == '\r')
			rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                     "redis password file %s: more than one line", path);
	if (rc == MLSEC_OK) {
		buf[len] = '\0';
		mlsec_log_add_secret(buf);
		password_wipe(&s->u);
		s->u.password = buf;
		drop(s); /* a connection made without it is stale */
		return MLSEC_OK;
	}
	memset(buf, 0, len);
	mlsec_free(buf);
	return rc;
}

void mlsec_store_free(mlsec_store *s)
{
	if (!s)
		return;
	drop(s);
	memset(s->url, 0, strlen(s->url));
	mlsec_free(s->url);
	store_url_clear(&s->u);
	mlsec_free(s);
}

/* Maps a Redis error reply; the reply text never contains our values. */
static mlsec_err reply_error(const redisReply *r, mlsec_error *err)
{
	const char *t = r->str ? r->str : "";
	if (!strncmp(t, "NOAUTH", 6) || !strncmp(t, "WRONGPASS", 9) ||
	    strstr(t, "invalid password"))
		return mlsec_error_set(err, MLSEC_ERR_AUTH, "redis: %.200s", t);
	if (!strncmp(t, "LOADING", 7) || !strncmp(t, "BUSY", 4) || !strncmp(t, "MASTERDOWN", 10) ||
	    !strncmp(t, "READONLY", 8))
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "redis: %.200s", t);
	return mlsec_error_set(err, MLSEC_ERR_INTERNAL, "redis: %.200s", t);
}

/* One command on the current connection, no retry. */
static redisReply *raw(redisContext *c, int argc, const char **argv, const size_t *lens)
{
	return redisCommandArgv(c, argc, argv, lens);
}

static mlsec_err connect_now(mlsec_store *s, mlsec_error *err)
{
	if (s->c)
		return MLSEC_OK;
	redisContext *c =
	        redisConnectWithTimeout(s->u.host, s->u.port, tv_ms(s->connect_timeout_ms));
	if (!c)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "redis: cannot allocate a context");
	if (c->err) {
		mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "redis %s:%d unreachable: %s",
		                s->u.host, s->u.port, c->errstr);
		redisFree(c);
		return MLSEC_ERR_UNAVAILABLE;
	}
	redisSetTimeout(c, tv_ms(s->command_timeout_ms));
	redisEnableKeepAlive(c);
	if (s->u.password) {
		const char *argv[3] = {"AUTH", NULL, NULL};
		size_t lens[3] = {4, 0, 0};
		int argc = 2;
		if (s->u.user) {
			argv[1] = s->u.user;
			lens[1] = strlen(s->u.user);
			argc = 3;
		}
		argv[argc - 1] = s->u.password;
		lens[argc - 1] = strlen(s->u.password);
		redisReply *r = raw(c, argc, argv, lens);
		if (!r) {
			mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "redis %s:%d: AUTH failed: %s",
			                s->u.host, s->u.port, c->errstr);
			redisFree(c);
			return MLSEC_ERR_UNAVAILABLE;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			mlsec_error_set(err, MLSEC_ERR_AUTH, "redis %s:%d: authentication refused",
			                s->u.host, s->u.port);
			freeReplyObject(r);
			redisFree(c);
			return MLSEC_ERR_AUTH;
		}
		freeReplyObject(r);
	}
	if (s->u.db) {
		char db[16];
		snprintf(db, sizeof db, "%d", s->u.db);
		const char *argv[2] = {"SELECT", db};
		size_t lens[2] = {6, strlen(db)};
		redisReply *r = raw(c, 2, argv, lens);
		mlsec_err rc = MLSEC_OK;
		if (!r)
			rc = mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE,
			                     "redis %s:%d: SELECT failed: %s", s->u.host, s->u.port,
			                     c->errstr);
		else if (r->type == REDIS_REPLY_ERROR)
			rc = reply_error(r, err);
		if (r)
			freeReplyObject(r);
		if (rc) {
			redisFree(c);
			return rc;
		}
	}
	s->c = c;
	return MLSEC_OK;
}

/*
 * Runs one command: connects if needed; on a broken connection (EOF or I/O
 * error other than a timeout) drops it and tries once more on a fresh one.
 * A timeout is not retried, so the caller's wait stays bounded. extra_ms
 * lengthens the socket timeout for blocking commands. On MLSEC_OK *out is
 * a reply that is not an error reply (caller frees).
 */
static mlsec_err run(mlsec_store *s, int argc, const char **argv, const size_t *lens, int extra_ms,
                     redisReply **out, mlsec_error *err)
{
	*out = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		mlsec_err rc = connect_now(s, err);
		if (rc)
			return rc;
		if (extra_ms)
			redisSetTimeout(s->c, tv_ms(s->command_timeout_ms + extra_ms));
		redisReply *r = raw(s->c, argc, argv, lens);
		if (r) {
			if (extra_ms)
				redisSetTimeout(s->c, tv_ms(s->command_timeout_ms));
			if (r->type == REDIS_REPLY_ERROR) {
				rc = reply_error(r, err);
				freeReplyObject(r);
				return rc;
			}
			*out = r;
			return MLSEC_OK;
		}
		int timed_out = s->c->err == REDIS_ERR_IO &&
		                (errno == EAGAIN || errno == EWOULDBLOCK ||
		                 strstr(s->c->errstr, "temporarily unavailable"));
		mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "redis %s:%d: %s%s", s->u.host,
		                s->u.port, timed_out ? "command timed out: " : "",
		                s->c->errstr[0] ? s->c->errstr : "connection lost");
		drop(s); /* the connection state is unknown: never reuse it */
		if (timed_out)
			break;
	}
	return MLSEC_ERR_UNAVAILABLE;
}

mlsec_err mlsec_store_ping(mlsec_store *s, mlsec_error *err)
{
	const char *argv[1] = {"PING"};
	size_t lens[1] = {4};
	redisReply *r;
	mlsec_err rc = run(s, 1, argv, lens, 0, &r, err);
	if (!rc)
		freeReplyObject(r);
	return rc;
}

/* Job ids and stage names: [A-Za-z0-9_-]{1,64}. */
static int valid_id(const char *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (; s[n]; n++)
		if (n >= MLSEC_STORE_MAX_ID ||
		    !(isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '-'))
			return 0;
	return n > 0;
}

static mlsec_err bad_id(const char *what, mlsec_error *err)
{
	return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
	                       "invalid %s (allowed: letters, digits, '_', '-', at most %d)", what,
	                       MLSEC_STORE_MAX_ID);
}

static mlsec_err check_key(const char *key, mlsec_error *err)
{
	if (!key || !*key || strlen(key) >= STORE_KEY_MAX)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "invalid redis key");
	return MLSEC_OK;
}

/* Reply value (string) into a fresh buffer. */
static mlsec_err take_string(const redisReply *r, char **val, size_t *len, mlsec_error *err)
{
	if (r->type == REDIS_REPLY_NIL)
		return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "not found");
	if (r->type != REDIS_REPLY_STRING)
		return mlsec_error_set(err, MLSEC_ERR_INTERNAL, "redis: unexpected reply type %d",
		                       r->type);
	if ((size_t)r->len > MLSEC_STORE_MAX_VALUE)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "redis value of %zu bytes is too large", (size_t)r->len);
	char *v = mlsec_malloc((size_t)r->len + 1);
	if (!v)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	memcpy(v, r->str, (size_t)r->len);
	v[r->len] = '\0';
	*val = v;
	if (len)
		*len = (size_t)r->len;
	return MLSEC_OK;
}

static mlsec_err set_common(mlsec_store *s, const char *key, const void *val, size_t len,
                            long long ttl_ms, int nx, int *created, mlsec_error *err)
{
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	if (ttl_ms < 0)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "negative TTL");
	char ttl[24];
	snprintf(ttl, sizeof ttl, "%lld", ttl_ms);
	const char *argv[6] = {"SET", key, val ? (const char *)val : ""};
	size_t lens[6] = {3, strlen(key), val ? len : 0};
	int argc = 3;
	if (ttl_ms > 0) {
		argv[argc] = "PX";
		lens[argc++] = 2;
		argv[argc] = ttl;
		lens[argc++] = strlen(ttl);
	}
	if (nx) {
		argv[argc] = "NX";
		lens[argc++] = 2;
	}
	redisReply *r;
	if ((rc = run(s, argc, argv, lens, 0, &r, err)))
		return rc;
	if (created)
		*created = r->type != REDIS_REPLY_NIL;
	freeReplyObject(r);
	return MLSEC_OK;
}

mlsec_err mlsec_store_set(mlsec_store *s, const char *key, const void *val, size_t len,
                          long long ttl_ms, mlsec_error *err)
{
	return set_common(s, key, val, len, ttl_ms, 0, NULL, err);
}

mlsec_err mlsec_store_set_nx(mlsec_store *s, const char *key, const void *val, size_t len,
                             long long ttl_ms, int *created, mlsec_error *err)
{
	return set_common(s, key, val, len, ttl_ms, 1, created, err);
}

mlsec_err mlsec_store_get(mlsec_store *s, const char *key, char **val, size_t *len,
                          mlsec_error *err)
{
	*val = NULL;
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	const char *argv[2] = {"GET", key};
	size_t lens[2] = {3, strlen(key)};
	redisReply *r;
	if ((rc = run(s, 2, argv, lens, 0, &r, err)))
		return rc;
	rc = take_string(r, val, len, err);
	freeReplyObject(r);
	return rc;
}

mlsec_err mlsec_store_del(mlsec_store *s, const char *key, mlsec_error *err)
{
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	const char *argv[2] = {"DEL", key};
	size_t lens[2] = {3, strlen(key)};
	redisReply *r;
	if ((rc = run(s, 2, argv, lens, 0, &r, err)))
		return rc;
	freeReplyObject(r);
	return MLSEC_OK;
}

mlsec_err mlsec_store_expire(mlsec_store *s, const char *key, long long ttl_ms, mlsec_error *err)
{
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	if (ttl_ms <= 0)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "TTL must be positive");
	char ttl[24];
	snprintf(ttl, sizeof ttl, "%lld", ttl_ms);
	const char *argv[3] = {"PEXPIRE", key, ttl};
	size_t lens[3] = {7, strlen(key), strlen(ttl)};
	redisReply *r;
	if ((rc = run(s, 3, argv, lens, 0, &r, err)))
		return rc;
	int found = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return found ? MLSEC_OK : mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "no such key");
}

mlsec_err mlsec_store_hset(mlsec_store *s, const char *key, const char *field, const void *val,
                           size_t len, mlsec_error *err)
{
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	const char *argv[4] = {"HSET", key, field, val ? (const char *)val : ""};
	size_t lens[4] = {4, strlen(key), strlen(field), val ? len : 0};
	redisReply *r;
	if ((rc = run(s, 4, argv, lens, 0, &r, err)))
		return rc;
	freeReplyObject(r);
	return MLSEC_OK;
}

mlsec_err mlsec_store_hset_nx(mlsec_store *s, const char *key, const char *field, const void *val,
                              size_t len, int *created, mlsec_error *err)
{
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	const char *argv[4] = {"HSETNX", key, field, val ? (const char *)val : ""};
	size_t lens[4] = {6, strlen(key), strlen(field), val ? len : 0};
	redisReply *r;
	if ((rc = run(s, 4, argv, lens, 0, &r, err)))
		return rc;
	if (created)
		*created = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return MLSEC_OK;
}

mlsec_err mlsec_store_hget(mlsec_store *s, const char *key, const char *field, char **val,
                           size_t *len, mlsec_error *err)
{
	*val = NULL;
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	const char *argv[3] = {"HGET", key, field};
	size_t lens[3] = {4, strlen(key), strlen(field)};
	redisReply *r;
	if ((rc = run(s, 3, argv, lens, 0, &r, err)))
		return rc;
	rc = take_string(r, val, len, err);
	freeReplyObject(r);
	return rc;
}

mlsec_err mlsec_store_hincr(mlsec_store *s, const char *key, const char *field, long long by,
                            long long *out, mlsec_error *err)
{
	mlsec_err rc = check_key(key, err);
	if (rc)
		return rc;
	char n[24];
	snprintf(n, sizeof n, "%lld", by);
	const char *argv[4] = {"HINCRBY", key, field, n};
	size_t lens[4] = {7, strlen(key), strlen(field), strlen(n)};
	redisReply *r;
	if ((rc = run(s, 4, argv, lens, 0, &r, err)))
		return rc;
	if (out)
		*out = r->integer;
	freeReplyObject(r);
	return MLSEC_OK;
}

/* ---- jobs and results ------------------------------------------------ */

static mlsec_err job_key(char *buf, size_t size, const char *job_id, const char *suffix,
                         mlsec_error *err)
{
	if (!valid_id(job_id))
		return bad_id("job id", err);
	snprintf(buf, size, "mlsec:job:%s%s", job_id, suffix);
	return MLSEC_OK;
}

mlsec_err mlsec_store_job_put(mlsec_store *s, const char *job_id, const void *rec, size_t len,
                              long long ttl_ms, mlsec_error *err)
{
	char key[STORE_KEY_MAX];
	mlsec_err rc = job_key(key, sizeof key, job_id, "", err);
	return rc ? rc : mlsec_store_set(s, key, rec, len, ttl_ms, err);
}

mlsec_err mlsec_store_job_create(mlsec_store *s, const char *job_id, const void *rec, size_t len,
                                 long long ttl_ms, int *created, mlsec_error *err)
{
	char key[STORE_KEY_MAX];
	mlsec_err rc = job_key(key, sizeof key, job_id, "", err);
	return rc ? rc : mlsec_store_set_nx(s, key, rec, len, ttl_ms, created, err);
}

mlsec_err mlsec_store_job_get(mlsec_store *s, const char *job_id, char **rec, size_t *len,
                              mlsec_error *err)
{
	char key[STORE_KEY_MAX];
	*rec = NULL;
	mlsec_err rc = job_key(key, sizeof key, job_id, "", err);
	if (rc)
		return rc;
	rc = mlsec_store_get(s, key, rec, len, err);
	if (rc == MLSEC_ERR_NOT_FOUND)
		mlsec_error_set(err, rc, "job %s not found", job_id);
	return rc;
}

static mlsec_err result_key(char *buf, size_t size, const char *job_id, const char *stage,
                            mlsec_error *err)
{
	if (!valid_id(job_id))
		return bad_id("job id", err);
	if (!valid_id(stage))
		return bad_id("stage name", err);
	snprintf(buf, size, "mlsec:job:%s:stage:%s", job_id, stage);
	return MLSEC_OK;
}

mlsec_err mlsec_store_result_put(mlsec_store *s, const char *job_id, const char *stage,
                                 const void *res, size_t len, long long ttl_ms, int *created,
                                 mlsec_error *err)
{
	char key[STORE_KEY_MAX];
	mlsec_err rc = result_key(key, sizeof key, job_id, stage, err);
	return rc ? rc : mlsec_store_set_nx(s, key, res, len, ttl_ms, created, err);
}

mlsec_err mlsec_store_result_get(mlsec_store *s, const char *job_id, const char *stage, char **res,
                                 size_t *len, mlsec_error *err)
{
	char key[STORE_KEY_MAX];
	*res = NULL;
	mlsec_err rc = result_key(key, sizeof key, job_id, stage, err);
	if (rc)
		return rc;
	rc = mlsec_store_get(s, key, res, len, err);
	if (rc == MLSEC_ERR_NOT_FOUND)
		mlsec_error_set(err, rc, "no %s result for job %s", stage, job_id);
	return rc;
}

/* ---- events ------------------------------------------------------- */

void mlsec_store_events_clear(mlsec_store_events *ev)
{
	if (!ev)
		return;
	for (size_t i = 0; i < ev->count; i++)
		mlsec_free(ev->items[i].data);
	mlsec_free(ev->items);
	ev->items = NULL;
	ev->count = 0;
}

mlsec_err mlsec_store_event_append(mlsec_store *s, const char *job_id, const void *data, size_t len,
                                   size_t max_len, long long ttl_ms,
                                   char id_out[MLSEC_STORE_EVENT_ID_MAX], mlsec_error *err)
{
	char key[STORE_KEY_MAX];
	mlsec_err rc = job_key(key, sizeof key, job_id, ":events", err);
	if (rc)
		return rc;
	char maxlen[24];
	snprintf(maxlen, sizeof maxlen, "%zu",
	         max_len ? max_len : (size_t)STORE_DEFAULT_STREAM_MAX);
	const char *argv[8] = {"XADD", key, "MAXLEN", "~",
	                       maxlen, "*", "e",      data ? (const char *)data : ""};
	size_t lens[8] = {4, strlen(key), 6, 1, strlen(maxlen), 1, 1, data ? len : 0};
	redisReply *r;
	if ((rc = run(s, 8, argv, lens, 0, &r, err)))
		return rc;
	if (id_out) {
		id_out[0] = '\0';
		if (r->type == REDIS_REPLY_STRING && (size_t)r->len < MLSEC_STORE_EVENT_ID_MAX) {
			memcpy(id_out, r->str, (size_t)r->len);
			id_out[r->len] = '\0';
		}
	}
	freeReplyObject(r);
	if (ttl_ms > 0)
		rc = mlsec_store_expire(s, key, ttl_ms, err);
	return rc;
}

/* XREAD reply: [[key, [[id, [field, value, ...]], ...]]] */
static mlsec_err take_events(const redisReply *r, mlsec_store_events *out, mlsec_error *err)
{
	if (r->type == REDIS_REPLY_NIL)
		return MLSEC_OK; /* timed out */
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
	    r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
		return mlsec_error_set(err, MLSEC_ERR_INTERNAL, "redis: unexpected XREAD reply");
	const redisReply *entries = r->element[0]->element[1];
	if (entries->elements == 0)
		return MLSEC_OK;
	out->items = mlsec_calloc(entries->elements, sizeof *out->items);
	if (!out->items)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    (size_t)e->element[0]->len >= MLSEC_STORE_EVENT_ID_MAX ||
		    e->element[1]->type != REDIS_REPLY_ARRAY)
			goto bad;
		mlsec_store_event *ev = &out->items[out->count];
		memcpy(ev->id, e->element[0]->str, (size_t)e->element[0]->len);
		ev->id[e->element[0]->len] = '\0';
		const redisReply *fv = e->element[1];
		const redisReply *val = NULL;
		for (size_t j = 0; j + 1 < fv->elements; j += 2)
			if (fv->element[j]->type == REDIS_REPLY_STRING &&
			    fv->element[j]->len == 1 && fv->element[j]->str[0] == 'e')
				val = fv->element[j + 1];
		if (!val || val->type != REDIS_REPLY_STRING)
			goto bad;
		mlsec_err rc = take_string(val, &ev->data, &ev->len, err);
		if (rc) {
			mlsec_store_events_clear(out);
			return rc;
		}
		out->count++;
	}
	return MLSEC_OK;
bad:
	mlsec_store_events_clear(out);
	return mlsec_error_set(err, MLSEC_ERR_INTERNAL, "redis: malformed stream entry");
}

mlsec_err mlsec_store_events_read(mlsec_store *s, const char *job_id, const char *after, size_t max,
                                  int block_ms, mlsec_store_events *out, mlsec_error *err)
{
	out->items = NULL;
	out->count = 0;
	char key[STORE_KEY_MAX];
	mlsec_err rc = job_key(key, sizeof key, job_id, ":events", err);
	if (rc)
		return rc;
	if (!after || !*after || strlen(after) >= MLSEC_STORE_EVENT_ID_MAX)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "invalid event id");
	if (max == 0 || max > MLSEC_STORE_MAX_EVENTS)
		max = MLSEC_STORE_MAX_EVENTS;
	if (block_ms < 0)
		block_ms = 0;
	char count[24], block[24];
	snprintf(count, sizeof count, "%zu", max);
	snprintf(block, sizeof block, "%d", block_ms);
	const char *argv[STORE_MAX_ARGS];
	size_t lens[STORE_MAX_ARGS];
	int argc = 0;
#define ARG(s) (argv[argc] = (s), lens[argc++] = strlen(s))
	ARG("XREAD");
	ARG("COUNT");
	ARG(count);
	if (block_ms > 0) {
		ARG("BLOCK");
		ARG(block);
	}
	ARG("STREAMS");
	ARG(key);
	ARG(after);
#undef ARG
	redisReply *r;
	if ((rc = run(s, argc, argv, lens, block_ms, &r, err)))
		return rc;
	rc = take_events(r, out, err);
	freeReplyObject(r);
	return rc;
}

/* ---- deadlines -------------------------------------------------------- */

mlsec_err mlsec_store_deadline_add(mlsec_store *s, const char *job_id, long long deadline_ms,
                                   mlsec_error *err)
{
	if (!valid_id(job_id))
		return bad_id("job id", err);
	char score[24];
	snprintf(score, sizeof score, "%lld", deadline_ms);
	const char *argv[4] = {"ZADD", MLSEC_STORE_DEADLINES_KEY, score, job_id};
	size_t lens[4] = {4, strlen(MLSEC_STORE_DEADLINES_KEY), strlen(score), strlen(job_id)};
	redisReply *r;
	mlsec_err rc = run(s, 4, argv, lens, 0, &r, err);
	if (!rc)
		freeReplyObject(r);
	return rc;
}

mlsec_err mlsec_store_deadline_remove(mlsec_store *s, const char *job_id, int *claimed,
                                      mlsec_error *err)
{
	if (!valid_id(job_id))
		return bad_id("job id", err);
	const char *argv[3] = {"ZREM", MLSEC_STORE_DEADLINES_KEY, job_id};
	size_t lens[3] = {4, strlen(MLSEC_STORE_DEADLINES_KEY), strlen(job_id)};
	redisReply *r;
	mlsec_err rc = run(s, 3, argv, lens, 0, &r, err);
	if (rc)
		return rc;
	if (claimed)
		*claimed = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return MLSEC_OK;
}

void mlsec_store_ids_free(char **ids, size_t count)
{
	for (size_t i = 0; ids && i < count; i++)
		mlsec_free(ids[i]);
	mlsec_free(ids);
}

mlsec_err mlsec_store_deadline_due(mlsec_store *s, long long now_ms, size_t max, char ***ids,
                                   size_t *count, mlsec_error *err)
{
	*ids = NULL;
	*count = 0;
	if (max == 0 || max > STORE_MAX_DUE)
		max = STORE_MAX_DUE;
	char now[24], lim[24];
	snprintf(now, sizeof now, "%lld", now_ms);
	snprintf(lim, sizeof lim, "%zu", max);
	const char *argv[7] = {
	        "ZRANGEBYSCORE", MLSEC_STORE_DEADLINES_KEY, "-inf", now, "LIMIT", "0", lim};
	size_t lens[7];
	for (int i = 0; i < 7; i++)
		lens[i] = strlen(argv[i]);
	redisReply *r;
	mlsec_err rc = run(s, 7, argv, lens, 0, &r, err);
	if (rc)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return mlsec_error_set(err, MLSEC_ERR_INTERNAL,
		                       "redis: unexpected ZRANGEBYSCORE reply");
	}
	char **out = mlsec_calloc(r->elements ? r->elements : 1, sizeof *out);
	if (!out) {
		freeReplyObject(r);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	size_t n = 0;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		if (!(out[n] = mlsec_strndup(e->str, (size_t)e->len))) {
			mlsec_store_ids_free(out, n);
			freeReplyObject(r);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
		n++;
	}
	freeReplyObject(r);
	*ids = out;
	*count = n;
	return MLSEC_OK;
}
