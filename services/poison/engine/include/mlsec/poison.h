/*
 * poison.h - the poison monitor engine: change-point detection on the
 * per-step gradient statistics of distributed (DDP) training workers.
 *
 * Three layers, usable separately:
 *  - the gradient-log record parser (one JSON object per line / datagram /
 *    Kafka message, the original Python mlsec's format);
 *  - a streaming detector: feed one record at a time in (roughly) step
 *    order, get alarms back through a callback. Its memory is bounded by
 *    workers x window, never by run length, and its whole state round-trips
 *    through JSON so a service restart resumes where it stopped;
 *  - mlsec_engine_poison, which runs the detector over a log directory
 *    (worker_<rank>.jsonl files merged by step) and fills a report.
 *
 * Method (docs/poison.md has the derivation of the defaults): per step and
 * metric, each worker is compared with the median of the *other* workers on
 * log(global_l2), log(global_linf), log(std) and on raw mean; deviations
 * are standardised by a pooled running MAD learned from the run itself, so
 * shared training dynamics cancel. A two-sided CUSUM per worker and metric
 * (drift k, threshold h, in scale units, on z clipped to +-POISON_Z_CLIP)
 * catches slow drift; a robust-z rule catches single-step spikes.
 *
 * Not thread-safe: one detector per thread. Nothing here prints.
 */
#ifndef MLSEC_POISON_H
#define MLSEC_POISON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mlsec/engine.h"
#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds on untrusted input. */
#define MLSEC_POISON_MAX_RECORD 4096                    /* bytes in one JSONL line / datagram */
#define MLSEC_POISON_MAX_RANK 4095                      /* ranks are 0..MAX_RANK */
#define MLSEC_POISON_MAX_STEP INT64_C(1000000000000000) /* 1e15 */
#define MLSEC_POISON_MAX_WINDOW 4096                    /* steps held open */
#define MLSEC_POISON_MAX_FILES 4096                     /* worker_*.jsonl files in a log dir */
#define MLSEC_POISON_MAX_ALARMS 10000                   /* kept in a report; more are counted */

/* Defaults (justified in docs/poison.md). */
#define MLSEC_POISON_DEFAULT_SPIKE_Z 7.0
#define MLSEC_POISON_DEFAULT_CUSUM_H 10.0
#define MLSEC_POISON_DEFAULT_CUSUM_K 1.0
#define MLSEC_POISON_DEFAULT_WINDOW 64
#define MLSEC_POISON_DEFAULT_WARMUP 50
#define MLSEC_POISON_DEFAULT_SILENT 100

/* One gradient snapshot of one worker at one step. */
typedef struct mlsec_poison_record {
	int64_t rank;
	int64_t step;
	double global_l2;   /* >= 0 */
	double global_linf; /* >= 0 */
	double mean;
	double std; /* >= 0 */
	int64_t parameter_count;
} mlsec_poison_record;

/*
 * Parses one record from a JSON object text of len bytes (no NUL needed).
 * Unknown keys are ignored; the seven keys above are required, numeric
 * (rank/step/parameter_count integral), finite where they are norms...
 * NaN/Inf are not JSON, so non-finite values cannot appear.
 * On failure returns MLSEC_ERR_PARSE (or MLSEC_ERR_LIMIT when len exceeds
 * MLSEC_POISON_MAX_RECORD) with err->text naming the problem, e.g.
 * `missing required key "std"`; err->column is set when known.
 */
mlsec_err mlsec_poison_record_parse(const char *text, size_t len, mlsec_poison_record *out,
                                    mlsec_error *err);

/* Formats a record as one JSON object (no newline) into buf; returns the
 * length snprintf would have written. */
int mlsec_poison_record_format(const mlsec_poison_record *r, char *buf, size_t size);

typedef enum mlsec_poison_metric {
	MLSEC_POISON_M_L2 = 0, /* log global_l2 */
	MLSEC_POISON_M_LINF,   /* log global_linf */
	MLSEC_POISON_M_STD,    /* log std */
	MLSEC_POISON_M_MEAN,   /* mean */
	MLSEC_POISON_M__COUNT
} mlsec_poison_metric;

/* "global_l2", "global_linf", "std", "mean". */
const char *mlsec_poison_metric_name(mlsec_poison_metric m);

typedef enum mlsec_poison_event_kind {
	MLSEC_POISON_EV_CUSUM = 0, /* sustained shift / drift (POISON-CUSUM-DRIFT) */
	MLSEC_POISON_EV_SPIKE,     /* robust |z| above the spike threshold (POISON-SPIKE) */
	MLSEC_POISON_EV_SILENT,    /* a known worker stopped reporting (POISON-WORKER-SILENT) */
	MLSEC_POISON_EV_MISSING,   /* an expected rank never reported (POISON-WORKER-MISSING) */
	MLSEC_POISON_EV_NONFINITE, /* a worker reported a zero/overflowing norm (POISON-NONFINITE)
	                            */
	MLSEC_POISON_EV__COUNT
} mlsec_poison_event_kind;

/* Stable rule id of an event kind, e.g. "POISON-CUSUM-DRIFT". */
const char *mlsec_poison_event_rule(mlsec_poison_event_kind k);
/* True for the kinds that are alarms about a worker's gradients
 * (CUSUM and SPIKE); the others are health findings. */
int mlsec_poison_event_is_alarm(mlsec_poison_event_kind k);

typedef struct mlsec_poison_event {
	mlsec_poison_event_kind kind;
	int64_t rank;
	mlsec_poison_metric metric; /* CUSUM, SPIKE, NONFINITE */
	int64_t onset_step;         /* estimated change point (CUSUM); = alarm_step otherwise;
	                               last step seen for SILENT; -1 for MISSING */
	int64_t alarm_step;
	double statistic; /* CUSUM sum or robust z (signed) */
	int direction;    /* +1 up, -1 down, 0 n/a */
	int isolated;     /* NONFINITE: at least 2 peers reported valid values at that step,
	                     so this worker alone went dark (high, not medium) */
} mlsec_poison_event;

/* Called for each event as it happens; ev is borrowed for the call. */
typedef void (*mlsec_poison_event_fn)(void *ctx, const mlsec_poison_event *ev);

/*
 * Called after each step is evaluated, with per-worker values indexed by
 * rank (nranks entries; present[r] == 0 when rank r had no record):
 * z[r * METRIC_COUNT + m] robust z, cusum[r] = max over metrics and sides of
 * the CUSUM sums. Used for plots; may be NULL.
 */
typedef void (*mlsec_poison_step_fn)(void *ctx, int64_t step, size_t nranks,
                                     const unsigned char *present, const double *z,
                                     const double *cusum);

typedef struct mlsec_poison_config {
	double spike_z;            /* --threshold: robust |z| for a spike alarm */
	double cusum_h;            /* --cusum-threshold, scale units */
	double cusum_k;            /* --cusum-drift, scale units */
	unsigned expected_workers; /* 0 = unknown: steps close by window only */
	unsigned window;           /* steps a step stays open for late records */
	unsigned warmup;           /* evaluated steps before any decision */
	unsigned silent_steps;     /* absent this many steps => silent */
} mlsec_poison_config;

/* Fills the defaults above. */
void mlsec_poison_config_init(mlsec_poison_config *c);
/* MLSEC_ERR_INVALID_ARG naming the bad field. */
mlsec_err mlsec_poison_config_check(const mlsec_poison_config *c, mlsec_error *err);
/* Reads options named like the CLI flags ("threshold", "cusum-threshold",
 * "cusum-drift", "expected-workers", "window", "warmup", "silent-steps")
 * from a JSON object (may be NULL) over c. */
mlsec_err mlsec_poison_config_from_options(mlsec_poison_config *c, const json_t *options,
                                           mlsec_error *err);

typedef struct mlsec_poison_stats {
	uint64_t records;              /* accepted into the window */
	uint64_t steps;                /* steps evaluated */
	uint64_t steps_thin;           /* steps with < 3 workers: nothing to compare */
	uint64_t duplicates;           /* same (rank, step) twice: the first is kept */
	uint64_t late;                 /* arrived after their step was evaluated */
	uint64_t out_of_order;         /* arrived below the highest step seen, still in time */
	uint64_t rejected;             /* rank/step out of range */
	uint64_t alarms;               /* CUSUM + SPIKE events */
	uint64_t events;               /* all events */
	int64_t first_step, last_step; /* evaluated, -1 when none */
	unsigned workers;              /* distinct ranks seen */
} mlsec_poison_stats;

typedef struct mlsec_poison_detector mlsec_poison_detector;

/*
 * New detector. cfg is copied (checked: NULL + err on a bad config or no
 * memory). on_event may be NULL (events are then only counted).
 */
mlsec_poison_detector *mlsec_poison_detector_new(const mlsec_poison_config *cfg,
                                                 mlsec_poison_event_fn on_event, void *ctx,
                                                 mlsec_error *err);
void mlsec_poison_detector_free(mlsec_poison_detector *d);
void mlsec_poison_detector_set_step_fn(mlsec_poison_detector *d, mlsec_poison_step_fn fn,
                                       void *ctx);

/*
 * Feeds one record. Steps are evaluated once all expected workers reported
 * or once the highest step seen is `window` steps past them; events fire
 * from inside this call. Records for steps already evaluated are counted
 * as late and dropped; duplicates are counted and dropped.
 * Returns MLSEC_ERR_INVALID_ARG for a rank/step out of range (counted as
 * rejected, state unchanged) and MLSEC_ERR_NOMEM.
 */
mlsec_err mlsec_poison_detector_feed(mlsec_poison_detector *d, const mlsec_poison_record *r,
                                     mlsec_error *err);

/*
 * End of input: evaluates every pending step, reports silent workers and
 * (with expected_workers) ranks that never reported. Feeding afterwards is
 * allowed (a live monitor may flush on idle).
 */
mlsec_err mlsec_poison_detector_flush(mlsec_poison_detector *d, mlsec_error *err);

void mlsec_poison_detector_stats(const mlsec_poison_detector *d, mlsec_poison_stats *out);
const mlsec_poison_config *mlsec_poison_detector_config(const mlsec_poison_detector *d);

/*
 * State as JSON (a new reference; NULL on no memory): config, counters,
 * per-worker CUSUM state, scale pools and the open window. Its size is
 * bounded by workers x window + the fixed scale pools.
 */
json_t *mlsec_poison_detector_to_json(const mlsec_poison_detector *d);
/* Rebuilds a detector from mlsec_poison_detector_to_json() output; the
 * JSON is validated as untrusted (MLSEC_ERR_PARSE naming the field). */
mlsec_poison_detector *mlsec_poison_detector_from_json(const json_t *state,
                                                       mlsec_poison_event_fn on_event, void *ctx,
                                                       mlsec_error *err);

/* The event as a JSON object: rule, rank, metric, onset_step, alarm_step,
 * statistic, direction (new reference, NULL on no memory). */
json_t *mlsec_poison_event_to_json(const mlsec_poison_event *ev);

/* ---- synthetic runs (demos, tests, calibration) ---- */

typedef enum mlsec_poison_sim_mode {
	MLSEC_POISON_SIM_NONE = 0,
	MLSEC_POISON_SIM_SLOW,   /* norms of one rank grow by `rate` per step from start */
	MLSEC_POISON_SIM_SPIKE,  /* one step x5 on l2/linf, x3 on std */
	MLSEC_POISON_SIM_SIGN,   /* mean gradient sign flipped from start */
	MLSEC_POISON_SIM_SILENT, /* the rank stops reporting at start */
} mlsec_poison_sim_mode;

typedef struct mlsec_poison_sim {
	unsigned workers;
	int64_t steps;
	uint64_t seed;
	mlsec_poison_sim_mode mode;
	int64_t poison_rank;
	int64_t poison_start;
	double rate; /* SLOW: relative growth per step, default 0.0015 */
} mlsec_poison_sim;

void mlsec_poison_sim_init(mlsec_poison_sim *s);
/* "none", "slow", "spike", "sign", "silent" -> mode; INVALID_ARG otherwise. */
mlsec_err mlsec_poison_sim_mode_parse(const char *name, mlsec_poison_sim_mode *out);
/*
 * The record of `rank` at `step`, a pure function of (sim, rank, step):
 * shared dynamics (warm-up, decay, batch-to-batch common noise) plus
 * per-worker noise. Returns 0 when the rank does not report that step
 * (SILENT mode), 1 otherwise.
 */
int mlsec_poison_sim_record(const mlsec_poison_sim *s, int64_t rank, int64_t step,
                            mlsec_poison_record *out);
/* Writes DIR/worker_<rank>.jsonl for every rank (DIR created if needed). */
mlsec_err mlsec_poison_sim_write(const mlsec_poison_sim *s, const char *dir, mlsec_error *err);

/* ---- log directories ---- */

/*
 * Runs the detector over DIR/worker_*.jsonl (or a single .jsonl file),
 * reading all files in step-merged order so memory stays bounded.
 * expected_workers defaults to the number of files. A line that does not
 * parse stops the run with MLSEC_ERR_PARSE, err->file/line set.
 * MLSEC_ERR_NOT_FOUND when there are no logs. cancel may be NULL.
 */
mlsec_err mlsec_poison_monitor_dir(const char *dir, const mlsec_poison_config *cfg,
                                   mlsec_poison_event_fn on_event, void *ev_ctx,
                                   mlsec_poison_step_fn on_step, void *step_ctx,
                                   const volatile int *cancel, mlsec_poison_stats *stats,
                                   mlsec_error *err);

/*
 * The same over an explicit list of JSONL files, merged by step as one run
 * (expected_workers defaults to npaths). When rank_file is not NULL it must
 * hold MLSEC_POISON_MAX_RANK + 1 entries and receives, per rank, the index
 * of the file its first record came from (-1 if none); an entry is set
 * before any event about that rank fires, so event callbacks may read it.
 */
mlsec_err mlsec_poison_monitor_files(const char *const *paths, size_t npaths,
                                     const mlsec_poison_config *cfg, mlsec_poison_event_fn on_event,
                                     void *ev_ctx, mlsec_poison_step_fn on_step, void *step_ctx,
                                     const volatile int *cancel, int32_t *rank_file,
                                     mlsec_poison_stats *stats, mlsec_error *err);

/*
 * Report glue shared by the engine, the CLI and the service: adds the event
 * as a finding to the artifact and to its details "alarms"/"events" arrays
 * (bounded by MLSEC_POISON_MAX_ALARMS).
 */
mlsec_err mlsec_poison_report_event(mlsec_artifact *a, const mlsec_poison_event *ev);
/* Writes stats and config into the artifact's details. */
mlsec_err mlsec_poison_report_stats(mlsec_artifact *a, const mlsec_poison_config *cfg,
                                    const mlsec_poison_stats *st);

extern const mlsec_engine mlsec_engine_poison;

#ifdef __cplusplus
}
#endif
#endif
