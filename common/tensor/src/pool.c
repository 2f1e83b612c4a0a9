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

#include "mlsec/alloc.h"
#include "tensor_internal.h"

#define POOL_SPIN 4000 /* polls before a worker sleeps on the condition */

struct tensor_pool {
	int nthreads; /* including the caller */
	pthread_t *tids;
	pthread_mutex_t mu;
	pthread_cond_t start, done;
	unsigned long gen; /* job generation, bumped per tensor_par() */
	int pending;       /* workers still running the current job */
	int quit;
	/* current job */
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

static void run_share(tensor_pool *p, int tid)
{
	int64_t b = p->count * tid / p->nthreads, e = p->count * (tid + 1) / p->nthreads;
	if (b < e)
		p->fn(p->g, p->n, b, e, tid, p->ctx);
}

static void *worker(void *arg)
{
	worker_arg *wa = arg;
	tensor_pool *p = wa->p;
	int tid = wa->tid;
	mlsec_free(wa);
	unsigned long seen = 0;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (p->gen == seen && !p->quit)
			pthread_cond_wait(&p->start, &p->mu);
		if (p->quit) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		run_share(p, tid);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
		pthread_mutex_unlock(&p->mu);
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
	p->quit = 1;
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
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->g = g;
	p->n = n;
	p->count = count;
	p->ctx = ctx;
	p->pending = p->nthreads - 1;
	p->gen++;
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	run_share(p, 0);
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
