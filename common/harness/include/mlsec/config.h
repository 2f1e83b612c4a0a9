/*
 * config.h - one configuration table per binary (name, type, default,
 * bounds, environment name, secret flag, help text) that drives flag
 * parsing, MLSEC_* environment fallbacks, --help, docs/config.md and the
 * redacted "effective configuration" log line.
 *
 * Precedence: command-line flag > environment variable > table default.
 * Flags are `--name value` or `--name=value`; a BOOL flag given alone
 * (`--insecure-local`) means true. `--` ends options; everything that is not
 * an option is a positional argument (mlsec-submit ARTIFACT...).
 * `-h`/`--help` and `--help-markdown` are recognised by every table.
 *
 * Kafka pass-through: every environment variable MLSEC_KAFKA_<property>
 * (other than MLSEC_KAFKA_BROKERS) is collected as a librdkafka property:
 * `MLSEC_KAFKA_security.protocol=SASL_SSL` is taken literally, and an
 * all-uppercase suffix is lowercased with '_' turned into '.', so
 * `MLSEC_KAFKA_SASL_MECHANISMS=PLAIN` becomes sasl.mechanisms=PLAIN.
 *
 * Threads: build and parse on one thread at startup; afterwards the getters
 * may be called from any thread (the object is no longer modified).
 * Secrets (MLSEC_CONFIG_SECRET options and Kafka properties whose name
 * contains "password", "secret" or "key") are registered with the logger's
 * redaction list (log.h) and never printed by this module.
 */
#ifndef MLSEC_CONFIG_H
#define MLSEC_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mlsec_config_type {
	MLSEC_CONFIG_STRING = 0, /* any text (paths, URLs, host:port) */
	MLSEC_CONFIG_INT,        /* decimal long long within [min, max] */
	MLSEC_CONFIG_BOOL,       /* true/false/1/0/yes/no/on/off */
	MLSEC_CONFIG_ENUM        /* one of `choices` ("text|json") */
} mlsec_config_type;

/* Option flags (bitwise or). */
#define MLSEC_CONFIG_SECRET 0x1u   /* value never printed, logged or shown in --help */
#define MLSEC_CONFIG_REQUIRED 0x2u /* parse fails when unset after flag/env/default */

/*
 * One row of a binary's table. All strings are static (borrowed for the
 * life of the config). `def` is the default as text (NULL = unset); for INT
 * `min`/`max` bound the value (both 0 = unbounded); `env` may be NULL.
 */
typedef struct mlsec_config_option {
	const char *name; /* flag without "--", e.g. "redis-url" */
	mlsec_config_type type;
	const char *def;
	long long min;
	long long max;
	const char *choices; /* ENUM only: "a|b|c" */
	const char *env;     /* e.g. "MLSEC_REDIS_URL" */
	unsigned flags;      /* MLSEC_CONFIG_SECRET | MLSEC_CONFIG_REQUIRED */
	const char *help;    /* one line */
} mlsec_config_option;

/* Where an option's effective value came from. */
typedef enum mlsec_config_source {
	MLSEC_CONFIG_FROM_UNSET = 0,
	MLSEC_CONFIG_FROM_DEFAULT,
	MLSEC_CONFIG_FROM_ENV,
	MLSEC_CONFIG_FROM_FLAG
} mlsec_config_source;

/* What parse found besides options. */
typedef enum mlsec_config_help {
	MLSEC_CONFIG_HELP_NONE = 0,
	MLSEC_CONFIG_HELP_TEXT,    /* -h / --help: print help, exit 0 */
	MLSEC_CONFIG_HELP_MARKDOWN /* --help-markdown: print docs section, exit 0 */
} mlsec_config_help;

typedef struct mlsec_config mlsec_config;

/*
 * Standard option groups shared by the services, added with
 * mlsec_config_add_std() so that every binary spells them the same way:
 *  LOG:   log-level (MLSEC_LOG_LEVEL, debug|info|warn|error, default info),
 *         log-format (MLSEC_LOG_FORMAT, text|json, default text)
 *  KAFKA: kafka-brokers (MLSEC_KAFKA_BROKERS, default 127.0.0.1:9092)
 *  REDIS: redis-url (MLSEC_REDIS_URL, default redis://127.0.0.1:6379/0,
 *         secret because it may carry a password),
 *         redis-timeout-ms (MLSEC_REDIS_TIMEOUT_MS, 1..600000, default 2000)
 *  ARTIFACT_ROOT: artifact-root (MLSEC_ARTIFACT_ROOT, default /var/lib/mlsec/artifacts)
 */
#define MLSEC_CONFIG_STD_LOG 0x1u
#define MLSEC_CONFIG_STD_KAFKA 0x2u
#define MLSEC_CONFIG_STD_REDIS 0x4u
#define MLSEC_CONFIG_STD_ARTIFACT_ROOT 0x8u

/*
 * New empty config for `program` ("mlsec-tritond"); `summary` is the first
 * line of --help and `usage` the positional part ("[options] ARTIFACT...",
 * may be NULL). Both borrowed (static strings). NULL on allocation failure.
 */
mlsec_config *mlsec_config_new(const char *program, const char *summary, const char *usage);
void mlsec_config_free(mlsec_config *cfg); /* NULL is a no-op */

/*
 * Appends n rows (borrowed, must outlive cfg). MLSEC_ERR_INVALID_ARG for a
 * duplicate name, a default outside its bounds or choices, or a malformed
 * row (a bug in the table: report it loudly).
 */
mlsec_err mlsec_config_add(mlsec_config *cfg, const mlsec_config_option *opts, size_t n,
                           mlsec_error *err);
/* Appends the standard groups named by `groups` (MLSEC_CONFIG_STD_*). */
mlsec_err mlsec_config_add_std(mlsec_config *cfg, unsigned groups, mlsec_error *err);

/*
 * Parses argv[1..argc-1] (argv[0] is skipped), then applies environment
 * fallbacks and defaults, validates types, bounds, choices and required
 * options, and collects the Kafka pass-through properties. Errors are
 * MLSEC_ERR_INVALID_ARG with a one-line message naming the flag or
 * environment variable (never the secret value). May be called once.
 * When `help` is non-NULL it receives what help was asked for; a help
 * request skips validation of required options.
 */
mlsec_err mlsec_config_parse(mlsec_config *cfg, int argc, char **argv, mlsec_config_help *help,
                             mlsec_error *err);

/*
 * Getters. `name` must be in the table (asserted). The string is borrowed
 * from cfg; NULL when unset. get_int/get_bool return 0 when unset.
 */
const char *mlsec_config_get(const mlsec_config *cfg, const char *name);
long long mlsec_config_get_int(const mlsec_config *cfg, const char *name);
int mlsec_config_get_bool(const mlsec_config *cfg, const char *name);
mlsec_config_source mlsec_config_source_of(const mlsec_config *cfg, const char *name);

/* Positional arguments (borrowed argv pointers, valid while argv is). */
size_t mlsec_config_argc(const mlsec_config *cfg);
const char *const *mlsec_config_argv(const mlsec_config *cfg);

/*
 * librdkafka pass-through properties as a NULL-terminated array of
 * alternating key, value strings ({"security.protocol", "SSL", ..., NULL}),
 * never NULL itself; borrowed from cfg.
 */
const char *const *mlsec_config_kafka_props(const mlsec_config *cfg);

/* --help text: usage, summary, one block per option with env and default. */
void mlsec_config_print_help(const mlsec_config *cfg, FILE *out);
/* The binary's section of docs/config.md (a Markdown table). */
void mlsec_config_print_markdown(const mlsec_config *cfg, FILE *out);

/*
 * Configures the process logger (log.h) from the MLSEC_CONFIG_STD_LOG
 * options, with the program name as service name, writing to stderr.
 * MLSEC_ERR_INVALID_ARG when the LOG group was not added.
 */
mlsec_err mlsec_config_setup_log(const mlsec_config *cfg, mlsec_error *err);

/*
 * Logs one INFO line with every effective value and its source
 * (secrets shown as "***"), through log.h.
 */
void mlsec_config_log_effective(const mlsec_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
