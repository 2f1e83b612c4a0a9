/*
 * export_lint_fuzz.c - libFuzzer harness for the export guard's own ONNX
 * decode (wire pre-scan + protobuf-c) and the whole graph lint, on a model
 * held in memory (external data is never opened).
 */
#include <stddef.h>
#include <stdint.h>

#include "mlsec/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_report *r = mlsec_report_new("export");
	if (!r)
		return 0;
	mlsec_error err;
	(void)mlsec_export_lint_onnx_buffer(data, size, "fuzz.onnx", NULL, r, NULL, &err);
	mlsec_report_free(r);
	return 0;
}
