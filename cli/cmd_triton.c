/*
 * cmd_triton.c - `mlsec triton`: audit Triton config.pbtxt files (and,
 * with --launch-args, the tritonserver command line) in-process with the
 * mlsec_triton engine. Parses flags into a request, runs the engine, emits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "mlsec/alloc.h"
#include "mlsec/triton.h"

#define CMD "triton"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mlsec triton TARGET... [--launch-args FILE] [--max-instance-count N]\n"
	        "                    [--threads N] [--summary] [--verbose] [--json [FILE]]\n"
	        "                    [--sarif FILE] [--fail-on SEVERITY]\n\n"
	        "Audits Triton Inference Server model configurations. TARGETs are config.pbtxt\n"
	        "files, directories (searched recursively for config.pbtxt) or glob patterns,\n"
	        "'**' included (quote them; mlsec expands them itself).\n\n"
	        "  --launch-args FILE     also audit the tritonserver command line: a file with\n"
	        "                         its arguments, or a Kubernetes manifest / rendered Helm\n"
	        "                         chart (YAML) whose container runs tritonserver\n"
	        "  --max-instance-count N instances per group above which TRITON-INSTANCE-COUNT\n"
	        "                         fires (default %d)\n"
	        "  --threads N            threads auditing files (default 0: automatic, up to\n"
	        "                         4 when there are many files; the report is the "
	        "same)\n\n%s"
	        "Rules: docs/triton.md.\n",
	        MLSEC_TRITON_DEFAULT_MAX_INSTANCES, mlsec_cli_output_help);
}

int mlsec_cmd_triton(int argc, char **argv)
{
	mlsec_cli_output out;
	mlsec_cli_output_init(&out);
	const char *launch = NULL;
	long max_inst = 0;
	long threads = -1;
	const char **targets = mlsec_calloc((size_t)argc + 1, sizeof *targets);
	if (!targets)
		return mlsec_cli_fail(CMD, "out of memory");
	size_t nt = 0;
	int only_targets = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_targets || a[0] != '-' || !strcmp(a, "-")) {
			targets[nt++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_targets = 1;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			mlsec_free(targets);
			return MLSEC_EXIT_CLEAN;
		}
		int r = mlsec_cli_output_flag(&out, CMD, argc, argv, &i);
		if (r < 0) {
			mlsec_free(targets);
			return MLSEC_EXIT_ERROR;
		}
		if (r > 0)
			continue;
		int missing = 0;
		const char *v;
		if ((v = mlsec_cli_flag_value("--launch-args", argc, argv, &i, &missing)) ||
		    missing) {
			if (!v || !*v) {
				mlsec_free(targets);
				return mlsec_cli_fail(CMD, "--launch-args needs a file");
			}
			launch = v;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--max-instance-count", argc, argv, &i, &missing)) ||
		    missing) {
			char *end = NULL;
			max_inst = v ? strtol(v, &end, 10) : 0;
			if (!v || !*v || *end || max_inst <= 0) {
				mlsec_free(targets);
				return mlsec_cli_fail(CMD,
				                      "--max-instance-count needs a positive "
				                      "integer (got '%s')",
				                      v ? v : "");
			}
			continue;
		}
		if ((v = mlsec_cli_flag_value("--threads", argc, argv, &i, &missing)) || missing) {
			char *end = NULL;
			threads = v ? strtol(v, &end, 10) : -1;
			if (!v || !*v || *end || threads < 0 || threads > 16) {
				mlsec_free(targets);
				return mlsec_cli_fail(
				        CMD, "--threads needs an integer from 0 to 16 (got '%s')",
				        v ? v : "");
			}
			continue;
		}
		mlsec_free(targets);
		return mlsec_cli_fail(CMD, "unknown option '%s' (see 'mlsec triton --help')", a);
	}
	if (nt == 0) {
		mlsec_free(targets);
		usage(stderr);
		return MLSEC_EXIT_ERROR;
	}
	json_t *opts = json_object();
	if (!opts || (launch && json_object_set_new(opts, "launch-args", json_string(launch))) ||
	    (max_inst && json_object_set_new(opts, "max-instance-count", json_integer(max_inst))) ||
	    (threads >= 0 && json_object_set_new(opts, "threads", json_integer(threads)))) {
		json_decref(opts);
		mlsec_free(targets);
		return mlsec_cli_fail(CMD, "out of memory");
	}
	mlsec_report *rep = mlsec_report_new(mlsec_engine_triton.stage);
	mlsec_engine_request req = {.paths = targets, .npaths = nt, .options = opts};
	mlsec_error err;
	mlsec_error_clear(&err);
	int code;
	mlsec_err rc = rep ? mlsec_engine_triton.analyze(&req, rep, &err) : MLSEC_ERR_NOMEM;
	if (rc != MLSEC_OK) {
		char buf[1200];
		code = mlsec_cli_fail(CMD, "%s",
		                      err.text[0] ? mlsec_error_format(&err, buf, sizeof buf)
		                                  : mlsec_strerror(rc));
	} else {
		code = mlsec_cli_emit(rep, &out, CMD);
	}
	mlsec_report_free(rep);
	json_decref(opts);
	mlsec_free(targets);
	return code;
}
