/*
 * poison_internal.h - the detector's state, shared by detector.c and
 * state.c (JSON round trip). Not installed; not part of the API.
 */
#ifndef MLSEC_POISON_INTERNAL_H
#define MLSEC_POISON_INTERNAL_H

#include "mlsec/poison.h"

#define POISON_POOL 2048                   /* |deviation| samples per metric in the scale pool */
#define POISON_SCALE_REFRESH 64            /* evaluated steps between scale re-estimates */
#define POISON_MAD_K 1.482602218505602     /* MAD -> sigma for a normal distribution */
#define POISON_SCALE_FLOOR_LOG 1e-6        /* log units: identical workers still give a scale */
#define POISON_SCALE_FLOOR_MEAN 1e-9       /* mean / median std: dimensionless */
#define POISON_Z_CLIP 4.0                  /* CUSUM input is clipped to +-this */
#define POISON_MIN_WORKERS 3               /* below this a step has no meaningful centre */
#define POISON_MAX_CELLS ((size_t)1 << 21) /* window x rank slots: bounds memory (~70 MB) */

typedef struct poison_worker {
	unsigned char known, seen_any, silent;
	unsigned char nonfinite[MLSEC_POISON_M__COUNT];
	unsigned char spike[MLSEC_POISON_M__COUNT];
	unsigned char lpos[MLSEC_POISON_M__COUNT], lneg[MLSEC_POISON_M__COUNT];
	double cpos[MLSEC_POISON_M__COUNT], cneg[MLSEC_POISON_M__COUNT];
	int64_t spos[MLSEC_POISON_M__COUNT], sneg[MLSEC_POISON_M__COUNT];
	int64_t last_seen;
	int64_t claim; /* highest step this worker sent, accepted or not (not persisted) */
} poison_worker;

typedef struct poison_pool {
	double *v; /* POISON_POOL entries */
	size_t count, head;
} poison_pool;

typedef struct poison_pair {
	double x;
	int64_t rank;
} poison_pair;

struct mlsec_poison_detector {
	mlsec_poison_config cfg;
	mlsec_poison_event_fn on_event;
	void *ev_ctx;
	mlsec_poison_step_fn on_step;
	void *step_ctx;

	int64_t next_step;  /* lowest step not yet evaluated */
	int64_t max_step;   /* highest step seen, -1 none */
	int64_t first_seen; /* lowest step seen, -1 none */
	int64_t first_eval, last_eval;
	uint64_t evaluated; /* steps with >= POISON_MIN_WORKERS */
	int missing_reported;
	mlsec_poison_stats st;

	/* window ring: slot = step % window */
	int64_t *slot_step; /* -1 = empty */
	unsigned *slot_count;
	double *vals;           /* [slot][rank][metric] */
	unsigned char *present; /* [slot][rank] */
	size_t rank_cap;

	poison_worker *workers; /* [rank_cap] */
	int64_t *known;         /* ranks seen, sorted */
	size_t nknown;

	poison_pool pool[MLSEC_POISON_M__COUNT];
	double *pool_tmp;
	double scale[MLSEC_POISON_M__COUNT];

	double *scratch_z; /* [rank][metric] */
	double *scratch_c;
	unsigned char *scratch_p;
	poison_pair *sorted;
};

mlsec_err poison_grow_ranks(mlsec_poison_detector *d, size_t need);

#endif
