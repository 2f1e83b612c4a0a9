/*
 * log.h - structured process log for services and tools (never engines).
 *
 * One line per call, text or JSON lines, written with a single write(2) so
 * lines from different threads never interleave. The level is checked
 * before anything is formatted (use the MLSEC_LOG* macros).
 *
 * text: 2026-11-27T15:04:05.123Z INFO  mlsec-tritond job=ab12.. message
 * json:
 * {"ts":"2026-11-27T15:04:05.123Z","level":"info","svc":"mlsec-tritond","job":"ab12..","msg":"message"}
 *
 * Job id: pass it explicitly, or set it once per thread with
 * mlsec_log_set_job() (the Kafka worker does this around each message);
 * the explicit argument wins, NULL means "the thread's job, if any".
 *
 * Secrets: every string registered with mlsec_log_add_secret() is replaced
 * by "***" in each formatted message before it is written (the config
 * module registers secret option values automatically).
 *
 * Threads: all functions are thread-safe except mlsec_log_setup() and
 * mlsec_log_shutdown(), which belong at startup/exit.
 */
#ifndef MLSEC_LOG_H
#define MLSEC_LOG_H

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mlsec_log_level {
	MLSEC_LOG_DEBUG = 0,
	MLSEC_LOG_INFO,
	MLSEC_LOG_WARN,
	MLSEC_LOG_ERROR,
	MLSEC_LOG_OFF
} mlsec_log_level;

typedef enum mlsec_log_format { MLSEC_LOG_TEXT = 0, MLSEC_LOG_JSON } mlsec_log_format;

/*
 * Configures the process logger. `service` is copied (NULL = "mlsec");
 * `fd` is the destination (-1 = stderr; not closed by the logger).
 * Default before any call: INFO, text, stderr, "mlsec".
 */
void mlsec_log_setup(mlsec_log_level level, mlsec_log_format format, int fd, const char *service);

/* "debug|info|warn|error|off" / "text|json"; MLSEC_ERR_INVALID_ARG otherwise. */
mlsec_err mlsec_log_level_parse(const char *s, mlsec_log_level *out);
mlsec_err mlsec_log_format_parse(const char *s, mlsec_log_format *out);

/* Current level (cheap, lock-free); used by the macros. */
int mlsec_log_enabled(mlsec_log_level level);

/* Sets/clears (NULL) the calling thread's job id; copied, at most 64 chars. */
void mlsec_log_set_job(const char *job_id);

/*
 * Registers a secret value (copied) to redact from every later line.
 * Values shorter than 4 bytes are ignored (they would redact noise).
 * At most 64 secrets; MLSEC_ERR_LIMIT beyond that.
 */
mlsec_err mlsec_log_add_secret(const char *value);

/* Writes one line. Prefer the macros, which check the level first. */
void mlsec_log_write(mlsec_log_level level, const char *job_id, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Frees the secrets and the service name (for leak-clean exits). */
void mlsec_log_shutdown(void);

#define MLSEC_LOG(level, job, ...)                                                                 \
	do {                                                                                       \
		if (mlsec_log_enabled(level))                                                      \
			mlsec_log_write((level), (job), __VA_ARGS__);                              \
	} while (0)
#define MLSEC_LOGD(...) MLSEC_LOG(MLSEC_LOG_DEBUG, NULL, __VA_ARGS__)
#define MLSEC_LOGI(...) MLSEC_LOG(MLSEC_LOG_INFO, NULL, __VA_ARGS__)
#define MLSEC_LOGW(...) MLSEC_LOG(MLSEC_LOG_WARN, NULL, __VA_ARGS__)
#define MLSEC_LOGE(...) MLSEC_LOG(MLSEC_LOG_ERROR, NULL, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
