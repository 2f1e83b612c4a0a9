/*
 * cmd_checkpoint.c - `mlsec checkpoint PATH...`: triage checkpoints with
 * the in-process checkpoint engine. Flags map one to one onto the engine's
 * JSON options (see mlsec/checkpoint.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mlsec/checkpoint.h"

static const char usage[] =
        "usage: mlsec checkpoint PATH... [options]\n"
        "\n"
        "Triage model checkpoints (PyTorch zip/legacy, pickle, npy/npz, safetensors;\n"
        "directories are walked recursively) without executing them: pickle imports\n"
        "and tricks, hidden zip members, NaN/Inf, magnitude and outlier anomalies,\n"
        "drift against a reference fingerprint.\n"
        "\n"
        "options:\n"
        "  --threshold X            max |w| before CKPT-MAGNITUDE (default 100)\n"
        "  --write-fingerprint DIR  write DIR/<stem>.fingerprint.json per checkpoint\n"
        "  --reference FILE         compare against a fingerprint (alias\n"
        "                           --reference-fingerprint)\n"
        "  --kl-threshold K         KL divergence before CKPT-FP-KL (default 0.5)\n"
        "  --convert-safetensors    write <stem>.safetensors next to each clean input\n"
        "  --overwrite              allow replacing an existing .safetensors\n"
        "  --no-hash                skip the SHA-256 of each file in the report\n"
        "  -h, --help               this help\n"
        "\n";

typedef struct progress_state {
	int shown;
} progress_state;

static void on_progress(void *ctx, const char *what, double done, double total)
{
	progress_state *p = ctx;
	if (total <= 0)
		return;
	fprintf(stderr, "\r\033[Kmlsec checkpoint: %s %.1f/%.1f GiB (%.0f%%)", what,
	        done / (1 << 30), total / (1 << 30), 100.0 * done / total);
	fflush(stderr);
	p->shown = 1;
}

static int value_flag(json_t *opts, const char *flag, const char *key, int number, int argc,
                      char **argv, int *i, int *handled)
{
	int missing;
	const char *v = mlsec_cli_flag_value(flag, argc, argv, i, &missing);
	if (!v && !missing)
		return 0;
	*handled = 1;
	if (missing)
		return mlsec_cli_fail("checkpoint", "%s needs a value", flag);
	if (number) {
		char *end;
		double d = strtod(v, &end);
		if (end == v || *end || !(d > 0))
			return mlsec_cli_fail("checkpoint", "%s: '%s' is not a positive number",
			                      flag, v);
		json_object_set_new(opts, key, json_real(d));
	} else {
		json_object_set_new(opts, key, json_string(v));
	}
	return 0;
}

int mlsec_cmd_checkpoint(int argc, char **argv)
{
	mlsec_cli_output out;
	mlsec_cli_output_init(&out);
	json_t *opts = json_object();
	const char **paths = calloc((size_t)argc, sizeof(char *));
	size_t npaths = 0;
	int rc = MLSEC_EXIT_CLEAN;
	if (!opts || !paths) {
		rc = mlsec_cli_fail("checkpoint", "out of memory");
		goto done;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			fputs(mlsec_cli_output_help, stdout);
			goto done;
		}
		int r = mlsec_cli_output_flag(&out, "checkpoint", argc, argv, &i);
		if (r < 0) {
			rc = MLSEC_EXIT_ERROR;
			goto done;
		}
		if (r > 0)
			continue;
		int handled = 0;
		static const struct {
			const char *flag, *key;
			int number;
		} vf[] = {{"--threshold", "threshold", 1},
		          {"--kl-threshold", "kl-threshold", 1},
		          {"--write-fingerprint", "write-fingerprint", 0},
		          {"--reference-fingerprint", "reference", 0},
		          {"--reference", "reference", 0}};
		for (size_t k = 0; k < sizeof vf / sizeof vf[0] && !handled; k++) {
			if (value_flag(opts, vf[k].flag, vf[k].key, vf[k].number, argc, argv, &i,
			               &handled)) {
				rc = MLSEC_EXIT_ERROR;
				goto done;
			}
		}
		if (handled)
			continue;
		if (!strcmp(a, "--convert-safetensors")) {
			json_object_set_new(opts, "convert-safetensors", json_true());
		} else if (!strcmp(a, "--overwrite")) {
			json_object_set_new(opts, "overwrite", json_true());
		} else if (!strcmp(a, "--no-hash")) {
			json_object_set_new(opts, "no-hash", json_true());
		} else if (a[0] == '-' && a[1]) {
			rc = mlsec_cli_fail("checkpoint", "unknown option '%s' (see --help)", a);
			goto done;
		} else {
			paths[npaths++] = a;
		}
	}
	if (!npaths) {
		rc = mlsec_cli_fail("checkpoint", "no checkpoint given (see --help)");
		goto done;
	}
	json_object_set_new(opts, "fail-on", json_string(mlsec_severity_name(out.gate)));
	progress_state ps = {0};
	mlsec_engine_request req = {0};
	req.paths = paths;
	req.npaths = npaths;
	req.options = opts;
	if (isatty(STDERR_FILENO)) {
		req.progress = on_progress;
		req.progress_ctx = &ps;
	}
	mlsec_report *rep = mlsec_report_new("checkpoint");
	if (!rep) {
		rc = mlsec_cli_fail("checkpoint", "out of memory");
		goto done;
	}
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_err e = mlsec_engine_checkpoint.analyze(&req, rep, &err);
	if (ps.shown)
		fputs("\r\033[K", stderr);
	if (e != MLSEC_OK) {
		char buf[1200];
		rc = mlsec_cli_fail("checkpoint", "%s", mlsec_error_format(&err, buf, sizeof buf));
	} else {
		rc = mlsec_cli_emit(rep, &out, "checkpoint");
	}
	mlsec_report_free(rep);
done:
	json_decref(opts);
	free(paths);
	return rc;
}
