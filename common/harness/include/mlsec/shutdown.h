/*
 * shutdown.h - SIGTERM/SIGINT turned into something threads can poll or
 * wait on, for graceful shutdown: stop taking work, finish or hand back the
 * current job, commit nothing unfinished, exit 0.
 *
 * mlsec_shutdown_install() ignores SIGPIPE (peers may vanish), blocks
 * SIGTERM and SIGINT in the calling thread and starts one thread that takes
 * them with sigwait(): it only sets a flag and writes one byte to a
 * self-pipe; everything else happens in normal threads. Call it in main()
 * BEFORE creating other threads (librdkafka, gRPC, workers): they inherit
 * the blocked mask, so no library thread is ever interrupted by these
 * signals (librdkafka's mock cluster, for one, hangs after an EINTR).
 * A handler is installed too, for threads that existed before. Children
 * started with fork/exec inherit the mask: unblock the signals in the child
 * (posix_spawnattr_setsigmask / pthread_sigmask) before exec. A second SIGTERM/SIGINT while
 * shutting down is treated the same (the flag stays set); services should bound their drain time
 * instead.
 *
 * Threads: every function except install/uninstall is thread-safe and may
 * be called from any thread; mlsec_shutdown_request() is also
 * async-signal-safe.
 */
#ifndef MLSEC_SHUTDOWN_H
#define MLSEC_SHUTDOWN_H

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Installs the handlers and creates the pipe. Idempotent. MLSEC_ERR_IO on failure. */
mlsec_err mlsec_shutdown_install(mlsec_error *err);

/* Stops the signal thread, restores the previous handlers and the calling
 * thread's signal mask, closes the pipe (for leak-clean exits). */
void mlsec_shutdown_uninstall(void);

/* Nonzero once a signal arrived or mlsec_shutdown_request() was called. */
int mlsec_shutdown_requested(void);

/* The signal number that triggered shutdown (0 if requested programmatically or not yet). */
int mlsec_shutdown_signal(void);

/* Requests shutdown as if a signal had arrived (tests, fatal errors). */
void mlsec_shutdown_request(void);

/*
 * A file descriptor that becomes readable once shutdown is requested and
 * stays readable (nobody drains it): add it to poll()/epoll to wake up.
 * -1 before install. Do not read from or close it.
 */
int mlsec_shutdown_fd(void);

/*
 * Sleeps until shutdown is requested or timeout_ms passes (-1 = forever).
 * Returns nonzero when shutdown was requested. Works before install too
 * (then it only sees mlsec_shutdown_request()).
 */
int mlsec_shutdown_wait(int timeout_ms);

/* Tests only: clears a request (and drains the pipe) so a test can trigger it again. */
void mlsec_shutdown_reset(void);

#ifdef __cplusplus
}
#endif
#endif
