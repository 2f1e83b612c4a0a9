/*
 * pbtxt.h - a schema-aware protobuf TEXT-FORMAT parser driven by protobuf-c
 * descriptors. Give it any message descriptor (e.g. Triton's
 * inference__model_config__descriptor) and text; it fills the generated C
 * struct, rejecting what protobuf's own TextFormat parser rejects: unknown
 * fields, wrong value types, out-of-range numbers, undefined enum values,
 * two members of one oneof, lists on non-repeated fields, bad escapes.
 *
 * Grammar accepted: `#` comments; `name: value` (the colon is required for
 * scalars, optional before messages); messages in `{ }` or `< >`; optional
 * `,` or `;` after each field; repeated fields by repetition or as lists
 * `[a, b]` (messages too: `input [ {..}, {..} ]`); adjacent string literals
 * concatenate; single- or double-quoted strings with C escapes, octal \ooo,
 * \xHH, \uXXXX and \UXXXXXXXX; integers in decimal, hex and octal; floats
 * with an optional f suffix, inf/infinity/nan; enums by name or number;
 * bools true/True/t/1/false/False/f/0; maps as repeated {key: value: }
 * entries or lists of them. Extension and Any syntax ([...] field names)
 * are rejected. Repeated singular scalars overwrite (last wins) and
 * repeated singular messages merge, as in protobuf. proto2 `required`
 * fields are not checked for presence (Triton's schema is proto3).
 *
 * Memory: a parser owns an arena. Everything a parse produces (the message,
 * strings, arrays, sub-messages, source positions) lives in it until the
 * next parse, mlsec_pbtxt_reset() or mlsec_pbtxt_free(); the arena's first
 * block is kept between parses, so parsing many small files does not touch
 * the heap. Never pass the result to protobuf_c_message_free_unpacked().
 *
 * Untrusted input: input size, nesting depth, number of values and arena
 * memory are bounded (mlsec_pbtxt_limits); hitting one is MLSEC_ERR_LIMIT.
 * Errors carry 1-based line and column (bytes) and the byte offset.
 * Not thread-safe: one parser per thread. The parser never prints.
 */
#ifndef MLSEC_PBTXT_H
#define MLSEC_PBTXT_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_PBTXT_MAX_INPUT (8u << 20)    /* bytes of text */
#define MLSEC_PBTXT_MAX_DEPTH 64u           /* nested messages (protobuf: 100) */
#define MLSEC_PBTXT_MAX_VALUES (1u << 20)   /* fields + list elements set */
#define MLSEC_PBTXT_MAX_MEMORY (256u << 20) /* arena bytes per parse */

typedef struct mlsec_pbtxt_limits {
	size_t max_input;
	unsigned max_depth;
	size_t max_values;
	size_t max_memory;
} mlsec_pbtxt_limits;

typedef struct mlsec_pbtxt mlsec_pbtxt;

/* limits may be NULL (the defaults above); zero members take defaults too.
 * Returns NULL on allocation failure. */
mlsec_pbtxt *mlsec_pbtxt_new(const mlsec_pbtxt_limits *limits);
void mlsec_pbtxt_free(mlsec_pbtxt *p);

/* Drops the last result (keeps the arena's first block for reuse). */
void mlsec_pbtxt_reset(mlsec_pbtxt *p);

/*
 * Parses text[0..len) (need not be NUL-terminated) as a message of type
 * desc. On success *out points to the message (owned by p, see above).
 * MLSEC_ERR_PARSE for syntax/schema errors, MLSEC_ERR_LIMIT for limits,
 * MLSEC_ERR_NOMEM; err (may be NULL) then holds line, column, offset and
 * the reason; err->file is left untouched.
 */
mlsec_err mlsec_pbtxt_parse(mlsec_pbtxt *p, const ProtobufCMessageDescriptor *desc,
                            const char *text, size_t len, ProtobufCMessage **out, mlsec_error *err);

/*
 * Where the last parse set `field` of message `msg` (a message inside the
 * last result). For a repeated field, index is the element (0-based);
 * otherwise pass 0. Returns 1 and fills line/column (1-based) when known,
 * else 0. line/column may be NULL.
 */
int mlsec_pbtxt_locate(const mlsec_pbtxt *p, const void *msg, const char *field, size_t index,
                       long *line, long *column);

/* Bytes of arena memory the last parse used (for limits and tests). */
size_t mlsec_pbtxt_memory_used(const mlsec_pbtxt *p);

#ifdef __cplusplus
}
#endif
#endif
