/*
 * pbtxt_arena.h - the bump allocator behind mlsec_pbtxt (internal).
 * Allocations are 16-byte aligned and freed all at once by reset, which
 * keeps the first block so repeated parses of small files reuse it.
 */
#ifndef MLSEC_PBTXT_ARENA_H
#define MLSEC_PBTXT_ARENA_H

#include <stddef.h>

typedef struct pbtxt_block pbtxt_block;

typedef struct pbtxt_arena {
	pbtxt_block *head; /* current block; older ones chained behind */
	size_t used;       /* bytes handed out since the last reset */
	size_t cap;        /* limit on used (0 = none) */
	int over_limit;    /* set when an allocation failed on cap, not NOMEM */
} pbtxt_arena;

void pbtxt_arena_init(pbtxt_arena *a, size_t cap);
/* NULL when out of memory or over the cap (then over_limit is set). */
void *pbtxt_arena_alloc(pbtxt_arena *a, size_t n);
/* Zeroed allocation of count * n bytes; NULL on overflow too. */
void *pbtxt_arena_calloc(pbtxt_arena *a, size_t count, size_t n);
void pbtxt_arena_reset(pbtxt_arena *a);
void pbtxt_arena_destroy(pbtxt_arena *a);

#endif
