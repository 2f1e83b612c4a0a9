/*
 * gradlog.c - the gradient-log record parser (one JSON object per line,
 * datagram or Kafka message).
 *
 * Why not just jansson: monitor must read >= 500k records/s and jansson
 * builds a tree per line. Records are flat objects, so a single pass over
 * the bytes handles the common shape (keys without escapes, scalar values)
 * and anything else (escaped keys or strings, nested unknown values) is
 * handed to jansson, which also rejects duplicate keys. Both paths apply
 * the same field checks in check_fields().
 */
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/poison.h"

#define NUM_MAX_CHARS 64 /* longer numbers are rejected: no record needs them */

enum { K_RANK, K_STEP, K_L2, K_LINF, K_MEAN, K_STD, K_PCOUNT, K__COUNT };
static const char *const key_names[K__COUNT] = {
        "rank", "step", "global_l2", "global_linf", "mean", "std", "parameter_count",
};

typedef struct fields {
	double v[K__COUNT];
	unsigned seen; /* bit per key */
} fields;

static const size_t key_lens[K__COUNT] = {4, 4, 9, 11, 4, 3, 15};

static int key_index(const char *k, size_t n)
{
	for (int i = 0; i < K__COUNT; i++)
		if (key_lens[i] == n && k[0] == key_names[i][0] && !memcmp(key_names[i], k, n))
			return i;
	return -1;
}

#if LDBL_MANT_DIG == 64
/* 10^0..10^27 are exact in an x87 long double (5^27 < 2^64). */
static const long double pow10l_tab[] = {
        1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
        1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
        1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};
#endif

/*
 * strtod is a third of monitor's time on 17-digit numbers. Fast path: up to
 * 19 significant digits m and a decimal exponent |e| <= 27 give m * 10^e
 * with one rounding in 64-bit-mantissa extended precision; unless that
 * result sits next to a double rounding midpoint (its 11 extra bits near
 * 0x400), rounding it to double is the correctly rounded value, i.e. what
 * strtod returns. Everything else goes to strtod. s is a valid JSON number.
 */
static double parse_double(const char *s, size_t n)
{
#if LDBL_MANT_DIG == 64
	const char *p = s, *end = s + n;
	int neg = *p == '-';
	p += neg;
	uint64_t m = 0;
	int digits = 0, e = 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (m || *p != '0') {
			if (++digits > 19)
				goto slow;
			m = m * 10 + (uint64_t)(*p - '0');
		}
	}
	if (p < end && *p == '.') {
		for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
			if (m || *p != '0') {
				if (++digits > 19)
					goto slow;
				m = m * 10 + (uint64_t)(*p - '0');
			}
			e--;
		}
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		int eneg = *p == '-';
		if (*p == '-' || *p == '+')
			p++;
		int x = 0;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (x > 10000)
				goto slow;
			x = x * 10 + (*p - '0');
		}
		e += eneg ? -x : x;
	}
	if (m == 0)
		return neg ? -0.0 : 0.0;
	if (e < -27 || e > 27)
		goto slow;
	long double x = (long double)m;
	x = e >= 0 ? x * pow10l_tab[e] : x / pow10l_tab[-e];
	uint64_t bits;
	memcpy(&bits, &x, sizeof bits); /* the explicit 64-bit mantissa */
	unsigned low = (unsigned)(bits & 0x7ff);
	if (low >= 0x3ff && low <= 0x401)
		goto slow;
	return neg ? -(double)x : (double)x;
slow :
#endif
{
	char buf[NUM_MAX_CHARS + 1];
	memcpy(buf, s, n);
	buf[n] = '\0';
	return strtod(buf, NULL);
}
}

static mlsec_err fail(mlsec_error *err, size_t col, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static mlsec_err fail(mlsec_error *err, size_t col, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	mlsec_error_set(err, MLSEC_ERR_PARSE, "%s", buf);
	if (err && col)
		err->column = (long)col;
	return MLSEC_ERR_PARSE;
}

static mlsec_err set_field(fields *f, int k, double v, size_t col, mlsec_error *err)
{
	if (f->seen & (1u << k))
		return fail(err, col, "duplicate key \"%s\"", key_names[k]);
	if (!isfinite(v))
		return fail(err, col, "key \"%s\" is not a finite number", key_names[k]);
	f->v[k] = v;
	f->seen |= 1u << k;
	return MLSEC_OK;
}

static mlsec_err check_int(const fields *f, int k, double lo, double hi, int64_t *out,
                           mlsec_error *err)
{
	double v = f->v[k];
	if (v != floor(v))
		return fail(err, 0, "key \"%s\" must be an integer", key_names[k]);
	if (v < lo || v > hi)
		return fail(err, 0, "key \"%s\" is out of range", key_names[k]);
	*out = (int64_t)v;
	return MLSEC_OK;
}

static mlsec_err check_fields(const fields *f, mlsec_poison_record *out, mlsec_error *err)
{
	for (int k = 0; k < K__COUNT; k++)
		if (!(f->seen & (1u << k)))
			return fail(err, 0, "missing required key \"%s\"", key_names[k]);
	mlsec_err rc;
	if ((rc = check_int(f, K_RANK, 0, MLSEC_POISON_MAX_RANK, &out->rank, err)) ||
	    (rc = check_int(f, K_STEP, 0, (double)MLSEC_POISON_MAX_STEP, &out->step, err)) ||
	    (rc = check_int(f, K_PCOUNT, 0, 9007199254740992.0, &out->parameter_count, err)))
		return rc;
	static const int nonneg[] = {K_L2, K_LINF, K_STD};
	for (size_t i = 0; i < sizeof nonneg / sizeof nonneg[0]; i++)
		if (f->v[nonneg[i]] < 0)
			return fail(err, 0, "key \"%s\" must be >= 0", key_names[nonneg[i]]);
	out->global_l2 = f->v[K_L2];
	out->global_linf = f->v[K_LINF];
	out->mean = f->v[K_MEAN];
	out->std = f->v[K_STD];
	return MLSEC_OK;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Strict JSON number at p; returns its length, 0 if none. */
static size_t scan_number(const char *p, const char *end)
{
	const char *s = p;
	if (s < end && *s == '-')
		s++;
	if (s >= end)
		return 0;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	else
		return 0;
	if (s < end && *s == '.') {
		s++;
		if (s >= end || *s < '0' || *s > '9')
			return 0;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		if (s >= end || *s < '0' || *s > '9')
			return 0;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	}
	return (size_t)(s - p);
}

enum { FAST_OK, FAST_FALLBACK, FAST_ERROR };

/* The single-pass parser for flat objects. FAST_FALLBACK when the input
 * needs the general parser (escapes, nested values). */
static int parse_fast(const char *text, size_t len, fields *f, mlsec_error *err)
{
	const char *p = text, *end = text + len;
#define COL() ((size_t)(p - text) + 1)
	while (p < end && is_ws(*p))
		p++;
	if (p >= end || *p != '{') {
		fail(err, COL(), "%s", "expected a JSON object");
		return FAST_ERROR;
	}
	p++;
	int first = 1;
	for (;;) {
		while (p < end && is_ws(*p))
			p++;
		if (p < end && *p == '}' && first) {
			p++;
			break;
		}
		if (p >= end || *p != '"') {
			fail(err, COL(), "%s", "expected a key string");
			return FAST_ERROR;
		}
		const char *k = ++p;
		while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			p++;
		if (p >= end) {
			fail(err, COL(), "%s", "unterminated key");
			return FAST_ERROR;
		}
		if (*p != '"')
			return FAST_FALLBACK; /* escapes or control bytes: let jansson judge */
		int ki = key_index(k, (size_t)(p - k));
		p++;
		while (p < end && is_ws(*p))
			p++;
		if (p >= end || *p != ':') {
			fail(err, COL(), "%s", "expected ':'");
			return FAST_ERROR;
		}
		p++;
		while (p < end && is_ws(*p))
			p++;
		if (p >= end) {
			fail(err, COL(), "%s", "expected a value");
			return FAST_ERROR;
		}
		size_t col = COL();
		size_t n;
		if ((n = scan_number(p, end)) > 0) {
			if (ki >= 0) {
				if (n > NUM_MAX_CHARS) {
					fail(err, col, "number too long for key \"%s\"",
					     key_names[ki]);
					return FAST_ERROR;
				}
				if (set_field(f, ki, parse_double(p, n), col, err))
					return FAST_ERROR;
			}
			p += n;
		} else if (*p == '"') {
			p++;
			while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
				p++;
			if (p >= end) {
				fail(err, COL(), "%s", "unterminated string");
				return FAST_ERROR;
			}
			if (*p != '"')
				return FAST_FALLBACK;
			p++;
			if (ki >= 0) {
				fail(err, col, "key \"%s\" must be a number", key_names[ki]);
				return FAST_ERROR;
			}
		} else if (*p == '{' || *p == '[') {
			if (ki >= 0) {
				fail(err, col, "key \"%s\" must be a number", key_names[ki]);
				return FAST_ERROR;
			}
			return FAST_FALLBACK;
		} else {
			static const char *const lits[] = {"true", "false", "null"};
			size_t i;
			for (i = 0; i < 3; i++) {
				size_t l = strlen(lits[i]);
				if ((size_t)(end - p) >= l && !memcmp(p, lits[i], l)) {
					p += l;
					break;
				}
			}
			if (i == 3) {
				fail(err, col, "%s", "invalid value");
				return FAST_ERROR;
			}
			if (ki >= 0) {
				fail(err, col, "key \"%s\" must be a number", key_names[ki]);
				return FAST_ERROR;
			}
		}
		first = 0;
		while (p < end && is_ws(*p))
			p++;
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}') {
			p++;
			break;
		}
		fail(err, COL(), "%s", "expected ',' or '}'");
		return FAST_ERROR;
	}
	while (p < end && is_ws(*p))
		p++;
	if (p != end) {
		fail(err, COL(), "%s", "trailing data after the object");
		return FAST_ERROR;
	}
#undef COL
	return FAST_OK;
}

static mlsec_err parse_jansson(const char *text, size_t len, fields *f, mlsec_error *err)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root)
		return fail(err, je.column > 0 ? (size_t)je.column : 0, "invalid JSON: %s",
		            je.text);
	mlsec_err rc = MLSEC_OK;
	if (!json_is_object(root)) {
		rc = fail(err, 0, "%s", "expected a JSON object");
		goto out;
	}
	for (int k = 0; k < K__COUNT; k++) {
		json_t *v = json_object_get(root, key_names[k]);
		if (!v)
			continue;
		if (!json_is_number(v)) {
			rc = fail(err, 0, "key \"%s\" must be a number", key_names[k]);
			goto out;
		}
		if ((rc = set_field(f, k, json_number_value(v), 0, err)))
			goto out;
	}
out:
	json_decref(root);
	return rc;
}

mlsec_err mlsec_poison_record_parse(const char *text, size_t len, mlsec_poison_record *out,
                                    mlsec_error *err)
{
	if (len > MLSEC_POISON_MAX_RECORD)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "record larger than %d bytes",
		                       MLSEC_POISON_MAX_RECORD);
	fields f;
	memset(&f, 0, sizeof f);
	int r = parse_fast(text, len, &f, err);
	if (r == FAST_ERROR)
		return MLSEC_ERR_PARSE;
	if (r == FAST_FALLBACK) {
		memset(&f, 0, sizeof f);
		mlsec_err rc = parse_jansson(text, len, &f, err);
		if (rc)
			return rc;
	}
	return check_fields(&f, out, err);
}

int mlsec_poison_record_format(const mlsec_poison_record *r, char *buf, size_t size)
{
	/* %.17g round-trips doubles; the key order is the original emitter's. */
	return snprintf(buf, size,
	                "{\"rank\": %lld, \"step\": %lld, \"global_l2\": %.17g, "
	                "\"global_linf\": %.17g, \"mean\": %.17g, \"std\": %.17g, "
	                "\"parameter_count\": %lld}",
	                (long long)r->rank, (long long)r->step, r->global_l2, r->global_linf,
	                r->mean, r->std, (long long)r->parameter_count);
}
