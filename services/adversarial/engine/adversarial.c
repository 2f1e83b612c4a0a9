/*
 * adversarial.c - the adversarial stage: options, data, the attack runs,
 * sanity checks that prove each attack did something, baseline regression,
 * and the report. The heavy lifting is in attacks.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "attacks.h"
#include "baseline.h"
#include "mlsec/alloc.h"
#include "mlsec/options.h"
#include "mlsec/fsutil.h"

#define RULE_PREFIX "ADV"

void mlsec_adv_opts_default(mlsec_adv_opts *o)
{
	memset(o, 0, sizeof *o);
	o->attacks = MLSEC_ADV_FGSM | MLSEC_ADV_PGD;
	o->eps[0] = 0.03;
	o->neps = 1;
	o->tolerance = 0.05;
	o->batch = 64;
	o->pgd_steps = 20;
	o->cw_steps = 100;
	o->cw_lr = 0.01;
	o->cw_c = 1.0;
	o->cw_binary_search = 5;
	o->clip_min = 0;
	o->clip_max = 1;
	o->threads = 1;
	o->synthetic_samples = 256;
}

mlsec_err mlsec_adv_parse_attacks(const char *s, unsigned *out, mlsec_error *err)
{
	unsigned bits = 0;
	const char *p = s;
	while (p && *p) {
		size_t n = strcspn(p, ", ");
		if (n == 3 && !strncasecmp(p, "all", 3))
			bits |= MLSEC_ADV_FGSM | MLSEC_ADV_PGD | MLSEC_ADV_CW;
		else if (n == 4 && !strncasecmp(p, "fgsm", 4))
			bits |= MLSEC_ADV_FGSM;
		else if (n == 3 && !strncasecmp(p, "pgd", 3))
			bits |= MLSEC_ADV_PGD;
		else if ((n == 2 && !strncasecmp(p, "cw", 2)) ||
		         (n == 5 && !strncasecmp(p, "cw-l2", 5)))
			bits |= MLSEC_ADV_CW;
		else if (n > 0)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "unknown attack '%.*s' (use fgsm, pgd, cw)", (int)n,
			                       p);
		p += n;
		p += strspn(p, ", ");
	}
	if (!bits)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no attack given");
	*out = bits;
	return MLSEC_OK;
}

static mlsec_err add_eps(mlsec_adv_opts *o, double v, mlsec_error *err)
{
	if (!(v >= 0 && v <= 1e6))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "epsilon %g is not a finite value >= 0", v);
	if (o->neps >= MLSEC_ADV_MAX_EPS)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "at most %d epsilons",
		                       MLSEC_ADV_MAX_EPS);
	o->eps[o->neps++] = v;
	return MLSEC_OK;
}

mlsec_err mlsec_adv_parse_eps(const char *s, mlsec_adv_opts *o, mlsec_error *err)
{
	o->neps = 0;
	const char *p = s;
	while (*p) {
		char *end;
		double v = strtod(p, &end);
		if (end == p || (*end && *end != ','))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "bad epsilon list '%s'",
			                       s);
		mlsec_err rc = add_eps(o, v, err);
		if (rc != MLSEC_OK)
			return rc;
		p = *end ? end + 1 : end;
	}
	return o->neps ? MLSEC_OK : mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no epsilon given");
}

mlsec_err mlsec_adv_opts_from_json(const json_t *json, mlsec_adv_opts *o, mlsec_error *err)
{
	if (!json)
		return MLSEC_OK;
	if (!json_is_object(json))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "options must be a JSON object");
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)json, key, v)
	{
		mlsec_err rc = MLSEC_OK;
		double d = 0;
		if (!strcmp(key, "attack")) {
			unsigned bits = 0;
			rc = mlsec_option_flags(v, key, mlsec_adv_parse_attacks, &bits, err);
			if (rc == MLSEC_OK && bits)
				o->attacks = bits;
		} else if (!strcmp(key, "epsilon")) {
			if (json_is_string(v)) {
				rc = mlsec_adv_parse_eps(json_string_value(v), o, err);
			} else if (json_is_number(v)) {
				o->neps = 0;
				rc = add_eps(o, json_number_value(v), err);
			} else if (json_is_array(v)) {
				o->neps = 0;
				size_t i;
				const json_t *e;
				json_array_foreach(v, i, e)
				{
					if ((rc = mlsec_option_number(e, key, 0, 1e6, &d, err)) ||
					    (rc = add_eps(o, d, err)))
						return rc;
				}
			} else {
				rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                     "option epsilon: number or list expected");
			}
		} else if (!strcmp(key, "data") || !strcmp(key, "baseline") ||
		           !strcmp(key, "model-name")) {
			if (!strcmp(key, "baseline") && json_is_object(v))
				o->baseline = v;
			else if (!json_is_string(v))
				rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                     "option %s: string expected", key);
			else if (!strcmp(key, "data"))
				o->data_path = json_string_value(v);
			else if (!strcmp(key, "baseline"))
				o->baseline_path = json_string_value(v);
			else
				o->model_name = json_string_value(v);
		} else if (!strcmp(key, "update-baseline")) {
			o->update_baseline = json_is_true(v);
		} else if (!strcmp(key, "tolerance")) {
			if (!(rc = mlsec_option_number(v, key, 0, 1, &d, err)))
				o->tolerance = d;
		} else if (!strcmp(key, "samples")) {
			if (!(rc = mlsec_option_integer(v, key, 0, MLSEC_ADV_MAX_SAMPLES, &d, err)))
				o->samples = (size_t)d;
		} else if (!strcmp(key, "batch-size")) {
			if (!(rc = mlsec_option_integer(v, key, 1, MLSEC_ADV_MAX_BATCH, &d, err)))
				o->batch = (size_t)d;
		} else if (!strcmp(key, "pgd-steps")) {
			if (!(rc = mlsec_option_integer(v, key, 1, MLSEC_ADV_MAX_STEPS, &d, err)))
				o->pgd_steps = (int)d;
		} else if (!strcmp(key, "pgd-alpha")) {
			if (!(rc = mlsec_option_number(v, key, 0, 1e6, &d, err)))
				o->pgd_alpha = d;
		} else if (!strcmp(key, "pgd-random-init")) {
			if (!(rc = mlsec_option_integer(v, key, 0, 1000, &d, err)))
				o->pgd_restarts = (int)d;
		} else if (!strcmp(key, "cw-steps")) {
			if (!(rc = mlsec_option_integer(v, key, 1, MLSEC_ADV_MAX_STEPS, &d, err)))
				o->cw_steps = (int)d;
		} else if (!strcmp(key, "cw-lr")) {
			if (!(rc = mlsec_option_number(v, key, 1e-9, 1e3, &d, err)))
				o->cw_lr = d;
		} else if (!strcmp(key, "cw-confidence")) {
			if (!(rc = mlsec_option_number(v, key, 0, 1e6, &d, err)))
				o->cw_confidence = d;
		} else if (!strcmp(key, "cw-c")) {
			if (!(rc = mlsec_option_number(v, key, 1e-9, 1e9, &d, err)))
				o->cw_c = d;
		} else if (!strcmp(key, "cw-binary-search")) {
			if (!(rc = mlsec_option_integer(v, key, 1, 100, &d, err)))
				o->cw_binary_search = (int)d;
		} else if (!strcmp(key, "clip-min")) {
			if (!(rc = mlsec_option_number(v, key, -1e30, 1e30, &d, err)))
				o->clip_min = (float)d;
		} else if (!strcmp(key, "clip-max")) {
			if (!(rc = mlsec_option_number(v, key, -1e30, 1e30, &d, err)))
				o->clip_max = (float)d;
		} else if (!strcmp(key, "seed")) {
			if (!(rc = mlsec_option_integer(v, key, 0, 9007199254740992.0, &d, err)))
				o->seed = (uint64_t)d;
		} else if (!strcmp(key, "threads")) {
			if (!(rc = mlsec_option_integer(v, key, 1, 256, &d, err)))
				o->threads = (int)d;
		} else {
			rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                     "unknown adversarial option '%s'", key);
		}
		if (rc != MLSEC_OK)
			return rc;
	}
	return MLSEC_OK;
}

static void model_stem(const char *path, char *buf, size_t size)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	snprintf(buf, size, "%s", base);
	char *dot = strrchr(buf, '.');
	if (dot && dot != buf)
		*dot = '\0';
}

static const char *attack_name(unsigned a)
{
	return a == MLSEC_ADV_FGSM ? "fgsm" : a == MLSEC_ADV_PGD ? "pgd" : "cw";
}

/* Fails loudly when an attack provably did nothing (or could not). */
static void sanity(mlsec_artifact *art, const char *attack, double eps, const adv_stats *st)
{
	size_t attacked = st->clean_correct;
	if (attacked == 0)
		return;
	const char *why = NULL;
	if (st->steps_run == 0)
		why = "no gradient step was executed";
	else if (st->zero_grad + st->nonfinite_grad == attacked)
		why = st->nonfinite_grad ? "the input gradient is NaN/Inf for every sample"
		                         : "the input gradient is exactly zero for every sample";
	else if (eps > 0 && st->perturbed == 0)
		why = "no sample was perturbed although epsilon > 0";
	if (why) {
		mlsec_finding *f = mlsec_artifact_add_finding(
		        art, RULE_PREFIX "-ATTACK-INEFFECTIVE", MLSEC_SEV_HIGH,
		        "Attack ran without effect: robustness cannot be claimed",
		        "%s at epsilon %g: %s (%zu of %zu samples with zero gradient, %zu "
		        "non-finite)",
		        attack, eps, why, st->zero_grad, attacked, st->nonfinite_grad);
		if (f) {
			mlsec_finding_set_location(f, NULL, 0, 0, attack);
			mlsec_finding_set_remediation(
			        f, "Check the model for gradient masking (saturating "
			           "or non-differentiable layers, argmax/round in the graph), and "
			           "that the input range matches --clip-min/--clip-max.");
		}
	} else if (st->nonfinite_grad || st->zero_grad * 2 > attacked) {
		mlsec_finding *f = mlsec_artifact_add_finding(
		        art, RULE_PREFIX "-GRADIENT-DEGENERATE", MLSEC_SEV_MEDIUM,
		        "Input gradients are degenerate for many samples (possible gradient "
		        "masking)",
		        "%s at epsilon %g: %zu of %zu samples with zero gradient, %zu non-finite",
		        attack, eps, st->zero_grad, attacked, st->nonfinite_grad);
		if (f)
			mlsec_finding_set_location(f, NULL, 0, 0, attack);
	}
}

static json_t *attack_json(unsigned kind, double eps, const adv_stats *st, const mlsec_adv_opts *o)
{
	const char *attack = attack_name(kind);
	double attacked = (double)st->clean_correct;
	json_t *j = json_object();
	if (!j)
		return NULL;
	json_object_set_new(j, "attack", json_string(attack));
	json_object_set_new(j, "epsilon", isinf(eps) ? json_null() : json_real(eps));
	json_object_set_new(j, "accuracy", json_real(st->n ? (double)st->adv_correct / st->n : 0));
	json_object_set_new(j, "success_rate", json_real(attacked ? st->successes / attacked : 0));
	json_object_set_new(j, "mean_linf", json_real(attacked ? st->sum_linf / attacked : 0));
	json_object_set_new(j, "mean_l2", json_real(attacked ? st->sum_l2 / attacked : 0));
	json_object_set_new(j, "max_linf", json_real(st->max_linf));
	json_object_set_new(j, "max_l2", json_real(st->max_l2));
	json_object_set_new(j, "samples", json_integer((json_int_t)st->n));
	json_object_set_new(j, "attacked", json_integer((json_int_t)st->clean_correct));
	json_object_set_new(j, "successes", json_integer((json_int_t)st->successes));
	json_object_set_new(j, "gradient_evaluations", json_integer((json_int_t)st->steps_run));
	json_t *p = json_object();
	if (kind == MLSEC_ADV_PGD) {
		int steps = o->pgd_steps;
		json_object_set_new(p, "steps", json_integer(steps));
		json_object_set_new(p, "alpha",
		                    json_real(o->pgd_alpha > 0 ? o->pgd_alpha : 2.5 * eps / steps));
		json_object_set_new(p, "random_init", json_integer(o->pgd_restarts));
	} else if (kind == MLSEC_ADV_CW) {
		json_object_set_new(p, "steps", json_integer(o->cw_steps));
		json_object_set_new(p, "lr", json_real(o->cw_lr));
		json_object_set_new(p, "confidence", json_real(o->cw_confidence));
		json_object_set_new(p, "initial_c", json_real(o->cw_c));
		json_object_set_new(p, "binary_search_steps", json_integer(o->cw_binary_search));
		json_object_set_new(
		        j, "mean_success_l2",
		        json_real(st->successes ? st->sum_success_l2 / (double)st->successes : 0));
	}
	json_object_set_new(j, "params", p);
	return j;
}

/* Compares with the baseline: ADV-REGRESSION on a drop beyond tolerance. */
static void compare(mlsec_artifact *art, const json_t *base, const char *model, const char *attack,
                    double eps, double acc, const mlsec_adv_opts *o, json_t *cmp)
{
	double want = adv_baseline_lookup(base, model, attack, eps);
	char key[64];
	adv_baseline_key(eps, key, sizeof key);
	json_t *c = json_pack("{s:s,s:s,s:f}", "attack", attack, "key", key, "accuracy", acc);
	if (want < 0) {
		json_object_set_new(c, "status", json_string("no-baseline"));
		json_array_append_new(cmp, c);
		return;
	}
	double delta = acc - want;
	json_object_set_new(c, "baseline", json_real(want));
	json_object_set_new(c, "delta", json_real(delta));
	const char *status = delta < -o->tolerance  ? "regression"
	                     : delta > o->tolerance ? "improvement"
	                                            : "stable";
	json_object_set_new(c, "status", json_string(status));
	json_array_append_new(cmp, c);
	if (delta < -o->tolerance) {
		mlsec_finding *f = mlsec_artifact_add_finding(
		        art, RULE_PREFIX "-REGRESSION", MLSEC_SEV_HIGH,
		        "Robust accuracy regressed below the baseline",
		        "%s %s: robust accuracy %.4f vs baseline %.4f (drop %.4f > tolerance %.4f)",
		        attack, key, acc, want, -delta, o->tolerance);
		if (f) {
			mlsec_finding_set_location(f, NULL, 0, 0, attack);
			mlsec_finding_set_evidence(f, "model", "%s", model);
			mlsec_finding_set_evidence(f, "baseline", "%.6f", want);
			mlsec_finding_set_evidence(f, "accuracy", "%.6f", acc);
			mlsec_finding_set_remediation(
			        f, "Investigate the retraining/fine-tuning change; if "
			           "the drop is intended, re-record the baseline with "
			           "--update-baseline.");
		}
	}
}

/* ADV-MALFORMED for an artifact that does not parse; keeps err's location. */
static void malformed(mlsec_artifact *a, const char *path, mlsec_error *err)
{
	if (!err->file[0])
		snprintf(err->file, sizeof err->file, "%s", path);
	mlsec_artifact_add_malformed(a, RULE_PREFIX, err);
}

static int is_malformed_code(mlsec_err rc)
{
	return rc == MLSEC_ERR_PARSE || rc == MLSEC_ERR_LIMIT || rc == MLSEC_ERR_PERMISSION;
}

static mlsec_err run_attacks(adv_runner *run, const mlsec_adv_data *d, const mlsec_adv_opts *o,
                             mlsec_artifact *art, const json_t *base, const char *model,
                             json_t *updates, mlsec_error *err)
{
	json_t *details = mlsec_artifact_details(art);
	json_t *attacks = json_array(), *cmp = json_array();
	json_object_set_new(details, "attacks", attacks);
	if (base)
		json_object_set_new(details, "baseline_comparison", cmp);
	else
		json_decref(cmp);
	static const unsigned order[] = {MLSEC_ADV_FGSM, MLSEC_ADV_PGD, MLSEC_ADV_CW};
	for (size_t a = 0; a < 3; a++) {
		if (!(o->attacks & order[a]))
			continue;
		size_t neps = order[a] == MLSEC_ADV_CW ? 1 : o->neps;
		for (size_t e = 0; e < neps; e++) {
			double eps = order[a] == MLSEC_ADV_CW ? INFINITY : o->eps[e];
			adv_stats st = {0};
			mlsec_err rc = order[a] == MLSEC_ADV_FGSM
			                       ? adv_fgsm(run, d->x, d->y, d->n, eps, &st, err)
			               : order[a] == MLSEC_ADV_PGD
			                       ? adv_pgd(run, d->x, d->y, d->n, eps, &st, err)
			                       : adv_cw(run, d->x, d->y, d->n, &st, err);
			if (rc != MLSEC_OK)
				return rc;
			const char *name = attack_name(order[a]);
			json_array_append_new(attacks, attack_json(order[a], eps, &st, o));
			sanity(art, name, order[a] == MLSEC_ADV_CW ? 1 : eps, &st);
			double acc = st.n ? (double)st.adv_correct / st.n : 0;
			if (base)
				compare(art, base, model, name, eps, acc, o, cmp);
			if (updates && adv_baseline_set(updates, model, name, eps, acc) != MLSEC_OK)
				return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
	}
	return MLSEC_OK;
}

/* Synthetic inputs in the clip range, labelled with the model's own predictions. */
static mlsec_err synth(adv_runner *run, const mlsec_adv_opts *o, mlsec_adv_data *d,
                       mlsec_error *err)
{
	memset(d, 0, sizeof *d);
	d->n = o->synthetic_samples ? o->synthetic_samples : 256;
	d->sample_numel = adv_runner_sample_numel(run);
	d->x = mlsec_reallocarray(NULL, d->n * d->sample_numel, sizeof(float));
	d->y = mlsec_reallocarray(NULL, d->n, sizeof(int64_t));
	if (!d->x || !d->y)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	uint64_t s = o->seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < d->n * d->sample_numel; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		d->x[i] =
		        o->clip_min + (o->clip_max - o->clip_min) * (float)((s >> 40) / 16777216.0);
	}
	size_t bad;
	mlsec_err rc = adv_predict(run, d->x, d->n, d->y, &bad, err);
	if (rc == MLSEC_OK && bad)
		return mlsec_error_set(
		        err, MLSEC_ERR_PARSE,
		        "the model produces NaN/Inf logits on %zu of %zu synthetic inputs", bad,
		        d->n);
	return rc;
}

mlsec_err mlsec_adv_run(const char *model_path, const mlsec_adv_opts *o, mlsec_report *rep,
                        mlsec_error *err)
{
	if (o->clip_max <= o->clip_min)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "--clip-max must be greater than --clip-min");
	if (o->update_baseline && !o->baseline_path && !o->baseline)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "--update-baseline needs --baseline FILE");
	mlsec_format fmt = mlsec_format_sniff(model_path);
	if (fmt == MLSEC_FMT_PICKLE || fmt == MLSEC_FMT_PYTORCH_ZIP ||
	    fmt == MLSEC_FMT_PYTORCH_LEGACY || fmt == MLSEC_FMT_SAFETENSORS)
		return mlsec_error_set(
		        err, MLSEC_ERR_UNSUPPORTED,
		        "%s is a %s checkpoint: weights alone have no architecture to attack. "
		        "Export the model to ONNX (torch.onnx.export(model, x, 'model.onnx', "
		        "dynamic_axes={'input': {0: 'batch'}})) and pass the .onnx file",
		        model_path, mlsec_format_name(fmt));
	mlsec_artifact *art = mlsec_report_add_artifact(rep, model_path, "onnx");
	if (!art)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc = mlsec_artifact_hash_file(art, err);
	if (rc != MLSEC_OK)
		return rc;
	json_t *details = mlsec_artifact_details(art);
	char model[256];
	if (o->model_name)
		snprintf(model, sizeof model, "%s", o->model_name);
	else
		model_stem(model_path, model, sizeof model);
	json_object_set_new(details, "model_name", json_string(model));

	mlsec_onnx_model *m = NULL;
	adv_runner *run = NULL;
	mlsec_adv_data data = {0};
	json_t *base = NULL, *updates = NULL;
	mlsec_error e;
	mlsec_error_clear(&e);
	rc = mlsec_onnx_model_load(model_path, NULL, &m, &e);
	if (rc != MLSEC_OK) {
		if (!is_malformed_code(rc))
			goto tool_error;
		malformed(art, model_path, &e);
		return MLSEC_OK;
	}
	rc = adv_runner_new(m, o, &run, &e);
	if (rc == MLSEC_ERR_PARSE) {
		malformed(art, model_path, &e);
		rc = MLSEC_OK;
		goto done;
	}
	if (rc != MLSEC_OK)
		goto tool_error;
	const mlsec_tensor_shape *is = adv_runner_input_shape(run);
	json_t *shape = json_array();
	for (size_t i = 0; i < is->ndim; i++)
		json_array_append_new(shape, json_integer(is->dims[i]));
	json_object_set_new(details, "input_shape", shape);
	json_object_set_new(details, "classes", json_integer((json_int_t)adv_runner_classes(run)));

	if (o->data_path) {
		rc = mlsec_adv_data_load(o->data_path, &data, &e);
		if (rc == MLSEC_ERR_PARSE) {
			mlsec_artifact *da =
			        mlsec_report_add_artifact(rep, o->data_path, "dataset");
			if (!da) {
				rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
				goto done;
			}
			mlsec_artifact_hash_file(da, NULL);
			malformed(da, o->data_path, &e);
			rc = MLSEC_OK;
			goto done;
		}
		if (rc != MLSEC_OK)
			goto tool_error;
		if (data.sample_numel != adv_runner_sample_numel(run)) {
			rc = mlsec_error_set(
			        err, MLSEC_ERR_INVALID_ARG,
			        "%s: samples have %zu values but the model's input takes %zu",
			        o->data_path, data.sample_numel, adv_runner_sample_numel(run));
			goto done;
		}
		for (size_t i = 0; i < data.n; i++) {
			if ((size_t)data.y[i] >= adv_runner_classes(run)) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_INVALID_ARG,
				        "%s: label y[%zu] = %lld but the model has %zu classes",
				        o->data_path, i, (long long)data.y[i],
				        adv_runner_classes(run));
				goto done;
			}
		}
		/* Every attack clamps to the clip range: data outside it would be
		 * moved far beyond epsilon and every number would be wrong. */
		for (size_t i = 0; i < data.n * data.sample_numel; i++) {
			if (!(data.x[i] >= o->clip_min && data.x[i] <= o->clip_max)) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_INVALID_ARG,
				        "%s: x value %g (sample %zu) is outside the clip "
				        "range [%g, %g]: pass --clip-min/--clip-max matching "
				        "the model's input domain",
				        o->data_path, data.x[i], i / data.sample_numel, o->clip_min,
				        o->clip_max);
				goto done;
			}
		}
		json_object_set_new(details, "labels", json_string("data"));
		json_object_set_new(details, "data", json_string(o->data_path));
	} else {
		rc = synth(run, o, &data, &e);
		if (rc == MLSEC_ERR_PARSE) {
			mlsec_finding *f = mlsec_artifact_add_finding(
			        art, RULE_PREFIX "-MODEL-NONFINITE", MLSEC_SEV_HIGH,
			        "Model outputs NaN/Inf", "%s", e.text);
			(void)f;
			rc = MLSEC_OK;
			goto done;
		}
		if (rc != MLSEC_OK)
			goto tool_error;
		json_object_set_new(details, "labels", json_string("model-predictions"));
		mlsec_artifact_add_finding(
		        art, RULE_PREFIX "-SYNTHETIC-DATA", MLSEC_SEV_INFO,
		        "No data given: measured prediction stability on synthetic inputs",
		        "%zu uniform inputs in [%g, %g] labelled with the model's own "
		        "predictions; accuracies are agreement with the clean prediction",
		        data.n, o->clip_min, o->clip_max);
	}
	if (o->samples && o->samples < data.n)
		data.n = o->samples;
	json_object_set_new(details, "samples", json_integer((json_int_t)data.n));

	/* Clean accuracy and model sanity. */
	int64_t *pred = mlsec_reallocarray(NULL, data.n, sizeof *pred);
	if (!pred) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto done;
	}
	size_t bad = 0, correct = 0;
	rc = adv_predict(run, data.x, data.n, pred, &bad, &e);
	for (size_t i = 0; rc == MLSEC_OK && i < data.n; i++)
		correct += pred[i] == data.y[i];
	mlsec_free(pred);
	if (rc != MLSEC_OK)
		goto tool_error;
	json_object_set_new(details, "clean_accuracy",
	                    json_real(data.n ? (double)correct / data.n : 0));
	if (bad) {
		mlsec_finding *f = mlsec_artifact_add_finding(
		        art, RULE_PREFIX "-MODEL-NONFINITE", MLSEC_SEV_HIGH,
		        "Model outputs NaN/Inf logits",
		        "%zu of %zu clean samples give non-finite logits", bad, data.n);
		if (f)
			mlsec_finding_set_remediation(
			        f, "Inspect the weights (mlsec inspect) for NaN/Inf injection.");
	}

	if (o->baseline) {
		base = json_incref((json_t *)o->baseline);
	} else if (o->baseline_path) {
		rc = adv_baseline_load(o->baseline_path, &base, &e);
		if (rc != MLSEC_OK)
			goto tool_error;
		/* Only --update-baseline may start from nothing: a mistyped
		 * path must not silently switch the regression gate off. */
		if (!base && !o->update_baseline) {
			rc = mlsec_error_set(&e, MLSEC_ERR_NOT_FOUND,
			                     "%s: baseline file not found (record one with "
			                     "--update-baseline)",
			                     o->baseline_path);
			goto tool_error;
		}
	}
	if (base && (rc = adv_baseline_check(base, model, &e)) != MLSEC_OK)
		goto tool_error;
	if (base && !json_object_get(base, model))
		mlsec_artifact_add_finding(art, RULE_PREFIX "-NO-BASELINE", MLSEC_SEV_INFO,
		                           "No baseline recorded for this model yet",
		                           "model '%s' is not in the baseline%s", model,
		                           o->update_baseline ? "; it is recorded now" : "");
	else if (!base && !o->update_baseline)
		mlsec_artifact_add_finding(
		        art, RULE_PREFIX "-NO-BASELINE", MLSEC_SEV_INFO,
		        "No baseline given: robustness is reported, not compared",
		        "pass --baseline FILE (and --update-baseline once) to gate on regressions");
	if (o->update_baseline) {
		updates = base ? json_deep_copy(base) : json_object();
		if (!updates) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			goto done;
		}
	}
	rc = run_attacks(run, &data, o, art, base, model, updates, &e);
	if (rc != MLSEC_OK)
		goto tool_error;
	if (updates) {
		/* The whole updated document: the cluster stores it as is and
		 * `mlsec-submit --baseline-export` prints the same JSON. */
		json_object_set(details, "baseline_update", updates);
		if (o->baseline_path &&
		    (rc = adv_baseline_save(updates, o->baseline_path, &e)) != MLSEC_OK)
			goto tool_error;
	}
	goto done;
tool_error:
	if (err)
		*err = e;
done:
	json_decref(base);
	json_decref(updates);
	mlsec_adv_data_free(&data);
	adv_runner_free(run);
	mlsec_onnx_model_free(m);
	return rc;
}

/* A path the service already resolved and confined (one of the artifacts). */
static int is_request_path(const mlsec_engine_request *req, const char *p)
{
	for (size_t i = 0; i < req->npaths; i++)
		if (req->paths[i] == p)
			return 1;
	return 0;
}

static mlsec_err analyze(const mlsec_engine_request *req, mlsec_report *rep, mlsec_error *err)
{
	mlsec_adv_opts o;
	mlsec_adv_opts_default(&o);
	mlsec_err rc = mlsec_adv_opts_from_json(req->options, &o, err);
	if (rc != MLSEC_OK)
		return rc;
	o.cancel = req->cancel;
	o.progress = req->progress;
	o.progress_ctx = req->progress_ctx;
	/* Artifacts: the model (ONNX) and optionally a data set (npz/safetensors). */
	const char *model = NULL;
	for (size_t i = 0; i < req->npaths; i++) {
		mlsec_format f = mlsec_format_sniff(req->paths[i]);
		if ((f == MLSEC_FMT_NPZ || f == MLSEC_FMT_SAFETENSORS || f == MLSEC_FMT_ZIP) &&
		    !o.data_path)
			o.data_path = req->paths[i];
		else if (!model)
			model = req->paths[i];
		else
			return mlsec_error_set(
			        err, MLSEC_ERR_INVALID_ARG,
			        "the adversarial stage takes one model and one data set");
	}
	if (!model)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no model given");
	/* Paths in the options are as untrusted as the artifacts: in a
	 * service they must resolve under the artifact root, and the stage
	 * never writes a baseline file (this run's accuracies are returned in
	 * details.baseline_update for the caller to store). */
	char *data = NULL;
	json_t *base = NULL, *empty = NULL;
	rc = MLSEC_OK;
	if (req->artifact_root) {
		if (o.data_path && o.data_path != model && !is_request_path(req, o.data_path)) {
			rc = mlsec_path_confine(req->artifact_root, o.data_path, &data, err);
			o.data_path = data;
		}
		if (rc == MLSEC_OK && o.baseline_path) {
			char *bp = NULL;
			rc = mlsec_path_confine(req->artifact_root, o.baseline_path, &bp, err);
			if (rc == MLSEC_OK)
				rc = adv_baseline_load(bp, &base, err);
			if (rc == MLSEC_OK && !base)
				rc = mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "%s: no baseline",
				                     bp);
			mlsec_free(bp);
			o.baseline = base;
			o.baseline_path = NULL;
		}
	}
	/* Without a baseline yet, update-baseline still reports the accuracies. */
	if (rc == MLSEC_OK && o.update_baseline && !o.baseline_path && !o.baseline)
		o.baseline = empty = json_object();
	if (rc == MLSEC_OK)
		rc = mlsec_adv_run(model, &o, rep, err);
	mlsec_free(data);
	json_decref(base);
	json_decref(empty);
	return rc;
}

static const mlsec_engine_state adversarial_state = {
        .name = "baseline",
        .key_option = "model-name",
        .in_option = "baseline",
        .out_detail = "baseline_update",
        .update_option = "update-baseline",
};

const mlsec_engine mlsec_engine_adversarial = {
        .stage = "adversarial",
        .rule_prefix = RULE_PREFIX,
        .summary = "FGSM/PGD/CW robustness regression against a baseline",
        .analyze = analyze,
        .state = &adversarial_state,
};
