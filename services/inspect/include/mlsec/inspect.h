/*
 * inspect.h - quick triage of a third-party model before integration:
 * weight anomalies, activation monitoring and a one-step FGSM probe.
 *
 * Models: ONNX (graph + weights: every check), safetensors and PyTorch zip
 * checkpoints (weights only; the activation and FGSM checks then add an
 * INSPECT-NEEDS-GRAPH info finding instead of failing). A file that does
 * not parse is INSPECT-MALFORMED (high): the engine fails closed.
 *
 * The engine reads weights through common/formats and mlsec/onnx.h, takes
 * per-tensor statistics with common/tensorstats (the same NaN/Inf,
 * magnitude and robust-outlier decisions as the checkpoint stage, with its
 * thresholds), runs the graph through common/tensor with a monitoring hook,
 * and never prints. Rules are listed in docs/inspect.md.
 */
#ifndef MLSEC_INSPECT_H
#define MLSEC_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mlsec/engine.h"
#include "mlsec/err.h"
#include "mlsec/report.h"

#define MLSEC_INSPECT_MAX_WEIGHT_BYTES (4ull << 30) /* float32 weights held at once */
#define MLSEC_INSPECT_MAX_SAMPLES 100000
#define MLSEC_INSPECT_MAX_INPUT_BYTES (1ull << 30) /* synthetic inputs held at once */
#define MLSEC_INSPECT_MAX_BATCH 1024
#define MLSEC_INSPECT_MAX_NODE_DETAILS 4096 /* nodes listed in the details */

enum {
	MLSEC_INSPECT_WEIGHTS = 1 << 0,
	MLSEC_INSPECT_ACTIVATIONS = 1 << 1,
	MLSEC_INSPECT_FGSM = 1 << 2,
	MLSEC_INSPECT_ALL = 7,
};

typedef enum mlsec_inspect_type {
	MLSEC_INSPECT_TYPE_AUTO = 0, /* from the model's input: rank 4 vision, rank 2 tabular */
	MLSEC_INSPECT_TYPE_VISION,
	MLSEC_INSPECT_TYPE_TEXT, /* token inputs: no gradient probe */
	MLSEC_INSPECT_TYPE_TABULAR,
} mlsec_inspect_type;

typedef struct mlsec_inspect_opts {
	unsigned checks;            /* MLSEC_INSPECT_* bits (default all) */
	mlsec_inspect_type type;    /* --type (default auto) */
	const char *data_path;      /* --data: .npz/.safetensors with x, y; NULL = synthetic */
	double epsilon;             /* --epsilon: FGSM L-inf budget (default 0.01) */
	double threshold;           /* --threshold: max |w| (default: the checkpoint stage's 100) */
	size_t samples;             /* --samples: 0 = all of --data, synthetic default 256 */
	size_t batch;               /* --batch-size (default 64) */
	float input_min, input_max; /* --input-min/--input-max: input domain (default [0, 1]) */
	uint64_t seed;              /* --seed for synthetic inputs (default 0) */
	int threads;                /* --threads: BLAS threads (default 1) */
	/* Polled between batches; non-zero stops with MLSEC_ERR_TIMEOUT. */
	const volatile int *cancel;
	void (*progress)(void *ctx, const char *what, double done, double total);
	void *progress_ctx;
} mlsec_inspect_opts;

void mlsec_inspect_opts_default(mlsec_inspect_opts *o);

/*
 * Parses "weights,activations,fgsm" (commas or spaces; "all") into
 * MLSEC_INSPECT_* bits. MLSEC_ERR_INVALID_ARG names an unknown check.
 */
mlsec_err mlsec_inspect_parse_checks(const char *s, unsigned *out, mlsec_error *err);

/* "vision", "text", "tabular", "auto". */
mlsec_err mlsec_inspect_parse_type(const char *s, mlsec_inspect_type *out, mlsec_error *err);
const char *mlsec_inspect_type_name(mlsec_inspect_type t);

/*
 * Reads options from a JSON object keyed by the CLI flag names ("checks":
 * "weights,fgsm" or ["weights"], "type", "data", "epsilon", "threshold",
 * "samples", "batch-size", "input-min", "input-max", "seed", "threads").
 * Unknown keys are MLSEC_ERR_INVALID_ARG. Strings in o point into json,
 * which must outlive o.
 */
mlsec_err mlsec_inspect_opts_from_json(const json_t *json, mlsec_inspect_opts *o, mlsec_error *err);

/*
 * Inspects the model at path and adds one artifact to rep (plus one for a
 * --data file that does not parse). Details: "weights" (per tensor),
 * "activations" (per node, the table the CLI prints), "fgsm".
 * Returns non-OK only when the run could not be made: missing file, bad
 * options, data that does not fit the model, out of memory, cancelled.
 */
mlsec_err mlsec_inspect_run(const char *path, const mlsec_inspect_opts *o, mlsec_report *rep,
                            mlsec_error *err);

/*
 * Picks the activation-statistics kernels by instruction set: "avx512",
 * "avx2", "generic" (SSE2 on x86-64), or NULL/"" for the best this CPU has (the
 * default). Returns -1, changing nothing, when the CPU lacks it. Results
 * agree up to float rounding of sums. For tests and benchmarks;
 * process-wide, not meant to race with running scans.
 */
int mlsec_inspect_use_isa(const char *isa);

extern const mlsec_engine mlsec_engine_inspect;

#endif
