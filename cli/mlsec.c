/*
 * mlsec.c - the `mlsec` command: runs the stage engines in-process, with
 * the subcommands of the original Python mlsec.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} subcommand;

/* Each cli/cmd_<stage>.c defines mlsec_cmd_<stage>(); CMake defines
 * MLSEC_HAVE_CMD_<STAGE> for those present in this build. */
#define CMD(stage) int mlsec_cmd_##stage(int argc, char **argv);
#ifdef MLSEC_HAVE_CMD_TRITON
CMD(triton)
#endif
#ifdef MLSEC_HAVE_CMD_CHECKPOINT
CMD(checkpoint)
#endif
#ifdef MLSEC_HAVE_CMD_ADVERSARIAL
CMD(adversarial)
#endif
#ifdef MLSEC_HAVE_CMD_INSPECT
CMD(inspect)
#endif
#ifdef MLSEC_HAVE_CMD_EXPORT
CMD(export)
#endif
#ifdef MLSEC_HAVE_CMD_POISON
CMD(poison)
#endif

static const subcommand subcommands[] = {
#ifdef MLSEC_HAVE_CMD_TRITON
        {"triton", mlsec_cmd_triton, "audit Triton config.pbtxt files and launch flags"},
#endif
#ifdef MLSEC_HAVE_CMD_CHECKPOINT
        {"checkpoint", mlsec_cmd_checkpoint,
         "triage checkpoints: pickles, NaN/Inf, anomalies, drift"},
#endif
#ifdef MLSEC_HAVE_CMD_ADVERSARIAL
        {"adversarial", mlsec_cmd_adversarial,
         "FGSM/PGD/CW robustness regression against a baseline"},
#endif
#ifdef MLSEC_HAVE_CMD_INSPECT
        {"inspect", mlsec_cmd_inspect, "weights, activations and an FGSM probe of a model"},
#endif
#ifdef MLSEC_HAVE_CMD_EXPORT
        {"export-guard", mlsec_cmd_export, "lint ONNX exports; signed provenance chain"},
#endif
#ifdef MLSEC_HAVE_CMD_POISON
        {"poison-monitor", mlsec_cmd_poison, "CUSUM detection of gradient poisoning"},
#endif
        {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mlsec <command> [options] ...\n\n"
	        "Security gates for ML pipelines (version %s).\n\ncommands:\n",
	        MLSEC_VERSION);
	for (const subcommand *c = subcommands; c->name; c++)
		fprintf(out, "  %-16s %s\n", c->name, c->summary);
	fprintf(out, "\n'mlsec <command> --help' for a command's options.\n"
	             "Exit codes: 0 clean, 1 tool error, 2 finding at or above --fail-on.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return MLSEC_EXIT_ERROR;
	}
	const char *name = argv[1];
	if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
		usage(stdout);
		return MLSEC_EXIT_CLEAN;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "version")) {
		printf("mlsec %s\n", MLSEC_VERSION);
		return MLSEC_EXIT_CLEAN;
	}
	for (const subcommand *c = subcommands; c->name; c++)
		if (!strcmp(c->name, name))
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "mlsec: unknown command '%s' (see 'mlsec --help')\n", name);
	return MLSEC_EXIT_ERROR;
}
