/*
 * test_inspect.c - the inspect engine against the fixtures of
 * tests/data/inspect/make_fixtures.py: each planted defect is found at its
 * location (tensor or node name, read from expected.json so exporter
 * naming cannot drift), clean models give no findings, checkpoints get the
 * weights-only treatment, malformed files fail closed, options parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/inspect.h"

#define D "tests/data/inspect/"

static json_t *expected;

static int setup(void **state)
{
	(void)state;
	expected = json_load_file(D "expected.json", 0, NULL);
	return expected ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(expected);
	return 0;
}

/* Name of the MLP's node number i (export order = schedule order here). */
static const char *mlp_node(size_t i)
{
	return json_string_value(
	        json_object_get(json_array_get(json_object_get(expected, "mlp_nodes"), i), "name"));
}

static mlsec_report *run_opts(const char *model, mlsec_inspect_opts *o, mlsec_err want)
{
	mlsec_report *r = mlsec_report_new("inspect");
	mlsec_error e;
	mlsec_error_clear(&e);
	mlsec_err rc = mlsec_inspect_run(model, o, r, &e);
	if (rc != want)
		fail_msg("mlsec_inspect_run(%s) = %d (%s), want %d", model, rc, e.text, want);
	return r;
}

static mlsec_report *run(const char *model, const char *data)
{
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.data_path = data;
	return run_opts(model, &o, MLSEC_OK);
}

static const mlsec_finding *find(mlsec_report *r, const char *rule)
{
	const mlsec_artifact *a = mlsec_report_artifact(r, 0);
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++)
		if (!strcmp(mlsec_artifact_finding(a, i)->rule_id, rule))
			return mlsec_artifact_finding(a, i);
	return NULL;
}

static void expect(mlsec_report *r, const char *rule, mlsec_severity sev, const char *field)
{
	const mlsec_finding *f = find(r, rule);
	if (!f)
		fail_msg("no %s finding", rule);
	assert_int_equal(f->severity, sev);
	if (field) {
		assert_non_null(f->field);
		assert_string_equal(f->field, field);
	}
}

/* Only the listed info rules may appear. */
static void expect_clean(mlsec_report *r, const char *allowed_info)
{
	const mlsec_artifact *a = mlsec_report_artifact(r, 0);
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++) {
		const mlsec_finding *f = mlsec_artifact_finding(a, i);
		if (!allowed_info || strcmp(f->rule_id, allowed_info) ||
		    f->severity != MLSEC_SEV_INFO)
			fail_msg("clean model has finding %s (%s) at %s: %s", f->rule_id,
			         mlsec_severity_name(f->severity), f->field ? f->field : "-",
			         f->detail ? f->detail : "");
	}
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_LOW), 0);
}

static json_t *details(mlsec_report *r, const char *key)
{
	return json_object_get(mlsec_artifact_details(mlsec_report_artifact(r, 0)), key);
}

static void test_clean_models(void **state)
{
	(void)state;
	mlsec_report *r = run(D "clean_mlp.onnx", D "data.npz");
	expect_clean(r, NULL);
	/* the activation table: one row per node, named as exported */
	json_t *nodes = json_object_get(details(r, "activations"), "nodes");
	assert_int_equal(json_array_size(nodes),
	                 json_array_size(json_object_get(expected, "mlp_nodes")));
	for (size_t i = 0; i < json_array_size(nodes); i++)
		assert_string_equal(
		        json_string_value(json_object_get(json_array_get(nodes, i), "node")),
		        mlp_node(i));
	/* FGSM with labels: clean accuracy is PyTorch's; a tiny step flips few */
	json_t *f = details(r, "fgsm");
	assert_float_equal(json_number_value(json_object_get(f, "clean_accuracy")),
	                   json_number_value(json_object_get(expected, "mlp_accuracy")), 1e-9);
	assert_true(json_number_value(json_object_get(f, "flip_rate")) < 0.1);
	assert_true(json_number_value(json_object_get(f, "adversarial_accuracy")) <
	            json_number_value(json_object_get(f, "clean_accuracy")));
	mlsec_report_free(r);

	r = run(D "clean_cnn.onnx", D "data_img.npz");
	expect_clean(r, NULL);
	assert_float_equal(json_number_value(json_object_get(details(r, "fgsm"), "clean_accuracy")),
	                   json_number_value(json_object_get(expected, "cnn_accuracy")), 1e-9);
	assert_string_equal(json_string_value(details(r, "type")), "vision");
	mlsec_report_free(r);

	/* synthetic inputs: only the note that they were synthetic */
	r = run(D "clean_mlp.onnx", NULL);
	expect_clean(r, "INSPECT-SYNTHETIC-DATA");
	assert_non_null(find(r, "INSPECT-SYNTHETIC-DATA"));
	assert_string_equal(json_string_value(details(r, "type")), "tabular");
	mlsec_report_free(r);
	r = run(D "clean_cnn.onnx", NULL);
	expect_clean(r, "INSPECT-SYNTHETIC-DATA");
	mlsec_report_free(r);

	/* weights only: a note that the graph checks need a graph */
	r = run(D "clean_mlp.safetensors", NULL);
	expect_clean(r, "INSPECT-NEEDS-GRAPH");
	assert_non_null(find(r, "INSPECT-NEEDS-GRAPH"));
	assert_string_equal(json_string_value(json_object_get(details(r, "weights"), "final_bias")),
	                    "4.bias");
	mlsec_report_free(r);
	r = run(D "clean_mlp.pt", NULL);
	expect_clean(r, "INSPECT-NEEDS-GRAPH");
	assert_int_equal(json_integer_value(json_object_get(details(r, "weights"), "tensors")), 6);
	mlsec_report_free(r);
}

static void test_scaled_layer(void **state)
{
	(void)state;
	const char *files[] = {D "scaled_layer.onnx", D "scaled_layer.safetensors"};
	for (size_t i = 0; i < 2; i++) {
		mlsec_report *r = run(files[i], i ? NULL : D "data.npz");
		expect(r, "INSPECT-LAYER-SCALE", MLSEC_SEV_HIGH, "2.weight");
		const mlsec_finding *f = find(r, "INSPECT-LAYER-SCALE");
		double ratio = json_number_value(json_object_get(f->evidence, "ratio"));
		assert_true(ratio > 50 && ratio < 200);
		/* the untouched layers are not blamed */
		const mlsec_artifact *a = mlsec_report_artifact(r, 0);
		for (size_t k = 0; k < mlsec_artifact_finding_count(a); k++)
			if (!strcmp(mlsec_artifact_finding(a, k)->rule_id, "INSPECT-LAYER-SCALE"))
				assert_string_equal(mlsec_artifact_finding(a, k)->field,
				                    "2.weight");
		assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
		mlsec_report_free(r);
	}
}

static void test_nan_bias(void **state)
{
	(void)state;
	mlsec_report *r = run(D "nan_bias.onnx", D "data.npz");
	expect(r, "INSPECT-WEIGHT-NAN", MLSEC_SEV_HIGH, "0.bias");
	/* where NaN first appears: the Gemm reading 0.bias, not anything later */
	expect(r, "INSPECT-ACT-NONFINITE", MLSEC_SEV_HIGH, mlp_node(0));
	assert_string_equal(json_string_value(json_object_get(details(r, "activations"),
	                                                      "first_nonfinite_node")),
	                    mlp_node(0));
	json_t *n0 = json_array_get(json_object_get(details(r, "activations"), "nodes"), 0);
	assert_int_equal(json_integer_value(json_object_get(n0, "nan")),
	                 256); /* one unit per sample */
	mlsec_report_free(r);
	r = run(D "nan_bias.safetensors", NULL);
	expect(r, "INSPECT-WEIGHT-NAN", MLSEC_SEV_HIGH, "0.bias");
	assert_null(find(r, "INSPECT-ACT-NONFINITE"));
	mlsec_report_free(r);
}

static void test_class_pin(void **state)
{
	(void)state;
	mlsec_report *r = run(D "class_pin.onnx", D "data.npz");
	expect(r, "INSPECT-CLASS-PIN", MLSEC_SEV_HIGH, "4.bias");
	assert_int_equal(json_integer_value(
	                         json_object_get(find(r, "INSPECT-CLASS-PIN")->evidence, "class")),
	                 7);
	expect(r, "INSPECT-OUTPUT-COLLAPSE", MLSEC_SEV_HIGH, NULL);
	assert_int_equal(json_integer_value(json_object_get(
	                         find(r, "INSPECT-OUTPUT-COLLAPSE")->evidence, "class")),
	                 7);
	mlsec_report_free(r);
	/* weights only, from a PyTorch zip checkpoint */
	r = run(D "class_pin.pt", NULL);
	expect(r, "INSPECT-CLASS-PIN", MLSEC_SEV_HIGH, "4.bias");
	mlsec_report_free(r);
	/* random inputs collapsing is only information */
	r = run(D "class_pin.onnx", NULL);
	expect(r, "INSPECT-OUTPUT-COLLAPSE", MLSEC_SEV_INFO, NULL);
	mlsec_report_free(r);
}

static void test_dead_layer(void **state)
{
	(void)state;
	mlsec_report *r = run(D "dead_layer.onnx", D "data.npz");
	expect(r, "INSPECT-DEAD-LAYER", MLSEC_SEV_HIGH, "2.weight");
	expect(r, "INSPECT-ACT-DEAD", MLSEC_SEV_HIGH, mlp_node(3));
	expect(r, "INSPECT-FGSM-NO-GRADIENT", MLSEC_SEV_LOW, "fgsm");
	/* the ReLU before the dead layer is healthy */
	json_t *n1 = json_array_get(json_object_get(details(r, "activations"), "nodes"), 1);
	assert_true(json_number_value(json_object_get(n1, "dead_fraction")) < 0.5);
	mlsec_report_free(r);
	r = run(D "dead_layer.safetensors", NULL);
	expect(r, "INSPECT-DEAD-LAYER", MLSEC_SEV_HIGH, "2.weight");
	mlsec_report_free(r);
}

static void test_rows(void **state)
{
	(void)state;
	mlsec_report *r = run(D "rows.safetensors", NULL);
	expect(r, "INSPECT-DUPLICATE-UNITS", MLSEC_SEV_MEDIUM, "0.weight");
	json_t *pair = json_array_get(
	        json_object_get(find(r, "INSPECT-DUPLICATE-UNITS")->evidence, "pairs"), 0);
	assert_int_equal(json_integer_value(json_array_get(pair, 0)), 3);
	assert_int_equal(json_integer_value(json_array_get(pair, 1)), 5);
	expect(r, "INSPECT-DEAD-UNITS", MLSEC_SEV_MEDIUM, "2.weight");
	assert_int_equal(
	        json_integer_value(json_array_get(
	                json_object_get(find(r, "INSPECT-DEAD-UNITS")->evidence, "units"), 0)),
	        7);
	expect(r, "INSPECT-SPARSITY", MLSEC_SEV_LOW, "4.weight");
	/* a sparse tensor is not a robust outlier of itself */
	assert_null(find(r, "INSPECT-WEIGHT-OUTLIER"));
	assert_null(find(r, "INSPECT-DEAD-LAYER"));
	mlsec_report_free(r);
}

static void test_fgsm_fragile(void **state)
{
	(void)state;
	mlsec_report *r = run(D "fragile.onnx", NULL);
	expect(r, "INSPECT-FGSM-FRAGILE", MLSEC_SEV_MEDIUM, "fgsm");
	assert_true(json_number_value(json_object_get(details(r, "fgsm"), "flip_rate")) > 0.5);
	mlsec_report_free(r);
	/* a large epsilon flipping predictions is expected, not a finding */
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.epsilon = 0.3;
	r = run_opts(D "fragile.onnx", &o, MLSEC_OK);
	assert_null(find(r, "INSPECT-FGSM-FRAGILE"));
	mlsec_report_free(r);
}

static void test_malformed(void **state)
{
	(void)state;
	const char *files[] = {D "truncated.onnx", D "truncated.safetensors", D "make_fixtures.py"};
	for (size_t i = 0; i < 3; i++) {
		mlsec_report *r = run(files[i], NULL);
		expect(r, "INSPECT-MALFORMED", MLSEC_SEV_HIGH, NULL);
		assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
		mlsec_report_free(r);
	}
	/* a data file that does not parse is its own malformed artifact */
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.data_path = D "truncated.safetensors";
	mlsec_report *r = run_opts(D "clean_mlp.onnx", &o, MLSEC_OK);
	assert_int_equal(mlsec_report_artifact_count(r), 2);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	mlsec_report_free(r);
	/* data that does not fit the model is a tool error */
	o.data_path = D "data_img.npz";
	r = run_opts(D "fragile.onnx", &o, MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(r);
	o.data_path = NULL;
	r = run_opts(D "missing.onnx", &o, MLSEC_ERR_NOT_FOUND);
	mlsec_report_free(r);
}

/* An initializer with more dimensions than a tensor descriptor holds is
 * still a weight: NaN in it must not vanish from the weights check. */
static void test_high_rank_weight(void **state)
{
	(void)state;
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.checks = MLSEC_INSPECT_WEIGHTS;
	mlsec_report *r = run_opts(D "nan_rank17.onnx", &o, MLSEC_OK);
	expect(r, "INSPECT-WEIGHT-NAN", MLSEC_SEV_HIGH, "hidden");
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	mlsec_report_free(r);
}

/* FGSM clamps to [input-min, input-max]: data outside it (0..255 pixels
 * with the default [0, 1]) would flip predictions by clamping, not by the
 * epsilon step. That is a tool error naming the value. */
static void test_fgsm_data_outside_input_range(void **state)
{
	(void)state;
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.data_path = D "data.npz"; /* pixels in [0, 1] */
	o.input_min = 0.5f;
	mlsec_report *r = run_opts(D "clean_mlp.onnx", &o, MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(r);
	/* without fgsm the range does not matter */
	o.checks = MLSEC_INSPECT_WEIGHTS | MLSEC_INSPECT_ACTIVATIONS;
	r = run_opts(D "clean_mlp.onnx", &o, MLSEC_OK);
	mlsec_report_free(r);
}

/* A weights check that found no float tensor inspected nothing: it says
 * so (low) instead of reading as a clean bill of health. */
static void test_no_weights_is_said(void **state)
{
	(void)state;
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	o.checks = MLSEC_INSPECT_WEIGHTS;
	mlsec_report *r = run_opts(D "no_weights.onnx", &o, MLSEC_OK);
	expect(r, "INSPECT-NO-WEIGHTS", MLSEC_SEV_LOW, NULL);
	mlsec_report_free(r);
	r = run_opts(D "clean_mlp.onnx", &o, MLSEC_OK);
	assert_null(find(r, "INSPECT-NO-WEIGHTS"));
	mlsec_report_free(r);
}

static void test_checks_and_options(void **state)
{
	(void)state;
	unsigned bits;
	mlsec_error e;
	assert_int_equal(mlsec_inspect_parse_checks("weights activations fgsm", &bits, &e),
	                 MLSEC_OK);
	assert_int_equal(bits, MLSEC_INSPECT_ALL);
	assert_int_equal(mlsec_inspect_parse_checks("weights,fgsm", &bits, &e), MLSEC_OK);
	assert_int_equal(bits, MLSEC_INSPECT_WEIGHTS | MLSEC_INSPECT_FGSM);
	assert_int_equal(mlsec_inspect_parse_checks("weights,gradients", &bits, &e),
	                 MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(e.text, "gradients"));
	assert_int_equal(mlsec_inspect_parse_checks("", &bits, &e), MLSEC_ERR_INVALID_ARG);

	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	json_t *j = json_pack("{s:[s,s],s:s,s:f,s:s}", "checks", "weights", "fgsm", "type",
	                      "vision", "epsilon", 0.02, "batch-size", "16");
	assert_int_equal(mlsec_inspect_opts_from_json(j, &o, &e), MLSEC_OK);
	assert_int_equal(o.checks, MLSEC_INSPECT_WEIGHTS | MLSEC_INSPECT_FGSM);
	assert_int_equal(o.type, MLSEC_INSPECT_TYPE_VISION);
	assert_float_equal(o.epsilon, 0.02, 1e-12);
	assert_int_equal(o.batch, 16);
	json_decref(j);
	j = json_pack("{s:i}", "nonsense", 1);
	assert_int_equal(mlsec_inspect_opts_from_json(j, &o, &e), MLSEC_ERR_INVALID_ARG);
	json_decref(j);
	j = json_pack("{s:i}", "batch-size", 0);
	assert_int_equal(mlsec_inspect_opts_from_json(j, &o, &e), MLSEC_ERR_INVALID_ARG);
	json_decref(j);
	/* counts are integers: 1.5 samples is a typo, not 1 */
	j = json_pack("{s:f}", "samples", 1.5);
	assert_int_equal(mlsec_inspect_opts_from_json(j, &o, &e), MLSEC_ERR_INVALID_ARG);
	json_decref(j);

	/* weights only: no graph checks, no NEEDS-GRAPH note */
	mlsec_inspect_opts_default(&o);
	o.checks = MLSEC_INSPECT_WEIGHTS;
	mlsec_report *r = run_opts(D "clean_mlp.safetensors", &o, MLSEC_OK);
	assert_int_equal(mlsec_artifact_finding_count(mlsec_report_artifact(r, 0)), 0);
	mlsec_report_free(r);
	/* activations only on ONNX: no weights details, no fgsm */
	o.checks = MLSEC_INSPECT_ACTIVATIONS;
	r = run_opts(D "nan_bias.onnx", &o, MLSEC_OK);
	assert_null(details(r, "weights"));
	assert_null(details(r, "fgsm"));
	expect(r, "INSPECT-ACT-NONFINITE", MLSEC_SEV_HIGH, mlp_node(0));
	mlsec_report_free(r);
}

/* The engine interface the CLI-less callers (services) use. */
static void test_engine(void **state)
{
	(void)state;
	const char *paths[] = {D "dead_layer.onnx", D "data.npz"};
	json_t *opts = json_pack("{s:s}", "checks", "weights,activations");
	mlsec_engine_request req = {0};
	req.paths = paths;
	req.npaths = 2;
	req.options = opts;
	char root[4096];
	assert_non_null(realpath(D, root));
	req.artifact_root = root;
	mlsec_report *r = mlsec_report_new("inspect");
	mlsec_error e;
	assert_int_equal(mlsec_engine_inspect.analyze(&req, r, &e), MLSEC_OK);
	assert_string_equal(mlsec_engine_inspect.rule_prefix, "INSPECT");
	expect(r, "INSPECT-ACT-DEAD", MLSEC_SEV_HIGH, mlp_node(3));
	assert_string_equal(json_string_value(json_object_get(details(r, "activations"), "inputs")),
	                    "data");
	mlsec_report_free(r);
	/* paths outside the artifact root are refused */
	const char *outside[] = {"tests/data/adversarial/digits_mlp.onnx"};
	req.paths = outside;
	req.npaths = 1;
	r = mlsec_report_new("inspect");
	assert_int_equal(mlsec_engine_inspect.analyze(&req, r, &e), MLSEC_ERR_PERMISSION);
	mlsec_report_free(r);
	json_decref(opts);
}

/* Writes a float32 safetensors file of the given tensors (2-D or 1-D). */
static void write_st(const char *path, size_t n, const char *const *names, const int *rows,
                     const int *cols, float *const *data)
{
	char hdr[2048];
	size_t off = 0, hl = 0;
	hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl, "{");
	for (size_t i = 0; i < n; i++) {
		size_t bytes = (size_t)rows[i] * (size_t)(cols[i] ? cols[i] : 1) * 4;
		if (cols[i])
			hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl,
			                       "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
			                       "\"data_offsets\":[%zu,%zu]}",
			                       i ? "," : "", names[i], rows[i], cols[i], off,
			                       off + bytes);
		else
			hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl,
			                       "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_"
			                       "offsets\":[%zu,%zu]}",
			                       i ? "," : "", names[i], rows[i], off, off + bytes);
		off += bytes;
	}
	hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl, "}");
	while (hl % 8)
		hdr[hl++] = ' ';
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	uint64_t len = hl;
	fwrite(&len, 8, 1, f);
	fwrite(hdr, 1, hl, f);
	for (size_t i = 0; i < n; i++)
		fwrite(data[i], 4, (size_t)rows[i] * (size_t)(cols[i] ? cols[i] : 1), f);
	fclose(f);
}

/* A zero padding row of an embedding table is normal; the same row in a
 * linear layer is a dead unit. */
static void test_embedding_padding(void **state)
{
	(void)state;
	float emb[4 * 8], fc[3 * 8], b[3] = {0.1f, -0.2f, 0.05f};
	for (int i = 0; i < 32; i++)
		emb[i] = i < 8 ? 0 : (float)((i * 37) % 11) / 11 - 0.5f;
	for (int i = 0; i < 24; i++)
		fc[i] = (float)((i * 29) % 13) / 13 - 0.5f;
	const char *names[] = {"tok_embed.weight", "fc.weight", "fc.bias"};
	const int rows[] = {4, 3, 3}, cols[] = {8, 8, 0};
	float *data[] = {emb, fc, b};
	char path[] = "/tmp/mlsec-inspect-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	write_st(path, 3, names, rows, cols, data);
	mlsec_report *r = run(path, NULL);
	assert_null(find(r, "INSPECT-DEAD-UNITS"));
	assert_null(find(r, "INSPECT-MALFORMED"));
	mlsec_report_free(r);
	names[0] = "tok.weight"; /* now a layer: its zero row is dead */
	write_st(path, 3, names, rows, cols, data);
	r = run(path, NULL);
	expect(r, "INSPECT-DEAD-UNITS", MLSEC_SEV_MEDIUM, "tok.weight");
	mlsec_report_free(r);
	unlink(path);
}

/* Every allocation failure is reported, never a crash or a leak. */
static void test_alloc_failures(void **state)
{
	(void)state;
	for (long n = 0; n < 400; n += 7) {
		mlsec_inspect_opts o;
		mlsec_inspect_opts_default(&o);
		o.data_path = D "data.npz";
		o.samples = 32;
		mlsec_report *r = mlsec_report_new("inspect");
		if (!r)
			continue;
		mlsec_alloc_fail_after(n);
		mlsec_error e;
		mlsec_inspect_run(D "nan_bias.onnx", &o, r, &e);
		mlsec_alloc_fail_after(-1);
		mlsec_report_free(r);
	}
}

/* Same numbers from every activation kernel this CPU runs: counts and
 * extremes exactly, moments to float rounding, the same findings. */
static int compare_isa(const char *isa, const char *model, const char *data)
{
	if (mlsec_inspect_use_isa(isa) != 0)
		return 0;
	mlsec_report *fast = run(model, data);
	assert_int_equal(mlsec_inspect_use_isa("generic"), 0);
	mlsec_report *ref = run(model, data);
	assert_int_equal(mlsec_inspect_use_isa(NULL), 0);
	json_t *a = json_object_get(details(fast, "activations"), "nodes");
	json_t *b = json_object_get(details(ref, "activations"), "nodes");
	assert_true(json_array_size(a) > 0);
	assert_int_equal(json_array_size(a), json_array_size(b));
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
		static const char *const exact[] = {
		        "count", "nan",           "inf",           "min",
		        "max",   "zero_fraction", "dead_fraction", "saturated_fraction"};
		for (size_t k = 0; k < sizeof exact / sizeof *exact; k++) {
			json_t *u = json_object_get(x, exact[k]), *v = json_object_get(y, exact[k]);
			if ((u || v) && !json_equal(u, v))
				fail_msg("%s node %zu: %s differs: %s vs %s", model, i, exact[k],
				         json_dumps(u, JSON_ENCODE_ANY),
				         json_dumps(v, JSON_ENCODE_ANY));
		}
		static const char *const close[] = {"mean", "std"};
		for (size_t k = 0; k < 2; k++) {
			double u = json_number_value(json_object_get(x, close[k]));
			double v = json_number_value(json_object_get(y, close[k]));
			if (fabs(u - v) > 1e-5 * fmax(1.0, fabs(v)))
				fail_msg("%s node %zu: %s %g vs %g", model, i, close[k], u, v);
		}
	}
	const mlsec_artifact *fa = mlsec_report_artifact(fast, 0),
	                     *ra = mlsec_report_artifact(ref, 0);
	assert_int_equal(mlsec_artifact_finding_count(fa), mlsec_artifact_finding_count(ra));
	for (size_t i = 0; i < mlsec_artifact_finding_count(fa); i++)
		assert_string_equal(mlsec_artifact_finding(fa, i)->rule_id,
		                    mlsec_artifact_finding(ra, i)->rule_id);
	mlsec_report_free(fast);
	mlsec_report_free(ref);
	return 1;
}

static void test_kernels_agree(void **state)
{
	(void)state;
	static const char *const isas[] = {"avx512", "avx2"};
	int ran = 0;
	for (size_t k = 0; k < 2; k++) {
		ran += compare_isa(isas[k], D "clean_mlp.onnx", D "data.npz");
		compare_isa(isas[k], D "nan_bias.onnx", D "data.npz");
		compare_isa(isas[k], D "dead_layer.onnx", D "data.npz");
		compare_isa(isas[k], D "class_pin.onnx", D "data.npz");
		compare_isa(isas[k], D "clean_cnn.onnx", NULL);
	}
	assert_int_equal(mlsec_inspect_use_isa("no-such-isa"), -1);
	assert_int_equal(mlsec_inspect_use_isa(NULL), 0);
	if (!ran)
		skip(); /* a CPU with neither: only the portable kernel exists */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_clean_models),
	        cmocka_unit_test(test_scaled_layer),
	        cmocka_unit_test(test_nan_bias),
	        cmocka_unit_test(test_class_pin),
	        cmocka_unit_test(test_dead_layer),
	        cmocka_unit_test(test_kernels_agree),
	        cmocka_unit_test(test_rows),
	        cmocka_unit_test(test_fgsm_fragile),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_checks_and_options),
	        cmocka_unit_test(test_engine),
	        cmocka_unit_test(test_embedding_padding),
	        cmocka_unit_test(test_alloc_failures),
	        cmocka_unit_test(test_high_rank_weight),
	        cmocka_unit_test(test_no_weights_is_said),
	        cmocka_unit_test(test_fgsm_data_outside_input_range),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
