/*
 * inspect.c - the inspect stage: options, model loading by content, the
 * three checks (weights.c, activations.c, fgsm.c) and the engine entry.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inspect_internal.h"
#include "mlsec/adversarial.h"
#include "mlsec/alloc.h"
#include "mlsec/options.h"
#include "mlsec/checkpoint.h"
#include "mlsec/fsutil.h"

#define SYNTHETIC_DEFAULT 256

void mlsec_inspect_opts_default(mlsec_inspect_opts *o)
{
	memset(o, 0, sizeof *o);
	o->checks = MLSEC_INSPECT_ALL;
	o->epsilon = 0.01;
	o->threshold = MLSEC_CKPT_DEFAULT_THRESHOLD;
	o->batch = 64;
	o->input_min = 0;
	o->input_max = 1;
	o->threads = 1;
}

mlsec_err mlsec_inspect_parse_checks(const char *s, unsigned *out, mlsec_error *err)
{
	unsigned bits = 0;
	const char *p = s ? s : "";
	p += strspn(p, ", ");
	while (*p) {
		size_t n = strcspn(p, ", ");
		if (n == 3 && !strncasecmp(p, "all", 3))
			bits |= MLSEC_INSPECT_ALL;
		else if (n == 7 && !strncasecmp(p, "weights", 7))
			bits |= MLSEC_INSPECT_WEIGHTS;
		else if (n == 11 && !strncasecmp(p, "activations", 11))
			bits |= MLSEC_INSPECT_ACTIVATIONS;
		else if (n == 4 && !strncasecmp(p, "fgsm", 4))
			bits |= MLSEC_INSPECT_FGSM;
		else
			return mlsec_error_set(
			        err, MLSEC_ERR_INVALID_ARG,
			        "unknown check '%.*s' (use weights, activations, fgsm)", (int)n, p);
		p += n;
		p += strspn(p, ", ");
	}
	if (!bits)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no check given");
	*out = bits;
	return MLSEC_OK;
}

static const char *const type_names[] = {"auto", "vision", "text", "tabular"};

mlsec_err mlsec_inspect_parse_type(const char *s, mlsec_inspect_type *out, mlsec_error *err)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
		if (s && !strcasecmp(s, type_names[i])) {
			*out = (mlsec_inspect_type)i;
			return MLSEC_OK;
		}
	}
	return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
	                       "unknown model type '%s' (use vision, text, tabular, auto)",
	                       s ? s : "");
}

const char *mlsec_inspect_type_name(mlsec_inspect_type t)
{
	return (unsigned)t < 4 ? type_names[t] : "auto";
}

mlsec_err mlsec_inspect_opts_from_json(const json_t *json, mlsec_inspect_opts *o, mlsec_error *err)
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
		if (!strcmp(key, "checks")) {
			unsigned bits = 0;
			rc = mlsec_option_flags(v, key, mlsec_inspect_parse_checks, &bits, err);
			if (rc == MLSEC_OK && !bits)
				return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                       "no check given");
			if (rc == MLSEC_OK)
				o->checks = bits;
		} else if (!strcmp(key, "type")) {
			rc = json_is_string(v)
			             ? mlsec_inspect_parse_type(json_string_value(v), &o->type, err)
			             : mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                               "option type: string expected");
		} else if (!strcmp(key, "data")) {
			if (json_is_string(v))
				o->data_path = json_string_value(v);
			else
				rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                     "option data: string expected");
		} else if (!strcmp(key, "epsilon")) {
			if (!(rc = mlsec_option_number(v, key, 0, 1e6, &d, err)))
				o->epsilon = d;
		} else if (!strcmp(key, "threshold")) {
			if (!(rc = mlsec_option_number(v, key, 0, 1e30, &d, err)))
				o->threshold = d;
		} else if (!strcmp(key, "samples")) {
			if (!(rc = mlsec_option_integer(v, key, 0, MLSEC_INSPECT_MAX_SAMPLES, &d,
			                                err)))
				o->samples = (size_t)d;
		} else if (!strcmp(key, "batch-size")) {
			if (!(rc = mlsec_option_integer(v, key, 1, MLSEC_INSPECT_MAX_BATCH, &d,
			                                err)))
				o->batch = (size_t)d;
		} else if (!strcmp(key, "input-min")) {
			if (!(rc = mlsec_option_number(v, key, -1e30, 1e30, &d, err)))
				o->input_min = (float)d;
		} else if (!strcmp(key, "input-max")) {
			if (!(rc = mlsec_option_number(v, key, -1e30, 1e30, &d, err)))
				o->input_max = (float)d;
		} else if (!strcmp(key, "seed")) {
			if (!(rc = mlsec_option_integer(v, key, 0, 9007199254740992.0, &d, err)))
				o->seed = (uint64_t)d;
		} else if (!strcmp(key, "threads")) {
			if (!(rc = mlsec_option_integer(v, key, 1, 256, &d, err)))
				o->threads = (int)d;
		} else {
			rc = mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                     "unknown inspect option '%s'", key);
		}
		if (rc != MLSEC_OK)
			return rc;
	}
	return MLSEC_OK;
}

static int malformed_code(mlsec_err rc)
{
	return rc == MLSEC_ERR_PARSE || rc == MLSEC_ERR_LIMIT || rc == MLSEC_ERR_PERMISSION ||
	       rc == MLSEC_ERR_UNSUPPORTED;
}

/* INSPECT-MALFORMED for an artifact that does not parse; keeps err's location. */
static void malformed(mlsec_artifact *a, const char *path, mlsec_error *e)
{
	if (!e->file[0])
		snprintf(e->file, sizeof e->file, "%s", path);
	mlsec_artifact_add_malformed(a, INSP_PREFIX, e);
}

static void info(mlsec_artifact *a, const char *rule, const char *title, const char *detail)
{
	mlsec_artifact_add_finding(a, rule, MLSEC_SEV_INFO, title, "%s", detail);
}

/* Synthetic inputs uniform in the declared input range. */
static mlsec_err synth(const mlsec_inspect_opts *o, size_t numel, mlsec_adv_data *d,
                       mlsec_error *err)
{
	memset(d, 0, sizeof *d);
	d->n = o->samples ? o->samples : SYNTHETIC_DEFAULT;
	d->sample_numel = numel;
	if (!numel || d->n > MLSEC_INSPECT_MAX_INPUT_BYTES / sizeof(float) / numel)
		return mlsec_error_set(
		        err, MLSEC_ERR_INVALID_ARG,
		        "%zu synthetic inputs of %zu values exceed %llu bytes: lower --samples",
		        d->n, numel, (unsigned long long)MLSEC_INSPECT_MAX_INPUT_BYTES);
	d->x = mlsec_reallocarray(NULL, d->n * numel, sizeof(float));
	if (!d->x)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	uint64_t s = o->seed * 0x9e3779b97f4a7c15ull + 0x696e73706563ull;
	for (size_t i = 0; i < d->n * numel; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		d->x[i] = o->input_min +
		          (o->input_max - o->input_min) * (float)((s >> 40) / 16777216.0);
	}
	return MLSEC_OK;
}

static mlsec_inspect_type guess_type(const mlsec_tensor_shape *is)
{
	return is->ndim >= 4   ? MLSEC_INSPECT_TYPE_VISION
	       : is->ndim == 2 ? MLSEC_INSPECT_TYPE_TABULAR
	                       : MLSEC_INSPECT_TYPE_AUTO;
}

/* Activations and FGSM on an ONNX model. Returns non-OK for tool errors only. */
static mlsec_err graph_checks(const mlsec_onnx_model *m, const mlsec_inspect_opts *o,
                              mlsec_report *rep, mlsec_artifact *art, mlsec_error *err)
{
	json_t *det = mlsec_artifact_details(art);
	mlsec_tensor_opts to;
	mlsec_tensor_opts_default(&to);
	to.threads = o->threads > 0 ? o->threads : 1;
	to.batch = (int64_t)(o->batch ? o->batch : 64);
	to.grad = (o->checks & MLSEC_INSPECT_FGSM) != 0;
	mlsec_tensor_graph *g = NULL;
	mlsec_adv_data data = {0};
	mlsec_error e;
	mlsec_error_clear(&e);
	mlsec_err rc = mlsec_tensor_graph_compile(m, &to, &g, &e);
	if (rc == MLSEC_ERR_PARSE || rc == MLSEC_ERR_LIMIT) {
		malformed(art, mlsec_artifact_path(art), &e);
		return MLSEC_OK;
	}
	if (rc == MLSEC_ERR_UNSUPPORTED) {
		/* a graph we cannot execute is still inspectable by its weights */
		mlsec_finding *f = mlsec_artifact_add_finding(
		        art, INSP_PREFIX "-GRAPH-UNSUPPORTED", MLSEC_SEV_LOW,
		        "activations and FGSM skipped: the graph cannot be executed", "%s", e.text);
		(void)f;
		return MLSEC_OK;
	}
	if (rc != MLSEC_OK) {
		*err = e;
		return rc;
	}
	mlsec_tensor_shape is, os;
	mlsec_tensor_graph_input_name(g, 0, &is);
	int one_input =
	        mlsec_tensor_graph_input_count(g) == 1 && is.ndim >= 1 && is.dims[0] == to.batch;
	if (!one_input) {
		mlsec_artifact_add_finding(
		        art, INSP_PREFIX "-GRAPH-UNSUPPORTED", MLSEC_SEV_LOW,
		        "activations and FGSM skipped",
		        "they need one float input [batch, ...] with a dynamic batch "
		        "dimension; the model has %zu inputs",
		        mlsec_tensor_graph_input_count(g));
		goto done;
	}
	size_t numel = is.numel / (size_t)to.batch;
	mlsec_tensor_graph_output_name(g, 0, &os);
	size_t classes =
	        os.ndim == 2 && os.dims[0] == to.batch && os.dims[1] >= 2 ? (size_t)os.dims[1] : 0;
	mlsec_inspect_type type = o->type ? o->type : guess_type(&is);
	json_object_set_new(det, "type", json_string(mlsec_inspect_type_name(type)));
	json_t *shape = json_array();
	for (size_t d = 1; d < is.ndim; d++)
		json_array_append_new(shape, json_integer(is.dims[d]));
	json_object_set_new(det, "input_shape", shape);
	json_object_set_new(det, "classes", json_integer((json_int_t)classes));

	insp_inputs in = {0};
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
		if (rc != MLSEC_OK) {
			*err = e;
			goto done;
		}
		if (data.sample_numel != numel) {
			rc = mlsec_error_set(
			        err, MLSEC_ERR_INVALID_ARG,
			        "%s: samples have %zu values but the model's input takes %zu",
			        o->data_path, data.sample_numel, numel);
			goto done;
		}
		for (size_t i = 0; i < data.n && classes; i++) {
			if (data.y[i] < 0 || (size_t)data.y[i] >= classes) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_INVALID_ARG,
				        "%s: label y[%zu] = %lld but the model has %zu classes",
				        o->data_path, i, (long long)data.y[i], classes);
				goto done;
			}
		}
		/* FGSM clamps to the input range: data outside it would flip
		 * predictions by the clamp, not by the epsilon step. */
		for (size_t i = 0; (o->checks & MLSEC_INSPECT_FGSM) && i < data.n * numel; i++) {
			if (!(data.x[i] >= o->input_min && data.x[i] <= o->input_max)) {
				rc = mlsec_error_set(
				        err, MLSEC_ERR_INVALID_ARG,
				        "%s: x value %g (sample %zu) is outside the input range "
				        "[%g, %g]: pass --input-min/--input-max matching the "
				        "model's preprocessing",
				        o->data_path, data.x[i], i / numel, o->input_min,
				        o->input_max);
				goto done;
			}
		}
		if (o->samples && o->samples < data.n)
			data.n = o->samples;
		in.y = classes ? data.y : NULL;
		json_object_set_new(det, "data", json_string(o->data_path));
	} else {
		if ((rc = synth(o, numel, &data, err)) != MLSEC_OK)
			goto done;
		in.synthetic = 1;
		mlsec_artifact_add_finding(
		        art, INSP_PREFIX "-SYNTHETIC-DATA", MLSEC_SEV_INFO,
		        "no --data: the graph checks ran on synthetic inputs",
		        "%zu inputs uniform in [%g, %g]; labels are the model's own "
		        "predictions",
		        data.n, o->input_min, o->input_max);
	}
	in.x = data.x;
	in.n = data.n;
	in.numel = numel;
	if (o->checks & MLSEC_INSPECT_ACTIVATIONS) {
		rc = insp_activations(g, &in, classes, o, art, err);
		if (rc != MLSEC_OK)
			goto done;
	}
	if (o->checks & MLSEC_INSPECT_FGSM) {
		if (type == MLSEC_INSPECT_TYPE_TEXT)
			info(art, INSP_PREFIX "-FGSM-SKIPPED", "FGSM skipped for a text model",
			     "token inputs have no meaningful input gradient; use --type vision or "
			     "tabular "
			     "for a float-input model");
		else if (!classes)
			info(art, INSP_PREFIX "-FGSM-SKIPPED", "FGSM skipped",
			     "the first output is not logits [batch, classes >= 2]");
		else
			rc = insp_fgsm(g, &in, classes, o, art, err);
	}
done:
	mlsec_adv_data_free(&data);
	mlsec_tensor_graph_free(g);
	return rc;
}

mlsec_err mlsec_inspect_run(const char *path, const mlsec_inspect_opts *o, mlsec_report *rep,
                            mlsec_error *err)
{
	if (!(o->input_max > o->input_min))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "--input-max must be greater than --input-min");
	if (!o->checks)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no check selected");
	mlsec_format fmt = mlsec_format_sniff(path);
	if (fmt == MLSEC_FMT_DIRECTORY)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "%s is a directory: give one model file", path);
	mlsec_artifact *art = mlsec_report_add_artifact(rep, path, NULL);
	if (!art)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc = mlsec_artifact_hash_file(art, err);
	if (rc != MLSEC_OK)
		return rc;
	json_t *det = mlsec_artifact_details(art);
	json_t *checks = json_array();
	if (o->checks & MLSEC_INSPECT_WEIGHTS)
		json_array_append_new(checks, json_string("weights"));
	if (o->checks & MLSEC_INSPECT_ACTIVATIONS)
		json_array_append_new(checks, json_string("activations"));
	if (o->checks & MLSEC_INSPECT_FGSM)
		json_array_append_new(checks, json_string("fgsm"));
	json_object_set_new(det, "checks", checks);

	mlsec_error e;
	mlsec_error_clear(&e);
	insp_weights w;
	insp_weights_init(&w);
	mlsec_onnx_model *m = NULL;
	int graph = fmt == MLSEC_FMT_ONNX;
	if (fmt == MLSEC_FMT_ONNX) {
		mlsec_artifact_set_format(art, "onnx");
		rc = mlsec_onnx_model_load(path, NULL, &m, &e);
		if (rc == MLSEC_OK && (o->checks & MLSEC_INSPECT_WEIGHTS))
			rc = insp_weights_onnx(m, &w, &e);
	} else if (fmt == MLSEC_FMT_SAFETENSORS) {
		mlsec_artifact_set_format(art, "safetensors");
		rc = insp_weights_safetensors(path, &w, &e);
	} else if (fmt == MLSEC_FMT_PYTORCH_ZIP) {
		mlsec_artifact_set_format(art, "pytorch-zip");
		rc = insp_weights_torch(path, &w, &e);
	} else if (fmt == MLSEC_FMT_PYTORCH_LEGACY || fmt == MLSEC_FMT_PICKLE ||
	           fmt == MLSEC_FMT_NPZ || fmt == MLSEC_FMT_NPY) {
		mlsec_artifact_set_format(art, mlsec_format_name(fmt));
		rc = mlsec_error_set(
		        err, MLSEC_ERR_UNSUPPORTED,
		        "%s: %s files are not inspected; re-save as safetensors or a PyTorch "
		        "zip checkpoint, or export to ONNX (triage it with `mlsec checkpoint`)",
		        path, mlsec_format_name(fmt));
		goto out;
	} else {
		/* Fail closed: whatever this is, it is not a model we can read. */
		mlsec_artifact_set_format(art, mlsec_format_name(fmt));
		rc = mlsec_error_set(
		        &e, MLSEC_ERR_PARSE,
		        "not a recognised model (ONNX, safetensors, PyTorch zip checkpoint)");
	}
	if (rc != MLSEC_OK) {
		if (!malformed_code(rc)) {
			*err = e;
			goto out;
		}
		malformed(art, path, &e);
		rc = MLSEC_OK;
		goto out;
	}
	if (o->checks & MLSEC_INSPECT_WEIGHTS) {
		rc = insp_weight_checks(&w, o, art, err);
		if (rc != MLSEC_OK)
			goto out;
	}
	insp_weights_free(&w);
	if (o->checks & (MLSEC_INSPECT_ACTIVATIONS | MLSEC_INSPECT_FGSM)) {
		if (graph)
			rc = graph_checks(m, o, rep, art, err);
		else
			mlsec_artifact_add_finding(
			        art, INSP_PREFIX "-NEEDS-GRAPH", MLSEC_SEV_INFO,
			        "activations and FGSM need a graph",
			        "%s holds weights only; export the model to ONNX "
			        "(torch.onnx.export with "
			        "dynamic_axes={'input': {0: 'batch'}}) to run activations and fgsm",
			        mlsec_artifact_format(art));
	}
out:
	insp_weights_free(&w);
	mlsec_onnx_model_free(m);
	return rc;
}

static mlsec_err analyze(const mlsec_engine_request *req, mlsec_report *rep, mlsec_error *err)
{
	mlsec_inspect_opts o;
	mlsec_inspect_opts_default(&o);
	mlsec_err rc = mlsec_inspect_opts_from_json(req->options, &o, err);
	if (rc != MLSEC_OK)
		return rc;
	o.cancel = req->cancel;
	o.progress = req->progress;
	o.progress_ctx = req->progress_ctx;
	/* Artifacts: the model, optionally followed by its data set. */
	if (req->npaths < 1 || req->npaths > 2)
		return mlsec_error_set(
		        err, MLSEC_ERR_INVALID_ARG,
		        "the inspect stage takes one model (and optionally one data set)");
	char *model = NULL, *data = NULL;
	const char *data_in = req->npaths == 2 ? req->paths[1] : o.data_path;
	if (req->artifact_root) {
		rc = mlsec_path_confine(req->artifact_root, req->paths[0], &model, err);
		if (rc == MLSEC_OK && data_in)
			rc = mlsec_path_confine(req->artifact_root, data_in, &data, err);
		o.data_path = data;
	} else {
		o.data_path = data_in;
	}
	if (rc == MLSEC_OK)
		rc = mlsec_inspect_run(model ? model : req->paths[0], &o, rep, err);
	mlsec_free(model);
	mlsec_free(data);
	return rc;
}

const mlsec_engine mlsec_engine_inspect = {
        .stage = "inspect",
        .rule_prefix = INSP_PREFIX,
        .summary = "inspect a model: weight anomalies, activations, quick FGSM probe",
        .analyze = analyze,
};
