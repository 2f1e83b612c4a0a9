/*
 * cmd_inspect.c - `mlsec inspect`: weight anomalies, activation monitoring
 * and a quick FGSM probe of one model. Flags become the JSON options the
 * stage service receives, so both share one parser; after the findings it
 * prints the per-node activation table and the FGSM line.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mlsec/inspect.h"

static const char usage[] =
        "usage: mlsec inspect --model PATH [options]\n"
        "\n"
        "Inspects a model: weights (ONNX, safetensors, PyTorch zip), activations and FGSM (ONNX).\n"
        "  --model PATH            model file (also accepted as the first bare argument)\n"
        "  --type T                vision|text|tabular|auto (default auto: from the input shape)\n"
        "  --checks LIST           weights,activations,fgsm (default all; the original's\n"
        "                          space-separated form --checks weights fgsm works too)\n"
        "  --data FILE             .npz or .safetensors with x (float32 [N,...]) and y (labels);\n"
        "                          without it: synthetic inputs in [--input-min, --input-max]\n"
        "  --epsilon E             FGSM L-inf budget (default 0.01)\n"
        "  --threshold T           weight magnitude threshold (default 100)\n"
        "  --samples N             first N samples (synthetic default 256)\n"
        "  --batch-size B          default 64\n"
        "  --input-min X --input-max Y  input domain (default 0 and 1)\n"
        "  --seed S  --threads T\n";

static const char *const value_flags[] = {"type",      "checks",  "data",       "epsilon",
                                          "threshold", "samples", "batch-size", "input-min",
                                          "input-max", "seed",    "threads",    NULL};

static int is_check_word(const char *s)
{
	return !strcmp(s, "weights") || !strcmp(s, "activations") || !strcmp(s, "fgsm") ||
	       !strcmp(s, "all");
}

static void on_progress(void *ctx, const char *what, double done, double total)
{
	(void)ctx;
	fprintf(stderr, "\r  %-11s %6.0f / %.0f samples", what, done, total);
	if (done >= total)
		fputs("\r\033[K", stderr);
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* The per-node activation table and the FGSM summary. */
static void print_tables(const mlsec_report *rep)
{
	json_t *d = mlsec_artifact_details(mlsec_report_artifact(rep, 0));
	json_t *act = json_object_get(d, "activations");
	json_t *nodes = json_object_get(act, "nodes");
	if (json_array_size(nodes)) {
		printf("\nactivations on %lld %s inputs\n",
		       (long long)json_integer_value(json_object_get(act, "samples")),
		       json_string_value(json_object_get(act, "inputs")));
		printf("%4s %-28s %-12s %11s %11s %11s %11s %7s %6s %6s\n", "#", "node", "op",
		       "mean", "std", "min", "max", "nonfin", "zero%", "dead%");
		size_t i;
		json_t *n;
		json_array_foreach(nodes, i, n)
		{
			char nonfin[32], dead[16], zero[16];
			snprintf(nonfin, sizeof nonfin, "%lld",
			         (long long)(json_integer_value(json_object_get(n, "nan")) +
			                     json_integer_value(json_object_get(n, "inf"))));
			json_t *df = json_object_get(n, "dead_fraction");
			json_t *sf = json_object_get(n, "saturated_fraction");
			if (df)
				snprintf(dead, sizeof dead, "%.1f", 100 * json_number_value(df));
			else if (sf)
				snprintf(dead, sizeof dead, "s%.1f", 100 * json_number_value(sf));
			else
				snprintf(dead, sizeof dead, "-");
			json_t *zf = json_object_get(n, "zero_fraction");
			if (zf)
				snprintf(zero, sizeof zero, "%.1f", 100 * json_number_value(zf));
			else
				snprintf(zero, sizeof zero, "-");
			const char *name = json_string_value(json_object_get(n, "node"));
			if (!name || !*name)
				name = json_string_value(json_object_get(n, "output"));
			printf("%4lld %-28.28s %-12.12s %11.4g %11.4g %11.4g %11.4g %7s %6s %6s\n",
			       (long long)json_integer_value(json_object_get(n, "index")), name,
			       json_string_value(json_object_get(n, "op")), num(n, "mean"),
			       num(n, "std"), num(n, "min"), num(n, "max"), nonfin, zero, dead);
		}
		printf("(zero%% = exact zeros after ReLU; dead%% = ReLU units that never fired; "
		       "s = sigmoid/tanh saturated%%)\n");
	}
	json_t *f = json_object_get(d, "fgsm");
	if (f) {
		printf("\nfgsm epsilon %g: %lld of %lld predictions flipped (%.1f%%)",
		       num(f, "epsilon"),
		       (long long)json_integer_value(json_object_get(f, "flipped")),
		       (long long)json_integer_value(json_object_get(f, "samples")),
		       100 * num(f, "flip_rate"));
		if (json_object_get(f, "clean_accuracy"))
			printf("; accuracy %.4f -> %.4f", num(f, "clean_accuracy"),
			       num(f, "adversarial_accuracy"));
		printf("\n");
	}
}

int mlsec_cmd_inspect(int argc, char **argv)
{
	const char *cmd = "inspect";
	mlsec_cli_output out;
	mlsec_cli_output_init(&out);
	const char *model = NULL;
	json_t *opts = json_object();
	if (!opts)
		return mlsec_cli_fail(cmd, "out of memory");
	int rc = MLSEC_EXIT_ERROR;
	mlsec_report *rep = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s\n%s", usage, mlsec_cli_output_help);
			rc = MLSEC_EXIT_CLEAN;
			goto done;
		}
		int r = mlsec_cli_output_flag(&out, cmd, argc, argv, &i);
		if (r < 0)
			goto done;
		if (r > 0)
			continue;
		int missing = 0;
		const char *v;
		if ((v = mlsec_cli_flag_value("--model", argc, argv, &i, &missing)) || missing) {
			if (!v) {
				mlsec_cli_fail(cmd, "--model needs a file");
				goto done;
			}
			model = v;
			continue;
		}
		int matched = 0;
		for (const char *const *f = value_flags; *f && !matched; f++) {
			char flag[64];
			snprintf(flag, sizeof flag, "--%s", *f);
			if ((v = mlsec_cli_flag_value(flag, argc, argv, &i, &missing)) || missing) {
				if (!v) {
					mlsec_cli_fail(cmd, "%s needs a value", flag);
					goto done;
				}
				char buf[1024];
				snprintf(buf, sizeof buf, "%s", v);
				/* --checks weights activations fgsm: gather following check words
				 */
				while (!strcmp(*f, "checks") && i + 1 < argc &&
				       is_check_word(argv[i + 1])) {
					strncat(buf, ",", sizeof buf - strlen(buf) - 1);
					strncat(buf, argv[++i], sizeof buf - strlen(buf) - 1);
				}
				json_object_set_new(opts, *f, json_string(buf));
				matched = 1;
			}
		}
		if (matched)
			continue;
		if (a[0] == '-') {
			mlsec_cli_fail(cmd, "unknown option '%s' (see --help)", a);
			goto done;
		}
		if (!model) {
			model = a;
			continue;
		}
		mlsec_cli_fail(cmd, "unexpected argument '%s'", a);
		goto done;
	}
	if (!model) {
		mlsec_cli_fail(cmd, "--model is required (see --help)");
		goto done;
	}
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	mlsec_error e;
	mlsec_error_clear(&e);
	if (mlsec_inspect_opts_from_json(opts, &o, &e) != MLSEC_OK) {
		mlsec_cli_fail(cmd, "%s", e.text);
		goto done;
	}
	if (isatty(STDERR_FILENO))
		o.progress = on_progress;
	rep = mlsec_report_new("inspect");
	if (!rep) {
		mlsec_cli_fail(cmd, "out of memory");
		goto done;
	}
	if (mlsec_inspect_run(model, &o, rep, &e) != MLSEC_OK) {
		char buf[1024];
		mlsec_cli_fail(cmd, "%s", mlsec_error_format(&e, buf, sizeof buf));
		goto done;
	}
	rc = mlsec_cli_emit(rep, &out, cmd);
	if (!out.quiet && !(out.json && !out.json_path) && !out.summary)
		print_tables(rep);
done:
	mlsec_report_free(rep);
	json_decref(opts);
	return rc;
}
