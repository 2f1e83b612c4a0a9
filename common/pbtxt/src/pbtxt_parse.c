/*
 * pbtxt_parse.c - the schema-driven half of the text-format parser: walks
 * protobuf-c descriptors to decide what each field name means, checks every
 * value against its declared type, and writes the generated C structs
 * directly (all memory from the parser's arena).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mlsec/alloc.h"
#include "pbtxt_int.h"

#define NAME_MAX_LEN 128 /* longer identifiers cannot name a field or enum value */

typedef struct scalar {
	union {
		int64_t i;
		uint64_t u;
		double d;
		int b;
	};
	char *s;
	size_t slen;
} scalar;

static int next(mlsec_pbtxt *p)
{
	return pbtxt_lex_next(p);
}

static int is_sym(const mlsec_pbtxt *p, int c)
{
	return p->tok.kind == TOK_SYMBOL && p->tok.c == c;
}

/* A short printable description of the current token for messages. */
static const char *tok_desc(const mlsec_pbtxt *p, char *buf, size_t n)
{
	const pbtxt_tok *k = &p->tok;
	switch (k->kind) {
	case TOK_EOF:
		return "end of input";
	case TOK_STRING:
		return "a string";
	default:
		snprintf(buf, n, "'%.*s'", (int)(k->len > 40 ? 40 : k->len), k->text);
		return buf;
	}
}

#define FAIL(p, ...)                                                                               \
	pbtxt_fail_at((p), MLSEC_ERR_PARSE, (p)->tok.line, (p)->tok.col, (p)->tok.off, __VA_ARGS__)

static int fail_mem(mlsec_pbtxt *p)
{
	if (p->arena.over_limit)
		return pbtxt_fail_at(p, MLSEC_ERR_LIMIT, p->tok.line, p->tok.col, p->tok.off,
		                     "parser memory limit (%zu bytes) exceeded", p->lim.max_memory);
	return pbtxt_fail_at(p, MLSEC_ERR_NOMEM, p->tok.line, p->tok.col, p->tok.off,
	                     "out of memory");
}

static int count_value(mlsec_pbtxt *p)
{
	if (++p->nvalues > p->lim.max_values)
		return pbtxt_fail_at(p, MLSEC_ERR_LIMIT, p->tok.line, p->tok.col, p->tok.off,
		                     "more than %zu values", p->lim.max_values);
	return 0;
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/*
 * Doubles an arena array when its length reaches a power of two, so arrays
 * need no separate capacity field (the generated structs have none).
 */
static void *grow_array(mlsec_pbtxt *p, void *arr, size_t n, size_t esize)
{
	if (n != 0 && (n & (n - 1)) != 0)
		return arr;
	size_t cap = n ? n * 2 : 1;
	void *na = pbtxt_arena_calloc(&p->arena, cap, esize);
	if (!na)
		return NULL;
	if (n)
		memcpy(na, arr, n * esize);
	return na;
}

static int record_pos(mlsec_pbtxt *p, const void *msg, const ProtobufCFieldDescriptor *fd,
                      size_t index, long line, long col)
{
	pbtxt_pos *v = grow_array(p, p->posv, p->npos, sizeof *v);
	if (!v)
		return fail_mem(p);
	p->posv = v;
	v[p->npos++] = (pbtxt_pos){msg, fd, (uint32_t)index, (uint32_t)line, (uint32_t)col};
	return 0;
}

/* Enforces "at most one member of a oneof" and marks fd as the set one. */
static int claim_oneof(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                       const ProtobufCFieldDescriptor *fd)
{
	long line = p->fline, col = p->fcol;
	size_t off = p->foff;
	if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
		return 0;
	uint32_t *cs = (uint32_t *)((char *)msg + fd->quantifier_offset);
	if (*cs != 0 && *cs != fd->id) {
		const ProtobufCFieldDescriptor *other =
		        protobuf_c_message_descriptor_get_field(desc, *cs);
		return pbtxt_fail_at(p, MLSEC_ERR_PARSE, line, col, off,
		                     "field \"%s\" is set along with \"%s\", another member of the "
		                     "same oneof in %s",
		                     fd->name, other ? other->name : "?", desc->name);
	}
	*cs = fd->id;
	return 0;
}

/*
 * Returns where the next value of fd goes: a new array slot for repeated
 * fields (recording its index), else the field itself.
 */
static void *value_slot(mlsec_pbtxt *p, void *msg, const ProtobufCFieldDescriptor *fd,
                        size_t *index)
{
	*index = 0;
	if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
		if (fd->label == PROTOBUF_C_LABEL_OPTIONAL &&
		    !(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE)
			*(protobuf_c_boolean *)((char *)msg + fd->quantifier_offset) = 1;
		return (char *)msg + fd->offset;
	}
	size_t *n = (size_t *)((char *)msg + fd->quantifier_offset);
	void **arr = (void **)((char *)msg + fd->offset);
	size_t es = elem_size(fd->type);
	void *na = grow_array(p, *arr, *n, es);
	if (!na) {
		fail_mem(p);
		return NULL;
	}
	*arr = na;
	*index = *n;
	return (char *)na + (*n)++ * es;
}

static int parse_fields(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                        unsigned depth, int close);

/* One message value ({...} or <...>) for fd; current token is the opener. */
static int parse_message_value(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                               const ProtobufCFieldDescriptor *fd, unsigned depth, long line,
                               long col, size_t off)
{
	if (!is_sym(p, '{') && !is_sym(p, '<')) {
		char b[64];
		return FAIL(p, "expected '{' or '<' to open message field \"%s\", got %s", fd->name,
		            tok_desc(p, b, sizeof b));
	}
	if (depth + 1 > p->lim.max_depth)
		return pbtxt_fail_at(p, MLSEC_ERR_LIMIT, p->tok.line, p->tok.col, p->tok.off,
		                     "messages nested deeper than %u", p->lim.max_depth);
	int close = is_sym(p, '{') ? '}' : '>';
	if (count_value(p) < 0 || claim_oneof(p, desc, msg, fd) < 0)
		return -1;
	const ProtobufCMessageDescriptor *sd = fd->descriptor;
	ProtobufCMessage *sub = NULL;
	size_t index = 0;
	ProtobufCMessage **slot = value_slot(p, msg, fd, &index);
	if (!slot)
		return -1;
	if (fd->label != PROTOBUF_C_LABEL_REPEATED && *slot)
		sub = *slot; /* a singular message given twice merges */
	if (!sub) {
		sub = pbtxt_arena_alloc(&p->arena, sd->sizeof_message);
		if (!sub)
			return fail_mem(p);
		sd->message_init(sub);
		*slot = sub;
	}
	if (record_pos(p, msg, fd, index, line, col) < 0 || next(p) < 0)
		return -1;
	return parse_fields(p, sd, sub, depth + 1, close);
}

static int ident_is(const pbtxt_tok *k, const char *s)
{
	return k->kind == TOK_IDENT && k->len == strlen(s) && !memcmp(k->text, s, k->len);
}

static int ident_is_ci(const pbtxt_tok *k, const char *s)
{
	return k->kind == TOK_IDENT && k->len == strlen(s) && !strncasecmp(k->text, s, k->len);
}

/* Concatenates adjacent string literals (amortised linear copying). */
static int parse_string(mlsec_pbtxt *p, const ProtobufCFieldDescriptor *fd, scalar *v)
{
	if (p->tok.kind != TOK_STRING) {
		char b[64];
		return FAIL(p, "expected a string for field \"%s\", got %s", fd->name,
		            tok_desc(p, b, sizeof b));
	}
	char *s = p->tok.s;
	size_t n = p->tok.slen, cap = n + 1;
	if (next(p) < 0)
		return -1;
	while (p->tok.kind == TOK_STRING) {
		if (n + p->tok.slen + 1 > cap) {
			size_t ncap = (n + p->tok.slen + 1) * 2;
			char *ns = pbtxt_arena_alloc(&p->arena, ncap);
			if (!ns)
				return fail_mem(p);
			memcpy(ns, s, n);
			s = ns;
			cap = ncap;
		}
		memcpy(s + n, p->tok.s, p->tok.slen);
		n += p->tok.slen;
		s[n] = '\0';
		if (next(p) < 0)
			return -1;
	}
	v->s = s;
	v->slen = n;
	return 0;
}

/* The cache slot for (owner, name). */
static pbtxt_ncache *name_slot(mlsec_pbtxt *p, const void *owner, const char *s, size_t n)
{
	/* A cheap key (length, first, middle and last bytes, owner): a
	 * collision only costs a miss, since the hit is verified. */
	uint32_t h = (uint32_t)n * 0x9E3779B1u ^ (uint32_t)(unsigned char)s[0] << 5 ^
	             (uint32_t)(unsigned char)s[n / 2] << 11 ^
	             (uint32_t)(unsigned char)s[n - 1] << 17 ^ (uint32_t)((uintptr_t)owner >> 4);
	return &p->ncache[(h * 2654435761u) >> 23 & (PBTXT_NAME_CACHE - 1)];
}

/* The cached value for (owner, s[0..n)), or NULL. avail: bytes readable at
 * s (16 or more lets the compare load two words instead of calling
 * memcmp). */
static const void *name_cached(const pbtxt_ncache *c, const void *owner, const char *s, size_t n,
                               size_t avail)
{
	if (c->owner != owner || c->len != n)
		return NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (n <= 16 && avail >= 16) {
		uint64_t w0, w1;
		memcpy(&w0, s, 8);
		memcpy(&w1, s + 8, 8);
		uint64_t m0 = n >= 8 ? ~0ull : (1ull << (8 * n)) - 1;
		uint64_t m1 = n >= 16 ? ~0ull : n <= 8 ? 0 : (1ull << (8 * (n - 8))) - 1;
		return (w0 & m0) == c->k0 && (w1 & m1) == c->k1 ? c->value : NULL;
	}
#else
	(void)avail;
#endif
	return memcmp(c->name, s, n) == 0 ? c->value : NULL;
}

static void name_remember(pbtxt_ncache *c, const void *owner, const void *value, const char *name,
                          size_t n)
{
	char k[16] = {0};
	memcpy(k, name, n < 16 ? n : 16);
	c->owner = owner;
	c->value = value;
	c->name = name;
	memcpy(&c->k0, k, 8);
	memcpy(&c->k1, k + 8, 8);
	c->len = (uint32_t)n; /* the names matched, so strlen(name) == n */
}

/* protobuf-c's own lookups by NUL-terminated name, for the cache misses;
 * *name gets the descriptor-owned name the cache keeps. */
typedef const void *(*name_resolver)(const void *owner, const char *s, const char **name);

static const void *resolve_field(const void *owner, const char *s, const char **name)
{
	const ProtobufCFieldDescriptor *fd =
	        protobuf_c_message_descriptor_get_field_by_name(owner, s);
	*name = fd ? fd->name : NULL;
	return fd;
}

static const void *resolve_enum(const void *owner, const char *s, const char **name)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(owner, s);
	*name = ev ? ev->name : NULL;
	return ev;
}

/* s[0..n) under owner, through the parser's name cache. NULL if unknown. */
static const void *lookup_name(mlsec_pbtxt *p, const void *owner, const char *s, size_t n,
                               size_t avail, name_resolver resolve)
{
	if (n >= NAME_MAX_LEN || n == 0)
		return NULL;
	pbtxt_ncache *c = name_slot(p, owner, s, n);
	const void *v = name_cached(c, owner, s, n, avail);
	if (v)
		return v;
	char buf[NAME_MAX_LEN];
	memcpy(buf, s, n);
	buf[n] = '\0';
	const char *name;
	v = resolve(owner, buf, &name);
	if (v)
		name_remember(c, owner, v, name, n);
	return v;
}

static const ProtobufCFieldDescriptor *lookup_field(mlsec_pbtxt *p,
                                                    const ProtobufCMessageDescriptor *desc,
                                                    const char *s, size_t n, size_t avail)
{
	return lookup_name(p, desc, s, n, avail, resolve_field);
}

static const ProtobufCEnumValue *lookup_enum(mlsec_pbtxt *p, const ProtobufCEnumDescriptor *ed,
                                             const char *s, size_t n, size_t avail)
{
	return lookup_name(p, ed, s, n, avail, resolve_enum);
}

/* Reads one scalar value of fd's type into v; leaves the token after it. */
static int parse_scalar(mlsec_pbtxt *p, const ProtobufCFieldDescriptor *fd, scalar *v)
{
	char b[64];
	ProtobufCType t = fd->type;
	if (t == PROTOBUF_C_TYPE_STRING || t == PROTOBUF_C_TYPE_BYTES)
		return parse_string(p, fd, v);
	int neg = 0;
	if (is_sym(p, '-')) {
		if (t == PROTOBUF_C_TYPE_BOOL || t == PROTOBUF_C_TYPE_UINT32 ||
		    t == PROTOBUF_C_TYPE_UINT64 || t == PROTOBUF_C_TYPE_FIXED32 ||
		    t == PROTOBUF_C_TYPE_FIXED64)
			return FAIL(p, "negative value for unsigned field \"%s\"", fd->name);
		neg = 1;
		if (next(p) < 0)
			return -1;
	}
	pbtxt_tok *k = &p->tok;
	switch (t) {
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		if (k->kind == TOK_INT || k->kind == TOK_FLOAT)
			v->d = k->d;
		else if (ident_is_ci(k, "inf") || ident_is_ci(k, "infinity"))
			v->d = INFINITY;
		else if (ident_is_ci(k, "nan"))
			v->d = NAN;
		else
			return FAIL(p, "expected a number for field \"%s\", got %s", fd->name,
			            tok_desc(p, b, sizeof b));
		if (neg)
			v->d = -v->d;
		return next(p);
	case PROTOBUF_C_TYPE_BOOL:
		if (ident_is(k, "true") || ident_is(k, "True") || ident_is(k, "t"))
			v->b = 1;
		else if (ident_is(k, "false") || ident_is(k, "False") || ident_is(k, "f"))
			v->b = 0;
		else if (k->kind == TOK_INT && k->u <= 1)
			v->b = (int)k->u;
		else
			return FAIL(p, "expected true or false for field \"%s\", got %s", fd->name,
			            tok_desc(p, b, sizeof b));
		return next(p);
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = fd->descriptor;
		const ProtobufCEnumValue *ev = NULL;
		if (k->kind == TOK_IDENT && !neg) {
			ev = lookup_enum(p, ed, k->text, k->len, p->len - k->off);
			if (!ev)
				return FAIL(p, "unknown value %s for enum field \"%s\" (%s)",
				            tok_desc(p, b, sizeof b), fd->name, ed->name);
		} else if (k->kind == TOK_INT) {
			if (k->u > (neg ? 2147483648u : 2147483647u))
				return FAIL(p, "enum number out of range for field \"%s\"",
				            fd->name);
			int val = neg ? (int)(-(int64_t)k->u) : (int)k->u;
			ev = protobuf_c_enum_descriptor_get_value(ed, val);
			if (!ev)
				return FAIL(p, "%s%s is not a value of enum %s (field \"%s\")",
				            neg ? "-" : "", tok_desc(p, b, sizeof b), ed->name,
				            fd->name);
		} else {
			return FAIL(p, "expected an enum name or number for field \"%s\", got %s",
			            fd->name, tok_desc(p, b, sizeof b));
		}
		v->i = ev->value;
		return next(p);
	}
	default:
		break;
	}
	/* Integers. */
	if (k->kind != TOK_INT) {
		if (k->kind == TOK_FLOAT && k->overflow)
			return FAIL(p, "integer %s out of range for field \"%s\"",
			            tok_desc(p, b, sizeof b), fd->name);
		return FAIL(p, "expected an integer for field \"%s\", got %s", fd->name,
		            tok_desc(p, b, sizeof b));
	}
	uint64_t max;
	int is_signed = 1;
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		max = neg ? 2147483648u : 2147483647u;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		max = UINT32_MAX;
		is_signed = 0;
		break;
	default:
		max = UINT64_MAX;
		is_signed = 0;
		break;
	}
	if (k->u > max)
		return FAIL(p, "integer %s%s out of range for field \"%s\"", neg ? "-" : "",
		            tok_desc(p, b, sizeof b), fd->name);
	if (is_signed)
		v->i = neg ? (int64_t)(0 - k->u) : (int64_t)k->u;
	else
		v->u = k->u;
	return next(p);
}

static int store_scalar(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                        const ProtobufCFieldDescriptor *fd, const scalar *v, long line, long col,
                        size_t off)
{
	if (fd->type == PROTOBUF_C_TYPE_STRING && memchr(v->s, '\0', v->slen))
		return pbtxt_fail_at(p, MLSEC_ERR_PARSE, line, col, off,
		                     "string field \"%s\" contains a NUL byte", fd->name);
	if (count_value(p) < 0 || claim_oneof(p, desc, msg, fd) < 0)
		return -1;
	size_t index;
	void *slot = value_slot(p, msg, fd, &index);
	if (!slot)
		return -1;
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		*(int32_t *)slot = (int32_t)v->i;
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)slot = (uint32_t)v->u;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		*(int64_t *)slot = v->i;
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)slot = v->u;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)slot = (float)v->d;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)slot = v->d;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)slot = v->b;
		break;
	case PROTOBUF_C_TYPE_STRING:
		*(char **)slot = v->s;
		break;
	case PROTOBUF_C_TYPE_BYTES:
		((ProtobufCBinaryData *)slot)->data = (uint8_t *)v->s;
		((ProtobufCBinaryData *)slot)->len = v->slen;
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		return FAIL(p, "internal: message stored as scalar");
	}
	return record_pos(p, msg, fd, index, line, col);
}

static int parse_value(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                       const ProtobufCFieldDescriptor *fd, unsigned depth)
{
	long line = p->tok.line, col = p->tok.col;
	size_t off = p->tok.off;
	if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return parse_message_value(p, desc, msg, fd, depth, line, col, off);
	scalar v = {0};
	if (parse_scalar(p, fd, &v) < 0)
		return -1;
	return store_scalar(p, desc, msg, fd, &v, line, col, off);
}

/* `[ v, v, ... ]` on a repeated field; current token is '['. */
static int parse_list(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                      const ProtobufCFieldDescriptor *fd, unsigned depth)
{
	if (fd->label != PROTOBUF_C_LABEL_REPEATED)
		return FAIL(p, "list syntax '[...]' on non-repeated field \"%s\"", fd->name);
	if (next(p) < 0)
		return -1;
	if (is_sym(p, ']'))
		return next(p);
	for (;;) {
		if (parse_value(p, desc, msg, fd, depth) < 0)
			return -1;
		if (is_sym(p, ']'))
			return next(p);
		if (!is_sym(p, ',')) {
			char b[64];
			return FAIL(p, "expected ',' or ']' in list for field \"%s\", got %s",
			            fd->name, tok_desc(p, b, sizeof b));
		}
		if (next(p) < 0)
			return -1;
	}
}

static int parse_field(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                       unsigned depth)
{
	char b[64];
	pbtxt_tok *k = &p->tok;
	if (is_sym(p, '['))
		return FAIL(p, "extension and Any field names ('[...]') are not supported in %s",
		            desc->name);
	if (k->kind != TOK_IDENT)
		return FAIL(p, "expected a field name in %s, got %s", desc->name,
		            tok_desc(p, b, sizeof b));
	const ProtobufCFieldDescriptor *fd =
	        lookup_field(p, desc, k->text, k->len, p->len - k->off);
	if (!fd)
		return FAIL(p, "unknown field %s in %s", tok_desc(p, b, sizeof b), desc->name);
	p->fline = k->line;
	p->fcol = k->col;
	p->foff = k->off;
	if (next(p) < 0)
		return -1;
	if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
		if (is_sym(p, ':') && next(p) < 0)
			return -1;
	} else {
		if (!is_sym(p, ':'))
			return FAIL(p, "expected ':' after scalar field \"%s\", got %s", fd->name,
			            tok_desc(p, b, sizeof b));
		if (next(p) < 0)
			return -1;
	}
	int rc = is_sym(p, '[') ? parse_list(p, desc, msg, fd, depth)
	                        : parse_value(p, desc, msg, fd, depth);
	if (rc < 0)
		return -1;
	if (is_sym(p, ',') || is_sym(p, ';'))
		return next(p);
	return 0;
}

/* Fields until `close` ('}' or '>'), or end of input when close is 0. */
static int parse_fields(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc, void *msg,
                        unsigned depth, int close)
{
	for (;;) {
		if (p->tok.kind == TOK_EOF) {
			if (!close)
				return 0;
			return FAIL(p, "unexpected end of input: missing '%c' to close %s", close,
			            desc->name);
		}
		if (close && is_sym(p, close))
			return next(p);
		if (is_sym(p, '}') || is_sym(p, '>')) {
			if (close)
				return FAIL(p, "mismatched '%c': expected '%c'", p->tok.c, close);
			return FAIL(p, "unexpected '%c' at top level", p->tok.c);
		}
		if (parse_field(p, desc, msg, depth) < 0)
			return -1;
	}
}

mlsec_pbtxt *mlsec_pbtxt_new(const mlsec_pbtxt_limits *limits)
{
	mlsec_pbtxt *p = mlsec_calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->lim.max_input = MLSEC_PBTXT_MAX_INPUT;
	p->lim.max_depth = MLSEC_PBTXT_MAX_DEPTH;
	p->lim.max_values = MLSEC_PBTXT_MAX_VALUES;
	p->lim.max_memory = MLSEC_PBTXT_MAX_MEMORY;
	if (limits) {
		if (limits->max_input)
			p->lim.max_input = limits->max_input;
		if (limits->max_depth)
			p->lim.max_depth = limits->max_depth;
		if (limits->max_values)
			p->lim.max_values = limits->max_values;
		if (limits->max_memory)
			p->lim.max_memory = limits->max_memory;
	}
	pbtxt_arena_init(&p->arena, p->lim.max_memory);
	return p;
}

void mlsec_pbtxt_free(mlsec_pbtxt *p)
{
	if (!p)
		return;
	pbtxt_arena_destroy(&p->arena);
	mlsec_free(p);
}

void mlsec_pbtxt_reset(mlsec_pbtxt *p)
{
	pbtxt_arena_reset(&p->arena);
	p->posv = NULL;
	p->npos = 0;
	p->nvalues = 0;
	p->code = MLSEC_OK;
	p->err = NULL;
}

mlsec_err mlsec_pbtxt_parse(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc,
                            const char *text, size_t len, ProtobufCMessage **out, mlsec_error *err)
{
	*out = NULL;
	mlsec_pbtxt_reset(p);
	p->err = err;
	if (len > p->lim.max_input) {
		pbtxt_fail_at(p, MLSEC_ERR_LIMIT, 0, 0, -1, "input of %zu bytes exceeds %zu", len,
		              p->lim.max_input);
		return p->code;
	}
	p->text = text;
	p->len = len;
	p->pos = 0;
	p->line = 1;
	p->line_start = 0;
	ProtobufCMessage *root = pbtxt_arena_alloc(&p->arena, desc->sizeof_message);
	if (!root) {
		p->tok.line = 1;
		p->tok.col = 1;
		fail_mem(p);
		return p->code;
	}
	desc->message_init(root);
	if (next(p) < 0 || parse_fields(p, desc, root, 0, 0) < 0) {
		if (p->code == MLSEC_OK) /* cannot happen: every failure records */
			p->code = MLSEC_ERR_INTERNAL;
		return p->code;
	}
	*out = root;
	return MLSEC_OK;
}

int mlsec_pbtxt_locate(const mlsec_pbtxt *p, const void *msg, const char *field, size_t index,
                       long *line, long *column)
{
	if (!msg)
		return 0;
	const ProtobufCMessageDescriptor *desc = ((const ProtobufCMessage *)msg)->descriptor;
	/* Read the name cache, never fill it: p stays const and readers on
	 * several threads do not race. */
	size_t n = strlen(field);
	const ProtobufCFieldDescriptor *fd =
	        n && n < NAME_MAX_LEN ? name_cached(name_slot((mlsec_pbtxt *)p, desc, field, n),
	                                            desc, field, n, 0)
	                              : NULL;
	if (!fd)
		fd = protobuf_c_message_descriptor_get_field_by_name(desc, field);
	if (!fd)
		return 0;
	for (size_t i = p->npos; i-- > 0;) {
		const pbtxt_pos *r = &p->posv[i];
		if (r->msg == msg && r->fd == fd && r->index == index) {
			if (line)
				*line = r->line;
			if (column)
				*column = r->col;
			return 1;
		}
	}
	return 0;
}

size_t mlsec_pbtxt_memory_used(const mlsec_pbtxt *p)
{
	return p->arena.used;
}
