/*
 * config.c - the per-binary configuration table: flags, MLSEC_* environment
 * fallbacks, validation, --help, docs/config.md sections and the librdkafka
 * pass-through properties.
 */
#include "mlsec/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"

extern char **environ;

#define CONFIG_MAX_OPTIONS 256 /* rows per binary */
#define CONFIG_MAX_VALUE 4096  /* longest accepted flag/env value */
#define CONFIG_MAX_KAFKA_PROPS 128
#define KAFKA_ENV_PREFIX "MLSEC_KAFKA_"

typedef struct entry {
	const mlsec_config_option *opt;
	char *value; /* owned; NULL = unset */
	mlsec_config_source src;
	long long ival;
	int bval;
} entry;

struct mlsec_config {
	const char *program;
	const char *summary;
	const char *usage;
	entry *entries;
	size_t n;
	size_t cap;
	const char **args; /* borrowed argv pointers */
	size_t nargs;
	char **kafka; /* owned, key/value pairs, NULL-terminated */
	size_t nkafka;
	int parsed;
};

static const char *const no_props[] = {NULL};

mlsec_config *mlsec_config_new(const char *program, const char *summary, const char *usage)
{
	mlsec_config *cfg = mlsec_calloc(1, sizeof *cfg);
	if (!cfg)
		return NULL;
	cfg->program = program ? program : "mlsec";
	cfg->summary = summary ? summary : "";
	cfg->usage = usage ? usage : "[options]";
	return cfg;
}

void mlsec_config_free(mlsec_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n; i++)
		mlsec_free(cfg->entries[i].value);
	mlsec_free(cfg->entries);
	mlsec_free(cfg->args);
	for (size_t i = 0; i < cfg->nkafka * 2; i++)
		mlsec_free(cfg->kafka[i]);
	mlsec_free(cfg->kafka);
	mlsec_free(cfg);
}

static entry *find(const mlsec_config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n; i++) {
		const char *on = cfg->entries[i].opt->name;
		if (strlen(on) == len && memcmp(on, name, len) == 0)
			return &cfg->entries[i];
	}
	return NULL;
}

static int choice_ok(const char *choices, const char *v)
{
	size_t vl = strlen(v);
	const char *p = choices;
	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);
		if (l == vl && memcmp(p, v, l) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int parse_bool(const char *v, int *out)
{
	static const char *const t[] = {"true", "1", "yes", "on"};
	static const char *const f[] = {"false", "0", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, t[i]) == 0) {
			*out = 1;
			return 1;
		}
		if (strcasecmp(v, f[i]) == 0) {
			*out = 0;
			return 1;
		}
	}
	return 0;
}

static int parse_int(const char *v, long long *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end != '\0')
		return 0;
	*out = x;
	return 1;
}

/*
 * Checks v against the option's type; on success stores the typed value.
 * `who` names the source in messages ("--x", "MLSEC_X" or "default of x").
 */
static mlsec_err check_value(entry *e, const char *v, const char *who, mlsec_error *err)
{
	const mlsec_config_option *o = e->opt;
	int secret = (o->flags & MLSEC_CONFIG_SECRET) != 0;
	if (strlen(v) > CONFIG_MAX_VALUE)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: value longer than %d bytes",
		                       who, CONFIG_MAX_VALUE);
	switch (o->type) {
	case MLSEC_CONFIG_STRING:
		return MLSEC_OK;
	case MLSEC_CONFIG_INT:
		if (!parse_int(v, &e->ival))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "%s: expected an integer, got '%s'", who,
			                       secret ? "***" : v);
		if ((o->min || o->max) && (e->ival < o->min || e->ival > o->max))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "%s: %s is out of range [%lld, %lld]", who,
			                       secret ? "***" : v, o->min, o->max);
		return MLSEC_OK;
	case MLSEC_CONFIG_BOOL:
		if (!parse_bool(v, &e->bval))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "%s: expected true or false, got '%s'", who,
			                       secret ? "***" : v);
		return MLSEC_OK;
	case MLSEC_CONFIG_ENUM:
		if (!choice_ok(o->choices, v))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "%s: expected one of %s, got '%s'", who, o->choices,
			                       secret ? "***" : v);
		return MLSEC_OK;
	}
	return mlsec_error_set(err, MLSEC_ERR_INTERNAL, "%s: unknown option type", who);
}

static int valid_name(const char *s)
{
	if (!s || !*s || s[0] == '-')
		return 0;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-'))
			return 0;
	return 1;
}

mlsec_err mlsec_config_add(mlsec_config *cfg, const mlsec_config_option *opts, size_t n,
                           mlsec_error *err)
{
	if (cfg->parsed)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "config: add after parse");
	if (cfg->n + n > CONFIG_MAX_OPTIONS)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "config: more than %d options",
		                       CONFIG_MAX_OPTIONS);
	if (cfg->n + n > cfg->cap) {
		size_t cap = cfg->n + n + 16;
		entry *ne = mlsec_reallocarray(cfg->entries, cap, sizeof *ne);
		if (!ne)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "config: out of memory");
		cfg->entries = ne;
		cfg->cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		const mlsec_config_option *o = &opts[i];
		if (!valid_name(o->name) || strcmp(o->name, "help") == 0 ||
		    strcmp(o->name, "help-markdown") == 0)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "config table: bad option name '%s'",
			                       o->name ? o->name : "(null)");
		if (find(cfg, o->name, strlen(o->name)))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "config table: duplicate option --%s", o->name);
		if (o->type == MLSEC_CONFIG_ENUM && (!o->choices || !*o->choices))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "config table: --%s has no choices", o->name);
		if (o->type == MLSEC_CONFIG_INT && o->min > o->max)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "config table: --%s has min > max", o->name);
		entry *e = &cfg->entries[cfg->n];
		memset(e, 0, sizeof *e);
		e->opt = o;
		if (o->def) {
			char who[96];
			snprintf(who, sizeof who, "config table: default of --%s", o->name);
			mlsec_err rc = check_value(e, o->def, who, err);
			if (rc)
				return rc;
		}
		cfg->n++;
	}
	return MLSEC_OK;
}

static mlsec_err set_value(entry *e, const char *v, mlsec_config_source src, const char *who,
                           mlsec_error *err)
{
	mlsec_err rc = check_value(e, v, who, err);
	if (rc)
		return rc;
	char *copy = mlsec_strdup(v);
	if (!copy)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "config: out of memory");
	mlsec_free(e->value);
	e->value = copy;
	e->src = src;
	return MLSEC_OK;
}

static int kafka_secret(const char *key)
{
	return strstr(key, "password") || strstr(key, "secret") || strstr(key, "key");
}

/* Environment name suffix -> librdkafka property, see config.h. */
static char *kafka_property(const char *suffix)
{
	int literal = 0;
	for (const char *p = suffix; *p; p++)
		if (islower((unsigned char)*p) || *p == '.')
			literal = 1;
	char *k = mlsec_strdup(suffix);
	if (!k || literal)
		return k;
	for (char *p = k; *p; p++)
		*p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
	return k;
}

static int env_in_table(const mlsec_config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n; i++) {
		const char *env = cfg->entries[i].opt->env;
		if (env && strlen(env) == len && memcmp(env, name, len) == 0)
			return 1;
	}
	return 0;
}

static mlsec_err collect_kafka(mlsec_config *cfg, mlsec_error *err)
{
	size_t plen = strlen(KAFKA_ENV_PREFIX);
	for (char **ep = environ; ep && *ep; ep++) {
		const char *kv = *ep;
		const char *eq = strchr(kv, '=');
		if (!eq || strncmp(kv, KAFKA_ENV_PREFIX, plen) != 0)
			continue;
		size_t nlen = (size_t)(eq - kv);
		if (nlen == plen || env_in_table(cfg, kv, nlen) ||
		    (nlen == plen + 7 && memcmp(kv + plen, "BROKERS", 7) == 0))
			continue;
		if (cfg->nkafka == CONFIG_MAX_KAFKA_PROPS)
			return mlsec_error_set(err, MLSEC_ERR_LIMIT,
			                       "more than %d MLSEC_KAFKA_* variables",
			                       CONFIG_MAX_KAFKA_PROPS);
		char *suffix = mlsec_strndup(kv + plen, nlen - plen);
		char *key = suffix ? kafka_property(suffix) : NULL;
		char *val = mlsec_strdup(eq + 1);
		mlsec_free(suffix);
		char **nk =
		        key && val ? mlsec_reallocarray(cfg->kafka, cfg->nkafka * 2 + 3, sizeof *nk)
		                   : NULL;
		if (!nk) {
			mlsec_free(key);
			mlsec_free(val);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "config: out of memory");
		}
		cfg->kafka = nk;
		nk[cfg->nkafka * 2] = key;
		nk[cfg->nkafka * 2 + 1] = val;
		nk[cfg->nkafka * 2 + 2] = NULL;
		cfg->nkafka++;
		if (kafka_secret(key) && mlsec_log_add_secret(val) != MLSEC_OK)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM,
			                       "config: cannot register a secret for redaction");
	}
	return MLSEC_OK;
}

mlsec_err mlsec_config_parse(mlsec_config *cfg, int argc, char **argv, mlsec_config_help *help,
                             mlsec_error *err)
{
	if (cfg->parsed)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "config: parsed twice");
	cfg->parsed = 1;
	mlsec_config_help h = MLSEC_CONFIG_HELP_NONE;
	if (help)
		*help = h;
	cfg->args = mlsec_calloc(argc > 0 ? (size_t)argc : 1, sizeof *cfg->args);
	if (!cfg->args)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "config: out of memory");

	int only_args = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
			cfg->args[cfg->nargs++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			h = MLSEC_CONFIG_HELP_TEXT;
			continue;
		}
		if (strcmp(a, "--help-markdown") == 0) {
			h = MLSEC_CONFIG_HELP_MARKDOWN;
			continue;
		}
		if (a[1] != '-')
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "unknown option '%s' (see --help)", a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		entry *e = find(cfg, name, nlen);
		if (!e)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "unknown option '--%.*s' (see --help)", (int)nlen,
			                       name);
		const char *v;
		if (eq)
			v = eq + 1;
		else if (e->opt->type == MLSEC_CONFIG_BOOL)
			v = "true";
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "option --%s needs a value", e->opt->name);
		char who[96];
		snprintf(who, sizeof who, "--%s", e->opt->name);
		mlsec_err rc = set_value(e, v, MLSEC_CONFIG_FROM_FLAG, who, err);
		if (rc)
			return rc;
	}

	for (size_t i = 0; i < cfg->n; i++) {
		entry *e = &cfg->entries[i];
		const mlsec_config_option *o = e->opt;
		if (e->src == MLSEC_CONFIG_FROM_UNSET && o->env) {
			const char *v = getenv(o->env);
			if (v && *v) { /* an empty variable counts as unset */
				mlsec_err rc = set_value(e, v, MLSEC_CONFIG_FROM_ENV, o->env, err);
				if (rc)
					return rc;
			}
		}
		if (e->src == MLSEC_CONFIG_FROM_UNSET && o->def) {
			mlsec_err rc =
			        set_value(e, o->def, MLSEC_CONFIG_FROM_DEFAULT, o->name, err);
			if (rc)
				return rc;
		}
		if (e->src == MLSEC_CONFIG_FROM_UNSET && (o->flags & MLSEC_CONFIG_REQUIRED) &&
		    h == MLSEC_CONFIG_HELP_NONE)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "missing required option --%s%s%s", o->name,
			                       o->env ? " (or " : "", o->env ? o->env : "");
		/* Fail closed: a secret we cannot redact must not be used. */
		if (e->value && (o->flags & MLSEC_CONFIG_SECRET) &&
		    e->src != MLSEC_CONFIG_FROM_DEFAULT &&
		    mlsec_log_add_secret(e->value) != MLSEC_OK)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM,
			                       "config: cannot register --%s for redaction",
			                       o->name);
	}
	/* A URL's password is a secret in its own right: redact it alone too. */
	for (size_t i = 0; i < cfg->n; i++) {
		entry *e = &cfg->entries[i];
		const char *at, *colon;
		if (!e->value || !(e->opt->flags & MLSEC_CONFIG_SECRET) ||
		    !(colon = strstr(e->value, "://")) || !(at = strchr(colon + 3, '@')))
			continue;
		const char *pw = memchr(colon + 3, ':', (size_t)(at - colon - 3));
		if (pw) {
			char *p = mlsec_strndup(pw + 1, (size_t)(at - pw - 1));
			mlsec_err rc = p ? mlsec_log_add_secret(p) : MLSEC_ERR_NOMEM;
			mlsec_free(p);
			if (rc)
				return mlsec_error_set(err, MLSEC_ERR_NOMEM,
				                       "config: cannot register --%s for redaction",
				                       e->opt->name);
		}
	}
	mlsec_err rc = collect_kafka(cfg, err);
	if (rc)
		return rc;
	if (help)
		*help = h;
	return MLSEC_OK;
}

static const entry *must_find(const mlsec_config *cfg, const char *name)
{
	const entry *e = find(cfg, name, strlen(name));
	assert(e && "option not in the config table");
	return e;
}

const char *mlsec_config_get(const mlsec_config *cfg, const char *name)
{
	const entry *e = must_find(cfg, name);
	return e ? e->value : NULL;
}

long long mlsec_config_get_int(const mlsec_config *cfg, const char *name)
{
	const entry *e = must_find(cfg, name);
	return e && e->value ? e->ival : 0;
}

int mlsec_config_get_bool(const mlsec_config *cfg, const char *name)
{
	const entry *e = must_find(cfg, name);
	return e && e->value ? e->bval : 0;
}

mlsec_config_source mlsec_config_source_of(const mlsec_config *cfg, const char *name)
{
	const entry *e = must_find(cfg, name);
	return e ? e->src : MLSEC_CONFIG_FROM_UNSET;
}

size_t mlsec_config_argc(const mlsec_config *cfg)
{
	return cfg->nargs;
}

const char *const *mlsec_config_argv(const mlsec_config *cfg)
{
	static const char *const none[] = {NULL};
	return cfg->args ? cfg->args : none;
}

const char *const *mlsec_config_kafka_props(const mlsec_config *cfg)
{
	return cfg->kafka ? (const char *const *)cfg->kafka : no_props;
}

static const char *metavar(const mlsec_config_option *o)
{
	switch (o->type) {
	case MLSEC_CONFIG_INT:
		return " N";
	case MLSEC_CONFIG_BOOL:
		return "[=BOOL]";
	case MLSEC_CONFIG_ENUM:
		return NULL; /* choices printed instead */
	default:
		return " VALUE";
	}
}

void mlsec_config_print_help(const mlsec_config *cfg, FILE *out)
{
	fprintf(out, "Usage: %s %s\n", cfg->program, cfg->usage);
	if (*cfg->summary)
		fprintf(out, "%s\n", cfg->summary);
	fprintf(out, "\nOptions (flag > environment > default):\n");
	for (size_t i = 0; i < cfg->n; i++) {
		const mlsec_config_option *o = cfg->entries[i].opt;
		char flag[160];
		const char *mv = metavar(o);
		if (mv)
			snprintf(flag, sizeof flag, "--%s%s", o->name, mv);
		else
			snprintf(flag, sizeof flag, "--%s %s", o->name, o->choices);
		if (strlen(flag) > 30) /* keep the help column aligned */
			fprintf(out, "  %s\n  %-30s %s\n", flag, "", o->help ? o->help : "");
		else
			fprintf(out, "  %-30s %s\n", flag, o->help ? o->help : "");
		fprintf(out, "  %-30s ", "");
		int sep = 0;
		if (o->env) {
			fprintf(out, "env %s", o->env);
			sep = 1;
		}
		if (o->def) {
			fprintf(out, "%sdefault %s", sep ? ", " : "", *o->def ? o->def : "\"\"");
			sep = 1;
		}
		if (o->type == MLSEC_CONFIG_INT && (o->min || o->max)) {
			fprintf(out, "%srange %lld..%lld", sep ? ", " : "", o->min, o->max);
			sep = 1;
		}
		if (o->flags & MLSEC_CONFIG_REQUIRED) {
			fprintf(out, "%srequired", sep ? ", " : "");
			sep = 1;
		}
		if (o->flags & MLSEC_CONFIG_SECRET)
			fprintf(out, "%ssecret", sep ? ", " : "");
		fputc('\n', out);
	}
	fprintf(out, "  %-30s %s\n", "-h, --help", "show this help");
	fprintf(out, "\nKafka client settings pass through as MLSEC_KAFKA_<librdkafka.property>\n"
	             "(e.g. MLSEC_KAFKA_security.protocol=SASL_SSL or "
	             "MLSEC_KAFKA_SASL_MECHANISMS=PLAIN).\n");
}

/* Markdown table cells: escape the pipe. */
static void md_cell(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			fputs("\\|", out);
		else
			fputc(*s, out);
	}
}

void mlsec_config_print_markdown(const mlsec_config *cfg, FILE *out)
{
	static const char *const tn[] = {"string", "integer", "boolean", "enum"};
	fprintf(out, "## `%s`\n\n", cfg->program);
	if (*cfg->summary)
		fprintf(out, "%s\n\n", cfg->summary);
	fprintf(out, "Usage: `%s %s`\n\n", cfg->program, cfg->usage);
	fprintf(out, "| Flag | Environment | Type | Default | Description |\n");
	fprintf(out, "|------|-------------|------|---------|-------------|\n");
	for (size_t i = 0; i < cfg->n; i++) {
		const mlsec_config_option *o = cfg->entries[i].opt;
		fprintf(out, "| `--%s` | %s%s%s | ", o->name, o->env ? "`" : "",
		        o->env ? o->env : "", o->env ? "`" : "");
		if (o->type == MLSEC_CONFIG_ENUM) {
			fputs("one of `", out);
			md_cell(out, o->choices);
			fputs("`", out);
		} else {
			fputs(tn[o->type], out);
			if (o->type == MLSEC_CONFIG_INT && (o->min || o->max))
				fprintf(out, " %lld..%lld", o->min, o->max);
		}
		if (o->flags & MLSEC_CONFIG_SECRET)
			fputs(", secret", out);
		if (o->flags & MLSEC_CONFIG_REQUIRED)
			fputs(", required", out);
		fputs(" | ", out);
		if (o->def) {
			fputs("`", out);
			md_cell(out, o->def);
			fputs("`", out);
		}
		fputs(" | ", out);
		md_cell(out, o->help);
		fputs(" |\n", out);
	}
	fputc('\n', out);
}

void mlsec_config_log_effective(const mlsec_config *cfg)
{
	if (!mlsec_log_enabled(MLSEC_LOG_INFO))
		return;
	static const char *const src[] = {"unset", "default", "env", "flag"};
	char line[4096];
	size_t pos = 0;
	line[0] = '\0';
	for (size_t i = 0; i < cfg->n && pos < sizeof line - 1; i++) {
		const entry *e = &cfg->entries[i];
		const char *v = !e->value                               ? "(unset)"
		                : (e->opt->flags & MLSEC_CONFIG_SECRET) ? "***"
		                                                        : e->value;
		int n = e->value ? snprintf(line + pos, sizeof line - pos, "%s%s=%s(%s)",
		                            i ? " " : "", e->opt->name, v, src[e->src])
		                 : snprintf(line + pos, sizeof line - pos, "%s%s=(unset)",
		                            i ? " " : "", e->opt->name);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
	for (size_t i = 0; i < cfg->nkafka && pos < sizeof line - 1; i++) {
		const char *k = cfg->kafka[i * 2];
		int n = snprintf(line + pos, sizeof line - pos, " kafka.%s=%s", k,
		                 kafka_secret(k) ? "***" : cfg->kafka[i * 2 + 1]);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
	mlsec_log_write(MLSEC_LOG_INFO, NULL, "config: %s", line);
}

/* Library-internal accessors for config_std.c. */
const char *mlsec_config__program(const mlsec_config *cfg);
int mlsec_config__has(const mlsec_config *cfg, const char *name);

const char *mlsec_config__program(const mlsec_config *cfg)
{
	return cfg->program;
}

int mlsec_config__has(const mlsec_config *cfg, const char *name)
{
	return find(cfg, name, strlen(name)) != NULL;
}
