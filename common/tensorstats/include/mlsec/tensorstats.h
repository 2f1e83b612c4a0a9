/*
 * tensorstats.h - one-pass streaming statistics of a floating-point tensor:
 * NaN/+Inf/-Inf counts, finite min/max, mean/std, an approximate
 * median/MAD and robust z-score, and a 64-bin histogram over the finite
 * range, for float32/float64/float16/bfloat16 little-endian data.
 *
 * One pass: values are counted into a fixed "fine" histogram keyed by the
 * top 12 bits of their float32 pattern (sign, exponent, 3 mantissa bits:
 * bins 12.5% wide in relative terms, exact at any scale). The range
 * histogram, median and MAD are derived from it at the end, so no second
 * read of the data is needed and the kernels stay branch-free.
 *
 * Feed bytes in any chunking (elements split across chunks are carried).
 * No allocation; a mlsec_tstats is ~100 KiB: keep it on the heap.
 */
#ifndef MLSEC_TENSORSTATS_H
#define MLSEC_TENSORSTATS_H

#include <stddef.h>
#include <stdint.h>

#define MLSEC_TS_FINE_BINS 4096
#define MLSEC_TS_BINS 64
/* Sub-table stride: padded so the same bin of the four sub-tables falls in
 * different L1 sets (16 KiB apart they would alias and stall). */
#define MLSEC_TS_SUB_STRIDE (MLSEC_TS_FINE_BINS + 80)

typedef enum mlsec_ts_kind {
	MLSEC_TS_F32 = 0,
	MLSEC_TS_F64,
	MLSEC_TS_F16,
	MLSEC_TS_BF16,
} mlsec_ts_kind;

typedef struct mlsec_tstats {
	mlsec_ts_kind kind;
	size_t esize;
	uint64_t count, nan, posinf, neginf;
	double min, max, sum, sumsq; /* over finite values */
	uint64_t fine[MLSEC_TS_FINE_BINS];
	/* 32-bit sub-histograms the kernel bumps; folded into fine before
	 * they can overflow and at finish */
	uint32_t sub[4][MLSEC_TS_SUB_STRIDE];
	uint64_t since_fold;
	uint8_t carry[8];
	size_t ncarry;
	/*
	 * Bytes ahead of the element being read that the float32 kernel
	 * prefetches; 0 (set by init) means one block (16 KiB). A caller whose
	 * next bytes are first read by another pass, e.g. the zip reader's
	 * CRC over the next MLSEC_ZIP_CRC_PIECE, sets that distance, so the
	 * other pass finds them in cache instead of waiting for memory.
	 */
	size_t prefetch;
} mlsec_tstats;

typedef struct mlsec_tstats_summary {
	uint64_t count, finite, nan, posinf, neginf;
	double min, max, absmax, mean, std; /* finite values; 0 when none */
	double median, mad;                 /* approximate (fine-histogram resolution) */
	double robust_z; /* max |x - median| / (1.4826 MAD), std fallback, 0 if flat */
	double hist_lo, hist_hi;
	double hist[MLSEC_TS_BINS]; /* counts over [hist_lo, hist_hi] (fractional) */
} mlsec_tstats_summary;

void mlsec_tstats_init(mlsec_tstats *s, mlsec_ts_kind kind);
void mlsec_tstats_update(mlsec_tstats *s, const void *data, size_t bytes);
void mlsec_tstats_finish(const mlsec_tstats *s, mlsec_tstats_summary *out);

/*
 * Picks the float32 kernel by instruction set: "avx512", "avx", "generic",
 * or NULL/"" for the best this CPU has (the default). Returns -1, changing
 * nothing, when the CPU lacks it. All give the same counts, min/max and
 * histogram; sums may differ in the last bits (lane order). For tests and
 * benchmarks; process-wide, not meant to race with running kernels.
 */
int mlsec_tstats_use_isa(const char *isa);

/* Half/bfloat16 to float conversions (exact). */
float mlsec_f16_to_f32(uint16_t h);
float mlsec_bf16_to_f32(uint16_t h);

/*
 * Rebins a histogram over [lo, hi] onto nbins over [nlo, nhi] assuming
 * values are uniform inside each bin (a zero-width source puts its mass at
 * lo). Used to compare fingerprints on a common binning.
 */
void mlsec_hist_rebin(const double *h, size_t n, double lo, double hi, double *out, size_t nbins,
                      double nlo, double nhi);

/*
 * KL(p || q) in nats of two histograms on the same bins, normalised, with
 * eps added to every bin so the result is finite. Returns 0 when both are
 * empty and -1 when exactly one is.
 */
double mlsec_hist_kl(const double *p, const double *q, size_t n, double eps);

#endif
