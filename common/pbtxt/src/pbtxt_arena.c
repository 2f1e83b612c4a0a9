/*
 * pbtxt_arena.c - bump allocation in chained blocks for the pbtxt parser.
 * Why: a parse makes many small objects (strings, arrays, sub-messages)
 * that all die together; an arena makes that one pointer bump each and
 * lets a batch of files reuse the same memory.
 */
#include "pbtxt_arena.h"

#include <stdint.h>
#include <string.h>

#include "mlsec/alloc.h"

#define ARENA_BLOCK_SIZE (64u << 10) /* first (kept) block and the usual size */
#define ARENA_ALIGN 16u

struct pbtxt_block {
	pbtxt_block *next;
	size_t size; /* usable bytes in data */
	size_t off;
	_Alignas(16) unsigned char data[];
};

void pbtxt_arena_init(pbtxt_arena *a, size_t cap)
{
	memset(a, 0, sizeof *a);
	a->cap = cap;
}

static pbtxt_block *block_new(size_t size)
{
	pbtxt_block *b = mlsec_malloc(sizeof *b + size);
	if (!b)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->off = 0;
	return b;
}

void *pbtxt_arena_alloc(pbtxt_arena *a, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - ARENA_ALIGN) {
		a->over_limit = 1;
		return NULL;
	}
	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (a->cap && (n > a->cap || a->used > a->cap - n)) {
		a->over_limit = 1;
		return NULL;
	}
	pbtxt_block *b = a->head;
	if (!b || b->size - b->off < n) {
		size_t size = n > ARENA_BLOCK_SIZE ? n : ARENA_BLOCK_SIZE;
		pbtxt_block *nb = block_new(size);
		if (!nb)
			return NULL;
		nb->next = b;
		a->head = b = nb;
	}
	void *p = b->data + b->off;
	b->off += n;
	a->used += n;
	return p;
}

void *pbtxt_arena_calloc(pbtxt_arena *a, size_t count, size_t n)
{
	if (n && count > SIZE_MAX / n) {
		a->over_limit = 1;
		return NULL;
	}
	void *p = pbtxt_arena_alloc(a, count * n);
	if (p)
		memset(p, 0, count * n);
	return p;
}

/* Keeps the oldest block when it has the usual size, so steady-state
 * parsing of small files allocates nothing. */
void pbtxt_arena_reset(pbtxt_arena *a)
{
	pbtxt_block *b = a->head, *keep = NULL;
	while (b) {
		pbtxt_block *next = b->next;
		if (!next && b->size == ARENA_BLOCK_SIZE) {
			keep = b;
			keep->off = 0;
		} else {
			mlsec_free(b);
		}
		b = next;
	}
	a->head = keep;
	a->used = 0;
	a->over_limit = 0;
}

void pbtxt_arena_destroy(pbtxt_arena *a)
{
	pbtxt_arena_reset(a);
	mlsec_free(a->head);
	a->head = NULL;
}
