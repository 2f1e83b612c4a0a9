/*
 * triton_launch.c - audit of the tritonserver command line: where API
 * restrictions (Triton's only built-in authentication), TLS, exposure and
 * model control are decided. Input is a file of arguments (shell quoting,
 * `\` continuations and # comments allowed, optionally starting with the
 * tritonserver command) or Kubernetes YAML (a manifest or rendered Helm
 * chart, several documents allowed) whose containers run tritonserver.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "mlsec/alloc.h"
#include "triton_int.h"

#define LAUNCH_MAX_ARGS 4096         /* arguments per command line */
#define LAUNCH_MAX_ARG_LEN 65536     /* bytes per argument */
#define LAUNCH_MAX_YAML_NODES 200000 /* node visits per file (alias bombs) */
#define LAUNCH_MAX_YAML_DEPTH 64
#define LAUNCH_MAX_CONTAINERS 256

typedef struct larg {
	char *s;
	long line, col;
} larg;

typedef struct largv {
	larg *v;
	size_t n, cap;
} largv;

static void largv_clear(largv *a)
{
	for (size_t i = 0; i < a->n; i++)
		mlsec_free(a->v[i].s);
	a->n = 0;
}

static void largv_free(largv *a)
{
	largv_clear(a);
	mlsec_free(a->v);
	a->v = NULL;
	a->cap = 0;
}

/* Takes ownership of s. */
static mlsec_err largv_push(largv *a, char *s, long line, long col)
{
	if (a->n >= LAUNCH_MAX_ARGS) {
		mlsec_free(s);
		return MLSEC_ERR_LIMIT;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		larg *nv = mlsec_reallocarray(a->v, cap, sizeof *nv);
		if (!nv) {
			mlsec_free(s);
			return MLSEC_ERR_NOMEM;
		}
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n++] = (larg){s, line, col};
	return MLSEC_OK;
}

/*
 * Splits shell-style text into words: whitespace separates, '...' is
 * literal, "..." honours \" \\ \$ \`, a backslash outside quotes escapes the
 * next character (backslash-newline joins lines), # starts a comment at a
 * word start. base_line/base_col locate text inside a larger file.
 */
static mlsec_err shell_split(const char *t, size_t len, long base_line, long base_col, largv *out,
                             mlsec_error *err)
{
	size_t i = 0;
	long line = base_line;
	size_t line_start = 0;
	char *w = mlsec_malloc(len + 1 < LAUNCH_MAX_ARG_LEN ? len + 1 : LAUNCH_MAX_ARG_LEN);
	if (!w)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	size_t wcap = len + 1 < LAUNCH_MAX_ARG_LEN ? len + 1 : LAUNCH_MAX_ARG_LEN;
	mlsec_err rc = MLSEC_OK;
	while (i < len && rc == MLSEC_OK) {
		char c = t[i];
		if (c == '\n') {
			line++;
			line_start = ++i;
			continue;
		}
		if (isspace((unsigned char)c)) {
			i++;
			continue;
		}
		if (c == '\\' && i + 1 < len && t[i + 1] == '\n') {
			i += 2;
			line++;
			line_start = i;
			continue;
		}
		if (c == '#') {
			while (i < len && t[i] != '\n')
				i++;
			continue;
		}
		long wl = line, wc = (long)(i - line_start) + (line == base_line ? base_col : 1);
		size_t n = 0;
		while (i < len && !isspace((unsigned char)t[i])) {
			c = t[i];
			if (n + 4 >= wcap) {
				rc = mlsec_error_set_at(err, MLSEC_ERR_LIMIT, NULL, wl, wc, -1,
				                        "argument longer than %d bytes",
				                        LAUNCH_MAX_ARG_LEN);
				break;
			}
			if (c == '\'') {
				size_t e = i + 1;
				while (e < len && t[e] != '\'')
					e++;
				if (e >= len) {
					rc = mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, wl, wc,
					                        -1, "unterminated ' quote");
					break;
				}
				size_t k = e - i - 1;
				if (n + k + 1 >= wcap) {
					rc = mlsec_error_set_at(err, MLSEC_ERR_LIMIT, NULL, wl, wc,
					                        -1, "argument too long");
					break;
				}
				for (size_t q = i + 1; q < e; q++)
					if (t[q] == '\n') {
						line++;
						line_start = q + 1;
					}
				memcpy(w + n, t + i + 1, k);
				n += k;
				i = e + 1;
			} else if (c == '"') {
				size_t e = i + 1;
				while (e < len && t[e] != '"' && n + 2 < wcap) {
					if (t[e] == '\\' && e + 1 < len &&
					    strchr("\"\\$`\n", t[e + 1])) {
						if (t[e + 1] != '\n')
							w[n++] = t[e + 1];
						e += 2;
						continue;
					}
					if (t[e] == '\n') {
						line++;
						line_start = e + 1;
					}
					w[n++] = t[e++];
				}
				if (e >= len || t[e] != '"') {
					rc = mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, wl, wc,
					                        -1, "unterminated \" quote");
					break;
				}
				i = e + 1;
			} else if (c == '\\' && i + 1 < len) {
				if (t[i + 1] != '\n')
					w[n++] = t[i + 1];
				i += 2;
			} else {
				w[n++] = c;
				i++;
			}
		}
		if (rc != MLSEC_OK)
			break;
		w[n] = '\0';
		char *s = mlsec_strndup(w, n);
		if (!s) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			break;
		}
		rc = largv_push(out, s, wl, wc);
		if (rc == MLSEC_ERR_LIMIT)
			mlsec_error_set_at(err, rc, NULL, wl, wc, -1, "more than %d arguments",
			                   LAUNCH_MAX_ARGS);
		else if (rc != MLSEC_OK)
			mlsec_error_set(err, rc, "out of memory");
	}
	mlsec_free(w);
	return rc;
}

/* ---- what the flags say ---- */

enum {
	CAT_HEALTH = 1 << 0,
	CAT_METADATA = 1 << 1,
	CAT_INFERENCE = 1 << 2,
	CAT_SHM = 1 << 3,
	CAT_MODEL_CONFIG = 1 << 4,
	CAT_MODEL_REPO = 1 << 5,
	CAT_STATISTICS = 1 << 6,
	CAT_TRACE = 1 << 7,
	CAT_LOGGING = 1 << 8,
};

static const struct {
	const char *name;
	unsigned bit;
} categories[] = {
        {"health", CAT_HEALTH},
        {"metadata", CAT_METADATA},
        {"inference", CAT_INFERENCE},
        {"shared-memory", CAT_SHM},
        {"model-config", CAT_MODEL_CONFIG},
        {"model-repository", CAT_MODEL_REPO},
        {"statistics", CAT_STATISTICS},
        {"trace", CAT_TRACE},
        {"logging", CAT_LOGGING},
        {NULL, 0},
};

typedef struct launch_cfg {
	const larg *cmd; /* the tritonserver word, or the first flag */
	const larg *model_control, *rate_limit, *exit_on_error, *http_addr, *grpc_addr,
	        *metrics_addr;
	int allow_http, allow_grpc, allow_metrics, grpc_ssl, exit_err;
	unsigned grpc_restricted, http_restricted;
	size_t nflags;
} launch_cfg;

static int parse_bool(const char *v, int dflt)
{
	if (!v)
		return dflt;
	if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on"))
		return 1;
	if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
	    !strcasecmp(v, "off"))
		return 0;
	return dflt;
}

/* "<cat>,<cat>:<key>=<value>" -> category bits (0 without a key=value). */
static unsigned parse_restriction(const char *v)
{
	const char *colon = strchr(v, ':');
	if (!colon)
		return 0;
	const char *eq = strchr(colon + 1, '=');
	if (!eq || eq == colon + 1 || eq[1] == '\0')
		return 0;
	unsigned bits = 0;
	const char *p = v;
	while (p < colon) {
		const char *e = memchr(p, ',', (size_t)(colon - p));
		if (!e)
			e = colon;
		for (size_t k = 0; categories[k].name; k++)
			if (strlen(categories[k].name) == (size_t)(e - p) &&
			    !strncmp(categories[k].name, p, (size_t)(e - p)))
				bits |= categories[k].bit;
		p = e + 1;
	}
	return bits;
}

static int is_loopback(const char *addr)
{
	return !strcmp(addr, "127.0.0.1") || !strcmp(addr, "localhost") || !strcmp(addr, "::1") ||
	       !strcmp(addr, "[::1]") || !strncmp(addr, "127.", 4);
}

static const char *base_name(const char *s)
{
	const char *b = strrchr(s, '/');
	return b ? b + 1 : s;
}

static int name_is(const char *flag, size_t n, const char *name)
{
	return strlen(name) == n && !strncmp(flag, name, n);
}

/* Interprets flags from words[start..]. */
static void read_flags(const largv *a, size_t start, launch_cfg *L)
{
	memset(L, 0, sizeof *L);
	L->allow_http = L->allow_grpc = L->allow_metrics = L->exit_err = 1;
	for (size_t i = start; i < a->n; i++) {
		const char *s = a->v[i].s;
		if (!strcmp(s, "&&") || !strcmp(s, ";") || !strcmp(s, "|") || !strcmp(s, "||"))
			break; /* the rest is another command */
		if (strncmp(s, "--", 2) != 0)
			continue;
		const char *name = s + 2;
		const char *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		const char *val = eq ? eq + 1 : NULL;
		const larg *at = &a->v[i];
		if (!val && i + 1 < a->n && strncmp(a->v[i + 1].s, "--", 2) != 0) {
			val = a->v[i + 1].s;
			i++;
		}
		L->nflags++;
		if (name_is(name, nl, "model-control-mode"))
			L->model_control = at;
		else if (name_is(name, nl, "rate-limit"))
			L->rate_limit = at;
		else if (name_is(name, nl, "exit-on-error")) {
			L->exit_on_error = at;
			L->exit_err = parse_bool(val, 1);
		} else if (name_is(name, nl, "allow-http"))
			L->allow_http = parse_bool(val, 1);
		else if (name_is(name, nl, "allow-grpc"))
			L->allow_grpc = parse_bool(val, 1);
		else if (name_is(name, nl, "allow-metrics"))
			L->allow_metrics = parse_bool(val, 1);
		else if (name_is(name, nl, "grpc-use-ssl") ||
		         name_is(name, nl, "grpc-use-ssl-mutual"))
			L->grpc_ssl |= parse_bool(val, 1);
		else if (name_is(name, nl, "http-address"))
			L->http_addr = at;
		else if (name_is(name, nl, "grpc-address"))
			L->grpc_addr = at;
		else if (name_is(name, nl, "metrics-address"))
			L->metrics_addr = at;
		else if (name_is(name, nl, "grpc-restricted-protocol") && val)
			L->grpc_restricted |= parse_restriction(val);
		else if (name_is(name, nl, "http-restricted-api") && val)
			L->http_restricted |= parse_restriction(val);
		else
			continue;
		/* Remember the value for flags we report on. */
		(void)val;
	}
}

/* The value of a flag word (after '=' or the next word). */
static const char *flag_value(const largv *a, const larg *at)
{
	const char *eq = strchr(at->s, '=');
	if (eq)
		return eq + 1;
	size_t i = (size_t)(at - a->v);
	if (i + 1 < a->n && strncmp(a->v[i + 1].s, "--", 2) != 0)
		return a->v[i + 1].s;
	return "";
}

static void unrestricted(const launch_cfg *L, unsigned bit, char *out, size_t n)
{
	out[0] = '\0';
	if (L->allow_grpc && !(L->grpc_restricted & bit))
		snprintf(out, n, "gRPC");
	if (L->allow_http && !(L->http_restricted & bit))
		snprintf(out + strlen(out), n - strlen(out), "%sHTTP", out[0] ? " and " : "");
}

static void check_launch(triton_ctx *c, const largv *a, const launch_cfg *L, const char *where)
{
	char fp[256], prot[32];
	long l0 = L->cmd ? L->cmd->line : 0, c0 = L->cmd ? L->cmd->col : 0;
	if (L->model_control) {
		const char *mode = flag_value(a, L->model_control);
		unrestricted(L, CAT_MODEL_REPO, prot, sizeof prot);
		if ((!strcmp(mode, "poll") || !strcmp(mode, "explicit")) && prot[0]) {
			snprintf(fp, sizeof fp, "%s--model-control-mode", where);
			triton_add_at(
			        c, R_LAUNCH_MODEL_CONTROL, L->model_control->line,
			        L->model_control->col, fp,
			        "--model-control-mode=%s with the model-repository API open over "
			        "%s: %s",
			        mode, prot,
			        !strcmp(mode, "explicit")
			                ? "any client can load, unload or upload models (the load "
			                  "API accepts whole model files and configs)"
			                : "whoever can write the repository or reach the API "
			                  "changes what the server runs");
		}
	}
	static const struct {
		unsigned bit;
		const char *name, *why;
	} sensitive[] = {
	        {CAT_MODEL_REPO, "model-repository",
	         "repository index, load/unload (CVE-2025-23316 via model names)"},
	        {CAT_SHM, "shared-memory",
	         "register client memory regions (CVE-2024-0088, CVE-2025-23319/23320/23334)"},
	        {CAT_LOGGING, "logging",
	         "change the log file path (CVE-2024-0087: arbitrary file write)"},
	        {CAT_TRACE, "trace", "change the trace file (CVE-2024-0100: arbitrary file write)"},
	};
	for (size_t k = 0; k < sizeof sensitive / sizeof *sensitive; k++) {
		unrestricted(L, sensitive[k].bit, prot, sizeof prot);
		if (!prot[0])
			continue;
		snprintf(fp, sizeof fp, "%srestricted API category %s", where, sensitive[k].name);
		mlsec_finding *f = triton_add_at(
		        c, R_LAUNCH_API_UNRESTRICTED, l0, c0, fp,
		        "the %s API category is reachable without a restriction key over %s: %s",
		        sensitive[k].name, prot, sensitive[k].why);
		if (f && mlsec_finding_set_evidence(f, "category", "%s", sensitive[k].name))
			c->rc = MLSEC_ERR_NOMEM;
	}
	const char *ha = L->http_addr ? flag_value(a, L->http_addr) : "0.0.0.0";
	if (L->allow_http && !is_loopback(ha)) {
		snprintf(fp, sizeof fp, "%s--allow-http", where);
		triton_add_at(c, R_LAUNCH_HTTP_EXPOSED, L->http_addr ? L->http_addr->line : l0,
		              L->http_addr ? L->http_addr->col : c0, fp,
		              "HTTP endpoint enabled on %s: Triton's HTTP server has no TLS, so "
		              "inputs, outputs and any restriction keys cross the network in clear",
		              ha);
	}
	const char *ma = L->metrics_addr ? flag_value(a, L->metrics_addr) : "0.0.0.0";
	if (L->allow_metrics && !is_loopback(ma)) {
		snprintf(fp, sizeof fp, "%s--allow-metrics", where);
		triton_add_at(c, R_LAUNCH_METRICS_EXPOSED,
		              L->metrics_addr ? L->metrics_addr->line : l0,
		              L->metrics_addr ? L->metrics_addr->col : c0, fp,
		              "metrics endpoint enabled on %s (model names, load and GPU usage "
		              "visible to anyone who can reach it)",
		              ma);
	}
	if (L->allow_grpc && !L->grpc_ssl) {
		snprintf(fp, sizeof fp, "%s--grpc-use-ssl", where);
		triton_add_at(c, R_LAUNCH_GRPC_NO_TLS, l0, c0, fp,
		              "gRPC is enabled without --grpc-use-ssl: traffic and restriction "
		              "headers are plaintext");
	}
	if (!L->exit_err) {
		snprintf(fp, sizeof fp, "%s--exit-on-error", where);
		triton_add_at(
		        c, R_LAUNCH_EXIT_ON_ERROR, L->exit_on_error->line, L->exit_on_error->col,
		        fp,
		        "--exit-on-error=false: the server starts even when models fail to load");
	}
	const char *rl = L->rate_limit ? flag_value(a, L->rate_limit) : "off";
	if (strcmp(rl, "execution_count") != 0 && c->aud->rate_limited_configs > 0) {
		snprintf(fp, sizeof fp, "%s--rate-limit", where);
		triton_add_at(
		        c, R_LAUNCH_RATE_LIMIT_OFF, L->rate_limit ? L->rate_limit->line : l0,
		        L->rate_limit ? L->rate_limit->col : c0, fp,
		        "--rate-limit=%s but %zu audited config(s) declare rate limiters (e.g. "
		        "%s): they are ignored",
		        rl, c->aud->rate_limited_configs, c->aud->first_rate_limited);
	}
}

/* Words that contain a shell script naming tritonserver are split again. */
static mlsec_err expand_scripts(largv *a, mlsec_error *err)
{
	for (size_t i = 0; i < a->n; i++) {
		const char *s = a->v[i].s;
		if (!strstr(s, "tritonserver") || !strpbrk(s, " \t\n"))
			continue;
		largv sub = {0};
		mlsec_err rc = shell_split(s, strlen(s), a->v[i].line, a->v[i].col, &sub, err);
		if (rc == MLSEC_OK && a->n - 1 + sub.n > LAUNCH_MAX_ARGS)
			rc = mlsec_error_set(err, MLSEC_ERR_LIMIT, "more than %d arguments",
			                     LAUNCH_MAX_ARGS);
		if (rc == MLSEC_OK && sub.n > 1) {
			size_t need = a->n - 1 + sub.n;
			if (need > a->cap) {
				larg *nv = mlsec_reallocarray(a->v, need, sizeof *nv);
				if (!nv)
					rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
				else {
					a->v = nv;
					a->cap = need;
				}
			}
			if (rc == MLSEC_OK) {
				mlsec_free(a->v[i].s);
				memmove(a->v + i + sub.n, a->v + i + 1,
				        (a->n - i - 1) * sizeof *a->v);
				memcpy(a->v + i, sub.v, sub.n * sizeof *a->v);
				a->n += sub.n - 1;
				i += sub.n - 1;
				sub.n = 0; /* moved */
			}
		}
		largv_free(&sub);
		if (rc != MLSEC_OK)
			return rc;
	}
	return MLSEC_OK;
}

/*
 * Finds the tritonserver invocation in words and audits it. Returns 1 when
 * one was found. image_says_triton allows bare flag lists (container args
 * for the Triton image's entrypoint).
 */
static int audit_words(triton_ctx *c, largv *a, const char *where, int bare_ok, json_t *seen)
{
	size_t start = SIZE_MAX;
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(base_name(a->v[i].s), "tritonserver")) {
			start = i + 1;
			break;
		}
	if (start == SIZE_MAX && bare_ok && a->n && !strncmp(a->v[0].s, "--", 2))
		start = 0;
	if (start == SIZE_MAX)
		return 0;
	launch_cfg L;
	read_flags(a, start, &L);
	L.cmd = start > 0 ? &a->v[start - 1] : (a->n ? &a->v[0] : NULL);
	check_launch(c, a, &L, where);
	json_t *o = json_object();
	if (o) {
		json_object_set_new(o, "where", json_string(where[0] ? where : "command line"));
		json_object_set_new(o, "flags", json_integer((json_int_t)L.nflags));
		json_object_set_new(
		        o, "model_control_mode",
		        json_string(L.model_control ? flag_value(a, L.model_control) : "none"));
		json_object_set_new(
		        o, "rate_limit",
		        json_string(L.rate_limit ? flag_value(a, L.rate_limit) : "off"));
		json_object_set_new(o, "grpc_tls", json_boolean(L.grpc_ssl));
		json_array_append_new(seen, o);
	}
	return 1;
}

/* ---- YAML (Kubernetes manifests, rendered Helm charts) ---- */

typedef struct ywalk {
	triton_ctx *c;
	yaml_document_t *doc;
	size_t visits;
	size_t containers;
	size_t found;
	json_t *seen;
	mlsec_error *err;
	mlsec_err rc;
} ywalk;

static int scalar_eq(const yaml_node_t *n, const char *s)
{
	return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
	       !memcmp(n->data.scalar.value, s, n->data.scalar.length);
}

static yaml_node_t *map_get(yaml_document_t *d, const yaml_node_t *m, const char *key)
{
	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
		if (scalar_eq(yaml_document_get_node(d, p->key), key))
			return yaml_document_get_node(d, p->value);
	return NULL;
}

static mlsec_err push_scalar(ywalk *w, const yaml_node_t *n, largv *out)
{
	char *s = mlsec_strndup((const char *)n->data.scalar.value, n->data.scalar.length);
	if (!s)
		return mlsec_error_set(w->err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc =
	        largv_push(out, s, (long)n->start_mark.line + 1, (long)n->start_mark.column + 1);
	if (rc == MLSEC_ERR_LIMIT)
		return mlsec_error_set_at(w->err, rc, NULL, (long)n->start_mark.line + 1,
		                          (long)n->start_mark.column + 1, -1,
		                          "more than %d arguments", LAUNCH_MAX_ARGS);
	return rc == MLSEC_OK ? rc : mlsec_error_set(w->err, rc, "out of memory");
}

static mlsec_err collect_words(ywalk *w, const yaml_node_t *n, largv *out)
{
	if (!n)
		return MLSEC_OK;
	if (n->type == YAML_SCALAR_NODE) {
		/* A command given as one string: split it like a shell would. */
		return shell_split((const char *)n->data.scalar.value, n->data.scalar.length,
		                   (long)n->start_mark.line + 1, (long)n->start_mark.column + 1,
		                   out, w->err);
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return MLSEC_OK;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *e = yaml_document_get_node(w->doc, *it);
		if (e && e->type == YAML_SCALAR_NODE) {
			mlsec_err rc = push_scalar(w, e, out);
			if (rc != MLSEC_OK)
				return rc;
		}
	}
	return MLSEC_OK;
}

static mlsec_err audit_container(ywalk *w, yaml_node_t *ct)
{
	if (++w->containers > LAUNCH_MAX_CONTAINERS)
		return mlsec_error_set(w->err, MLSEC_ERR_LIMIT, "more than %d containers",
		                       LAUNCH_MAX_CONTAINERS);
	yaml_node_t *name = map_get(w->doc, ct, "name");
	yaml_node_t *image = map_get(w->doc, ct, "image");
	int triton_image = 0;
	if (image && image->type == YAML_SCALAR_NODE) {
		const char *iv = (const char *)image->data.scalar.value;
		size_t il = image->data.scalar.length;
		for (size_t i = 0; i + 12 <= il && !triton_image; i++)
			triton_image = !memcmp(iv + i, "tritonserver", 12);
	}
	largv words = {0};
	mlsec_err rc = collect_words(w, map_get(w->doc, ct, "command"), &words);
	if (rc == MLSEC_OK)
		rc = collect_words(w, map_get(w->doc, ct, "args"), &words);
	if (rc == MLSEC_OK)
		rc = expand_scripts(&words, w->err);
	if (rc == MLSEC_OK) {
		char where[160];
		char nb[100] = "?";
		if (name && name->type == YAML_SCALAR_NODE)
			snprintf(nb, sizeof nb, "%.*s",
			         (int)(name->data.scalar.length > 80 ? 80
			                                             : name->data.scalar.length),
			         name->data.scalar.value);
		for (char *p = nb; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = '?';
		snprintf(where, sizeof where, "containers[name=%s].", nb);
		if (audit_words(w->c, &words, where, triton_image, w->seen))
			w->found++;
	}
	largv_free(&words);
	return rc;
}

static mlsec_err ywalk_node(ywalk *w, yaml_node_t *n, unsigned depth)
{
	if (!n)
		return MLSEC_OK;
	if (++w->visits > LAUNCH_MAX_YAML_NODES || depth > LAUNCH_MAX_YAML_DEPTH)
		return mlsec_error_set_at(w->err, MLSEC_ERR_LIMIT, NULL,
		                          (long)n->start_mark.line + 1,
		                          (long)n->start_mark.column + 1, -1,
		                          "YAML too deep or too many nodes (aliases?)");
	mlsec_err rc = MLSEC_OK;
	if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top && rc == MLSEC_OK; p++) {
			yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
			yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
			if ((scalar_eq(k, "containers") || scalar_eq(k, "initContainers")) && v &&
			    v->type == YAML_SEQUENCE_NODE) {
				for (yaml_node_item_t *it = v->data.sequence.items.start;
				     it < v->data.sequence.items.top && rc == MLSEC_OK; it++) {
					yaml_node_t *ct = yaml_document_get_node(w->doc, *it);
					if (ct && ct->type == YAML_MAPPING_NODE)
						rc = audit_container(w, ct);
				}
				continue;
			}
			rc = ywalk_node(w, v, depth + 1);
		}
	} else if (n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top && rc == MLSEC_OK; it++)
			rc = ywalk_node(w, yaml_document_get_node(w->doc, *it), depth + 1);
	}
	return rc;
}

static mlsec_err audit_yaml(triton_ctx *c, const char *text, size_t len, json_t *seen,
                            size_t *found, mlsec_error *err)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	ywalk w = {.c = c, .seen = seen, .err = err};
	mlsec_err rc = MLSEC_OK;
	for (;;) {
		yaml_document_t doc;
		if (!yaml_parser_load(&parser, &doc)) {
			rc = mlsec_error_set_at(
			        err, MLSEC_ERR_PARSE, NULL, (long)parser.problem_mark.line + 1,
			        (long)parser.problem_mark.column + 1,
			        (long long)parser.problem_mark.index, "YAML: %s%s%s",
			        parser.problem ? parser.problem : "parse error",
			        parser.context ? " " : "", parser.context ? parser.context : "");
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (!root) {
			yaml_document_delete(&doc);
			break;
		}
		w.doc = &doc;
		rc = ywalk_node(&w, root, 0);
		yaml_document_delete(&doc);
		if (rc != MLSEC_OK)
			break;
	}
	yaml_parser_delete(&parser);
	*found = w.found;
	return rc;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcasecmp(s + a - b, suf);
}

/* YAML when named so, or when the first meaningful line is a key: or ---. */
static int looks_yaml(const char *path, const char *t, size_t len)
{
	if (has_suffix(path, ".yaml") || has_suffix(path, ".yml") || has_suffix(path, ".json"))
		return 1;
	size_t i = 0;
	while (i < len) {
		while (i < len && isspace((unsigned char)t[i]))
			i++;
		if (i < len && t[i] == '#') {
			while (i < len && t[i] != '\n')
				i++;
			continue;
		}
		break;
	}
	if (i >= len)
		return 0;
	if (len - i >= 3 && !strncmp(t + i, "---", 3))
		return 1;
	if (t[i] == '{')
		return 1;
	size_t k = i;
	while (k < len && (isalnum((unsigned char)t[k]) || t[k] == '_' || t[k] == '.'))
		k++;
	return k > i && k < len && t[k] == ':' &&
	       (k + 1 >= len || isspace((unsigned char)t[k + 1]));
}

mlsec_err triton_launch_audit(mlsec_triton_auditor *a, mlsec_report *rep, const char *path,
                              const char *text, size_t len, int is_yaml, mlsec_error *err)
{
	mlsec_artifact *art = mlsec_report_add_artifact(rep, path, "triton-launch-args");
	if (!art)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	triton_ctx c = {.aud = a, .art = art, .path = path, .rc = MLSEC_OK};
	if (is_yaml < 0)
		is_yaml = looks_yaml(path, text, len);
	json_t *seen = json_array();
	if (!seen)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_error perr;
	mlsec_error_clear(&perr);
	size_t found = 0;
	mlsec_err rc;
	if (is_yaml) {
		rc = audit_yaml(&c, text, len, seen, &found, &perr);
	} else {
		largv words = {0};
		rc = shell_split(text, len, 1, 1, &words, &perr);
		if (rc == MLSEC_OK)
			rc = expand_scripts(&words, &perr);
		if (rc == MLSEC_OK)
			found = (size_t)audit_words(&c, &words, "", 1, seen);
		largv_free(&words);
	}
	json_object_set_new(mlsec_artifact_details(art), "invocations", seen);
	if (rc == MLSEC_ERR_NOMEM || c.rc == MLSEC_ERR_NOMEM)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (rc == MLSEC_OK && found == 0) {
		rc = MLSEC_ERR_PARSE;
		mlsec_error_set_at(&perr, rc, NULL, 1, 1, -1,
		                   "no tritonserver command line found (expected tritonserver "
		                   "arguments, or %s)",
		                   is_yaml ? "a container whose command/args run tritonserver"
		                           : "a Kubernetes manifest");
	}
	if (rc != MLSEC_OK) {
		snprintf(perr.file, sizeof perr.file, "%s", path);
		if (!mlsec_artifact_add_malformed(art, MLSEC_TRITON_RULE_PREFIX, &perr))
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	return MLSEC_OK;
}
