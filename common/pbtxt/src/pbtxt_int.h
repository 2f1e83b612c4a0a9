/*
 * pbtxt_int.h - internals shared by the pbtxt lexer and parser.
 */
#ifndef MLSEC_PBTXT_INT_H
#define MLSEC_PBTXT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/pbtxt.h"
#include "pbtxt_arena.h"

typedef enum pbtxt_tok_kind {
	TOK_EOF = 0,
	TOK_IDENT,  /* [A-Za-z_][A-Za-z0-9_]* */
	TOK_INT,    /* decimal, 0x hex or 0 octal; magnitude in tok.u */
	TOK_FLOAT,  /* anything with . e E or an f suffix; value in tok.d */
	TOK_STRING, /* one quoted literal, decoded into tok.s / tok.slen */
	TOK_SYMBOL  /* one of : { } < > [ ] , ; - ; the char in tok.c */
} pbtxt_tok_kind;

typedef struct pbtxt_tok {
	pbtxt_tok_kind kind;
	const char *text; /* raw token start in the input */
	size_t len;       /* raw token length */
	long line, col;   /* 1-based */
	size_t off;
	uint64_t u; /* TOK_INT */
	double d;   /* TOK_FLOAT */
	char *s;    /* TOK_STRING: decoded bytes (arena), NUL-terminated */
	size_t slen;
	int c;        /* TOK_SYMBOL */
	int overflow; /* TOK_FLOAT made from an integer too big for 64 bits */
} pbtxt_tok;

/* Where a field value was set: for locate(). */
typedef struct pbtxt_pos {
	const void *msg;
	const ProtobufCFieldDescriptor *fd;
	uint32_t index;
	uint32_t line, col;
} pbtxt_pos;

/* A direct-mapped cache of name lookups: (message descriptor, field name)
 * -> field and (enum descriptor, value name) -> enum value, so the common
 * case skips protobuf-c's binary search of strcmp's. Names of up to 16
 * bytes are also kept as two zero-padded words, compared without a call. */
#define PBTXT_NAME_CACHE 512
typedef struct pbtxt_ncache {
	const void *owner; /* the descriptor */
	const void *value; /* field or enum value descriptor */
	const char *name;  /* its name (owned by the descriptor) */
	uint64_t k0, k1;   /* name bytes 0-15, zero-padded */
	uint32_t len;      /* strlen(name) */
} pbtxt_ncache;

struct mlsec_pbtxt {
	pbtxt_ncache ncache[PBTXT_NAME_CACHE];
	mlsec_pbtxt_limits lim;
	pbtxt_arena arena;
	/* lexer state */
	const char *text;
	size_t len, pos;
	long line;
	size_t line_start;
	pbtxt_tok tok; /* current (lookahead) token */
	/* parse state */
	size_t nvalues;
	long fline, fcol; /* the field name being parsed (oneof errors) */
	size_t foff;
	mlsec_error *err;
	mlsec_err code; /* first error */
	pbtxt_pos *posv;
	size_t npos, cappos;
};

/* Reads the next token into p->tok. Returns 0, or -1 after pbtxt_fail. */
int pbtxt_lex_next(mlsec_pbtxt *p);

/* Records the first error at the given token position; returns -1. */
int pbtxt_fail_at(mlsec_pbtxt *p, mlsec_err code, long line, long col, size_t off, const char *fmt,
                  ...) __attribute__((format(printf, 6, 7)));

#endif
