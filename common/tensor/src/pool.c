/*
 * pool.c - the executor's own worker threads. With opts.threads > 1 the
 * graph owns threads-1 workers and OpenBLAS runs single-threaded inside
 * each of them: kernels split their work (images of a convolution, rows of
 * a GEMM, planes of a pooling, ranges of an element-wise op) with
 * tensor_par(). One level of parallelism, no oversubscription between our
 * threads and OpenBLAS's, and no per-call thread creation.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "mlsec/alloc.h"
#include "tensor_internal.h"

/*
 * A job is handed over by bumping gen; the workers and the caller first
 * spin on it (and on pending) for about this many polls before they sleep
 * on a condition: a forward pass of a small CNN is some 25 jobs of a few
 * hundred microseconds, and waking a sleeping thread costs tens of
 * microseconds each time on a VM.
 */
#define POOL_SPIN 20000

struct tensor_pool {
	int nthreads; /* including the caller */
	pthread_t *tids;
	pthread_mutex_t mu;
	pthread_cond_t start, done;
	atomic_ulong gen;    /* job generation, bumped per tensor_par() */
	atomic_int pending;  /* workers still running the current job */
	atomic_int sleepers; /* workers blocked (or about to block) on start */
	atomic_int waiting;  /* the caller blocked (or about to) on done */
	atomic_int quit;
	/* current job: written before gen is bumped (release), read after */
	tensor_par_fn fn;
	G *g;
	tnode *n;
	int64_t count;
	void *ctx;
};

typedef struct worker_arg {
	tensor_pool *p;
	int tid;
} worker_arg;

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void run_share(tensor_pool *p, int tid)
{
	int64_t b = p->count * tid / p->nthreads, e = p->count * (tid + 1) / p->nthreads;
	if (b < e)
		p->fn(p->g, p->n, b, e, tid, p->ctx);
}

/* Waits until gen moves past seen (or quit); returns the new gen. */
static unsigned long wait_job(tensor_pool *p, unsigned long seen)
{
	for (int i = 0; i < POOL_SPIN; i++) {
		unsigned long g = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (g != seen || atomic_load_explicit(&p->quit, memory_order_relaxed))
			return g;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	/* Announce the sleep, then look again: either the caller's bump of
	 * gen sees us counted (and broadcasts under the mutex) or we see its
	 * bump here (both seq_cst). */
	atomic_fetch_add(&p->sleepers, 1);
	unsigned long g;
	while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit))
		pthread_cond_wait(&p->start, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return g;
}

static void *worker(void *arg)
{
	worker_arg *wa = arg;
	tensor_pool *p = wa->p;
	int tid = wa->tid;
	mlsec_free(wa);
	unsigned long seen = 0;
	for (;;) {
		seen = wait_job(p, seen);
		if (atomic_load(&p->quit))
			return NULL;
		run_share(p, tid);
		if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->waiting)) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

mlsec_err tensor_pool_new(int nthreads, tensor_pool **out, mlsec_error *err)
{
	*out = NULL;
	if (nthreads <= 1)
		return MLSEC_OK;
	tensor_pool *p = mlsec_calloc(1, sizeof *p);
	if (!p || !(p->tids = mlsec_calloc((size_t)nthreads, sizeof(pthread_t)))) {
		mlsec_free(p);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	p->nthreads = 1;
	atomic_init(&p->gen, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->waiting, 0);
	atomic_init(&p->quit, 0);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->start, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int t = 1; t < nthreads; t++) {
		worker_arg *wa = mlsec_malloc(sizeof *wa);
		if (!wa ||
		    (wa->p = p, wa->tid = t, pthread_create(&p->tids[t], NULL, worker, wa))) {
			mlsec_free(wa);
			tensor_pool_free(p);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "cannot start worker threads");
		}
		p->nthreads++;
	}
	*out = p;
	return MLSEC_OK;
}

void tensor_pool_free(tensor_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, 1);
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	for (int t = 1; t < p->nthreads; t++)
		pthread_join(p->tids[t], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->start);
	pthread_cond_destroy(&p->done);
	mlsec_free(p->tids);
	mlsec_free(p);
}

int tensor_threads(const G *g)
{
	return g->pool ? g->pool->nthreads : 1;
}

void tensor_par(G *g, tnode *n, int64_t count, tensor_par_fn fn, void *ctx)
{
	tensor_pool *p = g->pool;
	if (!p || count < 2) {
		if (count > 0)
			fn(g, n, 0, count, 0, ctx);
		return;
	}
	p->fn = fn;
	p->g = g;
	p->n = n;
	p->count = count;
	p->ctx = ctx;
	atomic_store(&p->pending, p->nthreads - 1);
	atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes the job */
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->start);
		pthread_mutex_unlock(&p->mu);
	}
	run_share(p, 0);
	for (int i = 0; i < POOL_SPIN; i++) {
		if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
			return;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->waiting, 1);
	while (atomic_load(&p->pending) > 0)
		pthread_cond_wait(&p->done, &p->mu);
	atomic_store(&p->waiting, 0);
	pthread_mutex_unlock(&p->mu);
}
