/*
 * queue.c - topic naming and the librdkafka configuration shared by the
 * producer and the worker.
 */
#include <stdio.h>
#include <string.h>

#include "mlsec/log.h"
#include "queue_int.h"

const char *const mlsec_queue_stages[] = {"triton", "checkpoint", "adversarial", "inspect",
                                          "export", "poison",     NULL};

#define STAGE_NAME_MAX 32

mlsec_err mlsec_queue_stage_topic(const char *stage, char *buf, size_t size)
{
	size_t n = stage ? strlen(stage) : 0;
	if (n == 0 || n > STAGE_NAME_MAX)
		return MLSEC_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++) {
		char c = stage[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return MLSEC_ERR_INVALID_ARG;
	}
	int w = snprintf(buf, size, "%s%s", MLSEC_TOPIC_STAGE_PREFIX, stage);
	return w < 0 || (size_t)w >= size ? MLSEC_ERR_INVALID_ARG : MLSEC_OK;
}

int queue_prop_secret(const char *key)
{
	return strstr(key, "password") || strstr(key, "secret") || strstr(key, "key") ||
	       strstr(key, "jaas") || strstr(key, "token");
}

/* librdkafka uses syslog levels; its chatter below WARNING is debug for us. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	mlsec_log_level l = level <= 3   ? MLSEC_LOG_ERROR
	                    : level == 4 ? MLSEC_LOG_WARN
	                                 : MLSEC_LOG_DEBUG;
	MLSEC_LOG(l, NULL, "kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, mlsec_error *err)
{
	char es[512];
	if (rd_kafka_conf_set(conf, k, v, es, sizeof es) == RD_KAFKA_CONF_OK)
		return 0;
	if (queue_prop_secret(k))
		mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "kafka property %s: invalid value", k);
	else
		mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "kafka property %s: %s", k, es);
	return -1;
}

rd_kafka_conf_t *queue_conf_new(const mlsec_queue_conf *qc, const char *const *defaults,
                                mlsec_error *err)
{
	if (!qc || !qc->brokers || !*qc->brokers) {
		mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no Kafka brokers configured");
		return NULL;
	}
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf) {
		mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, on_log);
	if (set(conf, "bootstrap.servers", qc->brokers, err) ||
	    set(conf, "client.id", qc->client_id ? qc->client_id : "mlsec", err))
		goto fail;
	for (size_t i = 0; defaults && defaults[i] && defaults[i + 1]; i += 2)
		if (set(conf, defaults[i], defaults[i + 1], err))
			goto fail;
	for (size_t i = 0; qc->props && qc->props[i] && qc->props[i + 1]; i += 2)
		if (set(conf, qc->props[i], qc->props[i + 1], err))
			goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}
