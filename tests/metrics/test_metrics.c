/*
 * test_metrics.c - registry, exposition format, limits, thread safety and
 * the standard service families of mlsec_metrics.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/metrics.h"
#include "mlsec/report.h" /* MLSEC_VERSION */

/* The rendered registry must contain line (a whole line). */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		int starts = p == text || p[-1] == '\n';
		if (starts && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	}
	return 0;
}

static char *render(mlsec_metrics *reg)
{
	size_t len = 0;
	char *out = mlsec_metrics_render(reg, &len);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

static void test_counter_and_gauge_format(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new();
	mlsec_metric *c = mlsec_metrics_counter(reg, "x_total", "Some help.",
	                                        MLSEC_LABELS("stage", "outcome"), NULL);
	mlsec_metric *g =
	        mlsec_metrics_gauge(reg, "y", "Line1\nback\\slash", MLSEC_NO_LABELS, NULL);
	assert_non_null(c);
	assert_non_null(g);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("inspect", "ok")), MLSEC_OK);
	assert_int_equal(mlsec_metric_add(c, MLSEC_LABELS("inspect", "ok"), 2), MLSEC_OK);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("poison", "alert")), MLSEC_OK);
	assert_int_equal(mlsec_metric_set(g, MLSEC_NO_LABELS, 0.1), MLSEC_OK);
	assert_int_equal(mlsec_metric_add(g, MLSEC_NO_LABELS, -0.6), MLSEC_OK);

	char *out = render(reg);
	assert_true(has_line(out, "# HELP x_total Some help."));
	assert_true(has_line(out, "# TYPE x_total counter"));
	assert_true(has_line(out, "x_total{stage=\"inspect\",outcome=\"ok\"} 3"));
	assert_true(has_line(out, "x_total{stage=\"poison\",outcome=\"alert\"} 1"));
	assert_true(has_line(out, "# HELP y Line1\\nback\\\\slash"));
	assert_true(has_line(out, "# TYPE y gauge"));
	assert_true(has_line(out, "y -0.5"));
	assert_true(has_line(out, "mlsec_metrics_dropped_total 0"));
	/* Families in registration order. */
	assert_true(strstr(out, "x_total") < strstr(out, "# TYPE y"));
	mlsec_free(out);

	assert_true(mlsec_metric_value(c, MLSEC_LABELS("inspect", "ok")) == 3.0);
	assert_true(mlsec_metric_value(c, MLSEC_LABELS("nope", "ok")) == 0.0);
	mlsec_metrics_free(reg);
}

/* Numbers print as Prometheus' Go clients print them. */
static void test_number_format(void **state)
{
	(void)state;
	static const struct {
		double v;
		const char *want;
	} cases[] = {{0, "n 0"},
	             {10, "n 10"},
	             {123456, "n 123456"},
	             {1e6, "n 1e+06"},
	             {1234567, "n 1.234567e+06"},
	             {0.1, "n 0.1"},
	             {0.0001, "n 0.0001"},
	             {0.00001, "n 1e-05"},
	             {-2.5, "n -2.5"},
	             {1.0 / 3, "n 0.3333333333333333"},
	             {INFINITY, "n +Inf"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mlsec_metrics *reg = mlsec_metrics_new();
		mlsec_metric *g = mlsec_metrics_gauge(reg, "n", "h", NULL, NULL);
		assert_int_equal(mlsec_metric_set(g, NULL, cases[i].v), MLSEC_OK);
		char *out = render(reg);
		if (!has_line(out, cases[i].want))
			fail_msg("want '%s' in:\n%s", cases[i].want, out);
		mlsec_free(out);
		mlsec_metrics_free(reg);
	}
}

static void test_label_escaping(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new();
	mlsec_metric *c = mlsec_metrics_counter(reg, "e_total", "h", MLSEC_LABELS("v"), NULL);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("a\"b\\c\nd}")), MLSEC_OK);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("caf\xc3\xa9")), MLSEC_OK);
	char *out = render(reg);
	assert_true(has_line(out, "e_total{v=\"a\\\"b\\\\c\\nd}\"} 1"));
	assert_true(has_line(out, "e_total{v=\"caf\xc3\xa9\"} 1"));
	mlsec_free(out);
	mlsec_metrics_free(reg);
}

static void test_histogram(void **state)
{
	(void)state;
	static const double b[] = {0.1, 1, 10};
	mlsec_metrics *reg = mlsec_metrics_new();
	mlsec_metric *h =
	        mlsec_metrics_histogram(reg, "d_seconds", "dur", MLSEC_LABELS("stage"), b, 3, NULL);
	assert_non_null(h);
	double obs[] = {0.05, 0.1, 0.5, 2, 20, 30};
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(mlsec_metric_observe(h, MLSEC_LABELS("triton"), obs[i]), MLSEC_OK);
	char *out = render(reg);
	assert_true(has_line(out, "# TYPE d_seconds histogram"));
	/* Upper bounds are inclusive (le), counts cumulative. */
	assert_true(has_line(out, "d_seconds_bucket{stage=\"triton\",le=\"0.1\"} 2"));
	assert_true(has_line(out, "d_seconds_bucket{stage=\"triton\",le=\"1\"} 3"));
	assert_true(has_line(out, "d_seconds_bucket{stage=\"triton\",le=\"10\"} 4"));
	assert_true(has_line(out, "d_seconds_bucket{stage=\"triton\",le=\"+Inf\"} 6"));
	assert_true(has_line(out, "d_seconds_sum{stage=\"triton\"} 52.65"));
	assert_true(has_line(out, "d_seconds_count{stage=\"triton\"} 6"));
	mlsec_free(out);
	assert_true(mlsec_metric_value(h, MLSEC_LABELS("triton")) == 6.0);
	mlsec_metrics_free(reg);
}

static void test_invalid_use(void **state)
{
	(void)state;
	static const double b[] = {1, 1};
	mlsec_metrics *reg = mlsec_metrics_new();
	mlsec_error err;
	assert_null(mlsec_metrics_counter(reg, "9bad", "h", NULL, &err));
	assert_int_equal(err.code, MLSEC_ERR_INVALID_ARG);
	assert_null(mlsec_metrics_counter(reg, "a-b", "h", NULL, NULL));
	assert_null(mlsec_metrics_counter(reg, "ok", "h", MLSEC_LABELS("__x"), NULL));
	assert_null(mlsec_metrics_counter(reg, "ok", "h", MLSEC_LABELS("a", "a"), NULL));
	assert_null(mlsec_metrics_histogram(reg, "h", "h", MLSEC_LABELS("le"), b, 1, NULL));
	assert_null(mlsec_metrics_histogram(reg, "h", "h", NULL, b, 2, NULL));
	assert_null(mlsec_metrics_histogram(reg, "h", "h", NULL, NULL, 0, NULL));
	assert_null(mlsec_metrics_counter(
	        reg, "ok", "h", MLSEC_LABELS("a", "b", "c", "d", "e", "f", "g", "h", "i"), NULL));

	mlsec_metric *c = mlsec_metrics_counter(reg, "c_total", "h", MLSEC_LABELS("a", "b"), NULL);
	assert_non_null(c);
	assert_null(mlsec_metrics_gauge(reg, "c_total", "dup", NULL, &err));
	assert_int_equal(err.code, MLSEC_ERR_INVALID_ARG);
	/* Wrong arity, wrong operation, negative increment, NaN. */
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("x")), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("x", "y", "z")), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_inc(c, NULL), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_set(c, MLSEC_LABELS("x", "y"), 1), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_observe(c, MLSEC_LABELS("x", "y"), 1), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_add(c, MLSEC_LABELS("x", "y"), -1), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_add(c, MLSEC_LABELS("x", "y"), NAN), MLSEC_ERR_INVALID_ARG);
	/* Invalid UTF-8 (overlong '/', lone continuation, surrogate). */
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("\xc0\xaf", "y")), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("\x80", "y")), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("\xed\xa0\x80", "y")),
	                 MLSEC_ERR_INVALID_ARG);
	/* Nothing of the above created a series. */
	char *out = render(reg);
	assert_null(strstr(out, "c_total{"));
	mlsec_free(out);
	mlsec_metrics_free(reg);
}

static void test_limits(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new();
	mlsec_metric *c = mlsec_metrics_counter(reg, "l_total", "h", MLSEC_LABELS("k"), NULL);
	char v[32];
	for (int i = 0; i < MLSEC_METRICS_MAX_SERIES; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS(v)), MLSEC_OK);
	}
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("one-more")), MLSEC_ERR_LIMIT);
	/* Existing series still update at the limit. */
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("v7")), MLSEC_OK);
	assert_true(mlsec_metric_value(c, MLSEC_LABELS("v7")) == 2.0);

	char big[MLSEC_METRICS_MAX_LABEL_VALUE + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS(big)), MLSEC_ERR_LIMIT);
	char *out = render(reg);
	assert_true(has_line(out, "mlsec_metrics_dropped_total 2"));
	assert_null(strstr(out, "one-more"));
	mlsec_free(out);

	mlsec_metric_clear(c);
	assert_int_equal(mlsec_metric_inc(c, MLSEC_LABELS("one-more")), MLSEC_OK);
	mlsec_metrics_free(reg);
}

#define THREADS 4
#define INCS 20000

static void *hammer(void *arg)
{
	mlsec_metrics *reg = arg;
	const char *stages[] = {"inspect", "poison"};
	for (int i = 0; i < INCS; i++) {
		mlsec_metrics_job_done(reg, stages[i & 1], "ok", 0.001 * (i % 7));
		mlsec_metrics_grpc_request(reg, "/mlsec.v1.Analyzer/Analyze", i % 3);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-testd");
	assert_non_null(reg);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, reg), 0);
	/* Scrapes race with the updates; each must stay well-formed. */
	for (int i = 0; i < 50; i++) {
		char *out = mlsec_metrics_render(reg, NULL);
		assert_non_null(out);
		assert_non_null(strstr(out, "mlsec_metrics_dropped_total"));
		mlsec_free(out);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *out = render(reg);
	char line[128];
	snprintf(line, sizeof(line), "mlsec_jobs_total{stage=\"inspect\",outcome=\"ok\"} %d",
	         THREADS * INCS / 2);
	assert_true(has_line(out, line));
	snprintf(line, sizeof(line), "mlsec_analysis_duration_seconds_count{stage=\"poison\"} %d",
	         THREADS * INCS / 2);
	assert_true(has_line(out, line));
	assert_non_null(strstr(out, "mlsec_grpc_requests_total{method=\"/mlsec.v1."
	                            "Analyzer/Analyze\",code=\"CANCELLED\"}"));
	mlsec_free(out);
	mlsec_metrics_free(reg);
}

static void test_service_registry(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-inspectd");
	assert_non_null(reg);
	char *out = render(reg);
	assert_true(has_line(out, "mlsec_build_info{service=\"mlsec-inspectd\","
	                          "version=\"" MLSEC_VERSION "\"} 1"));
	assert_true(has_line(out, "# TYPE mlsec_jobs_total counter"));
	assert_true(has_line(out, "# TYPE mlsec_analysis_duration_seconds histogram"));
	assert_true(has_line(out, "# TYPE mlsec_findings_total counter"));
	assert_true(has_line(out, "# TYPE mlsec_kafka_consumer_lag gauge"));
	assert_true(has_line(out, "# TYPE mlsec_grpc_requests_total counter"));
	assert_null(strstr(out, "mlsec_jobs_total{")); /* no fake zero series */
	mlsec_free(out);

	assert_int_equal(mlsec_metrics_job_done(reg, "inspect", "alert", 1.5), MLSEC_OK);
	assert_int_equal(mlsec_metrics_findings(reg, "inspect", "high", 3), MLSEC_OK);
	assert_int_equal(mlsec_metrics_findings(reg, "inspect", "high", 2), MLSEC_OK);
	assert_int_equal(mlsec_metrics_grpc_request(reg, "/grpc.health.v1.Health/Check", 0),
	                 MLSEC_OK);
	assert_int_equal(mlsec_metrics_grpc_request(reg, "/x/Y", 99), MLSEC_OK);
	out = render(reg);
	assert_true(has_line(out, "mlsec_jobs_total{stage=\"inspect\",outcome=\"alert\"} 1"));
	assert_true(has_line(out, "mlsec_analysis_duration_seconds_bucket{stage=\"inspect\","
	                          "le=\"1\"} 0"));
	assert_true(has_line(out, "mlsec_analysis_duration_seconds_bucket{stage=\"inspect\","
	                          "le=\"2.5\"} 1"));
	assert_true(has_line(out, "mlsec_findings_total{stage=\"inspect\",severity=\"high\"} 5"));
	assert_true(has_line(out, "mlsec_grpc_requests_total{method=\"/grpc.health.v1."
	                          "Health/Check\",code=\"OK\"} 1"));
	assert_true(has_line(out, "mlsec_grpc_requests_total{method=\"/x/Y\",code=\"UNKNOWN\"} 1"));
	mlsec_free(out);

	assert_string_equal(mlsec_metrics_grpc_code_name(14), "UNAVAILABLE");
	assert_string_equal(mlsec_metrics_grpc_code_name(16), "UNAUTHENTICATED");
	assert_string_equal(mlsec_metrics_grpc_code_name(-1), "UNKNOWN");

	/* Helpers refuse a registry without the standard families. */
	mlsec_metrics *plain = mlsec_metrics_new();
	assert_int_equal(mlsec_metrics_job_done(plain, "a", "ok", 1), MLSEC_ERR_INVALID_ARG);
	mlsec_metrics_free(plain);
	mlsec_metrics_free(reg);
}

/* One call per finished analysis, from the engine's report. */
static void test_analysis_done(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-checkpointd");
	mlsec_report *rep = mlsec_report_new("checkpoint");
	mlsec_artifact *a = mlsec_report_add_artifact(rep, "m.pt", "pytorch-zip");
	assert_non_null(mlsec_artifact_add_finding(a, "CKPT-PICKLE-GLOBAL", MLSEC_SEV_CRITICAL,
	                                           "os.system", NULL));
	assert_non_null(mlsec_artifact_add_finding(a, "CKPT-X", MLSEC_SEV_LOW, "x", NULL));
	assert_non_null(mlsec_artifact_add_finding(a, "CKPT-Y", MLSEC_SEV_LOW, "y", NULL));
	assert_int_equal(
	        mlsec_metrics_analysis_done(reg, "checkpoint", MLSEC_OK, rep, MLSEC_SEV_HIGH, 0.5),
	        MLSEC_OK);
	/* Gate above every finding: ok, and the findings still count. */
	assert_int_equal(mlsec_metrics_analysis_done(reg, "checkpoint", MLSEC_OK, rep,
	                                             MLSEC_SEV__COUNT, 0.5),
	                 MLSEC_OK);
	/* The engine failed: error, no report. */
	assert_int_equal(mlsec_metrics_analysis_done(reg, "checkpoint", MLSEC_ERR_PARSE, NULL,
	                                             MLSEC_SEV_HIGH, 0.1),
	                 MLSEC_OK);
	char *out = render(reg);
	assert_true(has_line(out, "mlsec_jobs_total{stage=\"checkpoint\",outcome=\"alert\"} 1"));
	assert_true(has_line(out, "mlsec_jobs_total{stage=\"checkpoint\",outcome=\"ok\"} 1"));
	assert_true(has_line(out, "mlsec_jobs_total{stage=\"checkpoint\",outcome=\"error\"} 1"));
	assert_true(has_line(out,
	                     "mlsec_findings_total{stage=\"checkpoint\",severity=\"critical\"} 2"));
	assert_true(has_line(out, "mlsec_findings_total{stage=\"checkpoint\",severity=\"low\"} 4"));
	assert_null(strstr(out, "severity=\"high\""));
	assert_true(has_line(out, "mlsec_analysis_duration_seconds_count{stage=\"checkpoint\"} 3"));
	mlsec_free(out);
	mlsec_report_free(rep);
	mlsec_metrics_free(reg);
}

static void test_kafka_stats(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-poisond");
	/* Shape of librdkafka's statistics JSON (STATISTICS.md), trimmed. */
	const char *s1 = "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"topics\":{"
	                 "\"mlsec.stage.poison\":{\"topic\":\"mlsec.stage.poison\",\"partitions\":{"
	                 "\"0\":{\"partition\":0,\"consumer_lag\":5},"
	                 "\"1\":{\"partition\":1,\"consumer_lag\":0},"
	                 "\"2\":{\"partition\":2,\"consumer_lag\":-1},"
	                 "\"-1\":{\"partition\":-1,\"consumer_lag\":-1}}}}}";
	assert_int_equal(mlsec_metrics_kafka_stats(reg, s1, strlen(s1)), MLSEC_OK);
	char *out = render(reg);
	assert_true(has_line(out, "mlsec_kafka_consumer_lag{topic=\"mlsec.stage.poison\","
	                          "partition=\"0\",client=\"rdkafka#consumer-1\"} 5"));
	assert_true(has_line(out, "mlsec_kafka_consumer_lag{topic=\"mlsec.stage.poison\","
	                          "partition=\"1\",client=\"rdkafka#consumer-1\"} 0"));
	assert_null(strstr(out, "partition=\"2\""));
	assert_null(strstr(out, "partition=\"-1\""));
	mlsec_free(out);

	/*
	 * A second consumer thread of the same service reports partition 3;
	 * then a rebalance takes partition 0 from the first: its series must
	 * go, the second consumer's must stay.
	 */
	const char *s3 = "{\"name\":\"rdkafka#consumer-2\",\"topics\":{\"mlsec.stage.poison\":{"
	                 "\"partitions\":{\"3\":{\"consumer_lag\":2}}}}}";
	const char *s2 = "{\"name\":\"rdkafka#consumer-1\",\"topics\":{\"mlsec.stage.poison\":{"
	                 "\"partitions\":{\"1\":{\"consumer_lag\":7}}}}}";
	assert_int_equal(mlsec_metrics_kafka_stats(reg, s3, strlen(s3)), MLSEC_OK);
	assert_int_equal(mlsec_metrics_kafka_stats(reg, s2, strlen(s2)), MLSEC_OK);
	out = render(reg);
	assert_null(strstr(out, "partition=\"0\""));
	assert_true(has_line(out, "mlsec_kafka_consumer_lag{topic=\"mlsec.stage.poison\","
	                          "partition=\"1\",client=\"rdkafka#consumer-1\"} 7"));
	assert_true(has_line(out, "mlsec_kafka_consumer_lag{topic=\"mlsec.stage.poison\","
	                          "partition=\"3\",client=\"rdkafka#consumer-2\"} 2"));
	mlsec_free(out);

	assert_int_equal(mlsec_metrics_kafka_stats(reg, "{", 1), MLSEC_ERR_PARSE);
	assert_int_equal(mlsec_metrics_kafka_stats(reg, "[]", 2), MLSEC_ERR_PARSE);
	assert_int_equal(mlsec_metrics_kafka_stats(reg, "{\"topics\":1}", 12), MLSEC_ERR_PARSE);
	mlsec_metrics_free(reg);
}

/* Fail each allocation in turn: no crash, no leak (ASan/valgrind watch). */
static void test_alloc_failures(void **state)
{
	(void)state;
	for (long n = 0; n < 400; n++) {
		mlsec_alloc_fail_after(n);
		mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-x");
		if (reg) {
			mlsec_metrics_job_done(reg, "inspect", "ok", 0.2);
			mlsec_metrics_findings(reg, "inspect", "low", 1);
			char *out = mlsec_metrics_render(reg, NULL);
			mlsec_free(out);
			mlsec_metrics_free(reg);
		}
	}
	mlsec_alloc_fail_after(-1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_counter_and_gauge_format),
	        cmocka_unit_test(test_number_format),
	        cmocka_unit_test(test_label_escaping),
	        cmocka_unit_test(test_histogram),
	        cmocka_unit_test(test_invalid_use),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_threads),
	        cmocka_unit_test(test_service_registry),
	        cmocka_unit_test(test_analysis_done),
	        cmocka_unit_test(test_kafka_stats),
	        cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
