/*
 * export_internal.h - shared between the export engine's files; not API.
 */
#ifndef MLSEC_EXPORT_INTERNAL_H
#define MLSEC_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mlsec/err.h"
#include "mlsec/export.h"
#include "mlsec/report.h"

#define EXPORT_PREFIX "EXPORT"

/* ---- dsse.c ---- */

/* base64 (standard alphabet, padded) of in; fresh string, NULL on OOM. */
char *export_b64_encode(const unsigned char *in, size_t n);
/* Strict decode (no whitespace, padding required); fresh buffer in *out. */
mlsec_err export_b64_decode(const char *in, unsigned char **out, size_t *n);
/* DSSE pre-authentication encoding; fresh buffer. */
unsigned char *export_pae(const char *type, const unsigned char *body, size_t blen,
                          size_t *out_len);

typedef struct export_key export_key;
/* Loads an Ed25519 key from PEM (private if want_private, else public;
 * a private key file is accepted for verification too). */
mlsec_err export_key_load(const char *path, int want_private, export_key **out, mlsec_error *err);
void export_key_free(export_key *k);
/* keyid: hex SHA-256 of the DER SubjectPublicKeyInfo. */
const char *export_key_id(const export_key *k);
/* Ed25519 over msg; *sig fresh (64 bytes). */
mlsec_err export_key_sign(const export_key *k, const unsigned char *msg, size_t n,
                          unsigned char **sig, size_t *slen, mlsec_error *err);
/* 1 valid, 0 not. */
int export_key_verify(const export_key *k, const unsigned char *msg, size_t n,
                      const unsigned char *sig, size_t slen);

/* ---- canon.c ---- */

/* sha256 hex of the canonical JSON (sorted keys, compact, ASCII). */
mlsec_err export_json_digest(const json_t *j, char hex[65]);
/* Now (or pinned) as RFC 3339 UTC. */
void export_timestamp(char buf[32]);
/* The tool versions object recorded in every stage (new reference). */
json_t *export_tool_versions(void);
/* Basename of path (borrowed, points inside path). */
const char *export_basename(const char *path);

/* ---- state-dict digests (state_dict.c, state_dict_pt.c) ---- */
mlsec_err export_st_state_dict_digest(const char *path, char hex[65], size_t *ntensors,
                                      mlsec_error *err);
mlsec_err export_pt_state_dict_digest(const char *path, char hex[65], size_t *ntensors,
                                      mlsec_error *err);

/* ---- attest.c: stage records (new references, NULL + err on failure) ---- */
json_t *export_stage_checkpoint(const char *path, const char *ts, mlsec_error *err);
json_t *export_stage_onnx(const char *path, const mlsec_artifact *lint, const mlsec_export_opts *o,
                          const char *ts, mlsec_error *err);
json_t *export_stage_tensorrt(const char *path, const char *ts, mlsec_error *err);
/* Sets index and previousRecord, then recordDigest over the rest. */
mlsec_err export_record_seal(json_t *r, size_t index, const char *prev);

/* ---- lint summary (lint.c) ---- */

/* {"counts":{sev:n...},"findings":[{"rule","severity","field"}...]}
 * from an artifact's findings, sorted, capped. New reference. */
json_t *export_lint_summary(const mlsec_artifact *a);

/* ---- tensorrt ---- */
/* 1 when the file starts with (or has at offset 12/16) the "ftrt" magic. */
int export_plan_has_ftrt(const char *path);

#endif
