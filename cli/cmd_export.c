/*
 * cmd_export.c - `mlsec export-guard`: lint an ONNX export and write its
 * provenance attestation; `mlsec export-guard verify`: check one.
 * Argument parsing only; the work is in services/export (mlsec/export.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mlsec/alloc.h"
#include "mlsec/export.h"
#include "mlsec/fsutil.h"

#define CMD "export-guard"
#define MAX_ARTIFACT_ARGS 16

static const char usage_lint[] =
        "usage: mlsec export-guard --output MODEL.onnx [--model SOURCE.pt|.safetensors]\n"
        "                          [--engine MODEL.plan] [--format onnx]\n"
        "                          [--attestation provenance.json] [--sign-key KEY.pem]\n"
        "                          [--allowed-domain D]... [--constant-threshold 1e3]\n"
        "       mlsec export-guard verify --attestation provenance.json [--verify-key PUB.pem]\n"
        "                          [ARTIFACT...]\n\n"
        "Lints the ONNX graph (custom domains, external-data traversal, input-triggered\n"
        "If/Where/Loop backdoors, hostile constants, metadata, opsets) and writes an\n"
        "in-toto provenance chain checkpoint -> ONNX -> TensorRT in a DSSE envelope,\n"
        "signed with Ed25519 when --sign-key is given. verify recomputes every digest,\n"
        "link, lint summary and the signature; a mismatch is critical and names the stage.\n\n";

static int help(void)
{
	fputs(usage_lint, stdout);
	fputs(mlsec_cli_output_help, stdout);
	return MLSEC_EXIT_CLEAN;
}

static int cmd_verify(int argc, char **argv)
{
	mlsec_cli_output out;
	mlsec_cli_output_init(&out);
	mlsec_export_verify_req vr = {0};
	const char *arts[MAX_ARTIFACT_ARGS];
	for (int i = 1; i < argc; i++) {
		int missing = 0, r;
		const char *v;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return help();
		if ((r = mlsec_cli_output_flag(&out, CMD, argc, argv, &i)) != 0) {
			if (r < 0)
				return MLSEC_EXIT_ERROR;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--attestation", argc, argv, &i, &missing)) ||
		    missing) {
			if (!v)
				return mlsec_cli_fail(CMD, "--attestation needs a file");
			vr.attestation = v;
		} else if ((v = mlsec_cli_flag_value("--verify-key", argc, argv, &i, &missing)) ||
		           missing) {
			if (!v)
				return mlsec_cli_fail(CMD, "--verify-key needs a PEM file");
			vr.verify_key_path = v;
		} else if (argv[i][0] == '-') {
			return mlsec_cli_fail(CMD, "verify: unknown option '%s'", argv[i]);
		} else {
			if (vr.nartifacts == MAX_ARTIFACT_ARGS)
				return mlsec_cli_fail(CMD, "at most %d artifacts",
				                      MAX_ARTIFACT_ARGS);
			arts[vr.nartifacts++] = argv[i];
		}
	}
	if (!vr.attestation)
		return mlsec_cli_fail(CMD, "verify needs --attestation FILE");
	vr.artifacts = arts;
	mlsec_report *rep = mlsec_report_new("export");
	if (!rep)
		return mlsec_cli_fail(CMD, "out of memory");
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_err rc = mlsec_export_verify(&vr, rep, &err);
	int code;
	if (rc != MLSEC_OK) {
		char buf[1100];
		code = mlsec_cli_fail(CMD, "%s", mlsec_error_format(&err, buf, sizeof buf));
	} else {
		code = mlsec_cli_emit(rep, &out, CMD);
	}
	mlsec_report_free(rep);
	return code;
}

int mlsec_cmd_export(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	mlsec_cli_output out;
	mlsec_cli_output_init(&out);
	const char *doms[MLSEC_EXPORT_MAX_ALLOWED_DOMAINS];
	mlsec_export_opts o;
	mlsec_export_opts_init(&o);
	o.allowed_domains = doms;
	mlsec_export_attest_req ar = {0};
	const char *attestation = NULL;
	for (int i = 1; i < argc; i++) {
		int missing = 0, r;
		const char *v;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return help();
		if ((r = mlsec_cli_output_flag(&out, CMD, argc, argv, &i)) != 0) {
			if (r < 0)
				return MLSEC_EXIT_ERROR;
			continue;
		}
#define FLAG(name) ((v = mlsec_cli_flag_value(name, argc, argv, &i, &missing)) || missing)
		if (FLAG("--model")) {
			ar.source = v;
		} else if (FLAG("--output")) {
			ar.onnx = v;
		} else if (FLAG("--engine")) {
			ar.engine = v;
		} else if (FLAG("--attestation")) {
			attestation = v;
		} else if (FLAG("--sign-key")) {
			ar.sign_key_path = v;
		} else if (FLAG("--format")) {
			if (v && strcmp(v, "onnx"))
				return mlsec_cli_fail(CMD, "--format: only 'onnx' is supported");
		} else if (FLAG("--allowed-domain")) {
			if (v && o.nallowed == MLSEC_EXPORT_MAX_ALLOWED_DOMAINS)
				return mlsec_cli_fail(CMD, "too many --allowed-domain");
			if (v)
				doms[o.nallowed++] = v;
		} else if (FLAG("--constant-threshold")) {
			char *end = NULL;
			o.constant_threshold = v ? strtod(v, &end) : 0;
			if (!v || !end || *end || !(o.constant_threshold > 0))
				return mlsec_cli_fail(CMD, "--constant-threshold needs a positive "
				                           "number");
			continue;
		} else {
			return mlsec_cli_fail(CMD, "unknown option '%s' (see --help)", argv[i]);
		}
#undef FLAG
		if (!v || !*v)
			return mlsec_cli_fail(CMD, "%s needs a value",
			                      missing || strchr(argv[i], '=') ? argv[i]
			                                                      : argv[i - 1]);
	}
	if (!ar.onnx)
		return mlsec_cli_fail(CMD, "--output MODEL.onnx is required");
	if (ar.sign_key_path && !attestation)
		return mlsec_cli_fail(CMD, "--sign-key needs --attestation FILE");

	mlsec_report *rep = mlsec_report_new("export");
	if (!rep)
		return mlsec_cli_fail(CMD, "out of memory");
	mlsec_error err;
	mlsec_error_clear(&err);
	char buf[1100];
	mlsec_artifact *la = NULL;
	int code;
	if (mlsec_export_lint_onnx(ar.onnx, &o, rep, &la, &err) != MLSEC_OK) {
		code = mlsec_cli_fail(CMD, "%s", mlsec_error_format(&err, buf, sizeof buf));
		goto done;
	}
	if (attestation) {
		ar.onnx_lint = la;
		ar.opts = &o;
		char *text = NULL;
		size_t len = 0;
		mlsec_err rc = mlsec_export_attest(&ar, &text, &len, &err);
		if (rc == MLSEC_ERR_PARSE || rc == MLSEC_ERR_LIMIT) {
			/* An artifact of the chain does not parse: that is a
			 * finding on it, and no attestation is written for it. */
			mlsec_artifact *bad = la;
			if (ar.source && strstr(err.text, ar.source))
				bad = mlsec_report_add_artifact(rep, ar.source, NULL);
			if (bad)
				mlsec_artifact_add_malformed(bad, "EXPORT", &err);
			mlsec_report_add_error(rep, "attestation not written: %s", err.text);
		} else if (rc != MLSEC_OK) {
			code = mlsec_cli_fail(CMD, "%s", mlsec_error_format(&err, buf, sizeof buf));
			goto done;
		} else if (mlsec_file_write_atomic(attestation, text, len, 0644, &err) !=
		           MLSEC_OK) {
			mlsec_free(text);
			code = mlsec_cli_fail(CMD, "%s", mlsec_error_format(&err, buf, sizeof buf));
			goto done;
		}
		mlsec_free(text);
	}
	code = mlsec_cli_emit(rep, &out, CMD);
done:
	mlsec_report_free(rep);
	return code;
}
