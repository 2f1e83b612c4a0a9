/*
 * test_export_lint.c - every lint rule against its positive and negative
 * fixture (tests/data/export/lint, made by make_fixtures.py), the clean
 * torch exports at the default gate, and the cases that need a scratch
 * directory (symlinked external data).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/export.h"

#define DATA "tests/data/export/"

typedef struct lint_case {
	const char *file;
	const char *rule;         /* must be present (NULL: none expected) */
	const char *absent;       /* must not be present */
	int exit_code;            /* at the default gate */
	const char *allow_domain; /* --allowed-domain */
	double threshold;         /* 0 = default */
} lint_case;

static const lint_case cases[] = {
        {"clean_mlp.onnx", NULL, NULL, 0, NULL, 0},
        {"clean_cnn.onnx", NULL, NULL, 0, NULL, 0},
        {"clean_lstm.onnx", NULL, NULL, 0, NULL, 0},
        {"clean_encoder.onnx", NULL, NULL, 0, NULL, 0},
        {"clean_causal.onnx", NULL, "EXPORT-TRIGGER-BACKDOOR", 0, NULL, 0},
        {"clean_padmask.onnx", NULL, "EXPORT-TRIGGER-BACKDOOR", 0, NULL, 0},
        {"chain/model.onnx", NULL, NULL, 0, NULL, 0},
        {"lint/pos_custom_domain.onnx", "EXPORT-CUSTOM-DOMAIN", NULL, 0, NULL, 0},
        {"lint/pos_custom_domain.onnx", NULL, "EXPORT-CUSTOM-DOMAIN", 0, "com.example", 0},
        {"lint/neg_custom_domain.onnx", NULL, "EXPORT-CUSTOM-DOMAIN", 0, NULL, 0},
        {"lint/pos_code_exec.onnx", "EXPORT-CODE-EXEC-OP", NULL, 2, NULL, 0},
        {"lint/pos_code_exec.onnx", "EXPORT-CODE-EXEC-OP", NULL, 2, "ai.onnx.contrib", 0},
        {"lint/neg_code_exec.onnx", NULL, "EXPORT-CODE-EXEC-OP", 0, NULL, 0},
        {"lint/pos_ext_absolute.onnx", "EXPORT-EXTERNAL-DATA-TRAVERSAL", NULL, 2, NULL, 0},
        {"lint/pos_ext_dotdot.onnx", "EXPORT-EXTERNAL-DATA-TRAVERSAL", NULL, 2, NULL, 0},
        {"lint/pos_ext_nested.onnx", "EXPORT-EXTERNAL-DATA-TRAVERSAL", NULL, 2, NULL, 0},
        {"lint/pos_ext_range.onnx", "EXPORT-EXTERNAL-DATA-RANGE", NULL, 2, NULL, 0},
        {"lint/neg_ext_ok.onnx", NULL, "EXPORT-EXTERNAL-DATA-TRAVERSAL", 0, NULL, 0},
        {"lint/pos_trigger_if.onnx", "EXPORT-TRIGGER-BACKDOOR", NULL, 2, NULL, 0},
        {"lint/neg_trigger_if.onnx", NULL, "EXPORT-TRIGGER-BACKDOOR", 0, NULL, 0},
        {"lint/pos_trigger_where.onnx", "EXPORT-TRIGGER-BACKDOOR", NULL, 2, NULL, 0},
        {"lint/neg_trigger_where.onnx", NULL, "EXPORT-TRIGGER-BACKDOOR", 0, NULL, 0},
        {"lint/pos_trigger_loop.onnx", "EXPORT-TRIGGER-BACKDOOR", NULL, 2, NULL, 0},
        {"lint/pos_subgraph.onnx", "EXPORT-SUBGRAPH", NULL, 0, NULL, 0},
        {"lint/neg_subgraph.onnx", NULL, "EXPORT-SUBGRAPH", 0, NULL, 0},
        {"lint/pos_unreachable.onnx", "EXPORT-OUTPUT-UNREACHABLE", NULL, 0, NULL, 0},
        {"lint/neg_unreachable.onnx", NULL, "EXPORT-OUTPUT-UNREACHABLE", 0, NULL, 0},
        {"lint/pos_input_shadowed.onnx", "EXPORT-INPUT-SHADOWED", NULL, 0, NULL, 0},
        {"lint/neg_input_shadowed.onnx", NULL, "EXPORT-INPUT-SHADOWED", 0, NULL, 0},
        {"lint/pos_const_large.onnx", "EXPORT-CONSTANT-LARGE", NULL, 2, NULL, 0},
        {"lint/pos_const_large.onnx", NULL, "EXPORT-CONSTANT-LARGE", 0, NULL, 1e7},
        {"lint/neg_const_large.onnx", NULL, "EXPORT-CONSTANT-LARGE", 0, NULL, 0},
        {"lint/neg_const_fill.onnx", "EXPORT-CONSTANT-LARGE", "EXPORT-TRIGGER-BACKDOOR", 0, NULL,
         0},
        {"lint/pos_const_nonfinite.onnx", "EXPORT-CONSTANT-NONFINITE", NULL, 2, NULL, 0},
        {"lint/neg_const_nonfinite.onnx", "EXPORT-CONSTANT-NONFINITE", NULL, 0, NULL, 0},
        {"lint/pos_dims_mismatch.onnx", "EXPORT-TENSOR-DIMS", NULL, 2, NULL, 0},
        {"lint/pos_dims_negative.onnx", "EXPORT-TENSOR-DIMS", NULL, 2, NULL, 0},
        {"lint/neg_const_large.onnx", NULL, "EXPORT-TENSOR-DIMS", 0, NULL, 0},
        {"lint/pos_string_tensor.onnx", "EXPORT-STRING-TENSOR", NULL, 0, NULL, 0},
        {"lint/pos_string_constant.onnx", "EXPORT-STRING-TENSOR", NULL, 0, NULL, 0},
        {"lint/pos_dims_declared.onnx", "EXPORT-TENSOR-DIMS", NULL, 0, NULL, 0},
        {"lint/pos_meta_url.onnx", "EXPORT-SUSPICIOUS-TEXT", NULL, 0, NULL, 0},
        {"lint/pos_meta_script.onnx", "EXPORT-SUSPICIOUS-TEXT", NULL, 2, NULL, 0},
        {"lint/neg_meta.onnx", NULL, "EXPORT-SUSPICIOUS-TEXT", 0, NULL, 0},
        {"lint/pos_duplicate.onnx", "EXPORT-DUPLICATE-NAME", NULL, 2, NULL, 0},
        {"lint/pos_unused.onnx", "EXPORT-UNUSED", NULL, 0, NULL, 0},
        {"lint/neg_custom_domain.onnx", NULL, "EXPORT-UNUSED", 0, NULL, 0},
        {"lint/pos_opset_op.onnx", "EXPORT-OPSET", NULL, 0, NULL, 0},
        {"lint/pos_opset_ir.onnx", "EXPORT-OPSET", NULL, 0, NULL, 0},
        {"lint/neg_opset_op.onnx", NULL, "EXPORT-OPSET", 0, NULL, 0},
        {"lint/pos_malformed_truncated.onnx", "EXPORT-MALFORMED", NULL, 2, NULL, 0},
        {"lint/pos_malformed_garbage.onnx", "EXPORT-MALFORMED", NULL, 2, NULL, 0},
        /* 1,200 medium findings before a critical one: the cap must not
         * turn the gate off (the truncation note carries the worst
         * severity it omitted). */
        {"lint/pos_flood_hides_exec.onnx", "EXPORT-LINT-TRUNCATED", NULL, 2, NULL, 0},
};

static int has_rule(const mlsec_report *r, const char *rule, const mlsec_finding **out)
{
	for (size_t i = 0; i < mlsec_report_artifact_count(r); i++) {
		mlsec_artifact *a = mlsec_report_artifact(r, i);
		for (size_t k = 0; k < mlsec_artifact_finding_count(a); k++) {
			const mlsec_finding *f = mlsec_artifact_finding(a, k);
			if (!strcmp(f->rule_id, rule)) {
				if (out)
					*out = f;
				return 1;
			}
		}
	}
	return 0;
}

static void run_case(const lint_case *c)
{
	char path[512];
	snprintf(path, sizeof path, DATA "%s", c->file);
	mlsec_export_opts o;
	mlsec_export_opts_init(&o);
	const char *doms[1] = {c->allow_domain};
	if (c->allow_domain) {
		o.allowed_domains = doms;
		o.nallowed = 1;
	}
	if (c->threshold > 0)
		o.constant_threshold = c->threshold;
	mlsec_report *r = mlsec_report_new("export");
	assert_non_null(r);
	mlsec_error err;
	mlsec_artifact *a = NULL;
	assert_int_equal(mlsec_export_lint_onnx(path, &o, r, &a, &err), MLSEC_OK);
	assert_non_null(a);
	const mlsec_finding *f = NULL;
	if (c->rule && !has_rule(r, c->rule, &f))
		fail_msg("%s: expected %s", c->file, c->rule);
	if (f) {
		/* Every finding is located: a graph path naming node/tensor. */
		assert_non_null(f->field);
		assert_true(strlen(f->field) > 0);
	}
	if (c->absent && has_rule(r, c->absent, NULL))
		fail_msg("%s: unexpected %s", c->file, c->absent);
	int code = mlsec_report_exit_code(r, MLSEC_SEV_HIGH);
	if (code != c->exit_code)
		fail_msg("%s: exit %d, expected %d", c->file, code, c->exit_code);
	mlsec_report_free(r);
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
}

/* Findings name the node and op for graph rules. */
static void test_node_location(void **state)
{
	(void)state;
	mlsec_report *r = mlsec_report_new("export");
	mlsec_error err;
	assert_int_equal(
	        mlsec_export_lint_onnx(DATA "lint/pos_trigger_if.onnx", NULL, r, NULL, &err),
	        MLSEC_OK);
	const mlsec_finding *f = NULL;
	assert_true(has_rule(r, "EXPORT-TRIGGER-BACKDOOR", &f));
	assert_non_null(strstr(f->field, "gate"));
	assert_string_equal(json_string_value(json_object_get(f->evidence, "op")), "If");
	assert_string_equal(json_string_value(json_object_get(f->evidence, "constant_branch")),
	                    "then_branch");
	mlsec_report_free(r);
}

/* A location that is lexically clean but a symlink out of the model
 * directory is still a traversal. */
static void test_ext_symlink(void **state)
{
	(void)state;
	char dir[] = "/tmp/mlsec-export-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char model[600], link[600], src[600], cwd[512];
	assert_non_null(getcwd(cwd, sizeof cwd));
	snprintf(model, sizeof model, "%s/m.onnx", dir);
	snprintf(link, sizeof link, "%s/weights.bin", dir);
	snprintf(src, sizeof src, "%s/" DATA "lint/neg_ext_ok.onnx", cwd);
	assert_int_equal(symlink(src, model), 0);
	assert_int_equal(symlink("/etc/hostname", link), 0);
	mlsec_report *r = mlsec_report_new("export");
	mlsec_error err;
	assert_int_equal(mlsec_export_lint_onnx(model, NULL, r, NULL, &err), MLSEC_OK);
	assert_true(has_rule(r, "EXPORT-EXTERNAL-DATA-TRAVERSAL", NULL) ||
	            has_rule(r, "EXPORT-EXTERNAL-DATA-MISSING", NULL));
	mlsec_report_free(r);
	unlink(link);
	unlink(model);
	rmdir(dir);
}

static void test_missing_path(void **state)
{
	(void)state;
	mlsec_report *r = mlsec_report_new("export");
	mlsec_error err;
	assert_int_equal(mlsec_export_lint_onnx(DATA "nope.onnx", NULL, r, NULL, &err),
	                 MLSEC_ERR_NOT_FOUND);
	mlsec_report_free(r);
}

/* The graph digest ignores doc strings and protobuf layout but not
 * weights: the same model as torch exported it and as re-saved through
 * onnx.helper fixtures differ; a model and itself agree. */
static void test_graph_digest(void **state)
{
	(void)state;
	char a[65], b[65], c[65];
	mlsec_error err;
	assert_int_equal(mlsec_export_graph_digest(DATA "lint/neg_const_large.onnx", a, &err),
	                 MLSEC_OK);
	assert_int_equal(mlsec_export_graph_digest(DATA "lint/pos_const_large.onnx", b, &err),
	                 MLSEC_OK);
	assert_int_equal(mlsec_export_graph_digest(DATA "lint/neg_meta.onnx", c, &err), MLSEC_OK);
	assert_string_not_equal(a, b);
	char d[65];
	/* neg_meta and pos_meta_url differ only in metadata_props. */
	assert_int_equal(mlsec_export_graph_digest(DATA "lint/pos_meta_url.onnx", d, &err),
	                 MLSEC_OK);
	assert_string_equal(c, d);
	assert_int_equal(mlsec_export_graph_digest(DATA "lint/pos_malformed_garbage.onnx", d, &err),
	                 MLSEC_ERR_PARSE);
}

/* The generic engine: options from JSON, ONNX linted, attestation
 * verified, artifact root enforced. */
static void test_engine(void **state)
{
	(void)state;
	const char *paths[] = {DATA "lint/pos_custom_domain.onnx", DATA "lint/pos_meta_url.onnx"};
	json_t *opt = json_pack("{s:[s], s:f}", "allowed-domain", "com.example",
	                        "constant-threshold", 10.0);
	mlsec_engine_request req = {paths, 2, opt, NULL, NULL, NULL, NULL};
	mlsec_report *r = mlsec_report_new("export");
	mlsec_error err;
	assert_string_equal(mlsec_engine_export.stage, "export");
	assert_int_equal(mlsec_engine_export.analyze(&req, r, &err), MLSEC_OK);
	assert_int_equal(mlsec_report_artifact_count(r), 2);
	assert_false(has_rule(r, "EXPORT-CUSTOM-DOMAIN", NULL));
	assert_true(has_rule(r, "EXPORT-SUSPICIOUS-TEXT", NULL));
	mlsec_report_free(r);
	json_decref(opt);

	opt = json_pack("{s:s}", "constant-threshold", "big");
	req.options = opt;
	r = mlsec_report_new("export");
	assert_int_equal(mlsec_engine_export.analyze(&req, r, &err), MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(r);
	json_decref(opt);

	char root[600], cwd[512];
	assert_non_null(getcwd(cwd, sizeof cwd));
	snprintf(root, sizeof root, "%s/" DATA "chain", cwd);
	req.options = NULL;
	req.artifact_root = root;
	r = mlsec_report_new("export");
	assert_int_equal(mlsec_engine_export.analyze(&req, r, &err), MLSEC_ERR_PERMISSION);
	mlsec_report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cases),        cmocka_unit_test(test_node_location),
	        cmocka_unit_test(test_ext_symlink),  cmocka_unit_test(test_missing_path),
	        cmocka_unit_test(test_graph_digest), cmocka_unit_test(test_engine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
