/*
 * testenv.c - child processes for integration tests (redis-server,
 * mlsec-devbroker) on loopback, reaped on stop and killed at exit.
 */
#include "testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TESTENV_MAX_PROCS 32

static pid_t g_pids[TESTENV_MAX_PROCS];
static int g_hooked;

static void kill_leftovers(void)
{
	for (int i = 0; i < TESTENV_MAX_PROCS; i++) {
		if (g_pids[i] > 0) {
			kill(g_pids[i], SIGKILL);
			waitpid(g_pids[i], NULL, 0);
			g_pids[i] = 0;
		}
	}
}

static void track(pid_t pid, int add)
{
	if (!g_hooked) {
		atexit(kill_leftovers);
		g_hooked = 1;
	}
	for (int i = 0; i < TESTENV_MAX_PROCS; i++) {
		if (add && g_pids[i] == 0) {
			g_pids[i] = pid;
			return;
		}
		if (!add && g_pids[i] == pid) {
			g_pids[i] = 0;
			return;
		}
	}
}

long long mlsec_testenv_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int mlsec_testenv_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

const char *mlsec_testenv_bin(const char *name, char *buf, size_t size)
{
	const char *dir = getenv("MLSEC_BIN_DIR");
	snprintf(buf, size, "%s/%s", dir && *dir ? dir : "build/bin", name);
	return buf;
}

static int port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

/* fork + exec with stdout/stderr to `log` (NULL = inherit). */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execvp(argv[0], argv);
		fprintf(stderr, "testenv: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	track(pid, 1);
	return pid;
}

static int make_dir(mlsec_testenv_proc *p, const char *what)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(p->dir, sizeof p->dir, "%s/mlsec-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
	if (!mkdtemp(p->dir)) {
		fprintf(stderr, "testenv: mkdtemp: %s\n", strerror(errno));
		p->dir[0] = '\0';
		return -1;
	}
	return 0;
}

static void remove_dir(mlsec_testenv_proc *p);

static int exited(mlsec_testenv_proc *p)
{
	int st;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		track(p->pid, 0);
		p->pid = 0;
		return 1;
	}
	return 0;
}

int mlsec_testenv_redis_start(mlsec_testenv_proc *p, int port, const char *password)
{
	memset(p, 0, sizeof *p);
	if (make_dir(p, "redis"))
		return -1;
	p->port = port > 0 ? port : mlsec_testenv_free_port();
	char ports[16], log[512];
	snprintf(ports, sizeof ports, "%d", p->port);
	snprintf(log, sizeof log, "%s/redis.log", p->dir);
	char *argv[20];
	int n = 0;
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = ports;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--dir";
	argv[n++] = p->dir;
	if (password) {
		argv[n++] = "--requirepass";
		argv[n++] = (char *)password;
	}
	argv[n] = NULL;
	p->pid = spawn(argv, log);
	if (p->pid < 0)
		return -1;
	for (long long end = mlsec_testenv_now_ms() + 5000; mlsec_testenv_now_ms() < end;) {
		if (port_open(p->port)) {
			snprintf(p->addr, sizeof p->addr, "redis://%s%s%s127.0.0.1:%d/0",
			         password ? ":" : "", password ? password : "", password ? "@" : "",
			         p->port);
			return 0;
		}
		if (exited(p))
			break;
		sleep_ms(20);
	}
	fprintf(stderr, "testenv: redis-server did not start on port %d (see %s)\n", p->port, log);
	mlsec_testenv_stop(p);
	return -1;
}

int mlsec_testenv_broker_start(mlsec_testenv_proc *p, int partitions)
{
	memset(p, 0, sizeof *p);
	if (make_dir(p, "broker"))
		return -1;
	char bin[512], file[512], log[512], parts[16];
	mlsec_testenv_bin("mlsec-devbroker", bin, sizeof bin);
	snprintf(file, sizeof file, "%s/bootstrap.env", p->dir);
	snprintf(log, sizeof log, "%s/broker.log", p->dir);
	snprintf(parts, sizeof parts, "%d", partitions > 0 ? partitions : 4);
	char *argv[] = {bin, "--bootstrap-file", file, "--partitions", parts, NULL};
	p->pid = spawn(argv, log);
	if (p->pid < 0)
		return -1;
	for (long long end = mlsec_testenv_now_ms() + 10000; mlsec_testenv_now_ms() < end;) {
		FILE *f = fopen(file, "r");
		if (f) {
			char line[300] = "";
			char *ok = fgets(line, sizeof line, f);
			fclose(f);
			const char *pre = "MLSEC_KAFKA_BROKERS=";
			if (ok && strncmp(line, pre, strlen(pre)) == 0) {
				line[strcspn(line, "\n")] = '\0';
				snprintf(p->addr, sizeof p->addr, "%s", line + strlen(pre));
				return 0;
			}
		}
		if (exited(p))
			break;
		sleep_ms(20);
	}
	fprintf(stderr, "testenv: %s did not start (see %s)\n", bin, log);
	mlsec_testenv_stop(p);
	return -1;
}

static void remove_dir(mlsec_testenv_proc *p)
{
	if (!p->dir[0])
		return;
	char cmd[600];
	/* Only our own mkdtemp directory, created above. */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "testenv: could not remove %s\n", p->dir);
	p->dir[0] = '\0';
}

void mlsec_testenv_stop(mlsec_testenv_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		for (long long end = mlsec_testenv_now_ms() + 5000; mlsec_testenv_now_ms() < end;) {
			if (exited(p))
				break;
			sleep_ms(10);
		}
		if (p->pid > 0)
			mlsec_testenv_kill(p);
	}
	remove_dir(p);
}

void mlsec_testenv_kill(mlsec_testenv_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		track(p->pid, 0);
		p->pid = 0;
	}
	remove_dir(p);
}
