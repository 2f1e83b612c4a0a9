/*
 * zip.c - bounded zip reader (see mlsec/zip.h). Decompression uses zlib.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mlsec/alloc.h"
#include "mlsec/zip.h"

#define EOCD_SIZE 22u
#define EOCD_SEARCH (65535u + EOCD_SIZE)
#define CDH_SIZE 46u
#define LFH_SIZE 30u
#define INFLATE_CHUNK (256u * 1024)

struct mlsec_zip {
	const mlsec_src *src;
	mlsec_zip_entry *e;
	size_t n;
	uint64_t prefix, trailing;
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

void mlsec_zip_free(mlsec_zip *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++)
		mlsec_free((void *)z->e[i].name);
	mlsec_free(z->e);
	mlsec_free(z);
}

size_t mlsec_zip_count(const mlsec_zip *z)
{
	return z->n;
}
mlsec_zip_entry *mlsec_zip_entry_at(mlsec_zip *z, size_t i)
{
	return i < z->n ? &z->e[i] : NULL;
}
uint64_t mlsec_zip_prefix_len(const mlsec_zip *z)
{
	return z->prefix;
}
uint64_t mlsec_zip_trailing_len(const mlsec_zip *z)
{
	return z->trailing;
}

long mlsec_zip_find(const mlsec_zip *z, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < z->n; i++)
		if (z->e[i].name_len == l && !memcmp(z->e[i].name, name, l))
			return (long)i;
	return -1;
}

static unsigned name_problems(const uint8_t *s, size_t n)
{
	unsigned p = 0;
	if (n && (s[0] == '/' || s[0] == '\\'))
		p |= MLSEC_ZIP_P_ABSOLUTE;
	if (n >= 2 && s[1] == ':' && ((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
		p |= MLSEC_ZIP_P_ABSOLUTE;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] < 0x20)
			p |= MLSEC_ZIP_P_BAD_NAME;
		if (i < n && s[i] == '\\')
			p |= MLSEC_ZIP_P_BAD_NAME;
		if (i == n || s[i] == '/' || s[i] == '\\') {
			if (i - start == 2 && s[start] == '.' && s[start + 1] == '.')
				p |= MLSEC_ZIP_P_TRAVERSAL;
			start = i + 1;
		}
	}
	if (n == 0)
		p |= MLSEC_ZIP_P_BAD_NAME;
	return p;
}

static int cmp_name(const void *a, const void *b, void *ctx)
{
	const mlsec_zip_entry *e = ctx;
	const mlsec_zip_entry *x = &e[*(const size_t *)a], *y = &e[*(const size_t *)b];
	size_t l = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, l);
	if (c)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* qsort with context, portable: a file-static pointer is enough here
 * because a zip is opened by one thread at a time per call. */
static _Thread_local const mlsec_zip_entry *sort_entries;
static int cmp_name_tl(const void *a, const void *b)
{
	return cmp_name(a, b, (void *)sort_entries);
}
static _Thread_local const mlsec_zip_entry *sort_entries_off;
static int cmp_off_tl(const void *a, const void *b)
{
	uint64_t x = sort_entries_off[*(const size_t *)a].data_offset;
	uint64_t y = sort_entries_off[*(const size_t *)b].data_offset;
	return (x > y) - (x < y);
}

static void mark_dups_and_overlaps(mlsec_zip *z)
{
	size_t *idx = mlsec_calloc(z->n ? z->n : 1, sizeof(*idx));
	if (!idx)
		return; /* checks skipped under memory pressure; entries stay usable */
	for (size_t i = 0; i < z->n; i++)
		idx[i] = i;
	sort_entries = z->e;
	qsort(idx, z->n, sizeof(*idx), cmp_name_tl);
	for (size_t i = 1; i < z->n; i++)
		if (!cmp_name(&idx[i - 1], &idx[i], z->e)) {
			z->e[idx[i - 1]].problems |= MLSEC_ZIP_P_DUPLICATE;
			z->e[idx[i]].problems |= MLSEC_ZIP_P_DUPLICATE;
		}
	sort_entries_off = z->e;
	qsort(idx, z->n, sizeof(*idx), cmp_off_tl);
	uint64_t end = 0;
	size_t last = (size_t)-1;
	for (size_t i = 0; i < z->n; i++) {
		mlsec_zip_entry *e = &z->e[idx[i]];
		if (!e->data_offset)
			continue;
		if (last != (size_t)-1 && e->local_offset < end) {
			e->problems |= MLSEC_ZIP_P_OVERLAP;
			z->e[last].problems |= MLSEC_ZIP_P_OVERLAP;
		}
		if (e->data_offset + e->csize > end) {
			end = e->data_offset + e->csize;
			last = idx[i];
		}
	}
	mlsec_free(idx);
}

static mlsec_err check_local(mlsec_zip *z, mlsec_zip_entry *e, uint64_t cd_start, mlsec_error *err)
{
	uint8_t h[LFH_SIZE];
	if (e->local_offset > cd_start || cd_start - e->local_offset < LFH_SIZE ||
	    mlsec_src_read(z->src, e->local_offset, h, LFH_SIZE, NULL) != MLSEC_OK ||
	    rd32(h) != 0x04034b50) {
		e->problems |= MLSEC_ZIP_P_BAD_LOCAL;
		return MLSEC_OK;
	}
	uint16_t nlen = rd16(h + 26), xlen = rd16(h + 28);
	uint64_t data = e->local_offset + LFH_SIZE + nlen + xlen;
	if (data > cd_start || e->csize > cd_start - data) {
		e->problems |= MLSEC_ZIP_P_BAD_LOCAL;
		return MLSEC_OK;
	}
	e->data_offset = data;
	if (rd16(h + 8) != e->method)
		e->problems |= MLSEC_ZIP_P_LOCAL_MISMATCH;
	if (nlen != e->name_len) {
		e->problems |= MLSEC_ZIP_P_LOCAL_MISMATCH;
	} else if (nlen) {
		char *ln = mlsec_malloc(nlen);
		if (!ln)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		if (mlsec_src_read(z->src, e->local_offset + LFH_SIZE, ln, nlen, NULL) !=
		            MLSEC_OK ||
		    memcmp(ln, e->name, nlen))
			e->problems |= MLSEC_ZIP_P_LOCAL_MISMATCH;
		mlsec_free(ln);
	}
	/* bit 3: sizes/CRC live in a data descriptor; local fields are 0 */
	if (!(rd16(h + 6) & 0x08)) {
		uint32_t lcrc = rd32(h + 14), lc = rd32(h + 18), lu = rd32(h + 22);
		if (lcrc != e->crc || (lc != 0xffffffffu && lc != e->csize) ||
		    (lu != 0xffffffffu && lu != e->usize))
			e->problems |= MLSEC_ZIP_P_LOCAL_MISMATCH;
	}
	return MLSEC_OK;
}

mlsec_err mlsec_zip_open(const mlsec_src *src, mlsec_zip **out, mlsec_error *err)
{
	*out = NULL;
	uint64_t size = src->size;
	if (size < EOCD_SIZE)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "too small for a zip archive");
	size_t tail = size < EOCD_SEARCH ? (size_t)size : EOCD_SEARCH;
	uint8_t *t = mlsec_malloc(tail);
	if (!t)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc = mlsec_src_read(src, size - tail, t, tail, err);
	if (rc != MLSEC_OK) {
		mlsec_free(t);
		return rc;
	}
	long at = -1;
	for (long i = (long)tail - (long)EOCD_SIZE; i >= 0; i--)
		if (t[i] == 'P' && rd32(t + i) == 0x06054b50) {
			at = i;
			break;
		}
	if (at < 0) {
		mlsec_free(t);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "no end-of-central-directory record");
	}
	uint64_t eocd = size - tail + (uint64_t)at;
	uint64_t nent = rd16(t + at + 10), cdsize = rd32(t + at + 12), cdoff = rd32(t + at + 16);
	uint16_t clen = rd16(t + at + 20);
	uint64_t trailing = size - eocd - EOCD_SIZE;
	trailing = trailing > clen ? trailing - clen : 0;
	int z64 = nent == 0xffff || cdsize == 0xffffffffu || cdoff == 0xffffffffu;
	mlsec_free(t);
	uint64_t cd_end = eocd;
	if (eocd >= 20) {
		uint8_t loc[20];
		if (mlsec_src_read(src, eocd - 20, loc, 20, NULL) == MLSEC_OK &&
		    rd32(loc) == 0x07064b50) {
			uint64_t z64off = rd64(loc + 8);
			uint8_t r[56];
			if (z64off < eocd && mlsec_src_read(src, z64off, r, 56, NULL) == MLSEC_OK &&
			    rd32(r) == 0x06064b50) {
				nent = rd64(r + 32);
				cdsize = rd64(r + 40);
				cdoff = rd64(r + 48);
				cd_end = z64off;
				z64 = 0;
			}
		}
	}
	if (z64)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "zip64 archive without a valid zip64 record");
	if (nent > MLSEC_ZIP_MAX_ENTRIES)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "%llu zip entries (limit %u)",
		                       (unsigned long long)nent, MLSEC_ZIP_MAX_ENTRIES);
	if (cdsize > MLSEC_ZIP_MAX_CD)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "central directory of %llu bytes",
		                       (unsigned long long)cdsize);
	if (cdsize > cd_end)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "central directory larger than the file");
	/* Data prepended to the archive shifts every offset (self-extractors,
	 * polyglots): the directory really starts cdsize bytes before its end. */
	uint64_t real_cd = cd_end - cdsize;
	uint64_t prefix = real_cd > cdoff ? real_cd - cdoff : 0;
	if (real_cd < cdoff)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "central directory offset past its end");

	uint8_t *cd = mlsec_malloc(cdsize ? (size_t)cdsize : 1);
	mlsec_zip *z = mlsec_calloc(1, sizeof(*z));
	if (!cd || !z) {
		mlsec_free(cd);
		mlsec_free(z);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	z->src = src;
	z->prefix = prefix;
	z->trailing = trailing;
	rc = mlsec_src_read(src, real_cd, cd, (size_t)cdsize, err);
	if (rc == MLSEC_OK && nent) {
		z->e = mlsec_calloc((size_t)nent, sizeof(*z->e));
		if (!z->e)
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	size_t p = 0;
	for (uint64_t k = 0; rc == MLSEC_OK && k < nent; k++) {
		if (cdsize - p < CDH_SIZE || rd32(cd + p) != 0x02014b50) {
			rc = mlsec_error_set_at(
			        err, MLSEC_ERR_PARSE, NULL, 0, 0, (long long)(real_cd + p),
			        "central directory entry %llu is corrupt", (unsigned long long)k);
			break;
		}
		const uint8_t *h = cd + p;
		size_t nlen = rd16(h + 28), xlen = rd16(h + 30), cmlen = rd16(h + 32);
		if (cdsize - p - CDH_SIZE < nlen + xlen + cmlen) {
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
			                     "central directory entry %llu overruns",
			                     (unsigned long long)k);
			break;
		}
		mlsec_zip_entry *e = &z->e[z->n];
		e->flags = rd16(h + 8);
		e->method = rd16(h + 10);
		e->crc = rd32(h + 16);
		e->csize = rd32(h + 20);
		e->usize = rd32(h + 24);
		e->local_offset = rd32(h + 42);
		uint16_t disk = rd16(h + 34);
		const uint8_t *x = h + CDH_SIZE + nlen, *xe = x + xlen;
		while (xe - x >= 4) {
			uint16_t id = rd16(x), sz = rd16(x + 2);
			if ((size_t)(xe - x - 4) < sz)
				break;
			if (id == 1) {
				const uint8_t *f = x + 4, *fe = x + 4 + sz;
				if (e->usize == 0xffffffffu && fe - f >= 8) {
					e->usize = rd64(f);
					f += 8;
				}
				if (e->csize == 0xffffffffu && fe - f >= 8) {
					e->csize = rd64(f);
					f += 8;
				}
				if (e->local_offset == 0xffffffffu && fe - f >= 8) {
					e->local_offset = rd64(f);
					f += 8;
				}
				if (disk == 0xffff && fe - f >= 4)
					disk = 0;
			}
			x += 4 + sz;
		}
		char *nm = mlsec_malloc(nlen + 1);
		if (!nm) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			break;
		}
		memcpy(nm, h + CDH_SIZE, nlen);
		nm[nlen] = 0;
		e->name = nm;
		e->name_len = nlen;
		z->n++;
		e->local_offset += prefix;
		e->problems |= name_problems(h + CDH_SIZE, nlen);
		if (nlen > MLSEC_ZIP_MAX_NAME)
			e->problems |= MLSEC_ZIP_P_BAD_NAME;
		if (e->flags & 0x01)
			e->problems |= MLSEC_ZIP_P_ENCRYPTED;
		/* bits other than encryption(0), deflate options(1,2), data
		 * descriptor(3) and UTF-8 names(11) are unusual for ML tools */
		if (e->flags & ~(0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0800))
			e->problems |= MLSEC_ZIP_P_FLAGS;
		if (e->method != 0 && e->method != 8)
			e->problems |= MLSEC_ZIP_P_METHOD;
		if (e->method == 0 && e->csize != e->usize)
			e->problems |= MLSEC_ZIP_P_SIZE;
		rc = check_local(z, e, real_cd, err);
		p += CDH_SIZE + nlen + xlen + cmlen;
	}
	mlsec_free(cd);
	if (rc != MLSEC_OK) {
		mlsec_zip_free(z);
		return rc;
	}
	mark_dups_and_overlaps(z);
	*out = z;
	return MLSEC_OK;
}

typedef struct crc_ctx {
	mlsec_sink sink;
	void *ctx;
	uint32_t crc;
	int stopped;
} crc_ctx;

/* Pieces small enough to stay in L2 between the CRC and the sink, so the
 * data crosses the memory bus once. */
#define CRC_PIECE MLSEC_ZIP_CRC_PIECE

static int crc_sink(void *c, const uint8_t *d, size_t n, uint64_t pos)
{
	crc_ctx *k = c;
	for (size_t o = 0; o < n; o += CRC_PIECE) {
		size_t m = n - o < CRC_PIECE ? n - o : CRC_PIECE;
		k->crc = mlsec_crc32(k->crc, d + o, m);
		int r = k->sink ? k->sink(k->ctx, d + o, m, pos + o) : 0;
		if (r) {
			k->stopped = r;
			return r;
		}
	}
	return 0;
}

typedef struct inflate_ctx {
	z_stream zs;
	crc_ctx *out;
	uint8_t *buf;
	uint64_t produced, limit;
	int done, bad, over;
} inflate_ctx;

static int inflate_sink(void *c, const uint8_t *d, size_t n, uint64_t pos)
{
	inflate_ctx *k = c;
	(void)pos;
	k->zs.next_in = (Bytef *)d;
	k->zs.avail_in = (uInt)n;
	while (!k->done && (k->zs.avail_in || k->zs.avail_out == 0)) {
		k->zs.next_out = k->buf;
		k->zs.avail_out = INFLATE_CHUNK;
		int r = inflate(&k->zs, Z_NO_FLUSH);
		if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
			k->bad = 1;
			return 1;
		}
		size_t got = INFLATE_CHUNK - k->zs.avail_out;
		if (got > k->limit - k->produced) {
			k->over = 1;
			return 1;
		}
		if (got && crc_sink(k->out, k->buf, got, k->produced))
			return 1;
		k->produced += got;
		if (r == Z_STREAM_END)
			k->done = 1;
		if (r == Z_BUF_ERROR || (got == 0 && k->zs.avail_in == 0))
			break;
	}
	return 0;
}

mlsec_err mlsec_zip_member_stream(mlsec_zip *z, size_t i, mlsec_sink sink, void *ctx, int *crc_ok,
                                  mlsec_error *err)
{
	int dummy;
	if (!crc_ok)
		crc_ok = &dummy;
	*crc_ok = -1;
	mlsec_zip_entry *e = mlsec_zip_entry_at(z, i);
	if (!e)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no zip entry %zu", i);
	if (!e->data_offset)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "zip entry '%s' has no valid local header", e->name);
	if (e->problems & MLSEC_ZIP_P_ENCRYPTED)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "zip entry '%s' is encrypted",
		                       e->name);
	crc_ctx cc = {sink, ctx, 0, 0};
	mlsec_err rc;
	if (e->method == 0) {
		/* PyTorch reads csize bytes for stored entries; so do we */
		rc = mlsec_src_stream(z->src, e->data_offset, e->csize, crc_sink, &cc, NULL, err);
		if (rc != MLSEC_OK)
			return rc;
	} else if (e->method == 8) {
		inflate_ctx ic;
		memset(&ic, 0, sizeof ic);
		ic.out = &cc;
		uint64_t cap = e->csize * (uint64_t)MLSEC_ZIP_MAX_INFLATE_RATIO + 1024;
		ic.limit = e->usize < cap ? e->usize : cap;
		ic.buf = mlsec_malloc(INFLATE_CHUNK);
		if (!ic.buf || inflateInit2(&ic.zs, -MAX_WBITS) != Z_OK) {
			mlsec_free(ic.buf);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
		rc = mlsec_src_stream(z->src, e->data_offset, e->csize, inflate_sink, &ic, NULL,
		                      err);
		inflateEnd(&ic.zs);
		mlsec_free(ic.buf);
		if (rc != MLSEC_OK)
			return rc;
		if (ic.over) {
			e->problems |= MLSEC_ZIP_P_SIZE;
			return mlsec_error_set(err, MLSEC_ERR_LIMIT,
			                       "zip entry '%s' inflates past its declared size",
			                       e->name);
		}
		if (ic.bad || (!cc.stopped && (!ic.done || ic.produced != e->usize)))
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "zip entry '%s': corrupt deflate data", e->name);
	} else {
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "zip entry '%s' uses compression method %u", e->name,
		                       e->method);
	}
	if (cc.stopped)
		return MLSEC_OK;
	*crc_ok = cc.crc == e->crc;
	if (!*crc_ok)
		e->problems |= MLSEC_ZIP_P_CRC;
	return MLSEC_OK;
}

typedef struct read_ctx {
	uint8_t *buf;
	size_t len, cap, max;
	int over, oom;
} read_ctx;

static int read_sink(void *c, const uint8_t *d, size_t n, uint64_t pos)
{
	read_ctx *k = c;
	(void)pos;
	if (n > k->max - k->len) {
		k->over = 1;
		return 1;
	}
	if (k->len + n > k->cap) {
		size_t nc = k->cap ? k->cap : 4096;
		while (nc < k->len + n)
			nc *= 2;
		if (nc > k->max)
			nc = k->max;
		uint8_t *b = mlsec_realloc(k->buf, nc);
		if (!b) {
			k->oom = 1;
			return 1;
		}
		k->buf = b;
		k->cap = nc;
	}
	memcpy(k->buf + k->len, d, n);
	k->len += n;
	return 0;
}

mlsec_err mlsec_zip_member_read(mlsec_zip *z, size_t i, size_t max, uint8_t **out, size_t *len,
                                int *crc_ok, mlsec_error *err)
{
	*out = NULL;
	*len = 0;
	mlsec_zip_entry *e = mlsec_zip_entry_at(z, i);
	if (!e)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no zip entry %zu", i);
	if (e->usize > max || (e->method == 0 && e->csize > max))
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "zip entry '%s' is %llu bytes (limit %zu)", e->name,
		                       (unsigned long long)e->usize, max);
	read_ctx rc = {NULL, 0, 0, max, 0, 0};
	mlsec_err r = mlsec_zip_member_stream(z, i, read_sink, &rc, crc_ok, err);
	if (r == MLSEC_OK && (rc.over || rc.oom))
		r = mlsec_error_set(err, rc.oom ? MLSEC_ERR_NOMEM : MLSEC_ERR_LIMIT,
		                    "zip entry '%s' too large to read", e->name);
	if (r != MLSEC_OK) {
		mlsec_free(rc.buf);
		return r;
	}
	if (!rc.buf)
		rc.buf = mlsec_malloc(1);
	if (!rc.buf)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	*out = rc.buf;
	*len = rc.len;
	return MLSEC_OK;
}
