/* report_impl.h - the report's private structure, shared by report*.c. */
#ifndef MLSEC_REPORT_IMPL_H
#define MLSEC_REPORT_IMPL_H

#include "mlsec/report.h"
#include "mlsec/sha256.h"

#include <stddef.h>

/*
 * Findings, artifacts and their strings are carved from chunks owned by
 * the report and freed with it: a scan of thousands of small files adds
 * a few findings each, and a malloc/free per string dominated the cost.
 * Setters that replace a string leave the old copy in the arena.
 */
typedef struct report_chunk {
	struct report_chunk *next;
	size_t size;
	max_align_t data[];
} report_chunk;

typedef struct report_arena {
	report_chunk *head;
	char *cur;   /* next free byte in head */
	size_t left; /* bytes left in head */
} report_arena;

struct mlsec_artifact {
	mlsec_report *report; /* whose arena holds our strings */
	char *path;
	char *format;
	char *stage;
	char sha256[MLSEC_SHA256_HEX_LEN];
	uint64_t size;
	json_t *details;
	mlsec_details_fill_fn fill; /* pending lazy details, run once */
	const void *fill_data;
	mlsec_finding **findings;
	size_t nfindings, capfindings;
};

/* What a finding really is: the public struct plus its report. */
typedef struct report_finding {
	mlsec_finding pub; /* first: an mlsec_finding * points here */
	mlsec_report *report;
} report_finding;

struct mlsec_report {
	report_arena arena;
	char *stage;
	mlsec_artifact **artifacts;
	size_t nartifacts, capartifacts;
	char **errors;
	size_t nerrors, caperrors;
};

/*
 * The shared, never-modified empty evidence object every finding starts
 * with (one json_object per finding was a malloc pair each). Setters
 * replace it with a fresh object before the first write.
 */
json_t *report_empty_evidence(void);
/* Runs a pending details fill (the report is logically const to readers). */
void report_details_ready(const mlsec_artifact *a);
/* Makes f->evidence a private object that may be written. 0 on NOMEM. */
int report_evidence_own(mlsec_finding *f);

/* json_dumpf through a 64 KiB buffer: 0, or -1 on a write error. */
int report_json_dump(const json_t *j, FILE *out, size_t flags);

#endif
