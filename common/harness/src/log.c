/*
 * log.c - the process logger of services and tools: one formatted line per
 * call, written with one write(2), secrets redacted before anything leaves
 * the process.
 */
#include "mlsec/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlsec/alloc.h"

#define LOG_LINE_MAX 8192 /* a longer message is truncated (marked "...") */
#define LOG_MAX_SECRETS 64
#define LOG_MIN_SECRET 4
#define LOG_JOB_MAX 64
#define LOG_SERVICE_MAX 64

static atomic_int g_level = MLSEC_LOG_INFO;
static mlsec_log_format g_format = MLSEC_LOG_TEXT;
static int g_fd = -1;
static char g_service[LOG_SERVICE_MAX + 1] = "mlsec";

/* Secrets are added at startup and read on every line; a mutex keeps the
 * list consistent if a late registration races with a writer. */
static pthread_mutex_t g_secret_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_secrets[LOG_MAX_SECRETS];
static size_t g_nsecrets;

static _Thread_local char t_job[LOG_JOB_MAX + 1];

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void mlsec_log_setup(mlsec_log_level level, mlsec_log_format format, int fd, const char *service)
{
	atomic_store(&g_level, (int)level);
	g_format = format;
	g_fd = fd;
	snprintf(g_service, sizeof g_service, "%s", service ? service : "mlsec");
}

mlsec_err mlsec_log_level_parse(const char *s, mlsec_log_level *out)
{
	for (int i = 0; s && i <= MLSEC_LOG_OFF; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (mlsec_log_level)i;
			return MLSEC_OK;
		}
	}
	if (s && strcmp(s, "warning") == 0) {
		*out = MLSEC_LOG_WARN;
		return MLSEC_OK;
	}
	return MLSEC_ERR_INVALID_ARG;
}

mlsec_err mlsec_log_format_parse(const char *s, mlsec_log_format *out)
{
	if (s && strcmp(s, "text") == 0)
		*out = MLSEC_LOG_TEXT;
	else if (s && strcmp(s, "json") == 0)
		*out = MLSEC_LOG_JSON;
	else
		return MLSEC_ERR_INVALID_ARG;
	return MLSEC_OK;
}

int mlsec_log_enabled(mlsec_log_level level)
{
	return level != MLSEC_LOG_OFF &&
	       (int)level >= atomic_load_explicit(&g_level, memory_order_relaxed);
}

void mlsec_log_set_job(const char *job_id)
{
	if (!job_id)
		t_job[0] = '\0';
	else
		snprintf(t_job, sizeof t_job, "%s", job_id);
}

mlsec_err mlsec_log_add_secret(const char *value)
{
	if (!value || strlen(value) < LOG_MIN_SECRET)
		return MLSEC_OK;
	mlsec_err rc = MLSEC_OK;
	pthread_mutex_lock(&g_secret_lock);
	for (size_t i = 0; i < g_nsecrets; i++)
		if (strcmp(g_secrets[i], value) == 0)
			goto out;
	if (g_nsecrets == LOG_MAX_SECRETS) {
		rc = MLSEC_ERR_LIMIT;
		goto out;
	}
	g_secrets[g_nsecrets] = mlsec_strdup(value);
	if (!g_secrets[g_nsecrets])
		rc = MLSEC_ERR_NOMEM;
	else
		g_nsecrets++;
out:
	pthread_mutex_unlock(&g_secret_lock);
	return rc;
}

void mlsec_log_shutdown(void)
{
	pthread_mutex_lock(&g_secret_lock);
	for (size_t i = 0; i < g_nsecrets; i++)
		mlsec_free(g_secrets[i]);
	g_nsecrets = 0;
	pthread_mutex_unlock(&g_secret_lock);
}

/* Replaces every registered secret in msg (in place) by "***". */
static void redact(char *msg)
{
	pthread_mutex_lock(&g_secret_lock);
	for (size_t i = 0; i < g_nsecrets; i++) {
		const char *sec = g_secrets[i];
		size_t n = strlen(sec);
		char *p = msg;
		while ((p = strstr(p, sec)) != NULL) {
			/* n >= 4 > 3, so the line only shrinks. */
			memcpy(p, "***", 3);
			memmove(p + 3, p + n, strlen(p + n) + 1);
			p += 3;
		}
	}
	pthread_mutex_unlock(&g_secret_lock);
}

/* Appends s to buf[*pos..size) as a JSON string body (no quotes). */
static void json_escape(char *buf, size_t size, size_t *pos, const char *s)
{
	for (; *s && *pos + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = (char)c;
		} else if (c == '\n') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = 'n';
		} else if (c == '\t') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			*pos += (size_t)snprintf(buf + *pos, size - *pos, "\\u%04x", c);
		} else {
			buf[(*pos)++] = (char)c;
		}
	}
	buf[*pos] = '\0';
}

/* Text lines must stay one line: control characters become '?'. */
static void text_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
	if (*pos >= size - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos += (size_t)n < size - *pos ? (size_t)n : size - *pos - 1;
}

void mlsec_log_write(mlsec_log_level level, const char *job_id, const char *fmt, ...)
{
	if (!mlsec_log_enabled(level))
		return;
	int saved_errno = errno; /* callers often log right before using errno */
	char msg[LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof msg, "(unformattable log message)");
	else if ((size_t)n >= sizeof msg)
		memcpy(msg + sizeof msg - 4, "...", 4);
	redact(msg);

	const char *job = job_id ? job_id : (t_job[0] ? t_job : NULL);
	char ts[40];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t tl = strftime(ts, sizeof ts - 6, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof ts - tl, ".%03dZ", (int)(now.tv_nsec / 1000000L) % 1000);

	char line[LOG_LINE_MAX * 2];
	size_t pos = 0;
	if (g_format == MLSEC_LOG_JSON) {
		append(line, sizeof line, &pos, "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"", ts,
		       level_names[level]);
		json_escape(line, sizeof line, &pos, g_service);
		if (job) {
			append(line, sizeof line, &pos, "\",\"job\":\"");
			json_escape(line, sizeof line, &pos, job);
		}
		append(line, sizeof line, &pos, "\",\"msg\":\"");
		json_escape(line, sizeof line, &pos, msg);
		append(line, sizeof line, &pos, "\"}\n");
	} else {
		static const char *const up[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
		text_sanitize(msg);
		append(line, sizeof line, &pos, "%s %s %s ", ts, up[level], g_service);
		if (job) {
			char j[LOG_JOB_MAX + 1];
			snprintf(j, sizeof j, "%s", job);
			text_sanitize(j);
			append(line, sizeof line, &pos, "job=%s ", j);
		}
		append(line, sizeof line, &pos, "%s\n", msg);
	}
	if (pos == 0 || line[pos - 1] != '\n') /* truncated: keep lines whole */
		line[pos ? pos - 1 : 0] = '\n';

	int fd = g_fd >= 0 ? g_fd : STDERR_FILENO;
	const char *p = line;
	size_t left = pos;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		left -= (size_t)w;
	}
	errno = saved_errno;
}
