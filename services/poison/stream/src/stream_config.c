/*
 * stream_config.c - the poison stream's options and their translation into
 * mlsec_poison_stream_conf, shared by mlsec-poison-streamd and the
 * in-process stream of mlsec-poisond (see poison_stream.h).
 */
#include <stdlib.h>
#include <string.h>

#include "mlsec/poison_stream.h"

static const mlsec_config_option stream_options[] = {
        {"group", MLSEC_CONFIG_STRING, MLSEC_POISON_STREAM_GROUP, 0, 0, NULL, "MLSEC_POISON_GROUP",
         0, "Kafka consumer group"},
        {"threshold", MLSEC_CONFIG_STRING, "7", 0, 0, NULL, "MLSEC_POISON_THRESHOLD", 0,
         "spike rule: robust |z| above this"},
        {"cusum-threshold", MLSEC_CONFIG_STRING, "10", 0, 0, NULL, "MLSEC_POISON_CUSUM_THRESHOLD",
         0, "CUSUM alarm level, robust scale units"},
        {"cusum-drift", MLSEC_CONFIG_STRING, "1", 0, 0, NULL, "MLSEC_POISON_CUSUM_DRIFT", 0,
         "CUSUM allowance per step, robust scale units"},
        {"expected-workers", MLSEC_CONFIG_INT, "0", 0, MLSEC_POISON_MAX_RANK + 1, NULL,
         "MLSEC_POISON_EXPECTED_WORKERS", 0, "workers per run (0 = learn)"},
        {"window", MLSEC_CONFIG_INT, "64", 1, MLSEC_POISON_MAX_WINDOW, NULL, "MLSEC_POISON_WINDOW",
         0, "steps a step waits for late workers"},
        {"warmup", MLSEC_CONFIG_INT, "50", 0, 1000000, NULL, "MLSEC_POISON_WARMUP", 0,
         "steps that only learn the scale"},
        {"silent-steps", MLSEC_CONFIG_INT, "100", 1, 1000000000, NULL, "MLSEC_POISON_SILENT_STEPS",
         0, "a worker absent this many steps is reported silent"},
        {"checkpoint-every", MLSEC_CONFIG_INT, "100", 1, 1000000, NULL,
         "MLSEC_POISON_CHECKPOINT_EVERY", 0,
         "records per run between state saves to Redis (a crash loses at most this many)"},
        {"state-ttl-s", MLSEC_CONFIG_INT, "604800", 1, 31536000, NULL, "MLSEC_POISON_STATE_TTL_S",
         0, "lifetime of a run's state in Redis after its last save"},
        {"max-runs", MLSEC_CONFIG_INT, "256", 1, MLSEC_POISON_STREAM_MAX_RUNS, NULL,
         "MLSEC_POISON_MAX_RUNS", 0, "runs kept in memory (least recent saved and evicted)"},
        {"idle-evict-ms", MLSEC_CONFIG_INT, "60000", 100, 86400000, NULL,
         "MLSEC_POISON_IDLE_EVICT_MS", 0, "save and drop a run idle this long"},
};

mlsec_err mlsec_poison_stream_add_options(mlsec_config *cfg, mlsec_error *err)
{
	return mlsec_config_add(cfg, stream_options,
	                        sizeof stream_options / sizeof stream_options[0], err);
}

static mlsec_err parse_num(const mlsec_config *cfg, const char *name, double *out, mlsec_error *err)
{
	const char *v = mlsec_config_get(cfg, name);
	char *end;
	double d = v ? strtod(v, &end) : 0;
	if (!v || end == v || *end)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "--%s needs a number", name);
	*out = d;
	return MLSEC_OK;
}

mlsec_err mlsec_poison_stream_conf_from_config(const mlsec_config *cfg, const char *client_id,
                                               mlsec_poison_stream_conf *c, mlsec_error *err)
{
	memset(c, 0, sizeof *c);
	mlsec_poison_config_init(&c->detector);
	mlsec_err rc;
	if ((rc = parse_num(cfg, "threshold", &c->detector.spike_z, err)) ||
	    (rc = parse_num(cfg, "cusum-threshold", &c->detector.cusum_h, err)) ||
	    (rc = parse_num(cfg, "cusum-drift", &c->detector.cusum_k, err)))
		return rc;
	c->detector.expected_workers = (unsigned)mlsec_config_get_int(cfg, "expected-workers");
	c->detector.window = (unsigned)mlsec_config_get_int(cfg, "window");
	c->detector.warmup = (unsigned)mlsec_config_get_int(cfg, "warmup");
	c->detector.silent_steps = (unsigned)mlsec_config_get_int(cfg, "silent-steps");
	c->queue.brokers = mlsec_config_get(cfg, "kafka-brokers");
	c->queue.client_id = client_id;
	c->queue.props = mlsec_config_kafka_props(cfg);
	c->group = mlsec_config_get(cfg, "group");
	c->redis_url = mlsec_config_get(cfg, "redis-url");
	c->redis_timeout_ms = (int)mlsec_config_get_int(cfg, "redis-timeout-ms");
	c->redis_password_file = mlsec_config_get(cfg, "redis-password-file");
	c->checkpoint_every = (unsigned)mlsec_config_get_int(cfg, "checkpoint-every");
	c->state_ttl_ms = mlsec_config_get_int(cfg, "state-ttl-s") * 1000;
	c->max_runs = (unsigned)mlsec_config_get_int(cfg, "max-runs");
	c->idle_evict_ms = mlsec_config_get_int(cfg, "idle-evict-ms");
	return MLSEC_OK;
}
