/*
 * lint.h - internals of the ONNX lint shared by lint.c and lint_util.c.
 */
#ifndef MLSEC_EXPORT_LINT_H
#define MLSEC_EXPORT_LINT_H

#include <stddef.h>
#include <stdint.h>

/* Open-addressing map from a borrowed name to flags. */
typedef struct nmap {
	const char **keys;
	unsigned *vals;
	size_t cap, n;
} nmap;

/* The value slot of key (created as 0 when create); NULL when absent or
 * out of memory. Keys are borrowed and must outlive the map. */
unsigned *nmap_slot(nmap *m, const char *key, int create);
void nmap_free(nmap *m);

#define TEXT_URL 1u
#define TEXT_SCRIPT 2u
/* TEXT_* flags for s[0..n); *what (may be NULL) gets the matched marker. */
unsigned lint_text_flags(const char *s, size_t n, const char **what);
/* The code-execution hint found in an op or domain name, or NULL. */
const char *lint_exec_hint(const char *s);
/* Opset that introduced a default-domain op, 0 when not in the table. */
int lint_op_since(const char *op);
int lint_ir_for_opset(int64_t opset);

#endif
