/*
 * triton_launch_fuzz.c - libFuzzer harness for the tritonserver launch-flag
 * reader: shell-style argument files (quotes, escapes, continuations,
 * script expansion) and Kubernetes/Helm YAML manifests (libyaml, aliases,
 * deep nesting). The first byte picks the mode (detect, shell, YAML) so the
 * corpus can pin each path; the rest is the file. Any input must be audited
 * or reported malformed without a crash, leak or hang.
 */
#include <stddef.h>
#include <stdint.h>

#include "mlsec/report.h"
#include "mlsec/triton.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static mlsec_triton_auditor *aud;
	if (!aud)
		aud = mlsec_triton_auditor_new();
	if (!aud || size < 1)
		return 0;
	int mode = (int)(data[0] % 3) - 1; /* -1 detect, 0 shell, 1 YAML */
	mlsec_report *rep = mlsec_report_new("triton");
	if (!rep)
		return 0;
	mlsec_error err;
	mlsec_triton_audit_launch_text(aud, rep, mode == 1 ? "fuzz/deploy.yaml" : "fuzz/args",
	                               (const char *)data + 1, size - 1, mode, &err);
	mlsec_triton_note_auth_unknown(aud, rep);
	/* The report built from hostile text must serialise. */
	json_t *j = mlsec_report_to_json(rep, MLSEC_SEV_HIGH);
	json_decref(j);
	mlsec_report_free(rep);
	return 0;
}
