/*
 * checkpoint.h - the checkpoint triage engine: reads PyTorch (zip and
 * legacy), raw pickle, NumPy (.npy/.npz) and safetensors checkpoints byte
 * by byte without executing anything, and reports:
 *   - pickle findings (dangerous/unknown globals, obfuscation, nested and
 *     hidden pickles, parse errors: CKPT-PICKLE-*, CKPT-MALFORMED),
 *   - container findings (zip traversal, duplicates, CRC, hidden members:
 *     CKPT-ZIP-*),
 *   - tensor findings (NaN/Inf, magnitude, robust outliers, views outside
 *     their storage: CKPT-NAN, CKPT-INF, CKPT-MAGNITUDE, CKPT-OUTLIER,
 *     CKPT-TENSOR-*),
 *   - drift against a reference fingerprint (CKPT-FP-*),
 * and optionally writes fingerprints and a bit-exact safetensors copy.
 * Rules are listed in docs/checkpoint.md.
 *
 * Tensor data is streamed (bounded windows), so memory stays bounded
 * whatever the checkpoint size.
 */
#ifndef MLSEC_CHECKPOINT_H
#define MLSEC_CHECKPOINT_H

#include <jansson.h>

#include "mlsec/engine.h"
#include "mlsec/report.h"

#define MLSEC_CKPT_DEFAULT_THRESHOLD 100.0
#define MLSEC_CKPT_DEFAULT_KL 0.5
#define MLSEC_CKPT_MAX_PICKLE (256u * 1024 * 1024)     /* one pickle read into memory */
#define MLSEC_CKPT_MAX_HIDDEN_SCAN (64u * 1024 * 1024) /* bytes of a hidden member scanned */
#define MLSEC_CKPT_MAX_NESTING 4                       /* nested pickles followed */
#define MLSEC_CKPT_MAX_TENSOR_DETAILS 4096             /* tensors listed in the report details */
#define MLSEC_CKPT_OUTLIER_MIN_ELEMS 64 /* robust outlier test needs this many values */
#define MLSEC_CKPT_OUTLIER_Z_MEDIUM 100.0
#define MLSEC_CKPT_OUTLIER_Z_HIGH 10000.0

typedef struct mlsec_ckpt_opts {
	double threshold;              /* --threshold: max |w| (default 100) */
	const char *write_fingerprint; /* --write-fingerprint DIR, or NULL */
	const char *reference;         /* --reference FILE, or NULL */
	double kl_threshold;           /* --kl-threshold (default 0.5) */
	int convert;                   /* --convert-safetensors */
	int overwrite;                 /* --overwrite */
	mlsec_severity gate;           /* --fail-on: conversion needs no finding >= gate */
	int no_hash;                   /* --no-hash: skip the artifact's SHA-256 (speed) */
	const volatile int *cancel;
	void (*progress)(void *ctx, const char *what, double done, double total);
	void *progress_ctx;
} mlsec_ckpt_opts;

void mlsec_ckpt_opts_init(mlsec_ckpt_opts *o);

/*
 * Reads options from the engine's JSON object (keys are the CLI flags:
 * "threshold", "write-fingerprint", "reference" / "reference-fingerprint",
 * "kl-threshold", "convert-safetensors", "overwrite", "fail-on",
 * "no-hash"). Strings
 * are borrowed from json. MLSEC_ERR_INVALID_ARG names a bad option.
 */
mlsec_err mlsec_ckpt_opts_from_json(const json_t *json, mlsec_ckpt_opts *o, mlsec_error *err);

/*
 * Triages one file, adding one artifact to rep. Returns non-OK only when
 * the file cannot be opened or memory runs out; everything about its
 * content is a finding.
 */
mlsec_err mlsec_checkpoint_scan_file(const char *path, const mlsec_ckpt_opts *o, mlsec_report *rep,
                                     mlsec_error *err);

/* Directory-walk filter: checkpoint-like by content or extension. */
int mlsec_checkpoint_filter(const char *path, const char *base, void *ctx);

extern const mlsec_engine mlsec_engine_checkpoint;

#endif
