/*
 * bigpickle.h - writes large protocol-4 pickles of small objects for the
 * scan-only memory tests, without Python: a list of dicts whose keys and
 * values are fresh memoized strings (the memo grows by 4 entries a row,
 * past MLSEC_PICKLE_SCAN_MEMO for large row counts), then a tail that
 * needs early memo entries after many collections:
 *   - memo 0/1 = "os"/"system" (written first), memo 5 = a REDUCE call of
 *     collections.OrderedDict built before the rows;
 *   - STACK_GLOBAL on BINGET 0, BINGET 1 (os.system) and REDUCE, popped;
 *   - the root: a tuple (BINGET 5, BINGET 0, LONG_BINGET <a row's entry
 *     past the kept memo>).
 * Output goes to a FILE (streamed through a 1 MiB buffer, so writing does
 * not raise the test's own resident memory) or to a growing buffer.
 */
#ifndef MLSEC_TEST_BIGPICKLE_H
#define MLSEC_TEST_BIGPICKLE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bigpickle {
	FILE *f;      /* NULL: keep everything in buf */
	uint8_t *buf; /* pending bytes (file) or the whole pickle */
	size_t len, cap;
	uint32_t memo; /* entries MEMOIZE has created */
	int failed;
} bigpickle;

static void bp_put(bigpickle *g, const void *d, size_t n)
{
	if (g->len + n > g->cap) {
		if (g->f && g->len) {
			g->failed |= fwrite(g->buf, 1, g->len, g->f) != g->len;
			g->len = 0;
		}
		if (g->len + n > g->cap) {
			size_t nc = g->cap ? g->cap : (1u << 20);
			while (nc < g->len + n)
				nc *= 2;
			uint8_t *b = realloc(g->buf, nc);
			if (!b) {
				g->failed = 1;
				return;
			}
			g->buf = b;
			g->cap = nc;
		}
	}
	memcpy(g->buf + g->len, d, n);
	g->len += n;
}

static void bp_op(bigpickle *g, uint8_t op)
{
	bp_put(g, &op, 1);
}

/* SHORT_BINUNICODE s, MEMOIZE */
static void bp_str(bigpickle *g, const char *s)
{
	uint8_t h[2] = {0x8c, (uint8_t)strlen(s)};
	bp_put(g, h, 2);
	bp_put(g, s, strlen(s));
	bp_op(g, 0x94);
	g->memo++;
}

static void bp_memoize(bigpickle *g)
{
	bp_op(g, 0x94);
	g->memo++;
}

static void bp_get(bigpickle *g, uint32_t i)
{
	uint8_t b[5] = {'j', (uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24)};
	bp_put(g, b, 5);
}

/* Writes the pickle with `rows` rows; returns 0, or -1 on an I/O error.
 * *late receives the memo index fetched at the end (a row's string). */
static int bp_write(bigpickle *g, size_t rows, uint32_t *late)
{
	uint8_t proto[2] = {0x80, 4};
	bp_put(g, proto, 2);
	bp_str(g, "os"); /* memo 0 */
	bp_op(g, '0');
	bp_str(g, "system"); /* memo 1 */
	bp_op(g, '0');
	bp_str(g, "collections"); /* memo 2 */
	bp_str(g, "OrderedDict"); /* memo 3 */
	bp_op(g, 0x93);
	bp_memoize(g); /* 4: the global */
	bp_op(g, ')');
	bp_op(g, 'R');
	bp_memoize(g); /* 5: the call */
	bp_op(g, '0');
	bp_op(g, ']');
	bp_memoize(g);
	bp_op(g, '(');
	*late = 0;
	for (size_t r = 0; r < rows; r++) {
		char v[32];
		bp_op(g, '}');
		bp_memoize(g);
		bp_op(g, '(');
		bp_str(g, "name");
		snprintf(v, sizeof v, "item-%zu", r);
		if (r == rows - 1)
			*late = g->memo; /* the next entry: this string */
		bp_str(g, v);
		bp_str(g, "id");
		uint8_t i[5] = {'J', (uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16),
		                (uint8_t)(r >> 24)};
		bp_put(g, i, 5);
		bp_op(g, 'u');
		if (r % 1000 == 999) {
			bp_op(g, 'e');
			bp_op(g, '(');
		}
	}
	bp_op(g, 'e');
	bp_op(g, '0'); /* drop the list */
	bp_get(g, 0);
	bp_get(g, 1);
	bp_op(g, 0x93);
	bp_op(g, ')');
	bp_op(g, 'R');
	bp_op(g, '0');
	bp_op(g, '(');
	bp_get(g, 5);
	bp_get(g, 0);
	bp_get(g, *late);
	bp_op(g, 't');
	bp_op(g, '.');
	if (g->f && g->len) {
		g->failed |= fwrite(g->buf, 1, g->len, g->f) != g->len;
		g->len = 0;
	}
	return g->failed ? -1 : 0;
}

#endif
