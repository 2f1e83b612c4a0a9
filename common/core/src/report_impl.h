/* report_impl.h - the report's private structure, shared by report*.c. */
#ifndef MLSEC_REPORT_IMPL_H
#define MLSEC_REPORT_IMPL_H

#include "mlsec/report.h"
#include "mlsec/sha256.h"

struct mlsec_artifact {
	char *path;
	char *format;
	char *stage;
	char sha256[MLSEC_SHA256_HEX_LEN];
	uint64_t size;
	json_t *details;
	mlsec_finding **findings;
	size_t nfindings, capfindings;
};

struct mlsec_report {
	char *stage;
	mlsec_artifact **artifacts;
	size_t nartifacts, capartifacts;
	char **errors;
	size_t nerrors, caperrors;
};

#endif
