/*
 * attestation_fuzz.c - libFuzzer harness for the export guard's hardened
 * attestation parser (DSSE envelope -> base64 payload -> in-toto statement
 * -> stage records, order and links). No file is touched.
 */
#include <stddef.h>
#include <stdint.h>

#include "mlsec/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_report *r = mlsec_report_new("export");
	if (!r)
		return 0;
	mlsec_artifact *a = mlsec_report_add_artifact(r, "fuzz", "attestation");
	mlsec_error err;
	(void)mlsec_export_attestation_check((const char *)data, size, a, &err);
	mlsec_report_free(r);
	return 0;
}
