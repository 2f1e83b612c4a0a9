/*
 * triton_config.c - the config.pbtxt rules. Each check reads the typed
 * struct the pbtxt parser filled (Inference__ModelConfig) and reports with
 * the field path and the line/column the parser recorded.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "triton_int.h"

#define MODEL_DIR_MACRO "$$TRITON_MODEL_DIRECTORY"

/* ASCII classes, inline: <ctype.h> goes through the locale tables with a
 * call per character, and these run over every parameter key and value.
 * No locale mlsec runs in classes bytes >= 0x80 as letters either. */
static inline int a_lower(int c)
{
	return c >= 'a' && c <= 'z';
}
static inline int a_upper(int c)
{
	return c >= 'A' && c <= 'Z';
}
static inline int a_alpha(int c)
{
	return a_lower(c) || a_upper(c);
}
static inline int a_alnum(int c)
{
	return a_alpha(c) || (c >= '0' && c <= '9');
}
static inline int a_tolower(int c)
{
	return a_upper(c) ? c + 32 : c;
}
#define SAFE_LEN 96 /* config strings echoed in details are cut to this */

/* Copies s for display: control bytes become '?', long strings are cut.
 * Keeps hostile names from injecting terminal escapes into reports. */
static const char *safe(const char *s, char *buf, size_t n)
{
	size_t i = 0;
	for (; s && s[i] && i + 4 < n && i < SAFE_LEN; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = (ch < 0x20 || ch == 0x7F) ? '?' : (char)ch;
	}
	buf[i] = '\0';
	if (s && s[i])
		strcpy(buf + i, "...");
	return buf;
}

int triton_path_escapes(const char *path, int up_allowed)
{
	if (!path || !*path)
		return 0;
	const char *p = path;
	long depth = 0;
	size_t ml = sizeof MODEL_DIR_MACRO - 1;
	if (!strncmp(p, MODEL_DIR_MACRO, ml) && (p[ml] == '/' || p[ml] == '\0')) {
		p += ml;
		depth = -up_allowed;
	} else if (p[0] == '/' || p[0] == '\\' || p[0] == '~' ||
	           (a_alpha((unsigned char)p[0]) && p[1] == ':')) {
		return 1;
	}
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < -up_allowed)
				return 1;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		p += n;
	}
	return 0;
}

/* Splits a key into lowercase words at non-alphanumerics and camelCase. */
static size_t key_words(const char *k, char words[][24], size_t max)
{
	size_t nw = 0, len = 0;
	for (const char *p = k;; p++) {
		unsigned char ch = (unsigned char)*p;
		int boundary = !a_alnum(ch) ||
		               (len && a_upper(ch) && p > k && a_lower((unsigned char)p[-1]));
		if (boundary && len) {
			words[nw][len] = '\0';
			if (++nw == max)
				return nw;
			len = 0;
		}
		if (!ch)
			return nw;
		if (a_alnum(ch) && len < 23)
			words[nw][len++] = (char)a_tolower(ch);
	}
}

/* Every credential word below contains one of these letter pairs: a cheap
 * filter that spares the word split for ordinary keys. */
static int has_secret_hint(const char *k)
{
	for (const char *p = k; p[0] && p[1]; p++) {
		int a = a_tolower((unsigned char)p[0]), b = a_tolower((unsigned char)p[1]);
		if ((a == 'p' && (b == 'a' || b == 'w')) || (a == 's' && (b == 'e' || b == 't')) ||
		    (a == 't' && b == 'o') || (a == 'k' && b == 'e') || (a == 'c' && b == 'r') ||
		    (a == 'a' && b == 'u') || (a == 'b' && b == 'e'))
			return 1;
	}
	return 0;
}

int triton_key_looks_secret(const char *k)
{
	if (!has_secret_hint(k))
		return 0;
	static const char *const single[] = {
	        "password", "passwd",        "pwd",         "secret",     "token",
	        "apikey",   "credential",    "credentials", "privatekey", "passphrase",
	        "bearer",   "authorization", NULL};
	static const char *const pairs[][2] = {
	        {"api", "key"},           {"access", "key"}, {"secret", "key"},
	        {"private", "key"},       {"auth", "token"}, {"client", "secret"},
	        {"session", "token"},     {"auth", "key"},   {"sas", "token"},
	        {"connection", "string"}, {NULL, NULL}};
	char w[16][24];
	size_t n = key_words(k, w, 16);
	for (size_t i = 0; i < n; i++) {
		for (size_t s = 0; single[s]; s++)
			if (!strcmp(w[i], single[s]))
				return 1;
		for (size_t s = 0; i + 1 < n && pairs[s][0]; s++)
			if (!strcmp(w[i], pairs[s][0]) && !strcmp(w[i + 1], pairs[s][1]))
				return 1;
	}
	return 0;
}

static size_t run_of(const char *p, const char *set_extra)
{
	size_t n = 0;
	while (p[n] && (a_alnum((unsigned char)p[n]) || (set_extra && strchr(set_extra, p[n]))))
		n++;
	return n;
}

int triton_value_looks_secret(const char *v)
{
	static const struct {
		const char *prefix;
		size_t min_tail;
		const char *extra;
	} fmts[] = {{"AKIA", 16, NULL},       {"ASIA", 16, NULL},   {"ghp_", 30, NULL},
	            {"gho_", 30, NULL},       {"ghs_", 30, NULL},   {"ghu_", 30, NULL},
	            {"github_pat_", 40, "_"}, {"glpat-", 20, "-_"}, {"xoxb-", 20, "-"},
	            {"xoxp-", 20, "-"},       {"xoxa-", 20, "-"},   {"hf_", 30, NULL},
	            {"sk-", 20, "-_"},        {"AIza", 35, "-_"},   {"eyJ", 20, "-_."},
	            {NULL, 0, NULL}};
	if (!v)
		return 0;
	if (strstr(v, "PRIVATE KEY-----"))
		return 1;
	/* Credentials embedded in a URL: scheme://user:pass@host */
	const char *s = strstr(v, "://");
	if (s) {
		const char *at = strchr(s + 3, '@'), *colon = strchr(s + 3, ':');
		const char *slash = strchr(s + 3, '/');
		if (at && colon && colon < at && (!slash || at < slash))
			return 1;
	}
	for (const char *p = v; *p; p++) {
		if (p > v && a_alnum((unsigned char)p[-1]))
			continue; /* prefixes must start a word */
		if (!strchr("Agxhse", *p))
			continue; /* no known format starts with this character */
		for (size_t i = 0; fmts[i].prefix; i++) {
			size_t pl = strlen(fmts[i].prefix);
			if (strncmp(p, fmts[i].prefix, pl))
				continue;
			if (run_of(p + pl, fmts[i].extra) < fmts[i].min_tail)
				continue;
			/* A JWT has three dot-separated parts. */
			if (!strcmp(fmts[i].prefix, "eyJ")) {
				const char *d1 = strchr(p, '.');
				if (!d1 || !strchr(d1 + 1, '.'))
					continue;
			}
			return 1;
		}
	}
	return 0;
}

/* A value that points at a secret rather than holding one. */
static int is_reference(const char *v)
{
	static const char *const refs[] = {
	        "$",         "env:",          "secret:",           "vault:", "file:", "arn:",
	        "projects/", "/run/secrets/", "/var/run/secrets/", NULL};
	for (size_t i = 0; refs[i]; i++)
		if (!strncmp(v, refs[i], strlen(refs[i])))
			return 1;
	static const char *const plain[] = {"true", "false", "True", "False", "none", "None",
	                                    "null", "yes",   "no",   "0",     "1",    NULL};
	for (size_t i = 0; plain[i]; i++)
		if (!strcmp(v, plain[i]))
			return 1;
	return 0;
}

/* 0 = no finding; 1 = by key name; 2 = the value has a credential format. */
static int secret_kind(const char *key, const char *val)
{
	if (!val || !*val)
		return 0;
	if (triton_value_looks_secret(val))
		return 2;
	return triton_key_looks_secret(key) && !is_reference(val) ? 1 : 0;
}

static void check_secret(triton_ctx *c, const void *entry, const char *fpath, const char *key,
                         const char *val)
{
	char kb[128], rb[64];
	int kind = secret_kind(key, val);
	if (!kind)
		return;
	int by_val = kind == 2;
	mlsec_finding *f =
	        triton_add(c, R_PLAINTEXT_SECRET, entry, "value", 0, fpath, "parameter \"%s\" %s",
	                   safe(key, kb, sizeof kb),
	                   by_val ? "holds a value in a known credential format"
	                          : "is named like a credential and holds a literal value");
	if (!f)
		return;
	/* Never copy the secret into reports: 4 characters and the length. */
	size_t n = strlen(val);
	char head[5] = {0};
	for (size_t i = 0; i < 4 && i < n && n >= 12; i++)
		head[i] = isprint((unsigned char)val[i]) ? val[i] : '?';
	triton_snprintf(rb, sizeof rb, "%s... (%zu chars, redacted)", head, n);
	if (mlsec_finding_set_evidence(f, "value", "%s", rb) != MLSEC_OK)
		c->rc = MLSEC_ERR_NOMEM;
}

static int key_is_path_like(const char *k)
{
	/* Each word below contains "pa", "di" or "fi": skip the split for
	 * keys that contain none of them (most keys). */
	int hint = 0;
	for (const char *p = k; p[0] && p[1] && !hint; p++) {
		int a = a_tolower((unsigned char)p[0]), b = a_tolower((unsigned char)p[1]);
		hint = (a == 'p' && b == 'a') || (a == 'd' && b == 'i') || (a == 'f' && b == 'i');
	}
	if (!hint)
		return 0;
	char w[16][24];
	size_t n = key_words(k, w, 16);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(w[i], "path") || !strcmp(w[i], "dir") || !strcmp(w[i], "file") ||
		    !strcmp(w[i], "filename") || !strcmp(w[i], "directory") ||
		    !strcmp(w[i], "filepath"))
			return 1;
	return 0;
}

static int value_is_path_like(const char *v)
{
	if (!strncmp(v, MODEL_DIR_MACRO, sizeof MODEL_DIR_MACRO - 1))
		return 1;
	if (strstr(v, "://"))
		return 0; /* URLs are not local paths */
	return v[0] == '/' || v[0] == '~' || !strncmp(v, "../", 3) || strstr(v, "/../") ||
	       !strcmp(v, "..");
}

static int path_flagged(const char *val, int up_allowed)
{
	return val && *val && triton_path_escapes(val, up_allowed);
}

static void check_path(triton_ctx *c, const void *msg, const char *field, size_t index,
                       const char *fpath, const char *what, const char *val, int up_allowed)
{
	char vb[128];
	if (!path_flagged(val, up_allowed))
		return;
	mlsec_finding *f =
	        triton_add(c, R_PATH_ESCAPE, msg, field, index, fpath, "%s \"%s\" is %s", what,
	                   safe(val, vb, sizeof vb),
	                   (val[0] == '/' || val[0] == '~') ? "an absolute path"
	                                                    : "outside the model directory");
	if (f && mlsec_finding_set_evidence(f, "path", "%s", vb) != MLSEC_OK)
		c->rc = MLSEC_ERR_NOMEM;
}

static int is_python_backend(const Inference__ModelConfig *cfg)
{
	return !strcmp(cfg->backend, "python");
}

static void check_parameters(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	char fp[256], kb[128];
	for (size_t i = 0; i < cfg->n_parameters; i++) {
		const Inference__ModelConfig__ParametersEntry *e = cfg->parameters[i];
		const char *val = e->value ? e->value->string_value : "";
		int is_env = !strcmp(e->key, "EXECUTION_ENV_PATH");
		int secret = secret_kind(e->key, val);
		int path = is_env ? triton_path_escapes(val, 0)
		                  : *val && (key_is_path_like(e->key) || value_is_path_like(val)) &&
		                            path_flagged(val, 0);
		if (!secret && !path)
			continue; /* the common case: no finding, so no field path to format */
		triton_snprintf(fp, sizeof fp, "parameters[\"%s\"].string_value",
		                safe(e->key, kb, sizeof kb));
		check_secret(c, e, fp, e->key, val);
		if (is_env) {
			if (path) {
				char vb[128];
				triton_add(c, R_PYTHON_EXEC_ENV, e, "value", 0, fp,
				           "EXECUTION_ENV_PATH \"%s\" is not inside the model "
				           "directory: the Python interpreter and packages it "
				           "unpacks run with the server's privileges",
				           safe(val, vb, sizeof vb));
			}
			continue;
		}
		if (*val && (key_is_path_like(e->key) || value_is_path_like(val)))
			check_path(c, e, "value", 0, fp, "parameter path", val, 0);
	}
}

static void check_native_code(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	char fp[256], vb[128];
	const Inference__ModelOperations *ops = cfg->model_operations;
	for (size_t i = 0; ops && i < ops->n_op_library_filename; i++) {
		triton_snprintf(fp, sizeof fp, "model_operations.op_library_filename[%zu]", i);
		mlsec_finding *f =
		        triton_add(c, R_OP_LIBRARY, ops, "op_library_filename", i, fp,
		                   "tritonserver will dlopen \"%s\" into its own process",
		                   safe(ops->op_library_filename[i], vb, sizeof vb));
		if (f && mlsec_finding_set_evidence(f, "library", "%s", vb) != MLSEC_OK)
			c->rc = MLSEC_ERR_NOMEM;
	}
	if (is_python_backend(cfg))
		triton_add(c, R_PYTHON_BACKEND, cfg, "backend", 0, "backend",
		           "backend \"python\" imports and runs model.py from the model "
		           "repository");
	const Inference__ModelRepositoryAgents *ra = cfg->model_repository_agents;
	for (size_t i = 0; ra && i < ra->n_agents; i++) {
		const Inference__ModelRepositoryAgents__Agent *ag = ra->agents[i];
		triton_snprintf(fp, sizeof fp, "model_repository_agents.agents[%zu]", i);
		triton_add(c, R_REPO_AGENT, ra, "agents", i, fp,
		           "repository agent \"%s\" (libtritonrepoagent_%s.so) runs when the model "
		           "loads",
		           safe(ag->name, vb, sizeof vb), vb);
		for (size_t k = 0; k < ag->n_parameters; k++) {
			char kb[128], fp2[320];
			const Inference__ModelRepositoryAgents__Agent__ParametersEntry *e =
			        ag->parameters[k];
			triton_snprintf(fp2, sizeof fp2, "%s.parameters[\"%s\"]", fp,
			                safe(e->key, kb, sizeof kb));
			check_secret(c, e, fp2, e->key, e->value);
		}
	}
	const Inference__ModelOptimizationPolicy *op = cfg->optimization;
	const Inference__ModelOptimizationPolicy__ExecutionAccelerators *ea =
	        op ? op->execution_accelerators : NULL;
	for (int g = 0; ea && g < 2; g++) {
		size_t n = g ? ea->n_cpu_execution_accelerator : ea->n_gpu_execution_accelerator;
		Inference__ModelOptimizationPolicy__ExecutionAccelerators__Accelerator **acc =
		        g ? ea->cpu_execution_accelerator : ea->gpu_execution_accelerator;
		for (size_t i = 0; i < n; i++) {
			for (size_t k = 0; k < acc[i]->n_parameters; k++) {
				char kb[128];
				const Inference__ModelOptimizationPolicy__ExecutionAccelerators__Accelerator__ParametersEntry
				        *e = acc[i]->parameters[k];
				triton_snprintf(fp, sizeof fp,
				                "optimization.execution_accelerators.%s_execution_"
				                "accelerator[%zu]"
				                ".parameters[\"%s\"]",
				                g ? "cpu" : "gpu", i, safe(e->key, kb, sizeof kb));
				check_secret(c, e, fp, e->key, e->value);
			}
		}
	}
}

static void check_paths(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	char fp[256], kb[128];
	/* Model files live in <model>/<version>/: one ".." still stays inside. */
	check_path(c, cfg, "default_model_filename", 0, "default_model_filename",
	           "default_model_filename", cfg->default_model_filename, 1);
	for (size_t i = 0; i < cfg->n_cc_model_filenames; i++) {
		const Inference__ModelConfig__CcModelFilenamesEntry *e = cfg->cc_model_filenames[i];
		if (!path_flagged(e->value, 1))
			continue;
		triton_snprintf(fp, sizeof fp, "cc_model_filenames[\"%s\"]",
		                safe(e->key, kb, sizeof kb));
		check_path(c, e, "value", 0, fp, "cc_model_filenames entry", e->value, 1);
	}
	for (size_t i = 0; i < cfg->n_output; i++) {
		if (!path_flagged(cfg->output[i]->label_filename, 0))
			continue;
		triton_snprintf(fp, sizeof fp, "output[%zu].label_filename", i);
		check_path(c, cfg->output[i], "label_filename", 0, fp, "label_filename",
		           cfg->output[i]->label_filename, 0);
	}
	/* Warmup files live in <model>/warmup/, initial states in
	 * <model>/initial_state/. */
	for (size_t w = 0; w < cfg->n_model_warmup; w++) {
		const Inference__ModelWarmup *mw = cfg->model_warmup[w];
		for (size_t i = 0; i < mw->n_inputs; i++) {
			const Inference__ModelWarmup__InputsEntry *e = mw->inputs[i];
			if (!e->value ||
			    e->value->input_data_type_case !=
			            INFERENCE__MODEL_WARMUP__INPUT__INPUT_DATA_TYPE_INPUT_DATA_FILE)
				continue;
			triton_snprintf(fp, sizeof fp,
			                "model_warmup[%zu].inputs[\"%s\"].input_data_file", w,
			                safe(e->key, kb, sizeof kb));
			check_path(c, e->value, "input_data_file", 0, fp, "warmup input_data_file",
			           e->value->input_data_file, 1);
		}
	}
	if (cfg->scheduling_choice_case ==
	    INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_SEQUENCE_BATCHING) {
		const Inference__ModelSequenceBatching *sb = cfg->sequence_batching;
		for (size_t s = 0; s < sb->n_state; s++) {
			for (size_t i = 0; i < sb->state[s]->n_initial_state; i++) {
				const Inference__ModelSequenceBatching__InitialState *is =
				        sb->state[s]->initial_state[i];
				if (is->state_data_case !=
				    INFERENCE__MODEL_SEQUENCE_BATCHING__INITIAL_STATE__STATE_DATA_DATA_FILE)
					continue;
				triton_snprintf(
				        fp, sizeof fp,
				        "sequence_batching.state[%zu].initial_state[%zu].data_file",
				        s, i);
				check_path(c, is, "data_file", 0, fp, "initial_state data_file",
				           is->data_file, 1);
			}
		}
	}
}

static void check_inputs(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	char fp[256], nb[128];
	for (size_t i = 0; i < cfg->n_input; i++) {
		const Inference__ModelInput *in = cfg->input[i];
		size_t var = 0, first = 0;
		for (size_t d = 0; d < in->n_dims; d++)
			if (in->dims[d] == -1 && var++ == 0)
				first = d;
		if (!var)
			continue;
		triton_snprintf(fp, sizeof fp, "input[%zu].dims[%zu]", i, first);
		int is_string = in->data_type == INFERENCE__DATA_TYPE__TYPE_STRING;
		if (is_string || in->allow_ragged_batch)
			triton_add(
			        c, R_INPUT_UNBOUNDED, in, "dims", first, fp,
			        "input \"%s\" (%s%s) has %zu dimension(s) of -1: a single request "
			        "can carry an arbitrarily large tensor",
			        safe(in->name, nb, sizeof nb), is_string ? "TYPE_STRING" : "",
			        in->allow_ragged_batch ? (is_string ? ", ragged" : "ragged batch")
			                               : "",
			        var);
		else
			triton_add(c, R_INPUT_DYNAMIC_DIM, in, "dims", first, fp,
			           "input \"%s\" has %zu dimension(s) of -1",
			           safe(in->name, nb, sizeof nb), var);
	}
}

static void check_queue_policy(triton_ctx *c, const Inference__ModelQueuePolicy *q,
                               const void *owner, const char *field, const char *fpath)
{
	char fp[300];
	if (!q || q->max_queue_size == 0) {
		triton_snprintf(fp, sizeof fp, "%s.max_queue_size", fpath);
		triton_add(c, R_QUEUE_UNBOUNDED, q ? (const void *)q : owner,
		           q ? "max_queue_size" : field, 0, fp,
		           "%s has no max_queue_size (0 = unbounded): a request flood is queued "
		           "in server memory instead of being rejected",
		           fpath);
	}
	if (q && q->timeout_action == INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__DELAY &&
	    q->default_timeout_microseconds == 0) {
		triton_snprintf(fp, sizeof fp, "%s.timeout_action", fpath);
		triton_add(c, R_QUEUE_DELAY_NO_TIMEOUT, q, "timeout_action", 0, fp,
		           "timeout_action DELAY with default_timeout_microseconds 0: requests "
		           "wait without limit%s",
		           q->allow_timeout_override ? " (and clients may override the timeout)"
		                                     : "");
	}
}

static void check_scheduling(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	char fp[256];
	switch (cfg->scheduling_choice_case) {
	case INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING: {
		const Inference__ModelDynamicBatching *db = cfg->dynamic_batching;
		check_queue_policy(c, db->default_queue_policy, cfg, "dynamic_batching",
		                   "dynamic_batching.default_queue_policy");
		for (size_t i = 0; i < db->n_priority_queue_policy; i++) {
			const Inference__ModelDynamicBatching__PriorityQueuePolicyEntry *e =
			        db->priority_queue_policy[i];
			triton_snprintf(fp, sizeof fp,
			                "dynamic_batching.priority_queue_policy[%llu]",
			                (unsigned long long)e->key);
			check_queue_policy(c, e->value, e, "value", fp);
		}
		break;
	}
	case INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_ENSEMBLE_SCHEDULING: {
		const Inference__ModelEnsembling *en = cfg->ensemble_scheduling;
		if (en->max_inflight_requests == 0)
			triton_add(
			        c, R_ENSEMBLE_INFLIGHT, cfg, "ensemble_scheduling", 0,
			        "ensemble_scheduling.max_inflight_requests",
			        "ensemble with %zu step(s) and max_inflight_requests 0 "
			        "(unlimited): "
			        "fast early steps can pile up intermediate tensors without bound",
			        en->n_step);
		break;
	}
	default:
		break;
	}
}

static int is_ensemble(const Inference__ModelConfig *cfg)
{
	return !strcmp(cfg->platform, "ensemble") ||
	       cfg->scheduling_choice_case ==
	               INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_ENSEMBLE_SCHEDULING;
}

static void check_instances(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	char fp[256];
	int limited = 0;
	for (size_t i = 0; i < cfg->n_instance_group; i++) {
		const Inference__ModelInstanceGroup *g = cfg->instance_group[i];
		if (g->rate_limiter)
			limited = 1;
		long long count = g->count > 0 ? g->count : 1;
		long long total = count * (long long)(g->n_gpus ? g->n_gpus : 1);
		if (total > c->aud->max_instances) {
			triton_snprintf(fp, sizeof fp, "instance_group[%zu].count", i);
			triton_add(c, R_INSTANCE_COUNT, g, "count", 0, fp,
			           "instance group %zu creates %lld instances (count %lld x %zu "
			           "GPU(s)); threshold %ld",
			           i, total, count, g->n_gpus ? g->n_gpus : (size_t)1,
			           c->aud->max_instances);
		}
	}
	if (limited) {
		c->aud->rate_limited_configs++;
		if (!c->aud->first_rate_limited[0])
			triton_snprintf(c->aud->first_rate_limited,
			                sizeof c->aud->first_rate_limited, "%s", c->path);
	} else if (!is_ensemble(cfg)) {
		triton_add(
		        c, R_NO_RATE_LIMITER, cfg, cfg->n_instance_group ? "instance_group" : NULL,
		        0, "instance_group[].rate_limiter",
		        "%s: no instance group declares a rate_limiter (note: rate limiters only "
		        "take effect when tritonserver runs with --rate-limit=execution_count)",
		        cfg->n_instance_group ? "instance groups present" : "no instance_group");
	}
	const Inference__ModelVersionPolicy *vp = cfg->version_policy;
	if (vp && vp->policy_choice_case == INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL)
		triton_add(
		        c, R_VERSION_POLICY_ALL, vp, "all", 0, "version_policy.all",
		        "version_policy all: every version directory in the repository is loaded "
		        "and reachable, including retired ones");
}

/* Values Triton's own validation rejects even though they parse. */
static void check_semantics(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	if (cfg->max_batch_size < 0)
		triton_add(c, R_MALFORMED, cfg, "max_batch_size", 0, "max_batch_size",
		           "max_batch_size %d is negative; Triton rejects the model "
		           "(0 = no batching, >0 = largest batch)",
		           (int)cfg->max_batch_size);
	int ens_sched = cfg->scheduling_choice_case ==
	                INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_ENSEMBLE_SCHEDULING;
	if (ens_sched && strcmp(cfg->platform, "ensemble") != 0)
		triton_add(c, R_MALFORMED, cfg, "ensemble_scheduling", 0, "ensemble_scheduling",
		           "ensemble_scheduling is only valid with platform \"ensemble\"");
	else if (ens_sched && cfg->ensemble_scheduling->n_step == 0)
		triton_add(c, R_MALFORMED, cfg, "ensemble_scheduling", 0,
		           "ensemble_scheduling.step", "an ensemble needs at least one step");
	for (size_t i = 0; i < cfg->n_input; i++) {
		const Inference__ModelInput *in = cfg->input[i];
		for (size_t d = 0; d < in->n_dims; d++) {
			if (in->dims[d] < -1) {
				char fp[64];
				triton_snprintf(fp, sizeof fp, "input[%zu].dims[%zu]", i, d);
				triton_add(
				        c, R_MALFORMED, in, "dims", d, fp,
				        "dimension %lld is invalid: Triton accepts -1 (variable) "
				        "or a positive size",
				        (long long)in->dims[d]);
			}
		}
	}
}

void triton_check_config(triton_ctx *c, const Inference__ModelConfig *cfg)
{
	check_semantics(c, cfg);
	check_native_code(c, cfg);
	check_parameters(c, cfg);
	check_paths(c, cfg);
	check_inputs(c, cfg);
	check_scheduling(c, cfg);
	check_instances(c, cfg);
}
