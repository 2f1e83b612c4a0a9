/*
 * cli.h - what every mlsec command line shares: output flags, report
 * emission, exit codes and one-line errors.
 *
 * Exit codes: 0 clean, 1 the tool could not do its job, 2 a finding at or
 * above the gate (--fail-on, default high).
 */
#ifndef MLSEC_CLI_H
#define MLSEC_CLI_H

#include <stdio.h>

#include "mlsec/report.h"

#define MLSEC_EXIT_CLEAN 0
#define MLSEC_EXIT_ERROR 1
#define MLSEC_EXIT_FINDING 2

typedef struct mlsec_cli_output {
	int json;               /* --json: JSON report (to json_path or stdout) */
	const char *json_path;  /* --json FILE / --json=FILE, NULL = stdout */
	const char *sarif_path; /* --sarif FILE */
	mlsec_severity gate;    /* --fail-on SEVERITY */
	int summary;            /* --summary */
	int verbose;            /* --verbose */
	int color;              /* auto: stdout is a TTY and NO_COLOR unset */
	int quiet;              /* --quiet: no table */
} mlsec_cli_output;

void mlsec_cli_output_init(mlsec_cli_output *o);

/*
 * If argv[*i] is one of the shared output flags, consumes it (and its value,
 * advancing *i) and returns 1. Returns 0 when it is not a shared flag, and
 * -1 after printing a one-line error for a bad value.
 */
int mlsec_cli_output_flag(mlsec_cli_output *o, const char *cmd, int argc, char **argv, int *i);

/* Help text for the shared flags, for the commands' --help. */
extern const char mlsec_cli_output_help[];

/*
 * Writes the table (stdout, unless JSON goes to stdout), the JSON and SARIF
 * files as asked, and returns the exit code: 2 finding at/above gate, 1 when
 * an output could not be written or the report holds errors, else 0.
 */
int mlsec_cli_emit(const mlsec_report *r, const mlsec_cli_output *o, const char *cmd);

/* Prints "mlsec CMD: message" to stderr and returns MLSEC_EXIT_ERROR. */
int mlsec_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Value of a flag given as --name=VALUE or --name VALUE; NULL if argv[*i]
 * is not --name. Sets *missing when the value is absent. */
const char *mlsec_cli_flag_value(const char *name, int argc, char **argv, int *i, int *missing);

#endif
