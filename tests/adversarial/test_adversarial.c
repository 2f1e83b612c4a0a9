/*
 * test_adversarial.c - the adversarial engine against PyTorch references
 * (tests/data/adversarial/make_fixtures.py), CW effectiveness, baselines,
 * the original's PGD crash, attacks that silently do nothing, and hostile
 * models and data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/adversarial.h"

#define D "tests/data/adversarial/"

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

/* Runs the engine; returns the report (caller frees). */
static mlsec_report *run(const char *model, mlsec_adv_opts *o, mlsec_err want_rc)
{
	mlsec_report *r = mlsec_report_new("adversarial");
	mlsec_error e;
	mlsec_error_clear(&e);
	mlsec_err rc = mlsec_adv_run(model, o, r, &e);
	if (rc != want_rc)
		fail_msg("mlsec_adv_run(%s) = %d (%s), want %d", model, rc, e.text, want_rc);
	return r;
}

static json_t *attack_entry(mlsec_report *r, const char *attack, double eps)
{
	json_t *atk =
	        json_object_get(mlsec_artifact_details(mlsec_report_artifact(r, 0)), "attacks");
	size_t i;
	json_t *a;
	json_array_foreach(atk, i, a)
	{
		json_t *e = json_object_get(a, "epsilon");
		if (!strcmp(json_string_value(json_object_get(a, "attack")), attack) &&
		    (eps < 0 || (json_is_number(e) && fabs(json_number_value(e) - eps) < 1e-9)))
			return a;
	}
	fail_msg("no %s result at eps %g", attack, eps);
	return NULL;
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static int has_rule(mlsec_report *r, const char *rule, mlsec_severity sev)
{
	for (size_t a = 0; a < mlsec_report_artifact_count(r); a++) {
		const mlsec_artifact *art = mlsec_report_artifact(r, a);
		for (size_t i = 0; i < mlsec_artifact_finding_count(art); i++) {
			const mlsec_finding *f = mlsec_artifact_finding(art, i);
			if (!strcmp(f->rule_id, rule) && f->severity == sev)
				return 1;
		}
	}
	return 0;
}

static void check_against_torch(const char *data)
{
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = data;
	o.attacks = MLSEC_ADV_FGSM | MLSEC_ADV_PGD;
	o.eps[0] = 0.05;
	o.eps[1] = 0.1;
	o.eps[2] = 0.2;
	o.neps = 3;
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	json_t *d = mlsec_artifact_details(mlsec_report_artifact(r, 0));
	assert_float_equal(num(d, "clean_accuracy"), num(expected, "clean_accuracy"), 1e-9);
	static const char *const eps_s[] = {"0.05", "0.1", "0.2"};
	for (int k = 0; k < 3; k++) {
		double eps = o.eps[k];
		double torch_pgd = num(json_object_get(expected, "pgd"), eps_s[k]);
		double ours_pgd = num(attack_entry(r, "pgd", eps), "accuracy");
		if (fabs(ours_pgd - torch_pgd) > 0.01 + 1e-9)
			fail_msg("pgd eps %g: ours %.4f torch %.4f", eps, ours_pgd, torch_pgd);
		double torch_fgsm = num(json_object_get(expected, "fgsm"), eps_s[k]);
		double ours_fgsm = num(attack_entry(r, "fgsm", eps), "accuracy");
		/* At eps 0.2 a few near-zero gradient components differ in sign
		 * between float kernels; the bound is for the main budgets. */
		double tol = k < 2 ? 0.01 : 0.02;
		if (fabs(ours_fgsm - torch_fgsm) > tol + 1e-9)
			fail_msg("fgsm eps %g: ours %.4f torch %.4f", eps, ours_fgsm, torch_fgsm);
		/* The attack really moved the inputs, and stayed in budget. */
		json_t *f = attack_entry(r, "fgsm", eps);
		assert_float_equal(num(f, "mean_linf"), eps, 1e-5);
		assert_true(num(attack_entry(r, "pgd", eps), "max_linf") <= eps + 1e-5);
		assert_true(num(attack_entry(r, "pgd", eps), "gradient_evaluations") > 0);
	}
	assert_false(has_rule(r, "ADV-ATTACK-INEFFECTIVE", MLSEC_SEV_HIGH));
	mlsec_report_free(r);
}

static void test_matches_pytorch_npz(void **state)
{
	(void)state;
	check_against_torch(D "data.npz");
}

static void test_matches_pytorch_safetensors(void **state)
{
	(void)state;
	check_against_torch(D "data.safetensors");
}

static void test_cw_beats_fgsm(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = D "data.npz";
	o.attacks = MLSEC_ADV_FGSM | MLSEC_ADV_CW;
	o.eps[0] = 0.2;
	o.neps = 1;
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	json_t *cw = attack_entry(r, "cw", -1);
	json_t *fgsm = attack_entry(r, "fgsm", 0.2);
	assert_true(num(cw, "success_rate") >= 0.9);
	/* FGSM needs eps 0.2 to break ~90%; CW's minimal perturbations are smaller. */
	assert_true(num(fgsm, "success_rate") >= 0.85);
	assert_true(num(cw, "mean_success_l2") < num(fgsm, "mean_l2"));
	assert_true(num(cw, "mean_success_l2") > 0);
	mlsec_report_free(r);
}

static void test_baseline_regression_and_improvement(void **state)
{
	(void)state;
	char path[] = "/tmp/mlsec-baseline-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path); /* a missing baseline file is allowed */
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = D "data.npz";
	o.attacks = MLSEC_ADV_FGSM;
	o.eps[0] = 0.1;
	o.baseline_path = path;
	o.update_baseline = 1;
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	mlsec_report_free(r);
	json_t *b = json_load_file(path, 0, NULL);
	assert_non_null(b);
	json_t *acc = json_object_get(json_object_get(json_object_get(b, "digits_mlp"), "fgsm"),
	                              "epsilon=0.1");
	assert_true(json_is_number(acc));
	double measured = json_number_value(acc);

	/* Same model, same baseline: stable. */
	o.update_baseline = 0;
	r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	assert_false(has_rule(r, "ADV-REGRESSION", MLSEC_SEV_HIGH));
	mlsec_report_free(r);

	/* The baseline claims more robustness than we have now: regression, exit 2. */
	json_object_set_new(json_object_get(json_object_get(b, "digits_mlp"), "fgsm"),
	                    "epsilon=0.1", json_real(measured + 0.2));
	o.baseline_path = NULL;
	o.baseline = b;
	r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_true(has_rule(r, "ADV-REGRESSION", MLSEC_SEV_HIGH));
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	mlsec_report_free(r);

	/* Within tolerance: no alert. Improvement: reported, not alerted. */
	json_object_set_new(json_object_get(json_object_get(b, "digits_mlp"), "fgsm"),
	                    "epsilon=0.1", json_real(measured + 0.04));
	r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	mlsec_report_free(r);
	json_object_set_new(json_object_get(json_object_get(b, "digits_mlp"), "fgsm"),
	                    "epsilon=0.1", json_real(measured - 0.2));
	r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 0);
	json_t *cmp =
	        json_array_get(json_object_get(mlsec_artifact_details(mlsec_report_artifact(r, 0)),
	                                       "baseline_comparison"),
	                       0);
	assert_string_equal(json_string_value(json_object_get(cmp, "status")), "improvement");
	mlsec_report_free(r);
	json_decref(b);
	unlink(path);
}

/* The original harness crashed in PGD with many steps and restarts. Run PGD
 * hard on a residual CNN with batch norm (gradients through branches). */
static void test_pgd_many_steps_restarts_residual_cnn(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.attacks = MLSEC_ADV_FGSM | MLSEC_ADV_PGD;
	o.eps[0] = 0.05;
	o.neps = 1;
	o.pgd_steps = 50;
	o.pgd_restarts = 3;
	o.data_path = D "data_img.npz";
	o.batch = 16;
	mlsec_report *r = run(D "digits_rescnn.onnx", &o, MLSEC_OK);
	json_t *pgd = attack_entry(r, "pgd", 0.05), *fgsm = attack_entry(r, "fgsm", 0.05);
	assert_true(num(pgd, "gradient_evaluations") > 3);
	assert_true(num(pgd, "max_linf") <= 0.05 + 1e-5);
	assert_true(num(pgd, "success_rate") >= num(fgsm, "success_rate"));
	assert_true(num(pgd, "success_rate") > 0);
	assert_false(has_rule(r, "ADV-ATTACK-INEFFECTIVE", MLSEC_SEV_HIGH));
	/* Deterministic for a fixed seed. */
	mlsec_report *r2 = run(D "digits_rescnn.onnx", &o, MLSEC_OK);
	assert_float_equal(num(attack_entry(r2, "pgd", 0.05), "accuracy"), num(pgd, "accuracy"), 0);
	mlsec_report_free(r2);
	mlsec_report_free(r);
}

static void test_zero_gradient_is_loud(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.attacks = MLSEC_ADV_FGSM | MLSEC_ADV_PGD;
	mlsec_report *r = run(D "zero_grad.onnx", &o, MLSEC_OK);
	assert_true(has_rule(r, "ADV-ATTACK-INEFFECTIVE", MLSEC_SEV_HIGH));
	assert_true(has_rule(r, "ADV-SYNTHETIC-DATA", MLSEC_SEV_INFO));
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	mlsec_report_free(r);
}

static void test_hostile_inputs_fail_closed(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	mlsec_report *r = run(D "truncated.onnx", &o, MLSEC_OK);
	assert_true(has_rule(r, "ADV-MALFORMED", MLSEC_SEV_HIGH));
	mlsec_report_free(r);
	r = run(D "nan_bias.onnx", &o, MLSEC_OK);
	assert_true(has_rule(r, "ADV-MODEL-NONFINITE", MLSEC_SEV_HIGH));
	mlsec_report_free(r);
	o.data_path = D "truncated.safetensors";
	r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_true(has_rule(r, "ADV-MALFORMED", MLSEC_SEV_HIGH));
	assert_int_equal(mlsec_report_exit_code(r, MLSEC_SEV_HIGH), 2);
	mlsec_report_free(r);
	/* A data file for another model is the user's mistake: tool error. */
	o.data_path = D "data_wrong_shape.npz";
	r = run(D "digits_mlp.onnx", &o, MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(r);
	o.data_path = D "data_bad_labels.npz";
	r = run(D "digits_mlp.onnx", &o, MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(r);
}

static void test_checkpoint_needs_onnx(void **state)
{
	(void)state;
	char path[] = "/tmp/mlsec-ckpt-XXXXXX.pt";
	int fd = mkstemps(path, 3);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x80\x02}q\0.", 6), 6);
	close(fd);
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	mlsec_report *r = mlsec_report_new("adversarial");
	mlsec_error e;
	assert_int_equal(mlsec_adv_run(path, &o, r, &e), MLSEC_ERR_UNSUPPORTED);
	assert_non_null(strstr(e.text, "ONNX"));
	mlsec_report_free(r);
	unlink(path);
}

/* A --baseline path that does not exist must not turn the gate off: only
 * --update-baseline may create it. Otherwise a typo in CI silently passes. */
static void test_missing_baseline_is_an_error(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = D "data.npz";
	o.attacks = MLSEC_ADV_FGSM;
	o.baseline_path = "/nonexistent/mlsec-baseline.json";
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_ERR_NOT_FOUND);
	mlsec_report_free(r);
}

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *tmp_json(const char *text)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/mlsec-adv-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* A baseline entry for this model that is not a [0, 1] accuracy (a
 * percentage, a string, a nested object) cannot be compared: silently
 * skipping it would pass the gate. It is a tool error naming the key. */
static void test_corrupt_baseline_entry_is_an_error(void **state)
{
	(void)state;
	static const char *const bad[] = {
	        "{\"digits_mlp\": {\"fgsm\": {\"epsilon=0.1\": 95}}}",
	        "{\"digits_mlp\": {\"fgsm\": {\"epsilon=0.1\": \"0.9\"}}}",
	        "{\"digits_mlp\": {\"fgsm\": [0.9]}}",
	        "{\"digits_mlp\": 0.9}",
	        "{\"digits_mlp\": {\"fgsm\": {\"eps=0.1\": 0.9}}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		mlsec_adv_opts o;
		mlsec_adv_opts_default(&o);
		o.data_path = D "data.npz";
		o.attacks = MLSEC_ADV_FGSM;
		o.eps[0] = 0.1;
		const char *path = tmp_json(bad[i]);
		o.baseline_path = path;
		mlsec_report *r = mlsec_report_new("adversarial");
		mlsec_error e;
		mlsec_error_clear(&e);
		mlsec_err rc = mlsec_adv_run(D "digits_mlp.onnx", &o, r, &e);
		if (rc != MLSEC_ERR_PARSE)
			fail_msg("baseline %s: rc %d (%s), want a parse error", bad[i], rc, e.text);
		mlsec_report_free(r);
		unlink(path);
	}
	/* Other models' entries are not ours to judge. */
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = D "data.npz";
	o.attacks = MLSEC_ADV_FGSM;
	const char *path = tmp_json("{\"other\": {\"x\": 5}}");
	o.baseline_path = path;
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	mlsec_report_free(r);
	unlink(path);
}

/* Data outside [clip-min, clip-max] (e.g. 0..255 pixels with the default
 * [0, 1]) would be clamped by every attack: perturbations far beyond
 * epsilon and meaningless accuracies. Refuse it with a clear error. */
static void test_data_outside_clip_range(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = D "data.npz";
	o.attacks = MLSEC_ADV_FGSM;
	o.clip_min = 0.25f; /* the fixture's pixels span [0, 1] */
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_ERR_INVALID_ARG);
	mlsec_report_free(r);
}

/* Runs the stage engine the way the service does (artifact root set). */
static mlsec_err run_engine(const char *root, const char *const *paths, size_t n, json_t *opts,
                            mlsec_report *r, mlsec_error *e)
{
	mlsec_engine_request req = {0};
	req.paths = paths;
	req.npaths = n;
	req.options = opts;
	req.artifact_root = root;
	mlsec_error_clear(e);
	return mlsec_engine_adversarial.analyze(&req, r, e);
}

/*
 * In the service, paths in the job's options are untrusted like the
 * artifacts: "data" and "baseline" must resolve under the artifact root,
 * and update-baseline never writes a file (the accuracies go to
 * details.baseline_update, also without a baseline yet).
 */
static void test_service_options_confined(void **state)
{
	(void)state;
	char root[4096];
	assert_non_null(realpath(D, root));
	char model[4200];
	snprintf(model, sizeof model, "%s/digits_mlp.onnx", root);
	const char *paths[] = {model};
	const char *victim = "/tmp/mlsec-adv-victim.json";
	unlink(victim);
	json_t *o = json_pack("{s:s,s:s,s:b,s:s,s:i}", "attack", "fgsm", "baseline", victim,
	                      "update-baseline", 1, "data", "/etc/passwd", "samples", 16);
	mlsec_report *r = mlsec_report_new("adversarial");
	mlsec_error e;
	assert_int_equal(run_engine(root, paths, 1, o, r, &e), MLSEC_ERR_PERMISSION);
	assert_int_not_equal(access(victim, F_OK), 0);
	mlsec_report_free(r);
	/* data inside the root is fine; the baseline path still is not, and
	 * an existing file there is neither read nor overwritten */
	FILE *vf = fopen(victim, "w");
	assert_non_null(vf);
	fputs("keep", vf);
	fclose(vf);
	char data[4200];
	snprintf(data, sizeof data, "%s/data.npz", root);
	json_object_set_new(o, "data", json_string(data));
	r = mlsec_report_new("adversarial");
	assert_int_equal(run_engine(root, paths, 1, o, r, &e), MLSEC_ERR_PERMISSION);
	char buf[16] = "";
	vf = fopen(victim, "r");
	assert_non_null(vf);
	assert_non_null(fgets(buf, sizeof buf, vf));
	fclose(vf);
	assert_string_equal(buf, "keep");
	unlink(victim);
	mlsec_report_free(r);
	/* no baseline path: this run's accuracies come back in the details,
	 * as the whole updated baseline document (the service stores it) */
	json_object_del(o, "baseline");
	r = mlsec_report_new("adversarial");
	assert_int_equal(run_engine(root, paths, 1, o, r, &e), MLSEC_OK);
	json_t *upd = json_object_get(mlsec_artifact_details(mlsec_report_artifact(r, 0)),
	                              "baseline_update");
	json_t *model_entry = json_object_get(
	        upd, json_string_value(json_object_get(
	                     mlsec_artifact_details(mlsec_report_artifact(r, 0)), "model_name")));
	assert_true(json_is_number(
	        json_object_get(json_object_get(model_entry, "fgsm"), "epsilon=0.03")));
	mlsec_report_free(r);
	json_decref(o);
}

/* float16/bfloat16 data is valid data: converted, not ADV-MALFORMED. */
static void test_half_precision_data(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	o.data_path = D "data_f16.npz";
	o.attacks = MLSEC_ADV_FGSM;
	mlsec_report *r = run(D "digits_mlp.onnx", &o, MLSEC_OK);
	assert_false(has_rule(r, "ADV-MALFORMED", MLSEC_SEV_HIGH));
	json_t *d = mlsec_artifact_details(mlsec_report_artifact(r, 0));
	/* float16 rounding of [0, 1] pixels does not move the clean accuracy */
	assert_float_equal(num(d, "clean_accuracy"), num(expected, "clean_accuracy"), 0.01);
	mlsec_report_free(r);
}

static void test_options(void **state)
{
	(void)state;
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	mlsec_error e;
	json_t *j = json_pack("{s:s,s:s,s:i,s:s}", "attack", "fgsm cw", "epsilon", "0.01,0.02",
	                      "pgd-steps", 7, "cw-c", "0.5");
	assert_int_equal(mlsec_adv_opts_from_json(j, &o, &e), MLSEC_OK);
	assert_int_equal(o.attacks, MLSEC_ADV_FGSM | MLSEC_ADV_CW);
	assert_int_equal(o.neps, 2);
	assert_float_equal(o.eps[1], 0.02, 1e-12);
	assert_int_equal(o.pgd_steps, 7);
	assert_float_equal(o.cw_c, 0.5, 1e-12);
	json_decref(j);
	const char *bad[] = {"{\"attack\": \"deepfool\"}", "{\"epsilon\": -1}",
	                     "{\"pgd-steps\": 0}", "{\"batch-size\": 100000}", "{\"nonsense\": 1}",
	                     "{\"epsilon\": \"0.1,x\"}",
	                     /* counts are integers: 1.5 samples is a typo, not 1 */
	                     "{\"samples\": 1.5}", "{\"pgd-steps\": \"2.5\"}", "{\"seed\": 0.5}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		j = json_loads(bad[i], 0, NULL);
		mlsec_adv_opts_default(&o);
		assert_int_equal(mlsec_adv_opts_from_json(j, &o, &e), MLSEC_ERR_INVALID_ARG);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_matches_pytorch_npz),
	        cmocka_unit_test(test_matches_pytorch_safetensors),
	        cmocka_unit_test(test_cw_beats_fgsm),
	        cmocka_unit_test(test_baseline_regression_and_improvement),
	        cmocka_unit_test(test_pgd_many_steps_restarts_residual_cnn),
	        cmocka_unit_test(test_zero_gradient_is_loud),
	        cmocka_unit_test(test_hostile_inputs_fail_closed),
	        cmocka_unit_test(test_checkpoint_needs_onnx),
	        cmocka_unit_test(test_options),
	        cmocka_unit_test(test_half_precision_data),
	        cmocka_unit_test(test_service_options_confined),
	        cmocka_unit_test(test_missing_baseline_is_an_error),
	        cmocka_unit_test(test_corrupt_baseline_entry_is_an_error),
	        cmocka_unit_test(test_data_outside_clip_range),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
