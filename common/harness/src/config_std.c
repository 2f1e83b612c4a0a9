/*
 * config_std.c - option groups every service shares, so that the same
 * setting has the same flag and environment name everywhere.
 */
#include "mlsec/config.h"
#include "mlsec/log.h"

static const mlsec_config_option std_log[] = {
        {"log-level", MLSEC_CONFIG_ENUM, "info", 0, 0, "debug|info|warn|error", "MLSEC_LOG_LEVEL",
         0, "lowest level written to the log"},
        {"log-format", MLSEC_CONFIG_ENUM, "text", 0, 0, "text|json", "MLSEC_LOG_FORMAT", 0,
         "log lines as text or JSON objects (one per line)"},
};

static const mlsec_config_option std_kafka[] = {
        {"kafka-brokers", MLSEC_CONFIG_STRING, "127.0.0.1:9092", 0, 0, NULL, "MLSEC_KAFKA_BROKERS",
         0, "Kafka bootstrap servers (host:port,...)"},
};

static const mlsec_config_option std_redis[] = {
        {"redis-url", MLSEC_CONFIG_STRING, "redis://127.0.0.1:6379/0", 0, 0, NULL,
         "MLSEC_REDIS_URL", MLSEC_CONFIG_SECRET,
         "Redis URL redis://[[user][:password]@]host[:port][/db]"},
        {"redis-password-file", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_REDIS_PASSWORD_FILE",
         0, "file holding the Redis AUTH password (trailing newline trimmed; replaces the URL's)"},
        {"redis-timeout-ms", MLSEC_CONFIG_INT, "2000", 1, 600000, NULL, "MLSEC_REDIS_TIMEOUT_MS", 0,
         "Redis connect and command timeout in milliseconds"},
};

static const mlsec_config_option std_root[] = {
        {"artifact-root", MLSEC_CONFIG_STRING, "/var/lib/mlsec/artifacts", 0, 0, NULL,
         "MLSEC_ARTIFACT_ROOT", 0, "directory every artifact path must lie under"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

mlsec_err mlsec_config_add_std(mlsec_config *cfg, unsigned groups, mlsec_error *err)
{
	mlsec_err rc = MLSEC_OK;
	if (!rc && (groups & MLSEC_CONFIG_STD_LOG))
		rc = mlsec_config_add(cfg, std_log, N(std_log), err);
	if (!rc && (groups & MLSEC_CONFIG_STD_KAFKA))
		rc = mlsec_config_add(cfg, std_kafka, N(std_kafka), err);
	if (!rc && (groups & MLSEC_CONFIG_STD_REDIS))
		rc = mlsec_config_add(cfg, std_redis, N(std_redis), err);
	if (!rc && (groups & MLSEC_CONFIG_STD_ARTIFACT_ROOT))
		rc = mlsec_config_add(cfg, std_root, N(std_root), err);
	return rc;
}

/* In config.c: the program name given to mlsec_config_new(). */
const char *mlsec_config__program(const mlsec_config *cfg);
int mlsec_config__has(const mlsec_config *cfg, const char *name);

mlsec_err mlsec_config_setup_log(const mlsec_config *cfg, mlsec_error *err)
{
	mlsec_log_level level;
	mlsec_log_format format;
	if (!mlsec_config__has(cfg, "log-level") || !mlsec_config__has(cfg, "log-format"))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "config: the log options were not added");
	if (mlsec_log_level_parse(mlsec_config_get(cfg, "log-level"), &level) ||
	    mlsec_log_format_parse(mlsec_config_get(cfg, "log-format"), &format))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "config: bad log settings");
	mlsec_log_setup(level, format, -1, mlsec_config__program(cfg));
	return MLSEC_OK;
}
