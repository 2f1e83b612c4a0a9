/* err.c - mlsec_strerror and the mlsec_error helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mlsec/err.h"

static const char *const messages[MLSEC_ERR__COUNT] = {
        [MLSEC_OK] = "success",
        [MLSEC_ERR_NOMEM] = "out of memory",
        [MLSEC_ERR_IO] = "I/O error",
        [MLSEC_ERR_INVALID_ARG] = "invalid argument",
        [MLSEC_ERR_NOT_FOUND] = "not found",
        [MLSEC_ERR_PARSE] = "parse error",
        [MLSEC_ERR_LIMIT] = "limit exceeded",
        [MLSEC_ERR_UNSUPPORTED] = "unsupported",
        [MLSEC_ERR_PERMISSION] = "permission denied",
        [MLSEC_ERR_TIMEOUT] = "timed out",
        [MLSEC_ERR_UNAVAILABLE] = "service unavailable",
        [MLSEC_ERR_AUTH] = "authentication failed",
        [MLSEC_ERR_INTERNAL] = "internal error",
        [MLSEC_ERR_INTEGRITY] = "integrity check failed",
};

const char *mlsec_strerror(mlsec_err code)
{
	if ((unsigned)code >= MLSEC_ERR__COUNT || !messages[code])
		return "unknown error";
	return messages[code];
}

void mlsec_error_clear(mlsec_error *err)
{
	if (!err)
		return;
	/* Fields, not a 1 KiB memset: cleared once per file on hot paths. */
	err->code = MLSEC_OK;
	err->file[0] = '\0';
	err->text[0] = '\0';
	err->line = 0;
	err->column = 0;
	err->offset = -1;
}

__attribute__((format(printf, 3, 0))) static void vset(mlsec_error *err, mlsec_err code,
                                                       const char *fmt, va_list ap)
{
	err->code = code;
	if (fmt)
		vsnprintf(err->text, sizeof err->text, fmt, ap);
	else
		snprintf(err->text, sizeof err->text, "%s", mlsec_strerror(code));
}

mlsec_err mlsec_error_set(mlsec_error *err, mlsec_err code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
	}
	return code;
}

mlsec_err mlsec_error_set_at(mlsec_error *err, mlsec_err code, const char *file, long line,
                             long column, long long offset, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
		snprintf(err->file, sizeof err->file, "%s", file ? file : "");
		err->line = line;
		err->column = column;
		err->offset = offset;
	}
	return code;
}

const char *mlsec_error_format(const mlsec_error *err, char *buf, size_t size)
{
	if (!buf || size == 0)
		return "";
	if (!err) {
		snprintf(buf, size, "unknown error");
		return buf;
	}
	size_t n = 0;
	buf[0] = '\0';
#define APPEND(...)                                                                                \
	do {                                                                                       \
		if (n < size) {                                                                    \
			int w = snprintf(buf + n, size - n, __VA_ARGS__);                          \
			n = w < 0 ? size : n + (size_t)w;                                          \
		}                                                                                  \
	} while (0)
	if (err->file[0])
		APPEND("%s:", err->file);
	if (err->line > 0)
		APPEND("%ld:", err->line);
	if (err->line > 0 && err->column > 0)
		APPEND("%ld:", err->column);
	if (err->line <= 0 && err->offset >= 0)
		APPEND("offset %lld:", err->offset);
	if (n > 0)
		APPEND(" ");
	APPEND("%s", err->text[0] ? err->text : mlsec_strerror(err->code));
#undef APPEND
	return buf;
}
