/*
 * test_config.c - the config table: flags, environment fallbacks,
 * precedence, bounds, secrets, Kafka pass-through, help and docs output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/config.h"
#include "mlsec/log.h"

static const mlsec_config_option table[] = {
        {"workers", MLSEC_CONFIG_INT, "2", 1, 64, NULL, "MLSEC_TEST_WORKERS", 0, "worker threads"},
        {"listen", MLSEC_CONFIG_STRING, "127.0.0.1:7000", 0, 0, NULL, "MLSEC_TEST_LISTEN", 0,
         "address"},
        {"insecure-local", MLSEC_CONFIG_BOOL, "false", 0, 0, NULL, "MLSEC_TEST_INSECURE", 0,
         "no auth on loopback"},
        {"mode", MLSEC_CONFIG_ENUM, "fast", 0, 0, "fast|slow", "MLSEC_TEST_MODE", 0, "mode"},
        {"token", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TEST_TOKEN", MLSEC_CONFIG_SECRET,
         "bearer token"},
        {"name", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TEST_NAME", 0, "a name"},
};

static void clear_env(void)
{
	unsetenv("MLSEC_TEST_WORKERS");
	unsetenv("MLSEC_TEST_LISTEN");
	unsetenv("MLSEC_TEST_INSECURE");
	unsetenv("MLSEC_TEST_MODE");
	unsetenv("MLSEC_TEST_TOKEN");
	unsetenv("MLSEC_TEST_NAME");
	unsetenv("MLSEC_KAFKA_security.protocol");
	unsetenv("MLSEC_KAFKA_SASL_MECHANISMS");
	unsetenv("MLSEC_KAFKA_SASL_PASSWORD");
	unsetenv("MLSEC_KAFKA_BROKERS");
}

static mlsec_config *make(void)
{
	mlsec_config *c = mlsec_config_new("mlsec-test", "A test binary.", "[options] FILE...");
	assert_non_null(c);
	assert_int_equal(mlsec_config_add(c, table, sizeof table / sizeof table[0], NULL),
	                 MLSEC_OK);
	return c;
}

/* Parses a NULL-terminated argument list (argv[0] added). */
static mlsec_err parse(mlsec_config *c, mlsec_error *err, ...)
{
	char *argv[32] = {"mlsec-test"};
	int argc = 1;
	va_list ap;
	va_start(ap, err);
	char *a;
	while ((a = va_arg(ap, char *)) != NULL && argc < 31)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return mlsec_config_parse(c, argc, argv, NULL, err);
}

static void test_defaults(void **state)
{
	(void)state;
	clear_env();
	mlsec_config *c = make();
	assert_int_equal(parse(c, NULL, NULL), MLSEC_OK);
	assert_int_equal(mlsec_config_get_int(c, "workers"), 2);
	assert_string_equal(mlsec_config_get(c, "listen"), "127.0.0.1:7000");
	assert_int_equal(mlsec_config_get_bool(c, "insecure-local"), 0);
	assert_null(mlsec_config_get(c, "token"));
	assert_int_equal(mlsec_config_source_of(c, "workers"), MLSEC_CONFIG_FROM_DEFAULT);
	assert_int_equal(mlsec_config_source_of(c, "token"), MLSEC_CONFIG_FROM_UNSET);
	mlsec_config_free(c);
}

static void test_precedence(void **state)
{
	(void)state;
	clear_env();
	setenv("MLSEC_TEST_WORKERS", "5", 1);
	setenv("MLSEC_TEST_LISTEN", "127.0.0.1:9", 1);
	setenv("MLSEC_TEST_NAME", "", 1); /* empty = unset */
	mlsec_config *c = make();
	assert_int_equal(parse(c, NULL, "--workers", "7", NULL), MLSEC_OK);
	assert_int_equal(mlsec_config_get_int(c, "workers"), 7);
	assert_int_equal(mlsec_config_source_of(c, "workers"), MLSEC_CONFIG_FROM_FLAG);
	assert_string_equal(mlsec_config_get(c, "listen"), "127.0.0.1:9");
	assert_int_equal(mlsec_config_source_of(c, "listen"), MLSEC_CONFIG_FROM_ENV);
	assert_null(mlsec_config_get(c, "name"));
	mlsec_config_free(c);

	c = make();
	assert_int_equal(parse(c, NULL, "--workers=9", "--listen=[::1]:1", "--workers", "3", NULL),
	                 MLSEC_OK);
	assert_int_equal(mlsec_config_get_int(c, "workers"), 3); /* last flag wins */
	assert_string_equal(mlsec_config_get(c, "listen"), "[::1]:1");
	mlsec_config_free(c);
	clear_env();
}

static void test_bounds_and_types(void **state)
{
	(void)state;
	clear_env();
	mlsec_error err;
	mlsec_config *c = make();
	assert_int_equal(parse(c, &err, "--workers", "65", NULL), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "--workers"));
	assert_non_null(strstr(err.text, "out of range"));
	mlsec_config_free(c);

	c = make(); /* the bounds are inclusive */
	assert_int_equal(parse(c, NULL, "--workers", "64", NULL), MLSEC_OK);
	mlsec_config_free(c);
	c = make();
	assert_int_equal(parse(c, &err, "--workers", "0", NULL), MLSEC_ERR_INVALID_ARG);
	mlsec_config_free(c);

	setenv("MLSEC_TEST_WORKERS", "12abc", 1);
	c = make();
	assert_int_equal(parse(c, &err, NULL), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "MLSEC_TEST_WORKERS")); /* names the variable */
	mlsec_config_free(c);
	clear_env();

	c = make();
	assert_int_equal(parse(c, &err, "--mode", "medium", NULL), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "fast|slow"));
	mlsec_config_free(c);

	c = make();
	assert_int_equal(parse(c, NULL, "--insecure-local", "--mode=slow", NULL), MLSEC_OK);
	assert_int_equal(mlsec_config_get_bool(c, "insecure-local"), 1);
	assert_string_equal(mlsec_config_get(c, "mode"), "slow");
	mlsec_config_free(c);

	c = make();
	assert_int_equal(parse(c, NULL, "--insecure-local=no", NULL), MLSEC_OK);
	assert_int_equal(mlsec_config_get_bool(c, "insecure-local"), 0);
	mlsec_config_free(c);

	c = make();
	assert_int_equal(parse(c, &err, "--insecure-local=maybe", NULL), MLSEC_ERR_INVALID_ARG);
	mlsec_config_free(c);
}

static void test_flag_errors_and_args(void **state)
{
	(void)state;
	clear_env();
	mlsec_error err;
	mlsec_config *c = make();
	assert_int_equal(parse(c, &err, "--nope", NULL), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "--nope"));
	mlsec_config_free(c);

	c = make();
	assert_int_equal(parse(c, &err, "--listen", NULL), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "needs a value"));
	mlsec_config_free(c);

	c = make();
	assert_int_equal(parse(c, &err, "-x", NULL), MLSEC_ERR_INVALID_ARG);
	mlsec_config_free(c);

	c = make();
	assert_int_equal(
	        parse(c, NULL, "a.pbtxt", "--workers", "4", "b", "--", "--workers", "-", NULL),
	        MLSEC_OK);
	assert_int_equal(mlsec_config_argc(c), 4);
	assert_string_equal(mlsec_config_argv(c)[0], "a.pbtxt");
	assert_string_equal(mlsec_config_argv(c)[1], "b");
	assert_string_equal(mlsec_config_argv(c)[2], "--workers");
	assert_string_equal(mlsec_config_argv(c)[3], "-");
	assert_int_equal(mlsec_config_get_int(c, "workers"), 4);
	mlsec_config_free(c);
}

static void test_required_and_help(void **state)
{
	(void)state;
	clear_env();
	static const mlsec_config_option req[] = {
	        {"must", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, "MLSEC_TEST_MUST",
	         MLSEC_CONFIG_REQUIRED, "required"},
	};
	mlsec_error err;
	mlsec_config *c = make();
	assert_int_equal(mlsec_config_add(c, req, 1, NULL), MLSEC_OK);
	assert_int_equal(parse(c, &err, NULL), MLSEC_ERR_INVALID_ARG);
	assert_non_null(strstr(err.text, "--must"));
	assert_non_null(strstr(err.text, "MLSEC_TEST_MUST"));
	mlsec_config_free(c);

	c = make();
	assert_int_equal(mlsec_config_add(c, req, 1, NULL), MLSEC_OK);
	char *argv[] = {"mlsec-test", "--help", NULL};
	mlsec_config_help h;
	assert_int_equal(mlsec_config_parse(c, 2, argv, &h, NULL), MLSEC_OK);
	assert_int_equal(h, MLSEC_CONFIG_HELP_TEXT);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mlsec_config_print_help(c, f);
	fclose(f);
	assert_non_null(strstr(buf, "Usage: mlsec-test [options] FILE..."));
	assert_non_null(strstr(buf, "--workers N"));
	assert_non_null(strstr(buf, "env MLSEC_TEST_WORKERS, default 2, range 1..64"));
	assert_non_null(strstr(buf, "--mode fast|slow"));
	free(buf);

	f = open_memstream(&buf, &len);
	mlsec_config_print_markdown(c, f);
	fclose(f);
	assert_non_null(strstr(buf, "## `mlsec-test`"));
	assert_non_null(
	        strstr(buf, "| `--mode` | `MLSEC_TEST_MODE` | one of `fast\\|slow` | `fast` |"));
	assert_non_null(strstr(buf, "| `--token` | `MLSEC_TEST_TOKEN` | string, secret |"));
	free(buf);
	mlsec_config_free(c);
}

static void test_table_errors(void **state)
{
	(void)state;
	static const mlsec_config_option dup[] = {
	        {"workers", MLSEC_CONFIG_INT, "1", 0, 0, NULL, NULL, 0, "dup"},
	};
	static const mlsec_config_option bad_default[] = {
	        {"level", MLSEC_CONFIG_INT, "100", 1, 10, NULL, NULL, 0, "x"},
	};
	static const mlsec_config_option bad_name[] = {
	        {"Bad Name", MLSEC_CONFIG_STRING, NULL, 0, 0, NULL, NULL, 0, "x"},
	};
	mlsec_config *c = make();
	assert_int_equal(mlsec_config_add(c, dup, 1, NULL), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_config_add(c, bad_default, 1, NULL), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_config_add(c, bad_name, 1, NULL), MLSEC_ERR_INVALID_ARG);
	assert_int_equal(mlsec_config_add_std(c,
	                                      MLSEC_CONFIG_STD_LOG | MLSEC_CONFIG_STD_REDIS |
	                                              MLSEC_CONFIG_STD_KAFKA |
	                                              MLSEC_CONFIG_STD_ARTIFACT_ROOT,
	                                      NULL),
	                 MLSEC_OK);
	/* Adding a group twice is a duplicate. */
	assert_int_equal(mlsec_config_add_std(c, MLSEC_CONFIG_STD_LOG, NULL),
	                 MLSEC_ERR_INVALID_ARG);
	mlsec_config_free(c);
}

/* Reads back what the logger wrote to a temporary file. */
static char *slurp(int fd)
{
	static char buf[16384];
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_secrets_and_kafka(void **state)
{
	(void)state;
	clear_env();
	char path[] = "/tmp/mlsec-config-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	mlsec_log_setup(MLSEC_LOG_DEBUG, MLSEC_LOG_TEXT, fd, "mlsec-test");

	setenv("MLSEC_TEST_TOKEN", "s3cr3t-t0ken", 1);
	setenv("MLSEC_KAFKA_security.protocol", "SASL_SSL", 1);
	setenv("MLSEC_KAFKA_SASL_MECHANISMS", "PLAIN", 1);
	setenv("MLSEC_KAFKA_SASL_PASSWORD", "kafka-pa55word", 1);
	setenv("MLSEC_KAFKA_BROKERS", "127.0.0.1:1", 1);
	mlsec_config *c = make();
	assert_int_equal(
	        mlsec_config_add_std(c, MLSEC_CONFIG_STD_KAFKA | MLSEC_CONFIG_STD_REDIS, NULL),
	        MLSEC_OK);
	mlsec_error err;
	assert_int_equal(
	        parse(c, &err, "--redis-url", "redis://:redis-pw-123@127.0.0.1:6379/0", NULL),
	        MLSEC_OK);
	assert_string_equal(mlsec_config_get(c, "token"), "s3cr3t-t0ken");
	assert_string_equal(mlsec_config_get(c, "kafka-brokers"), "127.0.0.1:1");

	const char *const *kp = mlsec_config_kafka_props(c);
	int seen = 0;
	for (size_t i = 0; kp[i]; i += 2) {
		assert_non_null(kp[i + 1]);
		if (!strcmp(kp[i], "security.protocol"))
			seen |= 1, assert_string_equal(kp[i + 1], "SASL_SSL");
		else if (!strcmp(kp[i], "sasl.mechanisms"))
			seen |= 2, assert_string_equal(kp[i + 1], "PLAIN");
		else if (!strcmp(kp[i], "sasl.password"))
			seen |= 4;
		else if (!strcmp(kp[i], "brokers"))
			fail_msg("MLSEC_KAFKA_BROKERS must not pass through");
	}
	assert_int_equal(seen, 7);

	mlsec_config_log_effective(c);
	MLSEC_LOGI("the token is s3cr3t-t0ken and the password kafka-pa55word, redis redis-pw-123");
	const char *out = slurp(fd);
	assert_null(strstr(out, "s3cr3t-t0ken"));
	assert_null(strstr(out, "kafka-pa55word"));
	assert_null(strstr(out, "redis-pw-123"));
	assert_non_null(strstr(out, "token=***(env)"));
	assert_non_null(strstr(out, "kafka.security.protocol=SASL_SSL"));
	assert_non_null(strstr(out, "the token is *** and the password ***, redis ***"));
	mlsec_config_free(c);

	/* A bad secret value is reported without echoing it. */
	static const mlsec_config_option sec_int[] = {
	        {"pin", MLSEC_CONFIG_INT, NULL, 0, 0, NULL, NULL, MLSEC_CONFIG_SECRET, "pin"},
	};
	c = mlsec_config_new("x", NULL, NULL);
	assert_int_equal(mlsec_config_add(c, sec_int, 1, NULL), MLSEC_OK);
	assert_int_equal(parse(c, &err, "--pin", "hunter2-not-a-number", NULL),
	                 MLSEC_ERR_INVALID_ARG);
	assert_null(strstr(err.text, "hunter2"));
	mlsec_config_free(c);

	mlsec_log_setup(MLSEC_LOG_INFO, MLSEC_LOG_TEXT, -1, NULL);
	mlsec_log_shutdown();
	close(fd);
	clear_env();
}

/* Fails each allocation of new/add/parse in turn: never a crash, and the
 * sanitizer build sees no leak. */
static void test_alloc_failures(void **state)
{
	(void)state;
	clear_env();
	setenv("MLSEC_TEST_LISTEN", "127.0.0.1:1", 1);
	setenv("MLSEC_KAFKA_SASL_MECHANISMS", "PLAIN", 1);
	setenv("MLSEC_KAFKA_security.protocol", "SSL", 1);
	char *argv[] = {"mlsec-test", "--workers", "3", "--token", "tok-value-1", "file1", NULL};
	int ok_seen = 0;
	for (long n = 0; n < 200 && !ok_seen; n++) {
		mlsec_alloc_fail_after(n);
		mlsec_config *c = mlsec_config_new("mlsec-test", NULL, NULL);
		mlsec_err rc = MLSEC_ERR_NOMEM;
		if (c && (rc = mlsec_config_add(c, table, sizeof table / sizeof table[0], NULL)) ==
		                 MLSEC_OK)
			rc = mlsec_config_parse(c, 6, argv, NULL, NULL);
		mlsec_alloc_fail_after(-1);
		if (rc == MLSEC_OK) {
			ok_seen = 1;
			assert_int_equal(mlsec_config_get_int(c, "workers"), 3);
			assert_int_equal(mlsec_config_argc(c), 1);
		} else {
			assert_int_equal(rc, MLSEC_ERR_NOMEM);
		}
		mlsec_config_free(c);
	}
	assert_true(ok_seen);
	mlsec_log_shutdown();
	clear_env();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_precedence),
	        cmocka_unit_test(test_bounds_and_types),
	        cmocka_unit_test(test_flag_errors_and_args),
	        cmocka_unit_test(test_required_and_help),
	        cmocka_unit_test(test_table_errors),
	        cmocka_unit_test(test_secrets_and_kafka),
	        cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
