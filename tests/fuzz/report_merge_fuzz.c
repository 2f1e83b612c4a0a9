/*
 * report_merge_fuzz.c - libFuzzer harness for mlsec_report_merge_json, the
 * reader of stage reports carried in StageResult.report_json (mlsec-submit
 * merges every stage's report into one). The input is the JSON text; a
 * report that merges must serialise to JSON, SARIF and the table, and its
 * JSON must merge again (round trip) into the same finding counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	json_error_t je;
	json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
	if (!j)
		return 0;
	mlsec_report *r = mlsec_report_new("cluster");
	mlsec_error err;
	if (r && mlsec_report_merge_json(r, j, &err) == MLSEC_OK) {
		json_t *out = mlsec_report_to_json(r, MLSEC_SEV_HIGH);
		mlsec_report *r2 = mlsec_report_new("cluster");
		if (out && r2) {
			if (mlsec_report_merge_json(r2, out, &err) != MLSEC_OK)
				abort(); /* our own output must read back */
			size_t c1[MLSEC_SEV__COUNT], c2[MLSEC_SEV__COUNT];
			mlsec_report_counts(r, c1);
			mlsec_report_counts(r2, c2);
			if (memcmp(c1, c2, sizeof c1) != 0)
				abort();
		}
		mlsec_report_free(r2);
		json_decref(out);
		if (devnull) {
			mlsec_report_write_json(r, MLSEC_SEV_HIGH, devnull);
			mlsec_report_write_sarif(r, devnull);
			mlsec_table_opts o = {1, 1, 0, MLSEC_SEV_HIGH};
			mlsec_report_print_table(r, &o, devnull);
		}
	}
	mlsec_report_free(r);
	json_decref(j);
	return 0;
}
