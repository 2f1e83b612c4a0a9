/*
 * testenv.h - self-contained integration tests: start a real redis-server
 * and mlsec-devbroker on free loopback ports for one test process and make
 * sure they are gone when it exits (an atexit hook kills leftovers, so a
 * failing cmocka test leaves nothing running).
 *
 * Binaries: redis-server from PATH; mlsec-* from $MLSEC_BIN_DIR (set by
 * mlsec_unit_test) or ./build/bin. Not thread-safe: call from the test's
 * main thread.
 */
#ifndef MLSEC_TESTENV_H
#define MLSEC_TESTENV_H

#include <stddef.h>
#include <sys/types.h>

typedef struct mlsec_testenv_proc {
	pid_t pid;      /* 0 when not running */
	int port;       /* redis: its port */
	char addr[320]; /* redis: redis://127.0.0.1:<port>/0; broker: bootstrap list */
	char dir[256];  /* scratch directory of the process (removed on stop) */
} mlsec_testenv_proc;

/* A currently free TCP port on 127.0.0.1 (bind to port 0, read, close). */
int mlsec_testenv_free_port(void);

/*
 * Starts redis-server on 127.0.0.1:port (0 = a free port), no persistence,
 * optionally with `password` (requirepass; NULL = none), and waits until
 * it answers (5 s). 0 on success, -1 on failure (message on stderr).
 */
int mlsec_testenv_redis_start(mlsec_testenv_proc *p, int port, const char *password);

/* Starts mlsec-devbroker and waits for its bootstrap address (10 s). */
int mlsec_testenv_broker_start(mlsec_testenv_proc *p, int partitions);

/* SIGTERM, wait up to 5 s, then SIGKILL; safe on a stopped proc. */
void mlsec_testenv_stop(mlsec_testenv_proc *p);
/* SIGKILL at once (crash simulation) and reap. */
void mlsec_testenv_kill(mlsec_testenv_proc *p);

/* Full path of an mlsec binary into buf ($MLSEC_BIN_DIR or build/bin). */
const char *mlsec_testenv_bin(const char *name, char *buf, size_t size);

/* Milliseconds on the monotonic clock (for "within the timeout" checks). */
long long mlsec_testenv_now_ms(void);

#endif
