/* alloc.c - allocation wrappers with a fail-the-Nth-allocation test hook. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"

/* Test-only state; see mlsec_alloc_fail_after(). Atomic because engines
 * allocate from several threads (relaxed: only the counts matter). */
static _Atomic long fail_after = -1;
static _Atomic long alloc_count;

static int should_fail(void)
{
	atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
	long f = atomic_load_explicit(&fail_after, memory_order_relaxed);
	if (f < 0)
		return 0;
	if (f == 0)
		return 1;
	atomic_fetch_sub_explicit(&fail_after, 1, memory_order_relaxed);
	return 0;
}

long mlsec_alloc_fail_after(long n)
{
	long c = atomic_exchange(&alloc_count, 0);
	atomic_store(&fail_after, n);
	return c;
}

void *mlsec_malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *mlsec_calloc(size_t count, size_t n)
{
	return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *mlsec_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void *mlsec_reallocarray(void *p, size_t count, size_t n)
{
	if (n && count > SIZE_MAX / n)
		return NULL;
	return mlsec_realloc(p, count * n);
}

char *mlsec_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = mlsec_malloc(len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

char *mlsec_strdup(const char *s)
{
	return s ? mlsec_strndup(s, SIZE_MAX) : NULL;
}

char *mlsec_sprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = mlsec_malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void mlsec_free(void *p)
{
	free(p);
}
