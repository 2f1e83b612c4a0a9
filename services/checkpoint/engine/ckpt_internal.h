/*
 * ckpt_internal.h - state shared by the checkpoint engine's files while
 * one artifact is scanned. Not installed; not an API.
 */
#ifndef MLSEC_CKPT_INTERNAL_H
#define MLSEC_CKPT_INTERNAL_H

#include "mlsec/bytesrc.h"
#include "mlsec/checkpoint.h"
#include "mlsec/pickle.h"
#include "mlsec/tensorref.h"
#include "mlsec/tensorstats.h"
#include "mlsec/zip.h"

typedef struct ckpt_scan {
	const mlsec_ckpt_opts *o;
	mlsec_artifact *a;
	const char *path;
	int fd;
	mlsec_src src;
	mlsec_zip *zip;
	mlsec_tensor_list tl;
	mlsec_tstats_summary *sum; /* per tensor when have[i] */
	unsigned char *have;
	json_t *det;          /* artifact details (borrowed) */
	int malformed;        /* a MALFORMED finding was added */
	mlsec_pickle *vms[4]; /* VMs whose values tensors borrow (inline data) */
	size_t nvms;
	uint64_t bytes_done, bytes_total; /* progress */
} ckpt_scan;

/* Adds CKPT-MALFORMED with text, location field (may be NULL) and offset. */
void ckpt_malformed(ckpt_scan *s, const char *field, long long offset, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Reports a pickle VM's globals, notes and error; follows nested pickles.
 * where: member name or NULL for the file; base: offset of the pickle. */
void ckpt_report_pickle(ckpt_scan *s, mlsec_pickle *vm, mlsec_err rc, const mlsec_error *perr,
                        const char *where, long long base, int depth);

/* Runs a fresh VM over buf and reports it; returns the VM (caller frees)
 * or NULL on allocation failure. ckpt_run_pickle scans only (values are
 * placeholders, strings borrow buf); the _mode variant chooses. */
mlsec_pickle *ckpt_run_pickle_mode(ckpt_scan *s, const uint8_t *buf, size_t len, const char *where,
                                   long long base, int depth, int scan_only, mlsec_err *rc);
mlsec_pickle *ckpt_run_pickle(ckpt_scan *s, const uint8_t *buf, size_t len, const char *where,
                              long long base, int depth, mlsec_err *rc);

/* Statistics of every located float tensor, and the tensor findings. */
mlsec_err ckpt_tensor_stats(ckpt_scan *s, mlsec_error *err);

/* Streams tensor i's elements in row-major order to sink (bounded memory). */
mlsec_err ckpt_tensor_stream(ckpt_scan *s, size_t i, mlsec_sink sink, void *ctx, mlsec_error *err);

mlsec_err ckpt_fingerprint_write(ckpt_scan *s, mlsec_error *err);
mlsec_err ckpt_fingerprint_compare(ckpt_scan *s, mlsec_error *err);
mlsec_err ckpt_convert(ckpt_scan *s, mlsec_error *err);

/* "<dir>/<stem><suffix>" where stem is the file name without extension. */
char *ckpt_stem_path(const char *dir, const char *path, const char *suffix);

#endif
