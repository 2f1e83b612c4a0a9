/*
 * mlsec-devbroker - the embedded Kafka for one machine: librdkafka's mock
 * cluster (a Kafka-protocol broker inside this process) listening on
 * loopback, with the mlsec topics created at fixed partition counts.
 * Prints MLSEC_KAFKA_BROKERS=<bootstrap> on stdout (and to --bootstrap-file
 * when given) once ready, then runs until SIGTERM/SIGINT.
 *
 * The mock cluster is marked experimental by librdkafka and keeps
 * everything in memory: for development, tests and demos only. Real
 * deployments point MLSEC_KAFKA_BROKERS at Apache Kafka instead.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlsec/config.h"
#include "mlsec/log.h"
#include "mlsec/queue.h"
#include "mlsec/shutdown.h"

static const mlsec_config_option options[] = {
        {"brokers", MLSEC_CONFIG_INT, "1", 1, 3, NULL, "MLSEC_DEVBROKER_BROKERS", 0,
         "number of mock brokers"},
        {"partitions", MLSEC_CONFIG_INT, "4", 1, 64, NULL, "MLSEC_DEVBROKER_PARTITIONS", 0,
         "partitions of every mlsec topic"},
        {"bootstrap-file", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_DEVBROKER_BOOTSTRAP_FILE",
         0, "also write MLSEC_KAFKA_BROKERS=<bootstrap> to this file (atomically, once ready)"},
};

/* Keeps librdkafka's own chatter in our log format. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	MLSEC_LOG(level <= 3   ? MLSEC_LOG_ERROR
	          : level == 4 ? MLSEC_LOG_WARN
	                       : MLSEC_LOG_DEBUG,
	          NULL, "kafka %s: %s", fac, buf);
}

static int create_topics(rd_kafka_mock_cluster_t *mc, int partitions, int replication)
{
	char topic[128];
	for (size_t i = 0; mlsec_queue_stages[i]; i++) {
		if (mlsec_queue_stage_topic(mlsec_queue_stages[i], topic, sizeof topic) ||
		    rd_kafka_mock_topic_create(mc, topic, partitions, replication))
			return -1;
	}
	static const char *const shared[] = {MLSEC_TOPIC_RESULTS, MLSEC_TOPIC_GRADIENTS,
	                                     MLSEC_TOPIC_ALERTS};
	for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
		if (rd_kafka_mock_topic_create(mc, shared[i], partitions, replication))
			return -1;
	return 0;
}

/* Readers poll for the file: it must appear complete (temp + rename). */
static int write_file(const char *path, const char *text)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	int ok = fputs(text, f) >= 0;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_config_help help;
	int rc = 1, wrote_file = 0;
	rd_kafka_t *rk = NULL;
	rd_kafka_mock_cluster_t *mc = NULL;
	mlsec_config *cfg = mlsec_config_new(
	        "mlsec-devbroker",
	        "Embedded Kafka-protocol broker on loopback for development and tests.",
	        "[options]");
	if (!cfg) {
		fprintf(stderr, "mlsec-devbroker: out of memory\n");
		return 1;
	}
	if (mlsec_config_add(cfg, options, sizeof options / sizeof options[0], &err) ||
	    mlsec_config_add_std(cfg, MLSEC_CONFIG_STD_LOG, &err) ||
	    mlsec_config_parse(cfg, argc, argv, &help, &err)) {
		fprintf(stderr, "mlsec-devbroker: %s\n", err.text);
		goto out;
	}
	if (help != MLSEC_CONFIG_HELP_NONE) {
		if (help == MLSEC_CONFIG_HELP_MARKDOWN)
			mlsec_config_print_markdown(cfg, stdout);
		else
			mlsec_config_print_help(cfg, stdout);
		rc = 0;
		goto out;
	}
	if (mlsec_config_argc(cfg) > 0) {
		fprintf(stderr, "mlsec-devbroker: unexpected argument '%s'\n",
		        mlsec_config_argv(cfg)[0]);
		goto out;
	}
	if (mlsec_config_setup_log(cfg, &err) || mlsec_shutdown_install(&err)) {
		fprintf(stderr, "mlsec-devbroker: %s\n", err.text);
		goto out;
	}

	/* The mock cluster lives inside a client handle that never connects. */
	char es[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set(conf, "client.id", "mlsec-devbroker", es, sizeof es);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "mlsec-devbroker: %s\n", es);
		goto out;
	}
	int nbrokers = (int)mlsec_config_get_int(cfg, "brokers");
	mc = rd_kafka_mock_cluster_new(rk, nbrokers);
	if (!mc) {
		fprintf(stderr, "mlsec-devbroker: cannot start the mock cluster\n");
		goto out;
	}
	if (create_topics(mc, (int)mlsec_config_get_int(cfg, "partitions"), nbrokers)) {
		fprintf(stderr, "mlsec-devbroker: cannot create topics\n");
		goto out;
	}
	const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
	const char *file = mlsec_config_get(cfg, "bootstrap-file");
	if (file) {
		char line[512];
		int n = snprintf(line, sizeof line, "MLSEC_KAFKA_BROKERS=%s\n", bootstrap);
		if (n < 0 || (size_t)n >= sizeof line || write_file(file, line) != 0) {
			fprintf(stderr, "mlsec-devbroker: cannot write %s: %s\n", file,
			        strerror(errno));
			goto out;
		}
		wrote_file = 1;
	}
	printf("MLSEC_KAFKA_BROKERS=%s\n", bootstrap);
	fflush(stdout);
	MLSEC_LOGI("mock Kafka cluster ready: %d broker(s) at %s, pid %ld", nbrokers, bootstrap,
	           (long)getpid());

	mlsec_shutdown_wait(-1);
	MLSEC_LOGI("shutting down (signal %d)", mlsec_shutdown_signal());
	rc = 0;
out:
	if (mc)
		rd_kafka_mock_cluster_destroy(mc);
	if (rk)
		rd_kafka_destroy(rk);
	if (wrote_file)
		unlink(mlsec_config_get(cfg, "bootstrap-file"));
	mlsec_shutdown_uninstall();
	mlsec_config_free(cfg);
	mlsec_log_shutdown();
	return rc;
}
