/* cli_output.c - output flags, report emission and exit codes shared by
 * every mlsec command line (mlsec <stage>, mlsec-submit). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char mlsec_cli_output_help[] =
        "output:\n"
        "  --json [FILE]      JSON report to stdout, or to FILE (also --json=FILE)\n"
        "  --sarif FILE       SARIF 2.1.0 report to FILE (GitHub code scanning)\n"
        "  --fail-on SEV      exit 2 on findings at or above SEV: info, low, medium,\n"
        "                     high (default), critical\n"
        "  --summary          one line per artifact with counts per severity\n"
        "  --verbose          detail, evidence and remediation under each finding\n"
        "  --quiet            no table (exit code and JSON/SARIF only)\n"
        "  --no-color         no ANSI colours (also NO_COLOR=1)\n"
        "exit codes: 0 clean, 1 tool error, 2 finding at or above --fail-on\n";

void mlsec_cli_output_init(mlsec_cli_output *o)
{
	memset(o, 0, sizeof *o);
	o->gate = MLSEC_SEV_HIGH;
	const char *nc = getenv("NO_COLOR");
	o->color = isatty(STDOUT_FILENO) && !(nc && *nc);
}

int mlsec_cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "mlsec%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return MLSEC_EXIT_ERROR;
}

const char *mlsec_cli_flag_value(const char *name, int argc, char **argv, int *i, int *missing)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	*missing = 0;
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int mlsec_cli_output_flag(mlsec_cli_output *o, const char *cmd, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	int missing = 0;
	const char *v;
	if (!strcmp(a, "--json")) {
		o->json = 1;
		/* `--json FILE` only when FILE clearly names a JSON output, so
		 * that `--json models/` keeps models/ as a target. */
		if (*i + 1 < argc && ends_with(argv[*i + 1], ".json") && argv[*i + 1][0] != '-')
			o->json_path = argv[++*i];
		return 1;
	}
	if (!strncmp(a, "--json=", 7)) {
		o->json = 1;
		o->json_path = a + 7;
		if (!*o->json_path)
			return mlsec_cli_fail(cmd, "--json= needs a file name"), -1;
		return 1;
	}
	if ((v = mlsec_cli_flag_value("--sarif", argc, argv, i, &missing)) || missing) {
		if (!v || !*v)
			return mlsec_cli_fail(cmd, "--sarif needs a file name"), -1;
		o->sarif_path = v;
		return 1;
	}
	if ((v = mlsec_cli_flag_value("--fail-on", argc, argv, i, &missing)) || missing) {
		if (!v || mlsec_severity_parse(v, &o->gate) != MLSEC_OK)
			return mlsec_cli_fail(cmd,
			                      "--fail-on needs one of info, low, medium, high, "
			                      "critical (got '%s')",
			                      v ? v : ""),
			       -1;
		return 1;
	}
	if (!strcmp(a, "--summary")) {
		o->summary = 1;
		return 1;
	}
	if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
		o->verbose = 1;
		return 1;
	}
	if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
		o->quiet = 1;
		return 1;
	}
	if (!strcmp(a, "--no-color") || !strcmp(a, "--no-colour")) {
		o->color = 0;
		return 1;
	}
	return 0;
}

static int write_file(const char *cmd, const char *path, const mlsec_report *r,
                      const mlsec_cli_output *o, int sarif)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return mlsec_cli_fail(cmd, "cannot write %s: %s", path, strerror(errno));
	mlsec_err rc =
	        sarif ? mlsec_report_write_sarif(r, f) : mlsec_report_write_json(r, o->gate, f);
	if (fclose(f) != 0 || rc != MLSEC_OK)
		return mlsec_cli_fail(cmd, "cannot write %s: %s", path,
		                      mlsec_strerror(rc ? rc : MLSEC_ERR_IO));
	return 0;
}

int mlsec_cli_emit(const mlsec_report *r, const mlsec_cli_output *o, const char *cmd)
{
	int failed = 0;
	int json_stdout = o->json && !o->json_path;
	/* JSON on stdout replaces the table, keeping stdout parseable. */
	if (!o->quiet && !json_stdout) {
		mlsec_table_opts t = {.color = o->color,
		                      .verbose = o->verbose,
		                      .summary = o->summary,
		                      .gate = o->gate};
		mlsec_report_print_table(r, &t, stdout);
	}
	if (json_stdout && mlsec_report_write_json(r, o->gate, stdout) != MLSEC_OK)
		failed = mlsec_cli_fail(cmd, "cannot write the JSON report to stdout");
	if (o->json_path && write_file(cmd, o->json_path, r, o, 0))
		failed = 1;
	if (o->sarif_path && write_file(cmd, o->sarif_path, r, o, 1))
		failed = 1;
	int code = mlsec_report_exit_code(r, o->gate);
	if (code == MLSEC_EXIT_FINDING)
		return code;
	return failed ? MLSEC_EXIT_ERROR : code;
}
