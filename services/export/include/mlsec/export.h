/*
 * export.h - the export guard: a lint of ONNX graphs exported from a
 * training checkpoint, and a signed provenance chain (in-toto Statement v1
 * in a DSSE envelope) linking checkpoint -> ONNX -> TensorRT plan.
 *
 * Three entry points, all pure (no printing, no network):
 *   - mlsec_export_lint_onnx(): findings EXPORT-* on one ONNX file;
 *   - mlsec_export_attest(): builds (and optionally signs) the attestation;
 *   - mlsec_export_verify(): recomputes every digest, link, lint summary and
 *     the signature of an attestation and reports each mismatch as a
 *     critical finding naming the stage that changed.
 * The generic engine (mlsec_engine_export) lints every path it is given.
 *
 * The attestation format and every rule id are documented in
 * docs/export-guard.md.
 */
#ifndef MLSEC_EXPORT_H
#define MLSEC_EXPORT_H

#include <stddef.h>

#include "mlsec/engine.h"
#include "mlsec/err.h"
#include "mlsec/report.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const mlsec_engine mlsec_engine_export;

#define MLSEC_EXPORT_PREDICATE_TYPE "https://mlsec.dev/provenance/export-chain/v1"
#define MLSEC_EXPORT_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define MLSEC_EXPORT_PAYLOAD_TYPE "application/vnd.in-toto+json"

/* Default for --constant-threshold: |value| above it in a float constant is
 * a finding. */
#define MLSEC_EXPORT_DEFAULT_CONSTANT_THRESHOLD 1e3
/* Bounds on what the lint accepts (named so the docs can quote them). */
#define MLSEC_EXPORT_MAX_ONNX_BYTES ((size_t)2u << 30) /* protobuf hard limit */
#define MLSEC_EXPORT_MAX_ALLOWED_DOMAINS 64

/* Lint options. Borrowed strings; the struct may live on the stack. */
typedef struct mlsec_export_opts {
	const char *const *allowed_domains; /* extra domains besides the ONNX ones */
	size_t nallowed;
	double constant_threshold; /* <= 0 means the default */
} mlsec_export_opts;

/* Fills o with the defaults (no extra domains, threshold 1e3). */
void mlsec_export_opts_init(mlsec_export_opts *o);

/*
 * Lints one ONNX file and adds it to rep as an artifact (format "onnx",
 * stage "export") with its findings; *out (may be NULL) receives the
 * borrowed artifact. An unparsable file is an EXPORT-MALFORMED finding and
 * still MLSEC_OK; errors are only for a missing/unreadable path or memory.
 */
mlsec_err mlsec_export_lint_onnx(const char *path, const mlsec_export_opts *o, mlsec_report *rep,
                                 mlsec_artifact **out, mlsec_error *err);

/*
 * Same for a model held in memory (name labels the artifact). External data
 * cannot be resolved and is reported as missing (after the lexical traversal
 * checks). This is the fuzz target of the lint.
 */
mlsec_err mlsec_export_lint_onnx_buffer(const void *data, size_t len, const char *name,
                                        const mlsec_export_opts *o, mlsec_report *rep,
                                        mlsec_artifact **out, mlsec_error *err);

/*
 * Canonical digests (hex, 64 chars + NUL). See docs/export-guard.md for the
 * exact byte streams hashed.
 *  - state dict of a safetensors checkpoint: sorted tensor names, dtypes,
 *    shapes and data bytes; *ntensors receives the tensor count.
 *  - graph of an ONNX model: nodes, attributes, initializers (values
 *    normalised to little-endian bytes), inputs, outputs and opsets, with
 *    doc strings and producer fields left out.
 * MLSEC_ERR_PARSE when the file is not valid.
 */
mlsec_err mlsec_export_state_dict_digest(const char *path, char hex[65], size_t *ntensors,
                                         mlsec_error *err);
mlsec_err mlsec_export_graph_digest(const char *path, char hex[65], mlsec_error *err);

/* What to put in an attestation. Borrowed strings. */
typedef struct mlsec_export_attest_req {
	const char *source; /* checkpoint (.safetensors/.pt), may be NULL */
	const char *onnx;   /* required */
	const char *engine; /* TensorRT plan, may be NULL */
	/* Lint result of the ONNX file (from mlsec_export_lint_onnx) and the
	 * options it ran with; recorded so that verify can re-run it. */
	const mlsec_artifact *onnx_lint;
	const mlsec_export_opts *opts;
	const char *sign_key_path; /* Ed25519 private key PEM; NULL = unsigned */
	const char *timestamp;     /* RFC 3339; NULL = now (tests pin it) */
} mlsec_export_attest_req;

/*
 * Builds the DSSE envelope (JSON text, caller mlsec_free()s *out). Unsigned
 * when no key is given: the envelope then has an empty signature list.
 * A bad key is MLSEC_ERR_INVALID_ARG; an unreadable artifact MLSEC_ERR_IO.
 */
mlsec_err mlsec_export_attest(const mlsec_export_attest_req *req, char **out, size_t *len,
                              mlsec_error *err);

/* Bounds of the hardened attestation parser. */
#define MLSEC_EXPORT_MAX_ATTESTATION_BYTES ((size_t)4u << 20)
#define MLSEC_EXPORT_MAX_STAGES 8
#define MLSEC_EXPORT_MAX_SIGNATURES 16
#define MLSEC_EXPORT_MAX_LINT_FINDINGS 256

typedef struct mlsec_export_verify_req {
	const char *attestation;      /* path to the envelope */
	const char *verify_key_path;  /* Ed25519 public (or private) key PEM, may be NULL */
	const char *const *artifacts; /* explicit artifact paths, matched by file name */
	size_t nartifacts;
	/* When not NULL (services), the paths recorded in the attestation are
	 * never used and every artifact read must resolve under this root. */
	const char *artifact_root;
} mlsec_export_verify_req;

/*
 * Verifies an attestation and adds an artifact (the attestation path,
 * format "attestation") to rep carrying one finding per problem:
 * EXPORT-ATTEST-* critical findings whose field names the stage
 * ("stage[1] onnx", "signature", "envelope"). MLSEC_OK even when
 * verification fails; errors only when rep cannot be filled.
 */
mlsec_err mlsec_export_verify(const mlsec_export_verify_req *req, mlsec_report *rep,
                              mlsec_error *err);

/*
 * Parses and structurally checks an attestation held in memory without
 * touching any file (the fuzz target). MLSEC_OK when well-formed; findings
 * for structural problems go to a (may be NULL).
 */
mlsec_err mlsec_export_attestation_check(const char *data, size_t len, mlsec_artifact *a,
                                         mlsec_error *err);

#ifdef __cplusplus
}
#endif
#endif
