/*
 * alloc.h - every heap allocation in mlsec goes through these, so a test can
 * fail the Nth allocation and check that nothing leaks or crashes.
 * Semantics are those of the libc functions they wrap.
 */
#ifndef MLSEC_ALLOC_H
#define MLSEC_ALLOC_H

#include <stddef.h>

void *mlsec_malloc(size_t n);
void *mlsec_calloc(size_t count, size_t n);
void *mlsec_realloc(void *p, size_t n);
/* Overflow-checked realloc(p, count * n); NULL on overflow. */
void *mlsec_reallocarray(void *p, size_t count, size_t n);
char *mlsec_strdup(const char *s);
char *mlsec_strndup(const char *s, size_t n);
/* asprintf into a fresh mlsec_malloc'd string; NULL on failure. */
char *mlsec_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mlsec_free(void *p);

/*
 * Test hook: after `n` more successful allocations, every allocation fails
 * (n < 0 disables). Returns the number of allocations made since the last
 * call. Not thread-safe; for single-threaded tests only.
 */
long mlsec_alloc_fail_after(long n);

#endif
