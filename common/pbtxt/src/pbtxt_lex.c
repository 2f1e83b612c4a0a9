/*
 * pbtxt_lex.c - the tokenizer of protobuf text format: comments, quoted
 * strings with every escape protobuf accepts, and numbers in the forms its
 * tokenizer accepts. Positions are 1-based lines and byte columns.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbtxt_int.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define PBTXT_SSE2 1

/* Bytes of v (16) that are in [lo, lo + n]: one unsigned range test. */
static inline __m128i in_range(__m128i v, char lo, char n)
{
	__m128i d = _mm_sub_epi8(v, _mm_set1_epi8(lo));
	return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(n)), d);
}

/* Bit i set when byte i of the 16 at s is whitespace (\t \n \v \f \r ' '). */
static inline unsigned space_mask(__m128i v)
{
	return (unsigned)_mm_movemask_epi8(
	        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), in_range(v, '\t', 4)));
}

/* Bit i set when byte i continues an identifier: [A-Za-z0-9_]. */
static inline unsigned ident_mask(__m128i v)
{
	__m128i alpha = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 25);
	__m128i digit = in_range(v, '0', 9);
	__m128i under = _mm_cmpeq_epi8(v, _mm_set1_epi8('_'));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(alpha, digit), under));
}
#endif

int pbtxt_fail_at(mlsec_pbtxt *p, mlsec_err code, long line, long col, size_t off, const char *fmt,
                  ...)
{
	if (p->code != MLSEC_OK)
		return -1; /* keep the first error: later ones are consequences */
	p->code = code;
	if (p->err) {
		char msg[400];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		mlsec_error_set_at(p->err, code, NULL, line, col, (long long)off, "%s", msg);
	}
	return -1;
}

#define FAIL_HERE(p, at, ...)                                                                      \
	pbtxt_fail_at((p), MLSEC_ERR_PARSE, (p)->line, (long)((at) - (p)->line_start) + 1, (at),   \
	              __VA_ARGS__)

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t utf8_put(unsigned char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Reads exactly n hex digits at p->pos; -1 (no error recorded) if absent. */
static long read_hex(mlsec_pbtxt *p, size_t at, int n)
{
	long v = 0;
	for (int i = 0; i < n; i++) {
		if (at + (size_t)i >= p->len)
			return -1;
		int h = hex_val((unsigned char)p->text[at + (size_t)i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* A quoted literal starting at p->pos; decodes escapes into the arena.
 * Out of line (as lex_number) so the token loop keeps few registers live. */
__attribute__((noinline)) static int lex_string(mlsec_pbtxt *p)
{
	const char *t = p->text;
	char q = t[p->pos];
	size_t start = p->pos;
	size_t i = p->pos + 1;
	/* Decoded bytes never outnumber raw ones; bound the scan first. */
	size_t end = i;
#if PBTXT_SSE2
	/* The common literal has no escape: find its end 16 bytes at a time
	 * and copy it whole. */
	while (end + 16 <= p->len) {
		__m128i v = _mm_loadu_si128((const __m128i *)(t + end));
		unsigned m = (unsigned)_mm_movemask_epi8(
		        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(q)),
		                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
		                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
		if (!m) {
			end += 16;
			continue;
		}
		end += (size_t)__builtin_ctz(m);
		if (t[end] != q)
			break; /* an escape or a newline: the general loop below */
		unsigned char *o = pbtxt_arena_alloc(&p->arena, end - i + 1);
		if (!o)
			return pbtxt_fail_at(
			        p, p->arena.over_limit ? MLSEC_ERR_LIMIT : MLSEC_ERR_NOMEM, p->line,
			        (long)(start - p->line_start) + 1, start, "out of parser memory");
		memcpy(o, t + i, end - i);
		o[end - i] = '\0';
		p->tok.kind = TOK_STRING;
		p->tok.s = (char *)o;
		p->tok.slen = end - i;
		p->pos = end + 1;
		return 0;
	}
#endif
	while (end < p->len && t[end] != q && t[end] != '\n') {
		if (t[end] == '\\' && end + 1 < p->len && t[end + 1] != '\n')
			end++;
		end++;
	}
	if (end >= p->len || t[end] != q)
		return FAIL_HERE(p, start,
		                 "unterminated string literal (strings cannot span lines)");
	unsigned char *o = pbtxt_arena_alloc(&p->arena, end - i + 1);
	if (!o)
		return pbtxt_fail_at(p, p->arena.over_limit ? MLSEC_ERR_LIMIT : MLSEC_ERR_NOMEM,
		                     p->line, (long)(start - p->line_start) + 1, start,
		                     "out of parser memory");
	size_t n = 0;
	while (i < end) {
		unsigned char c = (unsigned char)t[i];
		if (c != '\\') {
			o[n++] = c;
			i++;
			continue;
		}
		size_t esc = i;
		c = (unsigned char)t[++i];
		i++;
		switch (c) {
		case 'a':
			o[n++] = '\a';
			break;
		case 'b':
			o[n++] = '\b';
			break;
		case 'f':
			o[n++] = '\f';
			break;
		case 'n':
			o[n++] = '\n';
			break;
		case 'r':
			o[n++] = '\r';
			break;
		case 't':
			o[n++] = '\t';
			break;
		case 'v':
			o[n++] = '\v';
			break;
		case '\\':
		case '?':
		case '\'':
		case '"':
			o[n++] = c;
			break;
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7': {
			unsigned v = c - '0';
			for (int k = 0; k < 2 && i < end && t[i] >= '0' && t[i] <= '7'; k++)
				v = v * 8 + (unsigned)(t[i++] - '0');
			if (v > 0xFF)
				return FAIL_HERE(p, esc, "octal escape out of range");
			o[n++] = (unsigned char)v;
			break;
		}
		case 'x':
		case 'X': {
			int h = i < end ? hex_val((unsigned char)t[i]) : -1;
			if (h < 0)
				return FAIL_HERE(p, esc, "\\x escape needs a hex digit");
			unsigned v = (unsigned)h;
			i++;
			if (i < end && (h = hex_val((unsigned char)t[i])) >= 0) {
				v = v * 16 + (unsigned)h;
				i++;
			}
			o[n++] = (unsigned char)v;
			break;
		}
		case 'u':
		case 'U': {
			int digits = c == 'u' ? 4 : 8;
			long cp = i + (size_t)digits <= end ? read_hex(p, i, digits) : -1;
			if (cp < 0)
				return FAIL_HERE(p, esc, "\\%c escape needs %d hex digits", c,
				                 digits);
			i += (size_t)digits;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				/* A high surrogate must pair with a following \uDC00-\uDFFF. */
				long lo = (i + 6 <= end && t[i] == '\\' && t[i + 1] == 'u')
				                  ? read_hex(p, i + 2, 4)
				                  : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return FAIL_HERE(p, esc,
					                 "unpaired surrogate in unicode escape");
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			} else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp > 0x10FFFF) {
				return FAIL_HERE(p, esc, "invalid unicode code point in escape");
			}
			n += utf8_put(o + n, (uint32_t)cp);
			break;
		}
		default:
			return FAIL_HERE(p, esc, "invalid escape sequence '\\%c' in string", c);
		}
	}
	o[n] = '\0';
	p->tok.kind = TOK_STRING;
	p->tok.s = (char *)o;
	p->tok.slen = n;
	p->pos = end + 1;
	return 0;
}

/* Numbers as protobuf's tokenizer reads them; the value is decoded here
 * so the parser only checks ranges. */
__attribute__((noinline)) static int lex_number(mlsec_pbtxt *p)
{
	const char *t = p->text;
	size_t start = p->pos, i = p->pos;
	int is_float = 0;
	uint64_t u = 0;
	int overflow = 0;
	if (t[i] == '0' && i + 1 < p->len && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
		i += 2;
		size_t d0 = i;
		int h;
		while (i < p->len && (h = hex_val((unsigned char)t[i])) >= 0) {
			if (u > (UINT64_MAX >> 4))
				overflow = 1;
			u = (u << 4) | (uint64_t)h;
			i++;
		}
		if (i == d0)
			return FAIL_HERE(p, start, "\"0x\" must be followed by hex digits");
	} else if (t[i] == '0' && i + 1 < p->len && is_digit(t[i + 1])) {
		while (i < p->len && is_digit(t[i])) {
			if (t[i] > '7')
				return FAIL_HERE(p, start,
				                 "numbers starting with 0 are octal: digit '%c'",
				                 t[i]);
			if (u > (UINT64_MAX >> 3))
				overflow = 1;
			u = (u << 3) | (uint64_t)(t[i] - '0');
			i++;
		}
	} else {
		while (i < p->len && is_digit(t[i])) {
			uint64_t d = (uint64_t)(t[i] - '0');
			if (u > (UINT64_MAX - d) / 10)
				overflow = 1;
			u = u * 10 + d;
			i++;
		}
		if (i < p->len && t[i] == '.') {
			is_float = 1;
			i++;
			while (i < p->len && is_digit(t[i]))
				i++;
		}
		if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
			is_float = 1;
			i++;
			if (i < p->len && (t[i] == '+' || t[i] == '-'))
				i++;
			if (i >= p->len || !is_digit(t[i]))
				return FAIL_HERE(p, start, "exponent has no digits");
			while (i < p->len && is_digit(t[i]))
				i++;
		}
		if (i < p->len && (t[i] == 'f' || t[i] == 'F')) {
			is_float = 1;
			i++;
		}
	}
	if (i < p->len && (is_alpha(t[i]) || is_digit(t[i]) || t[i] == '.'))
		return FAIL_HERE(p, i, "need space between number and '%c'", t[i]);
	p->tok.len = i - start;
	p->tok.overflow = overflow && !is_float;
	p->pos = i;
	if (is_float || overflow) {
		/* strtod needs a terminated copy without the f suffix. */
		char buf[128];
		size_t n = p->tok.len;
		if (n && (t[start + n - 1] == 'f' || t[start + n - 1] == 'F'))
			n--;
		if (n >= sizeof buf)
			return FAIL_HERE(p, start, "number literal too long");
		memcpy(buf, t + start, n);
		buf[n] = '\0';
		p->tok.d = strtod(buf, NULL);
	}
	if (is_float) {
		p->tok.kind = TOK_FLOAT;
	} else {
		p->tok.kind = TOK_INT;
		p->tok.u = overflow ? UINT64_MAX : u;
		/* An integer too large for 64 bits is only usable as a float. */
		if (overflow)
			p->tok.kind = TOK_FLOAT;
		else
			p->tok.d = (double)u;
	}
	return 0;
}

/* Character classes for the token loop: one table load per byte instead
 * of a chain of comparisons (and no strchr for symbols). */
enum { C_OTHER = 0, C_SPACE, C_NL, C_HASH, C_ALPHA, C_DIGIT, C_QUOTE, C_SYM, C_DOT };
#define R4(x) x, x, x, x
#define R8(x) R4(x), R4(x)
#define R10(x) R8(x), x, x
static const unsigned char cclass[256] = {
        ['\t'] = C_SPACE,
        ['\v'] = C_SPACE,
        ['\f'] = C_SPACE,
        ['\r'] = C_SPACE,
        [' '] = C_SPACE,
        ['\n'] = C_NL,
        ['#'] = C_HASH,
        ['"'] = C_QUOTE,
        ['\''] = C_QUOTE,
        [':'] = C_SYM,
        ['{'] = C_SYM,
        ['}'] = C_SYM,
        ['<'] = C_SYM,
        ['>'] = C_SYM,
        ['['] = C_SYM,
        [']'] = C_SYM,
        [','] = C_SYM,
        [';'] = C_SYM,
        ['-'] = C_SYM,
        ['.'] = C_DOT,
        ['_'] = C_ALPHA,
        ['0'] = R10(C_DIGIT),
        ['a'] = R8(C_ALPHA),
        R8(C_ALPHA),
        R8(C_ALPHA),
        C_ALPHA,
        C_ALPHA,
        ['A'] = R8(C_ALPHA),
        R8(C_ALPHA),
        R8(C_ALPHA),
        C_ALPHA,
        C_ALPHA,
};
/* Bytes that continue an identifier: [A-Za-z0-9_]. */
static const unsigned char ident_cont[256] = {
        ['_'] = 1, ['0'] = R10(1), ['a'] = R8(1), R8(1), R8(1), 1,
        1,         ['A'] = R8(1),  R8(1),         R8(1), 1,     1,
};
#undef R4
#undef R8
#undef R10

int pbtxt_lex_next(mlsec_pbtxt *p)
{
	const char *t = p->text;
	/* Locals, written back once: stores through p would otherwise force
	 * reloads around every byte read (char accesses alias everything). */
	size_t pos = p->pos, len = p->len, line_start = p->line_start;
	long line = p->line;
#if PBTXT_SSE2
	/* Whitespace 16 bytes at a time, counting the newlines skipped; the
	 * last 15 bytes of the input go through the byte loop below. */
	while (pos + 16 <= len) {
		__m128i v = _mm_loadu_si128((const __m128i *)(t + pos));
		unsigned stop_mask = ~space_mask(v) & 0xFFFFu;
		unsigned stop = stop_mask ? (unsigned)__builtin_ctz(stop_mask) : 16;
		unsigned nl = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))) &
		              ((1u << stop) - 1);
		if (nl) {
			line_start = pos + (31 - (unsigned)__builtin_clz(nl)) + 1;
			for (; nl; nl &= nl - 1) /* mostly one bit: no popcnt call */
				line++;
		}
		pos += stop;
		if (stop == 16)
			continue;
		if (t[pos] != '#')
			break;
		/* A comment: on to its newline, which the next round counts. */
		const char *e = memchr(t + pos, '\n', len - pos);
		pos = e ? (size_t)(e - t) : len;
	}
#endif
	for (; pos < len; pos++) {
		unsigned char cl = cclass[(unsigned char)t[pos]];
		if (cl == C_SPACE)
			continue;
		if (cl == C_NL) {
			line++;
			line_start = pos + 1;
			continue;
		}
		if (cl != C_HASH)
			break;
		while (pos + 1 < len && t[pos + 1] != '\n')
			pos++;
	}
	p->line = line;
	p->line_start = line_start;
	pbtxt_tok *k = &p->tok;
	k->text = t + pos;
	k->off = pos;
	k->line = line;
	k->col = (long)(pos - line_start) + 1;
	k->len = 0;
	if (pos >= len) {
		p->pos = pos;
		k->kind = TOK_EOF;
		return 0;
	}
	unsigned char c = (unsigned char)t[pos];
	unsigned char cl = cclass[c];
	if (cl == C_ALPHA) {
		size_t i = pos + 1;
#if PBTXT_SSE2
		while (i + 16 <= len) {
			unsigned stop =
			        ~ident_mask(_mm_loadu_si128((const __m128i *)(t + i))) & 0xFFFFu;
			if (stop) {
				i += (size_t)__builtin_ctz(stop);
				goto ident_done;
			}
			i += 16;
		}
#endif
		while (i < len && ident_cont[(unsigned char)t[i]])
			i++;
#if PBTXT_SSE2
	ident_done:
#endif
		k->kind = TOK_IDENT;
		k->len = i - pos;
		p->pos = i;
		return 0;
	}
	if (cl == C_SYM) {
		k->kind = TOK_SYMBOL;
		k->c = c;
		k->len = 1;
		p->pos = pos + 1;
		return 0;
	}
	p->pos = pos;
	if (cl == C_DIGIT || (c == '.' && pos + 1 < len && is_digit(t[pos + 1])))
		return lex_number(p);
	if (cl == C_QUOTE) {
		if (lex_string(p) < 0)
			return -1;
		k->len = p->pos - pos;
		return 0;
	}
	if (c >= 0x20 && c < 0x7F)
		return FAIL_HERE(p, pos, "unexpected character '%c'", c);
	return FAIL_HERE(p, pos, "unexpected byte 0x%02x", c);
}
