/*
 * cmd_adversarial.c - `mlsec adversarial`: robustness regression testing of
 * an ONNX model under FGSM/PGD/CW against a baseline. Flags become the same
 * JSON options the stage service receives, so both share one parser.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mlsec/adversarial.h"

static const char usage[] =
        "usage: mlsec adversarial --model M.onnx [--data D.npz|D.safetensors] [options]\n"
        "\n"
        "Attacks an ONNX classifier and gates on robustness regressions.\n"
        "  --model FILE            ONNX model with a dynamic batch dimension\n"
        "  --data FILE             .npz or .safetensors with x (float32 [N,...]) and y (labels);\n"
        "                          without it: synthetic inputs, labels = the model's predictions\n"
        "  --attack LIST           fgsm,pgd,cw or all (default fgsm,pgd)\n"
        "  --epsilon E[,E...]      L-inf budgets (default 0.03)\n"
        "  --baseline FILE         baseline JSON {model: {attack: {\"epsilon=E\": accuracy}}}\n"
        "  --update-baseline       record this run's accuracies in --baseline (atomic write)\n"
        "  --model-name N          baseline key (default: the model file's stem)\n"
        "  --tolerance T           allowed robust-accuracy drop (default 0.05)\n"
        "  --samples N             first N samples only\n"
        "  --batch-size B          default 64\n"
        "  --pgd-steps S           default 20\n"
        "  --pgd-alpha A           step size (default 2.5 * epsilon / steps)\n"
        "  --pgd-random-init R     random restarts (0 = one deterministic start, default)\n"
        "  --cw-steps S            Adam steps per binary-search round (default 100)\n"
        "  --cw-lr L               default 0.01\n"
        "  --cw-confidence K       kappa (default 0)\n"
        "  --cw-c C                initial trade-off constant (default 1)\n"
        "  --cw-binary-search S    rounds of binary search on c (default 5)\n"
        "  --clip-min X --clip-max Y  input domain (default 0 and 1)\n"
        "  --seed S  --threads T\n";

static const char *const value_flags[] = {
        "data",    "attack",        "epsilon",   "baseline",         "model-name",      "tolerance",
        "samples", "batch-size",    "pgd-steps", "pgd-alpha",        "pgd-random-init", "cw-steps",
        "cw-lr",   "cw-confidence", "cw-c",      "cw-binary-search", "clip-min",        "clip-max",
        "seed",    "threads",       NULL};

static void on_progress(void *ctx, const char *what, double done, double total)
{
	(void)ctx;
	fprintf(stderr, "\r  %-4s %6.0f / %.0f samples", what, done, total);
	if (done >= total)
		fputs("\r\033[K", stderr);
}

int mlsec_cmd_adversarial(int argc, char **argv)
{
	const char *cmd = "adversarial";
	mlsec_cli_output out;
	mlsec_cli_output_init(&out);
	const char *model = NULL;
	json_t *opts = json_object();
	if (!opts)
		return mlsec_cli_fail(cmd, "out of memory");
	int rc = MLSEC_EXIT_ERROR;
	/* The original accepted --attack fgsm pgd (space separated). */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s\n%s", usage, mlsec_cli_output_help);
			json_decref(opts);
			return MLSEC_EXIT_CLEAN;
		}
		int r = mlsec_cli_output_flag(&out, cmd, argc, argv, &i);
		if (r < 0)
			goto done;
		if (r > 0)
			continue;
		int missing = 0;
		const char *v;
		if ((v = mlsec_cli_flag_value("--model", argc, argv, &i, &missing)) || missing) {
			if (!v)
				return json_decref(opts),
				       mlsec_cli_fail(cmd, "--model needs a file");
			model = v;
			continue;
		}
		if (!strcmp(a, "--update-baseline")) {
			json_object_set_new(opts, "update-baseline", json_true());
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
				/* --attack fgsm pgd cw: gather following bare words */
				while (!strcmp(*f, "attack") && i + 1 < argc &&
				       argv[i + 1][0] != '-' &&
				       (!strcmp(argv[i + 1], "fgsm") ||
				        !strcmp(argv[i + 1], "pgd") ||
				        !strcmp(argv[i + 1], "cw"))) {
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
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	mlsec_error e;
	mlsec_error_clear(&e);
	if (mlsec_adv_opts_from_json(opts, &o, &e) != MLSEC_OK) {
		mlsec_cli_fail(cmd, "%s", e.text);
		goto done;
	}
	if (isatty(STDERR_FILENO))
		o.progress = on_progress;
	mlsec_report *rep = mlsec_report_new("adversarial");
	if (!rep) {
		mlsec_cli_fail(cmd, "out of memory");
		goto done;
	}
	mlsec_err err = mlsec_adv_run(model, &o, rep, &e);
	if (err != MLSEC_OK) {
		char buf[1024];
		mlsec_cli_fail(cmd, "%s", mlsec_error_format(&e, buf, sizeof buf));
	} else {
		rc = mlsec_cli_emit(rep, &out, cmd);
		if (!out.quiet && !(out.json && !out.json_path)) {
			/* The attack table: the numbers a person wants to see. */
			json_t *d = mlsec_artifact_details(mlsec_report_artifact(rep, 0));
			json_t *atk = json_object_get(d, "attacks");
			if (json_array_size(atk)) {
				printf("\nclean accuracy %.4f on %lld samples (%s labels)\n",
				       json_real_value(json_object_get(d, "clean_accuracy")),
				       (long long)json_integer_value(json_object_get(d, "samples")),
				       json_string_value(json_object_get(d, "labels")));
				printf("%-6s %9s %9s %9s %10s %10s\n", "attack", "epsilon",
				       "accuracy", "success", "mean_linf", "mean_l2");
				size_t k;
				json_t *x;
				json_array_foreach(atk, k, x)
				{
					json_t *eps = json_object_get(x, "epsilon");
					char eb[32];
					if (json_is_number(eps))
						snprintf(eb, sizeof eb, "%g",
						         json_number_value(eps));
					else
						snprintf(eb, sizeof eb, "-");
					printf("%-6s %9s %9.4f %9.4f %10.4f %10.4f\n",
					       json_string_value(json_object_get(x, "attack")), eb,
					       json_real_value(json_object_get(x, "accuracy")),
					       json_real_value(json_object_get(x, "success_rate")),
					       json_real_value(json_object_get(x, "mean_linf")),
					       json_real_value(json_object_get(x, "mean_l2")));
				}
			}
		}
	}
	mlsec_report_free(rep);
done:
	json_decref(opts);
	return rc;
}
