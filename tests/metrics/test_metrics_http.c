/*
 * test_metrics_http.c - the /metrics endpoint over loopback: start on a free
 * port, scrape with a plain socket client, parse the exposition text, and
 * check that counters move after a job.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/metrics.h"
#include "mlsec/report.h" /* MLSEC_VERSION */
#include "mlsec/metrics_http.h"

#define RESP_MAX (1 << 20)

typedef struct http_resp {
	int status;
	char *headers; /* raw header block */
	char *body;
} http_resp;

static void resp_free(http_resp *r)
{
	free(r->headers);
	free(r->body);
}

/* One HTTP/1.0 request to 127.0.0.1 (or ::1) :port; reads to EOF. */
static int http_do(int family, unsigned short port, const char *request, http_resp *out)
{
	int fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		close(fd);
		return -1;
	}
	size_t rl = strlen(request);
	if (write(fd, request, rl) != (ssize_t)rl) {
		close(fd);
		return -1;
	}
	char *buf = malloc(RESP_MAX + 1);
	size_t len = 0;
	ssize_t n;
	while (len < RESP_MAX && (n = read(fd, buf + len, RESP_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	char *sep = strstr(buf, "\r\n\r\n");
	if (!sep || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
		free(buf);
		return -1;
	}
	*sep = '\0';
	out->headers = strdup(buf);
	out->body = strdup(sep + 4);
	free(buf);
	return 0;
}

static http_resp get(unsigned short port, const char *path)
{
	char req[256];
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	http_resp r = {0};
	assert_int_equal(http_do(AF_INET, port, req, &r), 0);
	return r;
}

/*
 * Parse the exposition text: every line is a comment ("# HELP"/"# TYPE") or
 * "series value". Returns the value of the series named exactly key, or -1
 * when absent; fails the test on a malformed line.
 */
static double sample(const char *text, const char *key)
{
	double found = -1;
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n');
		assert_non_null(eol); /* every line ends with \n */
		size_t n = (size_t)(eol - p);
		char line[1024];
		assert_true(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		p = eol + 1;
		if (line[0] == '#') {
			assert_true(strncmp(line, "# HELP ", 7) == 0 ||
			            strncmp(line, "# TYPE ", 7) == 0);
			continue;
		}
		char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		*sp = '\0';
		char *end = NULL;
		double v = strtod(sp + 1, &end);
		assert_true(end && *end == '\0' && end != sp + 1);
		/* Series name: metric name then optional {labels}. */
		assert_true((line[0] >= 'a' && line[0] <= 'z') || line[0] == '_');
		char *brace = strchr(line, '{');
		if (brace)
			assert_int_equal(line[strlen(line) - 1], '}');
		if (strcmp(line, key) == 0)
			found = v;
	}
	return found;
}

static void test_scrape_moves_after_job(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-inspectd");
	mlsec_metrics_server *srv = NULL;
	mlsec_error err;
	assert_int_equal(mlsec_metrics_server_start(reg, "127.0.0.1:0", &srv, &err), MLSEC_OK);
	unsigned short port = mlsec_metrics_server_port(srv);
	assert_true(port != 0);

	const char *jobs = "mlsec_jobs_total{stage=\"inspect\",outcome=\"ok\"}";
	const char *dur = "mlsec_analysis_duration_seconds_count{stage=\"inspect\"}";
	const char *high = "mlsec_findings_total{stage=\"inspect\",severity=\"high\"}";

	http_resp r = get(port, "/metrics");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "text/plain; version=0.0.4"));
	assert_true(sample(r.body, "mlsec_build_info{service=\"mlsec-inspectd\","
	                           "version=\"" MLSEC_VERSION "\"}") == 1.0);
	assert_true(sample(r.body, jobs) == -1);
	resp_free(&r);

	/* What the harness does when a job finishes. */
	mlsec_metrics_job_done(reg, "inspect", "ok", 0.3);
	mlsec_metrics_findings(reg, "inspect", "high", 2);
	r = get(port, "/metrics");
	assert_int_equal(r.status, 200);
	assert_true(sample(r.body, jobs) == 1.0);
	assert_true(sample(r.body, dur) == 1.0);
	assert_true(sample(r.body, high) == 2.0);
	resp_free(&r);

	mlsec_metrics_job_done(reg, "inspect", "ok", 0.4);
	r = get(port, "/metrics");
	assert_true(sample(r.body, jobs) == 2.0);
	assert_true(sample(r.body, "mlsec_analysis_duration_seconds_sum{stage=\"inspect\"}") ==
	            0.3 + 0.4);
	resp_free(&r);

	mlsec_metrics_server_stop(srv);
	/* The port is closed after stop. */
	http_resp gone = {0};
	assert_int_equal(http_do(AF_INET, port, "GET /metrics HTTP/1.0\r\n\r\n", &gone), -1);
	mlsec_metrics_free(reg);
}

static void test_other_paths_and_methods(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-x");
	mlsec_metrics_server *srv = NULL;
	assert_int_equal(mlsec_metrics_server_start(reg, "127.0.0.1:0", &srv, NULL), MLSEC_OK);
	unsigned short port = mlsec_metrics_server_port(srv);

	http_resp r = get(port, "/");
	assert_int_equal(r.status, 404);
	resp_free(&r);
	r = get(port, "/metrics/../etc/passwd");
	assert_int_equal(r.status, 404);
	resp_free(&r);

	assert_int_equal(
	        http_do(AF_INET, port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", &r),
	        0);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.headers, "Allow: GET, HEAD"));
	resp_free(&r);

	assert_int_equal(http_do(AF_INET, port, "HEAD /metrics HTTP/1.0\r\n\r\n", &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "");
	resp_free(&r);

	/* Garbage is libmicrohttpd's problem: it answers 400 or closes. */
	http_resp bad = {0};
	if (http_do(AF_INET, port, "\x01\x02 garbage\r\n\r\n", &bad) == 0) {
		assert_true(bad.status >= 400);
		resp_free(&bad);
	}
	/* And the server still works afterwards. */
	r = get(port, "/metrics");
	assert_int_equal(r.status, 200);
	resp_free(&r);

	mlsec_metrics_server_stop(srv);
	mlsec_metrics_free(reg);
}

static void test_listen_addresses(void **state)
{
	(void)state;
	mlsec_metrics *reg = mlsec_metrics_new();
	mlsec_metrics_server *srv = NULL;
	mlsec_error err;
	const char *bad[] = {"",
	                     "9090",
	                     "127.0.0.1",
	                     "127.0.0.1:",
	                     "127.0.0.1:x",
	                     "127.0.0.1:70000",
	                     "1.2.3:80",
	                     "[::1:80",
	                     "[zz]:80",
	                     "host.example:80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mlsec_metrics_server_start(reg, bad[i], &srv, &err),
		                 MLSEC_ERR_INVALID_ARG);
		assert_null(srv);
	}
	assert_int_equal(mlsec_metrics_server_start(reg, NULL, &srv, &err), MLSEC_ERR_INVALID_ARG);

	/* Two servers cannot share a port. */
	mlsec_metrics_server *a = NULL, *b = NULL;
	assert_int_equal(mlsec_metrics_server_start(reg, "127.0.0.1:0", &a, NULL), MLSEC_OK);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", mlsec_metrics_server_port(a));
	assert_int_equal(mlsec_metrics_server_start(reg, addr, &b, &err), MLSEC_ERR_UNAVAILABLE);
	mlsec_metrics_server_stop(a);

	/* IPv6 loopback, when the machine has it. */
	if (mlsec_metrics_server_start(reg, "[::1]:0", &a, NULL) == MLSEC_OK) {
		http_resp r = {0};
		assert_int_equal(http_do(AF_INET6, mlsec_metrics_server_port(a),
		                         "GET /metrics HTTP/1.0\r\n\r\n", &r),
		                 0);
		assert_int_equal(r.status, 200);
		assert_non_null(strstr(r.body, "mlsec_metrics_dropped_total 0"));
		resp_free(&r);
		mlsec_metrics_server_stop(a);
	}
	mlsec_metrics_server_stop(NULL);
	mlsec_metrics_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_scrape_moves_after_job),
	        cmocka_unit_test(test_other_paths_and_methods),
	        cmocka_unit_test(test_listen_addresses),
	};
	return cmocka_run_group_tests_name("metrics_http", tests, NULL, NULL);
}
