/*
 * fuzz_pbtxt.c - libFuzzer harness for the protobuf text-format parser and
 * the Triton rules behind it: any input must parse or fail cleanly (no
 * crash, leak, hang or sanitizer report), and a parsed config must survive
 * every rule. One parser/auditor is reused across inputs, as in a batch run.
 */
#include <stddef.h>
#include <stdint.h>

#include "mlsec/pbtxt.h"
#include "mlsec/triton.h"
#include "model_config.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static mlsec_pbtxt *parser;
	static mlsec_triton_auditor *aud;
	if (!parser)
		parser = mlsec_pbtxt_new(NULL);
	if (!aud)
		aud = mlsec_triton_auditor_new();
	if (!parser || !aud)
		return 0;
	ProtobufCMessage *m = NULL;
	mlsec_error err;
	mlsec_pbtxt_parse(parser, &inference__model_config__descriptor, (const char *)data, size,
	                  &m, &err);
	/* Through the engine path too: parse + all rules into a report. */
	mlsec_report *rep = mlsec_report_new("triton");
	if (rep) {
		mlsec_triton_audit_text(aud, rep, "fuzz/config.pbtxt", (const char *)data, size,
		                        &err);
		/* The same bytes as launch flags (shell words or YAML). */
		mlsec_triton_audit_launch_text(aud, rep, "fuzz/args", (const char *)data, size,
		                               size && (data[0] & 1), &err);
		mlsec_report_free(rep);
	}
	return 0;
}
