/*
 * test_poison_cli.c - `mlsec poison-monitor` end to end: exit codes and
 * JSON of monitor on simulated logs, the file:line error for a broken log,
 * the PNG chart, and listen over UDP on 127.0.0.1 (alarms as JSON lines,
 * malformed and oversized datagrams counted, stop on SIGTERM/SIGINT or
 * inactivity).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "mlsec/poison.h"

#define OUT_MAX (1 << 20)

static char mlsec_bin[1024];
static char tmpdir[] = "/tmp/mlsec-poison-cli-XXXXXX";

typedef struct proc {
	pid_t pid;
	int out, err;
} proc;

static proc spawn(char *const argv[])
{
	int o[2], e[2];
	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	proc p = {fork(), o[0], e[0]};
	assert_true(p.pid >= 0);
	if (p.pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		close(o[1]);
		close(e[1]);
		execv(mlsec_bin, argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	return p;
}

/* Reads both pipes to EOF into out/err (NUL-terminated) and reaps p. */
static int finish(proc p, char *out, char *err)
{
	size_t no = 0, ne = 0;
	struct pollfd fds[2] = {{p.out, POLLIN, 0}, {p.err, POLLIN, 0}};
	int open_ = 2;
	while (open_) {
		if (poll(fds, 2, 30000) <= 0)
			fail_msg("child output timed out");
		for (int k = 0; k < 2; k++) {
			if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP)))
				continue;
			char *buf = k ? err : out;
			size_t *n = k ? &ne : &no;
			ssize_t r = read(fds[k].fd, buf + *n, OUT_MAX - 1 - *n);
			if (r <= 0) {
				close(fds[k].fd);
				fds[k].fd = -1;
				open_--;
			} else {
				*n += (size_t)r;
			}
		}
	}
	out[no] = err[ne] = '\0';
	int st;
	assert_int_equal(waitpid(p.pid, &st, 0), p.pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static char out[OUT_MAX], errb[OUT_MAX];

static int run(char *const argv[])
{
	return finish(spawn(argv), out, errb);
}

static int setup(void **state)
{
	(void)state;
	const char *bin = getenv("MLSEC_BIN_DIR");
	snprintf(mlsec_bin, sizeof mlsec_bin, "%s/mlsec", bin ? bin : "build/bin");
	if (access(mlsec_bin, X_OK) != 0)
		return -1;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void simulate(const char *name, const char *mode, const char *rank, const char *seed)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
	char *argv[] = {"mlsec",      "poison-monitor",
	                "simulate",   "--workers",
	                "8",          "--steps",
	                "2000",       "--poison-mode",
	                (char *)mode, "--poison-rank",
	                (char *)rank, "--poison-start",
	                "800",        "--seed",
	                (char *)seed, "--log-dir",
	                dir,          NULL};
	assert_int_equal(run(argv), 0);
}

static void test_monitor_clean_and_poisoned(void **state)
{
	(void)state;
	char dir[512];
	simulate("clean", "none", "0", "21");
	snprintf(dir, sizeof dir, "%s/clean", tmpdir);
	char *clean[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, "--json", NULL};
	assert_int_equal(run(clean), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	assert_non_null(j);
	json_t *alarms = json_object_get(
	        json_object_get(json_array_get(json_object_get(j, "artifacts"), 0), "details"),
	        "alarms");
	assert_true(json_is_array(alarms));
	assert_int_equal(json_array_size(alarms), 0);
	json_decref(j);

	simulate("slow", "slow", "6", "22");
	snprintf(dir, sizeof dir, "%s/slow", tmpdir);
	char *slow[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, "--json", NULL};
	assert_int_equal(run(slow), 2);
	j = json_loads(out, 0, &je);
	assert_non_null(j);
	alarms = json_object_get(
	        json_object_get(json_array_get(json_object_get(j, "artifacts"), 0), "details"),
	        "alarms");
	assert_true(json_array_size(alarms) >= 1);
	json_t *a0 = json_array_get(alarms, 0);
	assert_int_equal(json_integer_value(json_object_get(a0, "rank")), 6);
	assert_string_equal(json_string_value(json_object_get(a0, "rule")), "POISON-CUSUM-DRIFT");
	assert_string_equal(json_string_value(json_object_get(a0, "direction")), "up");
	json_int_t at = json_integer_value(json_object_get(a0, "alarm_step"));
	assert_true(at >= 800 && at <= 1100);
	assert_non_null(json_object_get(a0, "onset_step"));
	assert_non_null(json_object_get(a0, "metric"));
	assert_true(json_is_number(json_object_get(a0, "statistic")));
	json_decref(j);

	/* a stricter CUSUM threshold from the command line is honoured */
	char *strict[] = {"mlsec", "poison-monitor",    "monitor", "--log-dir",
	                  dir,     "--cusum-threshold", "1e5",     "--threshold",
	                  "1e5",   "--quiet",           NULL};
	assert_int_equal(run(strict), 0);
}

/* Logs the detector cannot judge must not read as a clean run: with fewer
 * than 3 workers no step is compared, empty logs hold nothing, and a run
 * no longer than the warm-up only learns the scale. Each is exit 1 with a
 * line saying why, never exit 0. */
static void test_monitor_nothing_checked(void **state)
{
	(void)state;
	char dir[512], path[600];
	/* two workers x 2,000 steps: every step is "thin" */
	snprintf(dir, sizeof dir, "%s/two", tmpdir);
	char *sim2[] = {"mlsec",   "poison-monitor", "simulate",  "--workers", "2",
	                "--steps", "2000",           "--log-dir", dir,         NULL};
	assert_int_equal(run(sim2), 0);
	char *two[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, NULL};
	assert_int_equal(run(two), 1);
	assert_non_null(strstr(errb, "3 workers"));

	/* three empty worker logs: no record at all */
	snprintf(dir, sizeof dir, "%s/blank", tmpdir);
	mkdir(dir, 0755);
	for (int r = 0; r < 3; r++) {
		snprintf(path, sizeof path, "%s/worker_%d.jsonl", dir, r);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
	char *blank[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, NULL};
	assert_int_equal(run(blank), 1);
	assert_non_null(strstr(errb, "no gradient records"));

	/* 8 workers x 30 steps: all inside the default warm-up of 50 */
	snprintf(dir, sizeof dir, "%s/short", tmpdir);
	char *sims[] = {"mlsec", "poison-monitor", "simulate", "--workers", "8", "--steps",
	                "30",    "--log-dir",      dir,        NULL};
	assert_int_equal(run(sims), 0);
	char *shrt[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, NULL};
	assert_int_equal(run(shrt), 1);
	assert_non_null(strstr(errb, "warm-up"));
	/* the same run with a shorter warm-up is checked */
	char *shrt2[] = {"mlsec", "poison-monitor", "monitor", "--log-dir",
	                 dir,     "--warmup",       "10",      NULL};
	assert_int_equal(run(shrt2), 0);
}

static void test_monitor_errors(void **state)
{
	(void)state;
	char dir[512], path[600];
	snprintf(dir, sizeof dir, "%s/empty", tmpdir);
	mkdir(dir, 0755);
	char *none[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, NULL};
	assert_int_equal(run(none), 1);
	assert_non_null(strstr(errb, "no worker_*.jsonl"));

	snprintf(path, sizeof path, "%s/worker_0.jsonl", dir);
	FILE *f = fopen(path, "w");
	fputs("{\"rank\": 0, \"step\": 0, \"global_l2\": 1, \"global_linf\": 1, \"mean\": 0, "
	      "\"std\": 1, \"parameter_count\": 5}\n",
	      f);
	fputs("{\"rank\": 0, \"step\": 1, \"global_l2\": 1, \"mean\": 0, \"std\": 1, "
	      "\"parameter_count\": 5}\n",
	      f);
	fclose(f);
	assert_int_equal(run(none), 1);
	char want[700];
	snprintf(want, sizeof want, "%s:2:", path);
	assert_non_null(strstr(errb, want));
	assert_non_null(strstr(errb, "missing required key \"global_linf\""));

	char *badflag[] = {"mlsec", "poison-monitor", "monitor", "--log-dir",
	                   dir,     "--cusum-drift",  "abc",     NULL};
	assert_int_equal(run(badflag), 1);
	char *nodir[] = {"mlsec", "poison-monitor", "monitor", NULL};
	assert_int_equal(run(nodir), 1);
	char *badmode[] = {"mlsec", "poison-monitor", "frobnicate", NULL};
	assert_int_equal(run(badmode), 1);
}

static void test_plot(void **state)
{
	(void)state;
	if (system("command -v gnuplot >/dev/null 2>&1") != 0)
		skip();
	char dir[512], png[600];
	simulate("spike", "spike", "1", "23");
	snprintf(dir, sizeof dir, "%s/spike", tmpdir);
	snprintf(png, sizeof png, "%s/chart.png", tmpdir);
	char *argv[] = {"mlsec", "poison-monitor", "monitor", "--log-dir", dir, "--plot",
	                png,     "--quiet",        NULL};
	assert_int_equal(run(argv), 2);
	FILE *f = fopen(png, "rb");
	assert_non_null(f);
	unsigned char magic[8];
	assert_int_equal(fread(magic, 1, 8, f), 8);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fclose(f);
	assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
	assert_true(size > 10000);
}

/* ---- listen ---- */

/* Starts listen on an ephemeral port; returns the port from its stderr. */
static proc start_listen(char **extra, int *port)
{
	char *argv[32] = {"mlsec",     "poison-monitor", "listen", "--host",
	                  "127.0.0.1", "--port",         "0",      "--json"};
	int n = 8;
	while (extra && *extra && n < 30)
		argv[n++] = *extra++;
	argv[n] = NULL;
	proc p = spawn(argv);
	char line[512];
	size_t len = 0;
	while (len < sizeof line - 1) {
		struct pollfd pfd = {p.err, POLLIN, 0};
		assert_true(poll(&pfd, 1, 10000) > 0);
		ssize_t r = read(p.err, line + len, 1);
		assert_true(r == 1);
		if (line[len++] == '\n')
			break;
	}
	line[len] = '\0';
	char *colon = strrchr(line, ':');
	assert_non_null(strstr(line, "listening on udp 127.0.0.1:"));
	*port = atoi(colon + 1);
	assert_true(*port > 0);
	return p;
}

static void send_dgram(int fd, int port, const char *data, size_t len)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, data, len, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)len);
}

static void send_sim(int fd, int port, mlsec_poison_sim_mode mode, int64_t steps)
{
	mlsec_poison_sim s;
	mlsec_poison_sim_init(&s);
	s.workers = 4;
	s.steps = steps;
	s.seed = 77;
	s.mode = mode;
	s.poison_rank = 2;
	s.poison_start = 300;
	char buf[512];
	for (int64_t t = 0; t < s.steps; t++) {
		for (unsigned r = 0; r < s.workers; r++) {
			mlsec_poison_record rec;
			if (!mlsec_poison_sim_record(&s, r, t, &rec))
				continue;
			int n = mlsec_poison_record_format(&rec, buf, sizeof buf);
			send_dgram(fd, port, buf, (size_t)n);
		}
		if (t % 50 == 0)
			usleep(1000); /* stay well under the socket buffer */
	}
}

static json_t *last_json_line(const char *text)
{
	const char *end = text + strlen(text);
	while (end > text && end[-1] == '\n')
		end--;
	const char *start = end;
	while (start > text && start[-1] != '\n')
		start--;
	return json_loadb(start, (size_t)(end - start), 0, NULL);
}

static void test_listen_alarm_sigterm(void **state)
{
	(void)state;
	int port;
	char *extra[] = {"--expected-workers", "4", NULL};
	proc p = start_listen(extra, &port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	send_dgram(fd, port, "not json", 8);
	send_dgram(fd, port, "{\"rank\": 1}", 11);
	static char big[MLSEC_POISON_MAX_RECORD + 100];
	memset(big, ' ', sizeof big);
	big[0] = '{';
	big[sizeof big - 1] = '}';
	send_dgram(fd, port, big, sizeof big);
	send_sim(fd, port, MLSEC_POISON_SIM_SPIKE, 400);
	close(fd);
	usleep(300000);
	kill(p.pid, SIGTERM);
	assert_int_equal(finish(p, out, errb), 2);
	/* the first line is the alarm, the last the summary */
	json_error_t je;
	json_t *first = json_loadb(out, strcspn(out, "\n"), 0, &je);
	assert_non_null(first);
	assert_string_equal(json_string_value(json_object_get(first, "rule")), "POISON-SPIKE");
	assert_int_equal(json_integer_value(json_object_get(first, "rank")), 2);
	assert_int_equal(json_integer_value(json_object_get(first, "alarm_step")), 300);
	json_decref(first);
	json_t *last = last_json_line(out);
	json_t *sum = json_object_get(last, "summary");
	assert_non_null(sum);
	assert_string_equal(json_string_value(json_object_get(sum, "stopped_by")), "SIGTERM");
	assert_int_equal(json_integer_value(json_object_get(sum, "malformed")), 2);
	assert_int_equal(json_integer_value(json_object_get(sum, "oversized")), 1);
	assert_int_equal(json_integer_value(json_object_get(sum, "records")), 1600);
	assert_int_equal(json_integer_value(json_object_get(sum, "datagrams")), 1603);
	json_decref(last);
}

static void test_listen_clean_inactivity(void **state)
{
	(void)state;
	int port;
	char *extra[] = {"--inactivity-timeout", "0.5", NULL};
	proc p = start_listen(extra, &port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	send_sim(fd, port, MLSEC_POISON_SIM_NONE, 400);
	close(fd);
	assert_int_equal(finish(p, out, errb), 0);
	json_t *last = last_json_line(out);
	json_t *sum = json_object_get(last, "summary");
	assert_non_null(sum);
	assert_string_equal(json_string_value(json_object_get(sum, "stopped_by")),
	                    "inactivity timeout");
	assert_int_equal(json_integer_value(json_object_get(sum, "alarms")), 0);
	assert_int_equal(json_integer_value(json_object_get(sum, "records")), 1600);
	assert_int_equal(json_integer_value(json_object_get(sum, "steps")), 400);
	json_decref(last);
}

static void test_listen_sigint_idle(void **state)
{
	(void)state;
	int port;
	proc p = start_listen(NULL, &port);
	usleep(200000);
	kill(p.pid, SIGINT);
	assert_int_equal(finish(p, out, errb), 0);
	json_t *last = last_json_line(out);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(last, "summary"), "stopped_by")),
	        "SIGINT");
	json_decref(last);
}

static void test_listen_bad_flags(void **state)
{
	(void)state;
	char *noport[] = {"mlsec", "poison-monitor", "listen", NULL};
	assert_int_equal(run(noport), 1);
	char *badport[] = {"mlsec", "poison-monitor", "listen", "--port", "70000", NULL};
	assert_int_equal(run(badport), 1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_monitor_clean_and_poisoned),
	        cmocka_unit_test(test_monitor_errors),
	        cmocka_unit_test(test_monitor_nothing_checked),
	        cmocka_unit_test(test_plot),
	        cmocka_unit_test(test_listen_alarm_sigterm),
	        cmocka_unit_test(test_listen_clean_inactivity),
	        cmocka_unit_test(test_listen_sigint_idle),
	        cmocka_unit_test(test_listen_bad_flags),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
