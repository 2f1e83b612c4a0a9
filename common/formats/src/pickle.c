/*
 * pickle.c - the restricted pickle VM (see mlsec/pickle.h).
 *
 * Mirrors CPython's Modules/_pickle.c load_* functions opcode by opcode:
 * the same stack/fence rules (an opcode may not pop below the last MARK),
 * the same memo semantics (PUT writes an explicit index, MEMOIZE writes at
 * the current number of memo entries and can therefore overwrite an index
 * set earlier by BINPUT), the same errors for malformed input. Nothing is
 * ever imported or called: callables stay symbolic.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/pickle.h"

#define ARENA_BLOCK (64u * 1024)
/* Longest text line accepted by the protocol-0 opcodes (GLOBAL, INT, ...). */
#define PICKLE_MAX_LINE (64u * 1024)
/* Bytes the linear recovery scan remembers of the last string operands. */
#define RECOVER_STR_MAX 256

typedef struct arena_block {
	struct arena_block *next;
	size_t used, size;
	max_align_t data[];
} arena_block;

typedef struct memo_slot {
	uint32_t key;
	uint32_t used;
	mlsec_pval *val;
} memo_slot;

struct mlsec_pickle {
	mlsec_pickle_limits lim;
	arena_block *blocks;
	size_t decoded;
	/* stack and marks */
	mlsec_pval **stack;
	size_t sp, scap;
	size_t *marks;
	size_t nmarks, mcap;
	/* memo: a dense array for the usual small sequential indexes (as
	 * CPython's C unpickler), open addressing for sparse large keys */
	mlsec_pval **dense;
	size_t dense_cap;
	memo_slot *memo;
	size_t memo_cap, memo_len;
	/* results */
	const mlsec_pval *root;
	size_t consumed, ops;
	int proto, ran, truncated, light;
	mlsec_pval *single[MLSEC_PV__COUNT]; /* scan-only placeholders */
	mlsec_pval *unknown;                 /* a memo entry that was not kept */
	int memo_dropped, untracked_noted;
	size_t late_kept; /* entries kept past MLSEC_PICKLE_SCAN_MEMO */
	size_t sparse_n;  /* entries in the hash (sizes it) */
	size_t gc_at;     /* scan-only: collect when the arena holds this much */
	size_t gcs;       /* collections run */
	uint32_t epoch;
	mlsec_pickle_global *globals;
	size_t nglobals, gcap;
	mlsec_pickle_note *notes;
	size_t nnotes, ncap;
	/* current input */
	const uint8_t *buf;
	size_t len, pos;
	long long op_off;
	const uint8_t *released; /* input_mapped: pages before this were dropped */
};

/* ---- arena ---------------------------------------------------------- */

static void *arena_alloc(mlsec_pickle *p, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n > p->lim.max_decoded || p->decoded > p->lim.max_decoded - n)
		return NULL;
	arena_block *b = p->blocks;
	if (!b || b->size - b->used < n) {
		size_t sz = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		b = mlsec_malloc(sizeof(*b) + sz);
		if (!b)
			return NULL;
		b->size = sz;
		b->used = 0;
		b->next = p->blocks;
		p->blocks = b;
	}
	void *r = (char *)b->data + b->used;
	b->used += n;
	p->decoded += n;
	return r;
}

mlsec_pickle *mlsec_pickle_new(const mlsec_pickle_limits *limits)
{
	mlsec_pickle *p = mlsec_calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	mlsec_pickle_limits d = {MLSEC_PICKLE_MAX_OPS,
	                         MLSEC_PICKLE_MAX_STACK,
	                         MLSEC_PICKLE_MAX_MARKS,
	                         MLSEC_PICKLE_MAX_MEMO,
	                         MLSEC_PICKLE_MAX_DECODED,
	                         MLSEC_PICKLE_MAX_CONTAINER,
	                         0,
	                         0};
	if (limits) {
		/* zero fields keep the default; callers can only lower bounds */
		if (limits->max_ops && limits->max_ops < d.max_ops)
			d.max_ops = limits->max_ops;
		if (limits->max_stack && limits->max_stack < d.max_stack)
			d.max_stack = limits->max_stack;
		if (limits->max_marks && limits->max_marks < d.max_marks)
			d.max_marks = limits->max_marks;
		if (limits->max_memo && limits->max_memo < d.max_memo)
			d.max_memo = limits->max_memo;
		if (limits->max_decoded && limits->max_decoded < d.max_decoded)
			d.max_decoded = limits->max_decoded;
		if (limits->max_container && limits->max_container < d.max_container)
			d.max_container = limits->max_container;
	}
	p->lim = d;
	p->light = limits && limits->scan_only;
	p->lim.input_mapped = limits && limits->input_mapped;
	return p;
}

void mlsec_pickle_free(mlsec_pickle *p)
{
	if (!p)
		return;
	for (arena_block *b = p->blocks, *n; b; b = n) {
		n = b->next;
		mlsec_free(b);
	}
	mlsec_free(p->stack);
	mlsec_free(p->marks);
	mlsec_free(p->memo);
	mlsec_free(p->dense);
	mlsec_free(p->globals);
	mlsec_free(p->notes);
	mlsec_free(p);
}

const mlsec_pval *mlsec_pickle_root(const mlsec_pickle *p)
{
	return p->root;
}
size_t mlsec_pickle_consumed(const mlsec_pickle *p)
{
	return p->consumed;
}
int mlsec_pickle_protocol(const mlsec_pickle *p)
{
	return p->proto;
}
size_t mlsec_pickle_ops(const mlsec_pickle *p)
{
	return p->ops;
}
size_t mlsec_pickle_collections(const mlsec_pickle *p)
{
	return p->gcs;
}
size_t mlsec_pickle_global_count(const mlsec_pickle *p)
{
	return p->nglobals;
}
const mlsec_pickle_global *mlsec_pickle_global_at(const mlsec_pickle *p, size_t i)
{
	return i < p->nglobals ? &p->globals[i] : NULL;
}
size_t mlsec_pickle_note_count(const mlsec_pickle *p)
{
	return p->nnotes;
}
const mlsec_pickle_note *mlsec_pickle_note_at(const mlsec_pickle *p, size_t i)
{
	return i < p->nnotes ? &p->notes[i] : NULL;
}
int mlsec_pickle_truncated(const mlsec_pickle *p)
{
	return p->truncated;
}
uint32_t mlsec_pickle_epoch(mlsec_pickle *p)
{
	return ++p->epoch;
}

/* ---- errors --------------------------------------------------------- */

#define FAIL(code, ...)                                                                            \
	do {                                                                                       \
		mlsec_error_set(err, code, __VA_ARGS__);                                           \
		return code;                                                                       \
	} while (0)

/* ---- values --------------------------------------------------------- */

/*
 * Bytes of a value of kind k: the header plus the union member that kind
 * uses. Scan-only VMs allocate just that (a string node takes 32 bytes
 * instead of 80): their values are only read by this file and by the
 * nested-pickle report, always through the member of their kind.
 */
static size_t val_size(mlsec_pval_kind k)
{
	size_t h = offsetof(mlsec_pval, u);
	mlsec_pval *v = NULL;
	switch (k) {
	case MLSEC_PV_BIGINT:
	case MLSEC_PV_STR:
	case MLSEC_PV_BYTES:
	case MLSEC_PV_BYTEARRAY:
		return h + sizeof v->u.str;
	case MLSEC_PV_TUPLE:
	case MLSEC_PV_LIST:
	case MLSEC_PV_DICT:
	case MLSEC_PV_SET:
	case MLSEC_PV_FROZENSET:
		return h + sizeof v->u.seq;
	case MLSEC_PV_GLOBAL:
		return h + sizeof v->u.global;
	case MLSEC_PV_CALL:
		return h + sizeof v->u.call;
	case MLSEC_PV_PERSID:
		return h + sizeof v->u.persid;
	default:
		/* BOOL, INT, EXT (u.i), FLOAT (u.f), NONE, BUFFER */
		return h + (sizeof v->u.i > sizeof v->u.f ? sizeof v->u.i : sizeof v->u.f);
	}
}

static mlsec_pval *val_new(mlsec_pickle *p, mlsec_pval_kind k)
{
	size_t sz = p->light ? val_size(k) : sizeof(mlsec_pval);
	mlsec_pval *v = arena_alloc(p, sz);
	if (!v)
		return NULL;
	memset(v, 0, sz);
	v->kind = k;
	v->offset = p->op_off;
	return v;
}

/* A value whose content scanning never needs: shared in scan-only mode. */
static mlsec_pval *opaque(mlsec_pickle *p, mlsec_pval_kind k)
{
	if (!p->light)
		return val_new(p, k);
	if (!p->single[k])
		p->single[k] = val_new(p, k);
	return p->single[k];
}

static int add_note(mlsec_pickle *p, mlsec_pickle_note_kind k, long long off, const mlsec_pval *v)
{
	if (p->nnotes >= MLSEC_PICKLE_MAX_NOTES) {
		p->truncated = 1;
		return 0;
	}
	if (p->nnotes == p->ncap) {
		size_t nc = p->ncap ? p->ncap * 2 : 16;
		mlsec_pickle_note *n = mlsec_reallocarray(p->notes, nc, sizeof(*n));
		if (!n)
			return -1;
		p->notes = n;
		p->ncap = nc;
	}
	p->notes[p->nnotes++] = (mlsec_pickle_note){k, off, v};
	return 0;
}

static char *str_copy(mlsec_pickle *p, const void *s, size_t n)
{
	char *c = arena_alloc(p, n + 1);
	if (!c)
		return NULL;
	memcpy(c, s, n);
	c[n] = 0;
	return c;
}

/* "ident\nident\n" at b: the operands of GLOBAL/INST. */
static int two_ident_lines(const uint8_t *b, size_t n)
{
	size_t lines = 0, len = 0;
	for (size_t j = 0; j < n && j < 256; j++) {
		unsigned char ch = b[j];
		if (ch == '\n') {
			if (!len)
				return 0;
			if (++lines == 2)
				return 1;
			len = 0;
			continue;
		}
		if (!(ch == '_' || ch == '.' || (ch >= '0' && ch <= '9') ||
		      (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
			return 0;
		len++;
	}
	return 0;
}

/* Window of a protocol-0/1 candidate searched for GLOBAL/INST. */
#define SNIFF_P0_WINDOW 4096

int mlsec_pickle_sniff(const uint8_t *b, size_t n)
{
	if (n >= 3 && b[0] == 0x80 && b[1] <= 5)
		return 1;
	if (n < 4)
		return 0;
	/* protocol 0/1: GLOBAL or MARK+GLOBAL/INST at the start */
	size_t i = b[0] == '(' ? 1 : 0;
	if ((b[i] == 'c' || b[i] == 'i') && two_ident_lines(b + i + 1, n - i - 1))
		return 1;
	/* or a protocol-0 stream ending in STOP that names a global after an
	 * opcode boundary, e.g. "(S'id'\nios\nsystem\n." */
	if (b[n - 1] != '.' || !strchr("(]})NIJKLSVUTXdlFG", b[0]))
		return 0;
	size_t w = n < SNIFF_P0_WINDOW ? n : SNIFF_P0_WINDOW;
	for (size_t k = 1; k + 1 < w; k++)
		if ((b[k] == 'c' || b[k] == 'i') && (b[k - 1] == '\n' || b[k - 1] == '(') &&
		    two_ident_lines(b + k + 1, n - k - 1))
			return 1;
	return 0;
}

static mlsec_pval *str_val(mlsec_pickle *p, mlsec_pval_kind k, const void *s, size_t n)
{
	if (p->light && k == MLSEC_PV_BIGINT)
		return opaque(p, k);
	mlsec_pval *v = val_new(p, k);
	if (!v)
		return NULL;
	const char *c = p->light ? (const char *)s : str_copy(p, s, n);
	if (!c)
		return NULL;
	v->u.str.s = c;
	v->u.str.len = n;
	if (k != MLSEC_PV_BIGINT) {
		int nested = mlsec_pickle_sniff((const uint8_t *)c, n);
		/* a latin-1 pickle smuggled as str shows up UTF-8 encoded */
		if (!nested && k == MLSEC_PV_STR && n >= 4 && (uint8_t)c[0] == 0xc2 &&
		    (uint8_t)c[1] == 0x80 && (uint8_t)c[2] <= 5)
			nested = 1;
		if (nested && add_note(p, MLSEC_PNOTE_NESTED_PICKLE, p->op_off, v) < 0)
			return NULL;
	}
	return v;
}

static int seq_push(mlsec_pickle *p, mlsec_pval *s, mlsec_pval *item)
{
	if (p->light)
		return 0; /* placeholders stay empty */
	if (s->u.seq.n >= p->lim.max_container)
		return -2;
	if (s->u.seq.n == s->u.seq.cap) {
		size_t nc = s->u.seq.cap ? s->u.seq.cap * 2 : 4;
		if (nc > p->lim.max_container)
			nc = p->lim.max_container;
		mlsec_pval **ni = arena_alloc(p, nc * sizeof(*ni));
		if (!ni)
			return -1;
		if (s->u.seq.n)
			memcpy(ni, s->u.seq.items, s->u.seq.n * sizeof(*ni));
		s->u.seq.items = ni;
		s->u.seq.cap = nc;
	}
	s->u.seq.items[s->u.seq.n++] = item;
	return 0;
}

/* ---- stack ---------------------------------------------------------- */

static size_t fence(const mlsec_pickle *p)
{
	return p->nmarks ? p->marks[p->nmarks - 1] : 0;
}

static mlsec_err push(mlsec_pickle *p, mlsec_pval *v, mlsec_error *err)
{
	if (!v)
		FAIL(p->decoded >= p->lim.max_decoded / 2 ? MLSEC_ERR_LIMIT : MLSEC_ERR_NOMEM,
		     "out of memory or decoded-size limit building a value");
	if (p->sp == p->scap) {
		if (p->sp >= p->lim.max_stack)
			FAIL(MLSEC_ERR_LIMIT, "pickle stack exceeds %zu items", p->lim.max_stack);
		size_t nc = p->scap ? p->scap * 2 : 64;
		if (nc > p->lim.max_stack)
			nc = p->lim.max_stack;
		mlsec_pval **ns = mlsec_reallocarray(p->stack, nc, sizeof(*ns));
		if (!ns)
			FAIL(MLSEC_ERR_NOMEM, "out of memory growing the pickle stack");
		p->stack = ns;
		p->scap = nc;
	}
	p->stack[p->sp++] = v;
	return MLSEC_OK;
}

static mlsec_pval *pop(mlsec_pickle *p)
{
	if (p->sp <= fence(p))
		return NULL;
	return p->stack[--p->sp];
}

static mlsec_pval *top(mlsec_pickle *p)
{
	if (p->sp <= fence(p))
		return NULL;
	return p->stack[p->sp - 1];
}

#define UNDERFLOW() FAIL(MLSEC_ERR_PARSE, "unpickling stack underflow")

/* Pops everything above the last mark, and the mark (CPython marker()). */
static mlsec_err pop_mark(mlsec_pickle *p, size_t *start, mlsec_error *err)
{
	if (!p->nmarks)
		FAIL(MLSEC_ERR_PARSE, "could not find MARK");
	*start = p->marks[--p->nmarks];
	return MLSEC_OK;
}

static mlsec_pval *seq_from(mlsec_pickle *p, mlsec_pval_kind k, size_t from, size_t to)
{
	if (p->light && k != MLSEC_PV_TUPLE)
		return opaque(p, k);
	mlsec_pval *v = val_new(p, k);
	if (!v)
		return NULL;
	size_t n = to - from;
	if (n) {
		if (n > p->lim.max_container)
			return NULL;
		v->u.seq.items = arena_alloc(p, n * sizeof(mlsec_pval *));
		if (!v->u.seq.items)
			return NULL;
		memcpy(v->u.seq.items, p->stack + from, n * sizeof(mlsec_pval *));
		v->u.seq.n = v->u.seq.cap = n;
	}
	return v;
}

/* ---- memo ----------------------------------------------------------- */

static memo_slot *memo_find(mlsec_pickle *p, uint32_t key)
{
	if (!p->memo_cap)
		return NULL;
	size_t mask = p->memo_cap - 1;
	size_t h = (key * 2654435761u) & mask;
	while (p->memo[h].used) {
		if (p->memo[h].key == key)
			return &p->memo[h];
		h = (h + 1) & mask;
	}
	return NULL;
}

static mlsec_pval *memo_get(mlsec_pickle *p, uint64_t key)
{
	if (key < p->dense_cap && p->dense[key])
		return p->dense[key];
	/* a sparse key set before the dense array grew over it */
	memo_slot *s = key <= UINT32_MAX ? memo_find(p, (uint32_t)key) : NULL;
	return s ? s->val : NULL;
}

static int ident(const uint8_t *s, size_t n);

/*
 * Past the kept memo, a scan-only VM still keeps (up to
 * MLSEC_PICKLE_SCAN_MEMO_LATE of them) the entries STACK_GLOBAL and REDUCE
 * may need again: globals, calls, and identifier-like strings (module and
 * class names). Everything else it would fetch is a placeholder anyway.
 */
static int late_keep(const mlsec_pval *v)
{
	if (v->kind == MLSEC_PV_GLOBAL || v->kind == MLSEC_PV_CALL)
		return 1;
	return v->kind == MLSEC_PV_STR && ident((const uint8_t *)v->u.str.s, v->u.str.len);
}

static mlsec_err memo_put(mlsec_pickle *p, uint64_t key, mlsec_pval *v, mlsec_error *err)
{
	if (key > UINT32_MAX)
		FAIL(MLSEC_ERR_LIMIT, "memo index %llu too large", (unsigned long long)key);
	int late = p->light && key >= MLSEC_PICKLE_SCAN_MEMO;
	if (late && (p->late_kept >= MLSEC_PICKLE_SCAN_MEMO_LATE || !late_keep(v))) {
		/* counted, not kept (a repeated PUT at such an index is counted
		 * again: past this point MEMOIZE indexes may drift, and any GET
		 * there is reported as untracked anyway) */
		if (p->memo_len >= p->lim.max_memo)
			FAIL(MLSEC_ERR_LIMIT, "memo exceeds %zu entries", p->lim.max_memo);
		p->memo_len++;
		p->memo_dropped = 1;
		return MLSEC_OK;
	}
	if (late) {
		p->late_kept++;
		goto sparse;
	}
	/* dense when the key is near the number of entries (never lets a
	 * single huge index allocate a huge array) */
	size_t dc = p->dense_cap ? p->dense_cap : 1024;
	while (dc <= key)
		dc *= 2;
	/* the dense array is bounded by a share of the decoded-size budget */
	int dense_ok = dc <= p->lim.max_decoded / 4 / sizeof(mlsec_pval *);
	if (key < p->dense_cap ||
	    (dense_ok && key < p->lim.max_memo && key <= 2 * p->memo_len + 1024)) {
		if (key >= p->dense_cap) {
			mlsec_pval **nd = mlsec_reallocarray(p->dense, dc, sizeof(*nd));
			if (!nd)
				FAIL(MLSEC_ERR_NOMEM, "out of memory growing the memo");
			memset(nd + p->dense_cap, 0, (dc - p->dense_cap) * sizeof(*nd));
			p->dense = nd;
			p->dense_cap = dc;
		}
		if (!p->dense[key] && !memo_find(p, (uint32_t)key)) {
			if (p->memo_len >= p->lim.max_memo)
				FAIL(MLSEC_ERR_LIMIT, "memo exceeds %zu entries", p->lim.max_memo);
			p->memo_len++;
		}
		memo_slot *old = memo_find(p, (uint32_t)key);
		if (old)
			old->val = v; /* keep both views consistent */
		p->dense[key] = v;
		return MLSEC_OK;
	}
sparse:;
	memo_slot *s = memo_find(p, (uint32_t)key);
	if (s) {
		s->val = v; /* overwrite: same as CPython */
		return MLSEC_OK;
	}
	if (p->memo_len >= p->lim.max_memo)
		FAIL(MLSEC_ERR_LIMIT, "memo exceeds %zu entries", p->lim.max_memo);
	if ((p->sparse_n + 1) * 2 > p->memo_cap) {
		size_t nc = p->memo_cap ? p->memo_cap * 2 : 64;
		memo_slot *nm = mlsec_calloc(nc, sizeof(*nm));
		if (!nm)
			FAIL(MLSEC_ERR_NOMEM, "out of memory growing the memo");
		for (size_t i = 0; i < p->memo_cap; i++) {
			if (!p->memo[i].used)
				continue;
			size_t h = (p->memo[i].key * 2654435761u) & (nc - 1);
			while (nm[h].used)
				h = (h + 1) & (nc - 1);
			nm[h] = p->memo[i];
		}
		mlsec_free(p->memo);
		p->memo = nm;
		p->memo_cap = nc;
	}
	size_t h = ((uint32_t)key * 2654435761u) & (p->memo_cap - 1);
	while (p->memo[h].used)
		h = (h + 1) & (p->memo_cap - 1);
	p->memo[h] = (memo_slot){(uint32_t)key, 1, v};
	p->sparse_n++;
	p->memo_len++;
	return MLSEC_OK;
}

/* ---- input ---------------------------------------------------------- */

static const uint8_t *take(mlsec_pickle *p, size_t n)
{
	if (n > p->len - p->pos)
		return NULL;
	const uint8_t *r = p->buf + p->pos;
	p->pos += n;
	return r;
}

#define TAKE(ptr, n)                                                                               \
	do {                                                                                       \
		if (!((ptr) = take(p, (n))))                                                       \
			FAIL(MLSEC_ERR_PARSE, "pickle data was truncated");                        \
	} while (0)

/* A protocol-0 argument line without its '\n'. */
static mlsec_err line(mlsec_pickle *p, const uint8_t **s, size_t *n, mlsec_error *err)
{
	size_t max = p->len - p->pos;
	if (max > PICKLE_MAX_LINE + 1)
		max = PICKLE_MAX_LINE + 1;
	const uint8_t *nl = memchr(p->buf + p->pos, '\n', max);
	if (!nl)
		FAIL(MLSEC_ERR_PARSE, "pickle data was truncated (no end of line)");
	*s = p->buf + p->pos;
	*n = (size_t)(nl - *s);
	p->pos += *n + 1;
	return MLSEC_OK;
}

static uint64_t le(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

/* Parses a decimal integer line (optionally trailing 'L'); 0 on success. */
static int parse_dec(const uint8_t *s, size_t n, int64_t *out, int *big)
{
	size_t i = 0;
	*big = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\r'))
		n--;
	if (n > i && s[n - 1] == 'L')
		n--;
	int neg = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i >= n)
		return -1;
	uint64_t v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			*big = 1;
		else
			v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (!*big && v > (uint64_t)INT64_MAX + (uint64_t)neg)
		*big = 1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static size_t utf8_put(char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | ((c >> 18) & 0x07));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static int hexv(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * STRING argument: Python bytes-literal escapes (PyBytes_DecodeEscape),
 * decoded as latin-1 into UTF-8 like Python 3's default ASCII/latin1 path.
 */
static mlsec_pval *decode_string(mlsec_pickle *p, const uint8_t *s, size_t n)
{
	char *o = arena_alloc(p, n * 2 + 1);
	if (!o)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = s[i];
		if (c == '\\' && i + 1 < n) {
			uint8_t e = s[++i];
			switch (e) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'a':
				c = 7;
				break;
			case 'b':
				c = 8;
				break;
			case 'f':
				c = 12;
				break;
			case 'v':
				c = 11;
				break;
			case '\\':
			case '\'':
			case '"':
				c = e;
				break;
			case '\n':
				continue;
			case 'x':
				if (i + 2 < n + 0 && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
					c = (uint32_t)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
					i += 2;
				} else {
					return NULL; /* CPython: invalid \x escape */
				}
				break;
			default:
				if (e >= '0' && e <= '7') {
					c = e - '0';
					for (int d = 0; d < 2 && i + 1 < n && s[i + 1] >= '0' &&
					                s[i + 1] <= '7';
					     d++)
						c = c * 8 + (s[++i] - '0');
					c &= 0xff;
				} else {
					o[k++] = '\\';
					c = e;
				}
			}
		}
		k += utf8_put(o + k, c);
	}
	o[k] = 0;
	mlsec_pval *v = str_val(p, MLSEC_PV_STR, o, k);
	return v;
}

/* UNICODE argument: raw-unicode-escape (\uXXXX, \UXXXXXXXX), else latin-1. */
static mlsec_pval *decode_raw_unicode(mlsec_pickle *p, const uint8_t *s, size_t n)
{
	char *o = arena_alloc(p, n * 4 + 1);
	if (!o)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = s[i];
		if (c == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
			int digits = s[i + 1] == 'u' ? 4 : 8;
			if (i + 1 + (size_t)digits >= n + 0 && i + 1 + (size_t)digits > n - 1)
				return NULL;
			uint32_t cp = 0;
			for (int d = 0; d < digits; d++) {
				int h = hexv(s[i + 2 + d]);
				if (h < 0)
					return NULL;
				cp = cp * 16 + (uint32_t)h;
			}
			if (cp > 0x10ffff)
				return NULL;
			c = cp;
			i += 1 + (size_t)digits;
		}
		k += utf8_put(o + k, c);
	}
	o[k] = 0;
	return str_val(p, MLSEC_PV_STR, o, k);
}

/* ---- globals -------------------------------------------------------- */

static mlsec_err record_global(mlsec_pickle *p, const char *m, const char *n, int opcode,
                               long long off, int recovered, mlsec_error *err)
{
	if (p->nglobals >= MLSEC_PICKLE_MAX_GLOBALS) {
		p->truncated = 1;
		return MLSEC_OK;
	}
	if (p->nglobals == p->gcap) {
		size_t nc = p->gcap ? p->gcap * 2 : 16;
		mlsec_pickle_global *g = mlsec_reallocarray(p->globals, nc, sizeof(*g));
		if (!g)
			FAIL(MLSEC_ERR_NOMEM, "out of memory recording globals");
		p->globals = g;
		p->gcap = nc;
	}
	p->globals[p->nglobals++] = (mlsec_pickle_global){m, n, off, opcode, recovered};
	return MLSEC_OK;
}

static mlsec_pval *global_val(mlsec_pickle *p, const uint8_t *m, size_t mn, const uint8_t *n,
                              size_t nn)
{
	mlsec_pval *v = val_new(p, MLSEC_PV_GLOBAL);
	if (!v)
		return NULL;
	v->u.global.module = str_copy(p, m, mn);
	v->u.global.name = str_copy(p, n, nn);
	if (!v->u.global.module || !v->u.global.name)
		return NULL;
	return v;
}

/* ---- the interpreter ------------------------------------------------ */

/*
 * SETITEM(S)/APPEND(S) on a reduced object (OrderedDict, defaultdict, or
 * any class) calls its __setitem__/append at load time. Keep the items on
 * the object so walkers see them, and note it unless the class is a plain
 * container.
 */
static mlsec_pval *object_items(mlsec_pickle *p, mlsec_pval *obj, int dict)
{
	if (obj->kind != MLSEC_PV_CALL || p->light)
		return NULL;
	mlsec_pval **slot = dict ? &obj->u.call.dictitems : &obj->u.call.listitems;
	if (!*slot)
		*slot = val_new(p, dict ? MLSEC_PV_DICT : MLSEC_PV_LIST);
	return *slot;
}

static int plain_container(const mlsec_pval *obj)
{
	const mlsec_pval *c = obj->kind == MLSEC_PV_CALL ? obj->u.call.callable : NULL;
	return c && c->kind == MLSEC_PV_GLOBAL && !strcmp(c->u.global.module, "collections") &&
	       (!strcmp(c->u.global.name, "OrderedDict") ||
	        !strcmp(c->u.global.name, "defaultdict") || !strcmp(c->u.global.name, "deque"));
}

static mlsec_err object_add(mlsec_pickle *p, mlsec_pval *obj, int dict, mlsec_pval **items,
                            size_t n, mlsec_error *err);

#define CHECK(expr)                                                                                \
	do {                                                                                       \
		mlsec_err e_ = (expr);                                                             \
		if (e_ != MLSEC_OK)                                                                \
			return e_;                                                                 \
	} while (0)
#define PUSH(v) CHECK(push(p, (v), err))
#define OOM() FAIL(MLSEC_ERR_NOMEM, "out of memory or decoded-size limit")

static mlsec_err call_val(mlsec_pickle *p, mlsec_pcall_kind how, mlsec_pval *callable,
                          mlsec_pval *args, mlsec_pval *kwargs, mlsec_error *err)
{
	mlsec_pval *v = val_new(p, MLSEC_PV_CALL);
	if (!v)
		OOM();
	v->u.call.how = how;
	v->u.call.callable = callable;
	v->u.call.args = args;
	v->u.call.kwargs = kwargs;
	PUSH(v);
	return MLSEC_OK;
}

static mlsec_err seq_add(mlsec_pickle *p, mlsec_pval *s, mlsec_pval *item, mlsec_error *err)
{
	int r = seq_push(p, s, item);
	if (r == -2)
		FAIL(MLSEC_ERR_LIMIT, "container exceeds %zu items", p->lim.max_container);
	if (r < 0)
		OOM();
	return MLSEC_OK;
}

static mlsec_err object_add(mlsec_pickle *p, mlsec_pval *obj, int dict, mlsec_pval **items,
                            size_t n, mlsec_error *err)
{
	if (obj != p->unknown && !plain_container(obj) &&
	    add_note(p, MLSEC_PNOTE_SETITEM_ON_OBJECT, p->op_off, obj) < 0)
		OOM();
	mlsec_pval *c = object_items(p, obj, dict);
	if (obj->kind == MLSEC_PV_CALL && !c && !p->light)
		OOM();
	for (size_t i = 0; c && i < n; i++)
		CHECK(seq_add(p, c, items[i], err));
	return MLSEC_OK;
}

static mlsec_err step(mlsec_pickle *p, int *stop, mlsec_error *err)
{
	const uint8_t *a;
	const uint8_t *s;
	size_t n, start;
	mlsec_pval *v, *w, *x;
	int64_t iv;
	int big;
	uint8_t op;

	p->op_off = (long long)p->pos;
	TAKE(a, 1);
	op = a[0];
	switch (op) {
	case 0x80: /* PROTO */
		TAKE(a, 1);
		if (a[0] > 5)
			FAIL(MLSEC_ERR_PARSE, "unsupported pickle protocol: %d", a[0]);
		if (a[0] > p->proto)
			p->proto = a[0];
		return MLSEC_OK;
	case 0x95: /* FRAME */
		TAKE(a, 8);
		if (le(a, 8) > p->len - p->pos)
			FAIL(MLSEC_ERR_PARSE, "frame length exceeds the data");
		return MLSEC_OK;
	case '.': /* STOP */
		if (!(v = pop(p)))
			UNDERFLOW();
		p->root = v;
		*stop = 1;
		return MLSEC_OK;
	case '(': /* MARK */
		if (p->nmarks == p->mcap) {
			if (p->nmarks >= p->lim.max_marks)
				FAIL(MLSEC_ERR_LIMIT, "more than %zu nested MARKs",
				     p->lim.max_marks);
			size_t nc = p->mcap ? p->mcap * 2 : 32;
			if (nc > p->lim.max_marks)
				nc = p->lim.max_marks;
			size_t *nm = mlsec_reallocarray(p->marks, nc, sizeof(*nm));
			if (!nm)
				OOM();
			p->marks = nm;
			p->mcap = nc;
		}
		p->marks[p->nmarks++] = p->sp;
		return MLSEC_OK;
	case '0': /* POP: pops the mark itself when the stack is at it */
		if (p->nmarks && p->marks[p->nmarks - 1] == p->sp)
			p->nmarks--;
		else if (!pop(p))
			UNDERFLOW();
		return MLSEC_OK;
	case '1': /* POP_MARK */
		CHECK(pop_mark(p, &start, err));
		p->sp = start;
		return MLSEC_OK;
	case '2': /* DUP */
		if (!(v = top(p)))
			UNDERFLOW();
		PUSH(v);
		return MLSEC_OK;
	case 'N':
		PUSH(opaque(p, MLSEC_PV_NONE));
		return MLSEC_OK;
	case 0x88: /* NEWTRUE */
	case 0x89: /* NEWFALSE */
		if ((v = opaque(p, MLSEC_PV_BOOL)) && !p->light)
			v->u.i = op == 0x88;
		PUSH(v);
		return MLSEC_OK;
	case 'I': /* INT, with the 00/01 bool spellings */
		CHECK(line(p, &s, &n, err));
		if (n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
			if ((v = opaque(p, MLSEC_PV_BOOL)) && !p->light)
				v->u.i = s[1] == '1';
			PUSH(v);
			return MLSEC_OK;
		}
		/* fallthrough */
	case 'L': /* LONG */
		if (op == 'L')
			CHECK(line(p, &s, &n, err));
		if (parse_dec(s, n, &iv, &big) < 0)
			FAIL(MLSEC_ERR_PARSE, "invalid literal for int()");
		if (big) {
			PUSH(str_val(p, MLSEC_PV_BIGINT, s, n));
		} else {
			if ((v = opaque(p, MLSEC_PV_INT)) && !p->light)
				v->u.i = iv;
			PUSH(v);
		}
		return MLSEC_OK;
	case 'J': /* BININT */
	case 'K': /* BININT1 */
	case 'M': /* BININT2 */
		n = op == 'J' ? 4 : op == 'K' ? 1 : 2;
		TAKE(a, n);
		iv = (int64_t)le(a, (int)n);
		if (op == 'J')
			iv = (int32_t)(uint32_t)iv;
		if ((v = opaque(p, MLSEC_PV_INT)) && !p->light)
			v->u.i = iv;
		PUSH(v);
		return MLSEC_OK;
	case 0x8a: /* LONG1 */
	case 0x8b: /* LONG4 */
		if (op == 0x8a) {
			TAKE(a, 1);
			n = a[0];
		} else {
			TAKE(a, 4);
			int32_t l = (int32_t)(uint32_t)le(a, 4);
			if (l < 0)
				FAIL(MLSEC_ERR_PARSE, "LONG pickle has negative byte count");
			n = (size_t)l;
		}
		TAKE(a, n);
		if (n <= 8) {
			uint64_t u = n ? le(a, (int)n) : 0;
			if (n && n < 8 && (a[n - 1] & 0x80))
				u |= ~(uint64_t)0 << (8 * n);
			if ((v = opaque(p, MLSEC_PV_INT)) && !p->light)
				v->u.i = (int64_t)u;
			PUSH(v);
		} else {
			PUSH(str_val(p, MLSEC_PV_BIGINT, a, n));
		}
		return MLSEC_OK;
	case 'F': { /* FLOAT */
		CHECK(line(p, &s, &n, err));
		char tmp[128];
		if (n == 0 || n >= sizeof tmp)
			FAIL(MLSEC_ERR_PARSE, "could not convert string to float");
		memcpy(tmp, s, n);
		tmp[n] = 0;
		char *end;
		double d = strtod(tmp, &end);
		if (end == tmp)
			FAIL(MLSEC_ERR_PARSE, "could not convert string to float");
		if ((v = opaque(p, MLSEC_PV_FLOAT)) && !p->light)
			v->u.f = d;
		PUSH(v);
		return MLSEC_OK;
	}
	case 'G': { /* BINFLOAT, big-endian */
		TAKE(a, 8);
		uint64_t u = 0;
		for (int i = 0; i < 8; i++)
			u = (u << 8) | a[i];
		double d;
		memcpy(&d, &u, sizeof d);
		if ((v = opaque(p, MLSEC_PV_FLOAT)) && !p->light)
			v->u.f = d;
		PUSH(v);
		return MLSEC_OK;
	}
	case 'S': /* STRING */
		CHECK(line(p, &s, &n, err));
		while (n && (s[n - 1] == '\r' || s[n - 1] == ' '))
			n--;
		if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
			FAIL(MLSEC_ERR_PARSE, "the STRING opcode argument must be quoted");
		if (!(v = decode_string(p, s + 1, n - 2)))
			FAIL(MLSEC_ERR_PARSE, "invalid escape in STRING argument");
		PUSH(v);
		return MLSEC_OK;
	case 'V': /* UNICODE */
		CHECK(line(p, &s, &n, err));
		if (!(v = decode_raw_unicode(p, s, n)))
			FAIL(MLSEC_ERR_PARSE, "invalid raw-unicode-escape in UNICODE argument");
		PUSH(v);
		return MLSEC_OK;
	case 'T':    /* BINSTRING */
	case 'U':    /* SHORT_BINSTRING */
	case 'X':    /* BINUNICODE */
	case 0x8c:   /* SHORT_BINUNICODE */
	case 0x8d:   /* BINUNICODE8 */
	case 'B':    /* BINBYTES */
	case 'C':    /* SHORT_BINBYTES */
	case 0x8e:   /* BINBYTES8 */
	case 0x96: { /* BYTEARRAY8 */
		int w8 = (op == 'U' || op == 0x8c || op == 'C')     ? 1
		         : (op == 0x8d || op == 0x8e || op == 0x96) ? 8
		                                                    : 4;
		TAKE(a, (size_t)w8);
		uint64_t l = le(a, w8);
		if (op == 'T' && (int32_t)(uint32_t)l < 0)
			FAIL(MLSEC_ERR_PARSE, "BINSTRING pickle has negative byte count");
		if (l > p->len - p->pos)
			FAIL(MLSEC_ERR_PARSE, "pickle data was truncated");
		TAKE(a, (size_t)l);
		mlsec_pval_kind k = (op == 'B' || op == 'C' || op == 0x8e) ? MLSEC_PV_BYTES
		                    : op == 0x96                           ? MLSEC_PV_BYTEARRAY
		                                                           : MLSEC_PV_STR;
		PUSH(str_val(p, k, a, (size_t)l));
		return MLSEC_OK;
	}
	case ')':
		PUSH(opaque(p, MLSEC_PV_TUPLE));
		return MLSEC_OK;
	case 't': /* TUPLE */
		CHECK(pop_mark(p, &start, err));
		v = seq_from(p, MLSEC_PV_TUPLE, start, p->sp);
		p->sp = start;
		PUSH(v);
		return MLSEC_OK;
	case 0x85: /* TUPLE1..3 */
	case 0x86:
	case 0x87:
		n = (size_t)(op - 0x84);
		if (p->sp - fence(p) < n)
			UNDERFLOW();
		v = seq_from(p, MLSEC_PV_TUPLE, p->sp - n, p->sp);
		p->sp -= n;
		PUSH(v);
		return MLSEC_OK;
	case ']':
		PUSH(opaque(p, MLSEC_PV_LIST));
		return MLSEC_OK;
	case '}':
		PUSH(opaque(p, MLSEC_PV_DICT));
		return MLSEC_OK;
	case 0x8f:
		PUSH(opaque(p, MLSEC_PV_SET));
		return MLSEC_OK;
	case 'l':  /* LIST */
	case 0x91: /* FROZENSET */
		CHECK(pop_mark(p, &start, err));
		v = seq_from(p, op == 'l' ? MLSEC_PV_LIST : MLSEC_PV_FROZENSET, start, p->sp);
		p->sp = start;
		PUSH(v);
		return MLSEC_OK;
	case 'd': /* DICT */
		CHECK(pop_mark(p, &start, err));
		if ((p->sp - start) % 2)
			FAIL(MLSEC_ERR_PARSE, "odd number of items for DICT");
		v = seq_from(p, MLSEC_PV_DICT, start, p->sp);
		p->sp = start;
		PUSH(v);
		return MLSEC_OK;
	case 'a': /* APPEND */
		if (!(w = pop(p)) || !(v = top(p)))
			UNDERFLOW();
		goto append_one;
	case 'e':    /* APPENDS */
	case 0x90: { /* ADDITEMS */
		CHECK(pop_mark(p, &start, err));
		if (start <= fence(p))
			UNDERFLOW();
		v = p->stack[start - 1];
		if (op == 0x90 && v->kind != MLSEC_PV_SET)
			FAIL(MLSEC_ERR_PARSE, "ADDITEMS on a non-set");
		if (v->kind != MLSEC_PV_LIST && v->kind != MLSEC_PV_SET) {
			CHECK(object_add(p, v, 0, p->stack + start, p->sp - start, err));
		} else {
			for (size_t i = start; i < p->sp; i++)
				CHECK(seq_add(p, v, p->stack[i], err));
		}
		p->sp = start;
		return MLSEC_OK;
	}
	append_one:
		if (v->kind == MLSEC_PV_LIST)
			return seq_add(p, v, w, err);
		return object_add(p, v, 0, &w, 1, err);
	case 's': /* SETITEM */
		if (!(x = pop(p)) || !(w = pop(p)) || !(v = top(p)))
			UNDERFLOW();
		if (v->kind != MLSEC_PV_DICT) {
			mlsec_pval *kv[2] = {w, x};
			return object_add(p, v, 1, kv, 2, err);
		}
		CHECK(seq_add(p, v, w, err));
		return seq_add(p, v, x, err);
	case 'u': /* SETITEMS */
		CHECK(pop_mark(p, &start, err));
		if (start <= fence(p))
			UNDERFLOW();
		if ((p->sp - start) % 2)
			FAIL(MLSEC_ERR_PARSE, "odd number of items for SETITEMS");
		v = p->stack[start - 1];
		if (v->kind != MLSEC_PV_DICT) {
			CHECK(object_add(p, v, 1, p->stack + start, p->sp - start, err));
		} else {
			for (size_t i = start; i < p->sp; i++)
				CHECK(seq_add(p, v, p->stack[i], err));
		}
		p->sp = start;
		return MLSEC_OK;
	case 'g':   /* GET */
	case 'h':   /* BINGET */
	case 'j': { /* LONG_BINGET */
		uint64_t key;
		if (op == 'g') {
			CHECK(line(p, &s, &n, err));
			if (parse_dec(s, n, &iv, &big) < 0 || big || iv < 0)
				FAIL(MLSEC_ERR_PARSE, "invalid GET argument");
			key = (uint64_t)iv;
		} else {
			TAKE(a, op == 'h' ? 1u : 4u);
			key = le(a, op == 'h' ? 1 : 4);
		}
		mlsec_pval *m = memo_get(p, key);
		if (!m && p->memo_dropped && key >= MLSEC_PICKLE_SCAN_MEMO) {
			if (!p->unknown && !(p->unknown = val_new(p, MLSEC_PV_NONE)))
				OOM();
			if (!p->untracked_noted++ &&
			    add_note(p, MLSEC_PNOTE_MEMO_UNTRACKED, p->op_off, NULL) < 0)
				OOM();
			m = p->unknown;
		}
		if (!m)
			FAIL(MLSEC_ERR_PARSE, "memo value not found at index %llu",
			     (unsigned long long)key);
		PUSH(m);
		return MLSEC_OK;
	}
	case 'p':   /* PUT */
	case 'q':   /* BINPUT */
	case 'r': { /* LONG_BINPUT */
		uint64_t key;
		if (op == 'p') {
			CHECK(line(p, &s, &n, err));
			if (parse_dec(s, n, &iv, &big) < 0 || big)
				FAIL(MLSEC_ERR_PARSE, "invalid PUT argument");
			if (iv < 0)
				FAIL(MLSEC_ERR_PARSE, "negative PUT argument");
			key = (uint64_t)iv;
		} else {
			TAKE(a, op == 'q' ? 1u : 4u);
			key = le(a, op == 'q' ? 1 : 4);
		}
		if (!(v = top(p)))
			UNDERFLOW();
		return memo_put(p, key, v, err);
	}
	case 0x94: /* MEMOIZE: index = number of memo entries, may overwrite */
		if (!(v = top(p)))
			UNDERFLOW();
		return memo_put(p, p->memo_len, v, err);
	case 'c': { /* GLOBAL */
		const uint8_t *m;
		size_t mn;
		CHECK(line(p, &m, &mn, err));
		CHECK(line(p, &s, &n, err));
		if (!(v = global_val(p, m, mn, s, n)))
			OOM();
		CHECK(record_global(p, v->u.global.module, v->u.global.name, op, p->op_off, 0,
		                    err));
		PUSH(v);
		return MLSEC_OK;
	}
	case 0x93: /* STACK_GLOBAL */
		if (!(w = pop(p)) || !(v = pop(p)))
			UNDERFLOW();
		if (v->kind != MLSEC_PV_STR || w->kind != MLSEC_PV_STR) {
			/* CPython would fail unless a call produced the strings at run
			 * time: that is exactly the obfuscation we cannot resolve. */
			if (add_note(p, MLSEC_PNOTE_DYNAMIC_GLOBAL, p->op_off, NULL) < 0)
				OOM();
			/* reported through the note, not as a global record */
			x = global_val(p, (const uint8_t *)"?", 1, (const uint8_t *)"?", 1);
			if (!x)
				OOM();
			PUSH(x);
			return MLSEC_OK;
		}
		x = val_new(p, MLSEC_PV_GLOBAL);
		if (!x)
			OOM();
		if (p->light) {
			x->u.global.module = str_copy(p, v->u.str.s, v->u.str.len);
			x->u.global.name = str_copy(p, w->u.str.s, w->u.str.len);
			if (!x->u.global.module || !x->u.global.name)
				OOM();
		} else {
			x->u.global.module = v->u.str.s;
			x->u.global.name = w->u.str.s;
		}
		CHECK(record_global(p, x->u.global.module, x->u.global.name, op, p->op_off, 0,
		                    err));
		PUSH(x);
		return MLSEC_OK;
	case 'i': { /* INST */
		const uint8_t *m;
		size_t mn;
		CHECK(line(p, &m, &mn, err));
		CHECK(line(p, &s, &n, err));
		if (!(x = global_val(p, m, mn, s, n)))
			OOM();
		CHECK(record_global(p, x->u.global.module, x->u.global.name, op, p->op_off, 0,
		                    err));
		CHECK(pop_mark(p, &start, err));
		v = seq_from(p, MLSEC_PV_TUPLE, start, p->sp);
		if (!v)
			OOM();
		p->sp = start;
		return call_val(p, MLSEC_PCALL_INST, x, v, NULL, err);
	}
	case 'o': /* OBJ */
		CHECK(pop_mark(p, &start, err));
		if (p->sp == start)
			UNDERFLOW();
		x = p->stack[start];
		v = seq_from(p, MLSEC_PV_TUPLE, start + 1, p->sp);
		if (!v)
			OOM();
		p->sp = start;
		return call_val(p, MLSEC_PCALL_OBJ, x, v, NULL, err);
	case 0x81: /* NEWOBJ */
		if (!(v = pop(p)) || !(x = pop(p)))
			UNDERFLOW();
		return call_val(p, MLSEC_PCALL_NEWOBJ, x, v, NULL, err);
	case 0x92: /* NEWOBJ_EX */
		if (!(w = pop(p)) || !(v = pop(p)) || !(x = pop(p)))
			UNDERFLOW();
		return call_val(p, MLSEC_PCALL_NEWOBJ_EX, x, v, w, err);
	case 'R': /* REDUCE */
		if (!(v = pop(p)) || !(x = pop(p)))
			UNDERFLOW();
		return call_val(p, MLSEC_PCALL_REDUCE, x, v, NULL, err);
	case 'b': /* BUILD: mutates the object in place, as __setstate__ does */
		if (!(w = pop(p)) || !(v = top(p)))
			UNDERFLOW();
		if (v->kind == MLSEC_PV_CALL) {
			v->u.call.state = w;
			v->u.call.nbuild++;
		} else if (v->kind == MLSEC_PV_GLOBAL) {
			if (add_note(p, MLSEC_PNOTE_BUILD_ON_GLOBAL, p->op_off, v) < 0)
				OOM();
		}
		return MLSEC_OK;
	case 'P': /* PERSID */
		CHECK(line(p, &s, &n, err));
		if (!(w = str_val(p, MLSEC_PV_STR, s, n)) || !(v = val_new(p, MLSEC_PV_PERSID)))
			OOM();
		v->u.persid.pid = w;
		PUSH(v);
		return MLSEC_OK;
	case 'Q': /* BINPERSID */
		if (!(w = pop(p)))
			UNDERFLOW();
		if (!(v = val_new(p, MLSEC_PV_PERSID)))
			OOM();
		v->u.persid.pid = w;
		PUSH(v);
		return MLSEC_OK;
	case 0x82: /* EXT1 */
	case 0x83: /* EXT2 */
	case 0x84: /* EXT4 */
		n = op == 0x82 ? 1 : op == 0x83 ? 2 : 4;
		TAKE(a, n);
		iv = (int64_t)le(a, (int)n);
		if (op == 0x84)
			iv = (int32_t)(uint32_t)iv;
		if (iv <= 0)
			FAIL(MLSEC_ERR_PARSE, "EXT specifies code <= 0");
		if (!(v = val_new(p, MLSEC_PV_EXT)))
			OOM();
		v->u.i = iv;
		if (add_note(p, MLSEC_PNOTE_EXTENSION, p->op_off, NULL) < 0)
			OOM();
		PUSH(v);
		return MLSEC_OK;
	case 0x97: /* NEXT_BUFFER */
		if (add_note(p, MLSEC_PNOTE_OOB_BUFFER, p->op_off, NULL) < 0)
			OOM();
		PUSH(val_new(p, MLSEC_PV_BUFFER));
		return MLSEC_OK;
	case 0x98: /* READONLY_BUFFER */
		if (!top(p))
			UNDERFLOW();
		return MLSEC_OK;
	default:
		FAIL(MLSEC_ERR_PARSE, "invalid load key, '\\x%02x'", op);
	}
}

/* Operand size of an opcode for the linear scan: -1 line, -2 two lines,
 * -3 unknown opcode; >= 0 fixed bytes; lengths are added separately. */
static int op_fixed(uint8_t op, int *lenw)
{
	*lenw = 0;
	switch (op) {
	case 0x80:
	case 'K':
	case 'h':
	case 'q':
	case 0x82:
		return 1;
	case 'M':
	case 0x83:
		return 2;
	case 'J':
	case 'j':
	case 'r':
	case 0x84:
		return 4;
	case 'G':
	case 0x95:
		return 8;
	case 'T':
	case 'X':
	case 'B':
	case 0x8b:
		*lenw = 4;
		return 0;
	case 'U':
	case 'C':
	case 0x8c:
	case 0x8a:
		*lenw = 1;
		return 0;
	case 0x8d:
	case 0x8e:
	case 0x96:
		*lenw = 8;
		return 0;
	case 'I':
	case 'L':
	case 'F':
	case 'S':
	case 'V':
	case 'g':
	case 'p':
	case 'P':
		return -1;
	case 'c':
	case 'i':
		return -2;
	case '(':
	case '.':
	case '0':
	case '1':
	case '2':
	case 'N':
	case 0x88:
	case 0x89:
	case ')':
	case 't':
	case 0x85:
	case 0x86:
	case 0x87:
	case ']':
	case '}':
	case 0x8f:
	case 'l':
	case 0x91:
	case 'd':
	case 'a':
	case 'e':
	case 0x90:
	case 's':
	case 'u':
	case 0x94:
	case 0x93:
	case 'o':
	case 0x81:
	case 0x92:
	case 'R':
	case 'b':
	case 'Q':
	case 0x97:
	case 0x98:
		return 0;
	default:
		return -3;
	}
}

static int ident(const uint8_t *s, size_t n)
{
	if (!n || n > RECOVER_STR_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	return !(s[0] >= '0' && s[0] <= '9');
}

/*
 * Linear scan for globals from buf[0..len), offsets reported relative to
 * base. Keeps the last two string operands so STACK_GLOBAL can be named.
 */
/*
 * input_mapped: drops the whole pages of the mapped input between the last
 * release and `upto` (exclusive), once MLSEC_PICKLE_RELEASE_STEP bytes have
 * been passed. Only file-backed read-only mappings are flagged, for which
 * MADV_DONTNEED only unmaps: the bytes read back unchanged.
 */
static void release_input(mlsec_pickle *p, const uint8_t *upto)
{
	if (!p->lim.input_mapped || !p->released || upto < p->released ||
	    (size_t)(upto - p->released) < MLSEC_PICKLE_RELEASE_STEP)
		return;
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t page = pg > 0 ? (uintptr_t)pg : 4096;
	uintptr_t a = ((uintptr_t)p->released + page - 1) & ~(page - 1);
	uintptr_t b = (uintptr_t)upto & ~(page - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
	p->released = upto;
}

static mlsec_err scan_linear(mlsec_pickle *p, const uint8_t *buf, size_t len, long long base,
                             mlsec_error *err)
{
	char last[2][RECOVER_STR_MAX + 1] = {"", ""};
	int have = 0;
	size_t i = 0;
	if (!p->released || p->released > buf)
		p->released = buf;
	while (i < len) {
		release_input(p, buf + i);
		uint8_t op = buf[i];
		int lenw;
		int fx = op_fixed(op, &lenw);
		size_t at = i++;
		if (fx == -3)
			continue;
		if (fx == -1 || fx == -2) {
			const uint8_t *l1 = buf + i;
			const uint8_t *nl = memchr(l1, '\n', len - i);
			if (!nl)
				break;
			size_t n1 = (size_t)(nl - l1);
			i += n1 + 1;
			if (fx == -2) {
				const uint8_t *l2 = buf + i;
				const uint8_t *nl2 = memchr(l2, '\n', len - i);
				if (!nl2)
					break;
				size_t n2 = (size_t)(nl2 - l2);
				i += n2 + 1;
				/* without stack semantics, only plausible names count:
				 * random bytes often contain 'c' */
				if (!ident(l1, n1) || !ident(l2, n2))
					continue;
				char *m = str_copy(p, l1, n1), *n = str_copy(p, l2, n2);
				if (!m || !n)
					OOM();
				CHECK(record_global(p, m, n, op, base + (long long)at, 1, err));
			} else if (op == 'S' || op == 'V') {
				size_t k = n1 < RECOVER_STR_MAX ? n1 : RECOVER_STR_MAX;
				const uint8_t *q = l1;
				if (op == 'S' && k >= 2) {
					q++;
					k -= 2;
				}
				memcpy(last[0], last[1], sizeof last[0]);
				memcpy(last[1], q, k);
				last[1][k] = 0;
				have++;
			}
			continue;
		}
		if (lenw) {
			if ((size_t)lenw > len - i)
				break;
			uint64_t l = le(buf + i, lenw);
			i += (size_t)lenw;
			if (l > len - i)
				break;
			if (op == 'T' || op == 'X' || op == 'U' || op == 0x8c || op == 0x8d) {
				size_t k = l < RECOVER_STR_MAX ? (size_t)l : RECOVER_STR_MAX;
				memcpy(last[0], last[1], sizeof last[0]);
				memcpy(last[1], buf + i, k);
				last[1][k] = 0;
				have++;
			}
			i += (size_t)l;
			continue;
		}
		if ((size_t)fx > len - i)
			break;
		i += (size_t)fx;
		if (op == 0x93) {
			const char *m = have >= 2 ? last[0] : "?";
			const char *n = have >= 1 ? last[1] : "?";
			char *mc = str_copy(p, m, strlen(m)), *nc = str_copy(p, n, strlen(n));
			if (!mc || !nc)
				OOM();
			CHECK(record_global(p, mc, nc, op, base + (long long)at, 1, err));
		}
	}
	return MLSEC_OK;
}

/* ---- scan-only collection -------------------------------------------- */

/*
 * A scan-only VM turns most values into shared placeholders, so almost
 * every value it builds (a string pushed, then dropped into a placeholder
 * dict) is garbage soon after. Without collection the arena would still
 * grow with the pickle. Every so often the values still reachable (stack,
 * kept memo entries, notes, global records, placeholders) are copied into
 * a fresh arena and the old one is freed: memory then follows what is
 * live, not what was read. Runs between opcodes only, when no C local
 * holds a value; full (non-scan-only) VMs never collect, their tree is
 * the result.
 */
#define GC_MIN (8u * 1024 * 1024) /* arena bytes before the first collection */

/* GC_MIN, or less under a small decoded budget (the fuzzer's), so that
 * collection is exercised by inputs of a few KiB too */
static size_t gc_min(const mlsec_pickle *p)
{
	size_t m = p->lim.max_decoded / 64;
	return m < GC_MIN ? m : GC_MIN;
}
#define GC_FWD UINT32_MAX /* mark of a value already copied */

typedef struct gc_ctx {
	mlsec_pickle *p;
	mlsec_pval **todo; /* copies whose children still point to the old arena */
	size_t n, cap;
	int failed;
} gc_ctx;

static const char *gc_str(gc_ctx *g, const char *s, size_t n)
{
	mlsec_pickle *p = g->p;
	/* a string borrowed from the input stays where it is */
	if (!s || ((const uint8_t *)s >= p->buf && (const uint8_t *)s < p->buf + p->len))
		return s;
	char *c = str_copy(p, s, n);
	if (!c)
		g->failed = 1;
	return c ? c : s;
}

static mlsec_pval *gc_fwd(gc_ctx *g, mlsec_pval *v)
{
	if (!v)
		return NULL;
	if (v->mark == GC_FWD)
		return (mlsec_pval *)(intptr_t)v->offset;
	size_t sz = val_size(v->kind);
	mlsec_pval *c = arena_alloc(g->p, sz);
	if (!c) {
		g->failed = 1;
		return v;
	}
	memcpy(c, v, sz);
	c->mark = 0;
	v->mark = GC_FWD;
	v->offset = (long long)(intptr_t)c;
	if (g->n == g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 1024;
		mlsec_pval **t = mlsec_reallocarray(g->todo, nc, sizeof(*t));
		if (!t) {
			g->failed = 1;
			return c;
		}
		g->todo = t;
		g->cap = nc;
	}
	g->todo[g->n++] = c;
	return c;
}

static void gc_children(gc_ctx *g, mlsec_pval *c)
{
	switch (c->kind) {
	case MLSEC_PV_BIGINT:
	case MLSEC_PV_STR:
	case MLSEC_PV_BYTES:
	case MLSEC_PV_BYTEARRAY:
		c->u.str.s = gc_str(g, c->u.str.s, c->u.str.len);
		break;
	case MLSEC_PV_TUPLE:
	case MLSEC_PV_LIST:
	case MLSEC_PV_DICT:
	case MLSEC_PV_SET:
	case MLSEC_PV_FROZENSET:
		if (c->u.seq.n) {
			mlsec_pval **it = arena_alloc(g->p, c->u.seq.n * sizeof(*it));
			if (!it) {
				g->failed = 1;
				break;
			}
			for (size_t i = 0; i < c->u.seq.n; i++)
				it[i] = gc_fwd(g, c->u.seq.items[i]);
			c->u.seq.items = it;
			c->u.seq.cap = c->u.seq.n;
		}
		break;
	case MLSEC_PV_GLOBAL:
		c->u.global.module = gc_str(g, c->u.global.module, strlen(c->u.global.module));
		c->u.global.name = gc_str(g, c->u.global.name, strlen(c->u.global.name));
		break;
	case MLSEC_PV_CALL:
		c->u.call.callable = gc_fwd(g, c->u.call.callable);
		c->u.call.args = gc_fwd(g, c->u.call.args);
		c->u.call.kwargs = gc_fwd(g, c->u.call.kwargs);
		c->u.call.state = gc_fwd(g, c->u.call.state);
		c->u.call.dictitems = gc_fwd(g, c->u.call.dictitems);
		c->u.call.listitems = gc_fwd(g, c->u.call.listitems);
		break;
	case MLSEC_PV_PERSID:
		c->u.persid.pid = gc_fwd(g, c->u.persid.pid);
		break;
	default:
		break;
	}
}

/*
 * Copies the live values into a new arena. Returns -1 when memory ran out
 * part-way: both arenas are then kept (some values lead to the new one)
 * and the run must stop with MLSEC_ERR_NOMEM, since copied values in the
 * old arena had their offset replaced by a forwarding pointer.
 */
static int gc_collect(mlsec_pickle *p)
{
	arena_block *old = p->blocks;
	size_t old_decoded = p->decoded;
	p->blocks = NULL;
	p->decoded = 0;
	gc_ctx g = {p, NULL, 0, 0, 0};
	/* roots are forwarded in place: a failure part-way cannot be undone,
	 * so it is detected before anything is freed and then reported as an
	 * allocation failure by the next arena use (decoded stays charged) */
	for (size_t i = 0; i < p->sp; i++)
		p->stack[i] = gc_fwd(&g, p->stack[i]);
	for (size_t i = 0; i < p->dense_cap; i++)
		p->dense[i] = gc_fwd(&g, p->dense[i]);
	for (size_t i = 0; i < p->memo_cap; i++)
		if (p->memo[i].used)
			p->memo[i].val = gc_fwd(&g, p->memo[i].val);
	for (size_t i = 0; i < p->nnotes; i++)
		p->notes[i].value = gc_fwd(&g, (mlsec_pval *)(uintptr_t)p->notes[i].value);
	for (int k = 0; k < MLSEC_PV__COUNT; k++)
		p->single[k] = gc_fwd(&g, p->single[k]);
	p->unknown = gc_fwd(&g, p->unknown);
	while (g.n && !g.failed)
		gc_children(&g, g.todo[--g.n]);
	for (size_t i = 0; i < p->nglobals && !g.failed; i++) {
		p->globals[i].module =
		        gc_str(&g, p->globals[i].module, strlen(p->globals[i].module));
		p->globals[i].name = gc_str(&g, p->globals[i].name, strlen(p->globals[i].name));
	}
	mlsec_free(g.todo);
	if (g.failed) {
		arena_block *b = p->blocks;
		while (b && b->next)
			b = b->next;
		if (b)
			b->next = old;
		else
			p->blocks = old;
		p->decoded += old_decoded;
		p->gc_at = SIZE_MAX;
		return -1;
	}
	for (arena_block *b = old, *n; b; b = n) {
		n = b->next;
		mlsec_free(b);
	}
	p->gcs++;
	/* collect again once as much garbage as half the live data (at least
	 * GC_MIN) has accumulated: amortised copying, peak ~2.5x live */
	size_t next = p->decoded / 2 > gc_min(p) ? p->decoded / 2 : gc_min(p);
	p->gc_at = p->decoded + next;
	return 0;
}

mlsec_err mlsec_pickle_run(mlsec_pickle *p, const uint8_t *buf, size_t len, mlsec_error *err)
{
	if (p->ran)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "pickle VM already ran");
	p->ran = 1;
	p->buf = buf;
	p->len = len;
	p->pos = 0;
	p->released = buf;
	p->gc_at = gc_min(p);
	int stop = 0;
	mlsec_err rc = MLSEC_OK;
	while (!stop) {
		if (p->ops >= p->lim.max_ops) {
			rc = mlsec_error_set(err, MLSEC_ERR_LIMIT, "more than %zu pickle opcodes",
			                     p->lim.max_ops);
			break;
		}
		p->ops++;
		if (!(p->ops & 1023)) {
			release_input(p, p->buf + p->pos);
			if (p->light && p->decoded >= p->gc_at && gc_collect(p) < 0) {
				p->op_off = (long long)p->pos;
				rc = mlsec_error_set(err, MLSEC_ERR_NOMEM,
				                     "out of memory collecting pickle values");
				break;
			}
		}
		if (p->pos >= p->len) {
			p->op_off = (long long)p->pos;
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
			                     "pickle data was truncated (no STOP)");
			break;
		}
		rc = step(p, &stop, err);
		if (rc != MLSEC_OK)
			break;
	}
	if (rc == MLSEC_OK) {
		p->consumed = p->pos;
		return MLSEC_OK;
	}
	if (err)
		err->offset = p->op_off;
	p->root = NULL;
	/* Keep looking: a payload may sit after a deliberate error. Start
	 * right after the failing opcode byte. */
	size_t from = (size_t)p->op_off + 1;
	if (rc != MLSEC_ERR_NOMEM && from < len) {
		mlsec_error e2;
		scan_linear(p, buf + from, len - from, (long long)from, &e2);
	}
	p->consumed = len;
	return rc;
}

mlsec_err mlsec_pickle_scan_linear(mlsec_pickle *p, const uint8_t *buf, size_t len, long long base,
                                   mlsec_error *err)
{
	return scan_linear(p, buf, len, base, err);
}
