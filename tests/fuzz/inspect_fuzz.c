/*
 * inspect_fuzz.c - libFuzzer harness for the inspect engine: the input is
 * written to a scratch file and inspected with every check (model sniffing,
 * ONNX/safetensors/PyTorch weight loading, the per-layer checks, and a
 * tiny activation + FGSM run on whatever ONNX graph compiles). Anything
 * may be a finding; nothing may crash, leak or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlsec/inspect.h"

static char path[4096];

static void cleanup(void)
{
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path[0]) {
		/* libFuzzer may leave without atexit handlers: CI points TMPDIR
		 * at a scratch directory it removes */
		const char *dir = getenv("TMPDIR");
		snprintf(path, sizeof path, "%s/mlsec-inspect-fuzz.XXXXXX",
		         dir && *dir ? dir : "/tmp");
		int fd = mkstemp(path);
		if (fd < 0)
			abort();
		close(fd);
		atexit(cleanup);
	}
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.samples = 4;
	o.batch = 2;
	mlsec_report *r = mlsec_report_new("inspect");
	if (r) {
		mlsec_error e;
		mlsec_inspect_run(path, &o, r, &e);
		mlsec_report_free(r);
	}
	return 0;
}
