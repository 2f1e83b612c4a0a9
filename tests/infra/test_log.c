/*
 * test_log.c - structured logging (levels, text/JSON, job ids, one line
 * per call) and SIGTERM/SIGINT shutdown signalling.
 */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/log.h"
#include "mlsec/shutdown.h"

static int g_fd = -1;

static int setup(void **state)
{
	(void)state;
	char path[] = "/tmp/mlsec-log-XXXXXX";
	g_fd = mkstemp(path);
	if (g_fd < 0)
		return -1;
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mlsec_log_setup(MLSEC_LOG_INFO, MLSEC_LOG_TEXT, -1, NULL);
	mlsec_log_shutdown();
	close(g_fd);
	return 0;
}

/* Returns what was logged since the last call. */
static char *take(void)
{
	static char buf[1 << 18];
	off_t end = lseek(g_fd, 0, SEEK_CUR);
	lseek(g_fd, 0, SEEK_SET);
	ssize_t n = read(g_fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	(void)end;
	if (ftruncate(g_fd, 0) != 0)
		fail();
	lseek(g_fd, 0, SEEK_SET);
	return buf;
}

static int counted_calls;
static const char *counted(void)
{
	counted_calls++;
	return "x";
}

static void test_levels(void **state)
{
	(void)state;
	mlsec_log_setup(MLSEC_LOG_WARN, MLSEC_LOG_TEXT, g_fd, "mlsec-test");
	counted_calls = 0;
	MLSEC_LOGI("hidden %s", counted());
	MLSEC_LOGD("hidden too %s", counted());
	assert_int_equal(counted_calls, 0); /* level checked before formatting */
	MLSEC_LOGW("shown %d", 42);
	MLSEC_LOGE("also shown");
	char *out = take();
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, " WARN  mlsec-test shown 42\n"));
	assert_non_null(strstr(out, " ERROR mlsec-test also shown\n"));

	mlsec_log_level l;
	assert_int_equal(mlsec_log_level_parse("debug", &l), MLSEC_OK);
	assert_int_equal(l, MLSEC_LOG_DEBUG);
	assert_int_equal(mlsec_log_level_parse("loud", &l), MLSEC_ERR_INVALID_ARG);
	mlsec_log_format f;
	assert_int_equal(mlsec_log_format_parse("json", &f), MLSEC_OK);
	assert_int_equal(f, MLSEC_LOG_JSON);
	assert_int_equal(mlsec_log_format_parse("xml", &f), MLSEC_ERR_INVALID_ARG);
}

static void test_text_one_line(void **state)
{
	(void)state;
	mlsec_log_setup(MLSEC_LOG_INFO, MLSEC_LOG_TEXT, g_fd, "svc");
	MLSEC_LOG(MLSEC_LOG_INFO, "job123", "evil\ninjected line");
	char *out = take();
	assert_non_null(strstr(out, "INFO  svc job=job123 evil?injected line\n"));
	/* exactly one newline */
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

static void test_json(void **state)
{
	(void)state;
	mlsec_log_setup(MLSEC_LOG_DEBUG, MLSEC_LOG_JSON, g_fd, "mlsec-tritond");
	mlsec_log_set_job("abcdef");
	MLSEC_LOGD("quote \" backslash \\ newline \n tab \t ctl \x01 done");
	mlsec_log_set_job(NULL);
	MLSEC_LOG(MLSEC_LOG_ERROR, NULL, "no job");
	char *out = take();
	char *nl = strchr(out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "level")), "debug");
	assert_string_equal(json_string_value(json_object_get(j, "svc")), "mlsec-tritond");
	assert_string_equal(json_string_value(json_object_get(j, "job")), "abcdef");
	assert_string_equal(json_string_value(json_object_get(j, "msg")),
	                    "quote \" backslash \\ newline \n tab \t ctl \x01 done");
	assert_non_null(json_object_get(j, "ts"));
	json_decref(j);
	j = json_loads(nl + 1, 0, &je);
	assert_non_null(j);
	assert_null(json_object_get(j, "job"));
	assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
	json_decref(j);
}

static void *thread_logger(void *arg)
{
	char job[16];
	snprintf(job, sizeof job, "job-%d", (int)(size_t)arg);
	mlsec_log_set_job(job);
	for (int i = 0; i < 200; i++)
		MLSEC_LOGI("line %d from %s %s", i, job,
		           "padding padding padding padding padding padding padding");
	return NULL;
}

static void test_threads_no_interleaving(void **state)
{
	(void)state;
	mlsec_log_setup(MLSEC_LOG_INFO, MLSEC_LOG_TEXT, g_fd, "svc");
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_logger, (void *)(size_t)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *out = take();
	int lines = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char job[16];
		int n;
		/* job id of the line prefix matches the one in its message */
		char *j = strstr(line, "job=");
		assert_non_null(j);
		if (sscanf(j, "job=%15s line %d", job, &n) != 2)
			fail_msg("bad line: %s", line);
		char expect[64];
		snprintf(expect, sizeof expect, "from %s padding", job);
		assert_non_null(strstr(line, expect));
		lines++;
	}
	assert_int_equal(lines, 800);
}

static void test_secret_redaction(void **state)
{
	(void)state;
	mlsec_log_setup(MLSEC_LOG_INFO, MLSEC_LOG_JSON, g_fd, "svc");
	assert_int_equal(mlsec_log_add_secret("topsecretvalue"), MLSEC_OK);
	assert_int_equal(mlsec_log_add_secret("abc"), MLSEC_OK); /* too short: ignored */
	MLSEC_LOGI("token=topsecretvalue twice topsecretvaluetopsecretvalue abc");
	char *out = take();
	assert_null(strstr(out, "topsecret"));
	assert_non_null(strstr(out, "token=*** twice ****** abc"));
}

static void test_shutdown(void **state)
{
	(void)state;
	assert_int_equal(mlsec_shutdown_install(NULL), MLSEC_OK);
	assert_true(mlsec_shutdown_fd() >= 0);
	assert_false(mlsec_shutdown_requested());
	assert_int_equal(mlsec_shutdown_wait(50), 0);

	struct pollfd p = {.fd = mlsec_shutdown_fd(), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);
	kill(getpid(), SIGTERM); /* taken by the signal thread: we keep running */
	assert_int_equal(mlsec_shutdown_wait(2000), 1);
	assert_int_equal(mlsec_shutdown_signal(), SIGTERM);
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_int_equal(poll(&p, 1, 0), 1); /* stays readable for every poller */
	assert_int_equal(mlsec_shutdown_wait(-1), 1);

	mlsec_shutdown_reset();
	assert_false(mlsec_shutdown_requested());
	assert_int_equal(poll(&p, 1, 0), 0);
	kill(getpid(), SIGINT);
	assert_int_equal(mlsec_shutdown_wait(2000), 1);
	assert_int_equal(mlsec_shutdown_signal(), SIGINT);
	mlsec_shutdown_reset();
	mlsec_shutdown_request();
	assert_true(mlsec_shutdown_wait(1000));
	assert_int_equal(mlsec_shutdown_signal(), 0);
	mlsec_shutdown_reset();
	mlsec_shutdown_uninstall();
	assert_int_equal(mlsec_shutdown_fd(), -1);
	/* The mask is restored: SIGTERM is deliverable again. */
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	assert_false(sigismember(&cur, SIGTERM));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_levels),
	        cmocka_unit_test(test_text_one_line),
	        cmocka_unit_test(test_json),
	        cmocka_unit_test(test_threads_no_interleaving),
	        cmocka_unit_test(test_secret_redaction),
	        cmocka_unit_test(test_shutdown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
