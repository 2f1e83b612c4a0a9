/*
 * shutdown.c - SIGTERM/SIGINT to a flag plus a self-pipe, so any thread can
 * poll(), wait or check without doing work inside a signal handler.
 *
 * Why a signal thread: a process-directed signal interrupts whichever
 * thread the kernel picks, and some library threads do not survive EINTR
 * (librdkafka's mock cluster stops polling and its destroy then waits
 * forever). So install() blocks SIGTERM/SIGINT in the calling thread -
 * every thread created afterwards inherits the mask - and one small thread
 * takes them with sigwait(). The handler stays installed as well, for
 * threads created before install() that still accept the signals.
 */
#include "mlsec/shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_requested;
static volatile sig_atomic_t g_signal;
static int g_pipe[2] = {-1, -1};
static atomic_int g_installed;
static atomic_int g_quitting;
static pthread_t g_thread;
static sigset_t g_old_mask;
static struct sigaction g_old_term, g_old_int, g_old_pipe;

/* Async-signal-safe: a flag and one write to a non-blocking pipe. The
 * pipe is never drained, so one byte keeps it readable forever. */
static void wake(void)
{
	g_requested = 1;
	int fd = g_pipe[1];
	if (fd >= 0) {
		int saved = errno;
		ssize_t r = write(fd, "x", 1);
		(void)r; /* a full pipe is already readable */
		errno = saved;
	}
}

static void on_signal(int sig)
{
	if (!g_signal)
		g_signal = sig;
	wake();
}

static void *signal_main(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (atomic_load(&g_quitting))
			return NULL;
		on_signal(sig);
	}
}

mlsec_err mlsec_shutdown_install(mlsec_error *err)
{
	if (atomic_load(&g_installed))
		return MLSEC_OK;
	if (pipe(g_pipe) != 0)
		return mlsec_error_set(err, MLSEC_ERR_IO, "shutdown pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		fcntl(g_pipe[i], F_SETFL, fcntl(g_pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(g_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	if (g_requested) /* requested before install: make the fd readable too */
		wake();

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	struct sigaction ign;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	int e = 0;
	if (sigaction(SIGTERM, &sa, &g_old_term) != 0 || sigaction(SIGINT, &sa, &g_old_int) != 0 ||
	    sigaction(SIGPIPE, &ign, &g_old_pipe) != 0)
		e = errno;
	else if ((e = pthread_sigmask(SIG_BLOCK, &block, &g_old_mask)) == 0) {
		atomic_store(&g_quitting, 0);
		if ((e = pthread_create(&g_thread, NULL, signal_main, NULL)) != 0)
			pthread_sigmask(SIG_SETMASK, &g_old_mask, NULL);
	}
	if (e) {
		sigaction(SIGTERM, &g_old_term, NULL);
		sigaction(SIGINT, &g_old_int, NULL);
		sigaction(SIGPIPE, &g_old_pipe, NULL);
		close(g_pipe[0]);
		close(g_pipe[1]);
		g_pipe[0] = g_pipe[1] = -1;
		return mlsec_error_set(err, MLSEC_ERR_IO, "signal setup: %s", strerror(e));
	}
	atomic_store(&g_installed, 1);
	return MLSEC_OK;
}

void mlsec_shutdown_uninstall(void)
{
	if (!atomic_exchange(&g_installed, 0))
		return;
	/* Wake the signal thread with a signal only it accepts, telling it to quit. */
	atomic_store(&g_quitting, 1);
	pthread_kill(g_thread, SIGTERM);
	pthread_join(g_thread, NULL);
	sigaction(SIGTERM, &g_old_term, NULL);
	sigaction(SIGINT, &g_old_int, NULL);
	sigaction(SIGPIPE, &g_old_pipe, NULL);
	pthread_sigmask(SIG_SETMASK, &g_old_mask, NULL);
	int r = g_pipe[0], w = g_pipe[1];
	g_pipe[0] = g_pipe[1] = -1;
	close(r);
	close(w);
}

int mlsec_shutdown_requested(void)
{
	return g_requested != 0;
}

int mlsec_shutdown_signal(void)
{
	return g_signal;
}

void mlsec_shutdown_request(void)
{
	wake();
}

int mlsec_shutdown_fd(void)
{
	return g_pipe[0];
}

int mlsec_shutdown_wait(int timeout_ms)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (g_requested)
			return 1;
		int slice = 100; /* re-check the flag: the fd may not exist yet */
		if (timeout_ms >= 0) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			long long spent = (now.tv_sec - start.tv_sec) * 1000LL +
			                  (now.tv_nsec - start.tv_nsec) / 1000000LL;
			if (spent >= timeout_ms)
				return 0;
			if (timeout_ms - spent < slice)
				slice = (int)(timeout_ms - spent);
		}
		int fd = g_pipe[0];
		if (fd >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			poll(&p, 1, slice);
		} else {
			struct timespec ts = {0, (slice < 10 ? slice : 10) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
}

void mlsec_shutdown_reset(void)
{
	char buf[64];
	g_requested = 0;
	g_signal = 0;
	if (g_pipe[0] >= 0)
		while (read(g_pipe[0], buf, sizeof buf) > 0)
			;
}
