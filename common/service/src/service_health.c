/*
 * service_health.c - dependency monitor and health-only listener (see
 * service_health.h).
 */
#include "mlsec/service_health.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "mlsec/alloc.h"
#include "mlsec/log.h"

struct mlsec_service_health {
	mlsec_rpc_server *srv;
	char *service;
	mlsec_store *store;
	mlsec_producer *producer;
	int interval_ms;
	int ready; /* last state published; -1 before the first check */
	mlsec_rpc_server *listener;
	pthread_t thread;
	int started;
	int stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* One check: publishes the state and logs transitions (once each way). */
static void health_check_once(mlsec_service_health *h)
{
	mlsec_error err;
	mlsec_error_clear(&err);
	const char *down = NULL;
	if (h->store && mlsec_store_ping(h->store, &err) != MLSEC_OK)
		down = "redis";
	else if (h->producer &&
	         mlsec_producer_ping(h->producer, MLSEC_SERVICE_HEALTH_KAFKA_TIMEOUT_MS, &err) !=
	                 MLSEC_OK)
		down = "kafka";
	int ready = down == NULL;
	mlsec_rpc_server_set_serving(h->srv, h->service, ready);
	if (ready != h->ready) {
		if (ready && h->ready == 0)
			MLSEC_LOGI("dependencies reachable again: %s SERVING", h->service);
		else if (!ready)
			MLSEC_LOGW("%s unreachable (%s): %s NOT_SERVING", down, err.text,
			           h->service);
		h->ready = ready;
	}
}

static void *health_main(void *arg)
{
	mlsec_service_health *h = arg;
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += h->interval_ms / 1000;
		ts.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cond, &h->lock, &ts);
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->lock);
		health_check_once(h);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

mlsec_err mlsec_service_health_start(const mlsec_service_health_conf *c, mlsec_service_health **out,
                                     mlsec_error *err)
{
	*out = NULL;
	mlsec_service_health *h = mlsec_calloc(1, sizeof(*h));
	if (!h || !(h->service = mlsec_strdup(c->service ? c->service : ""))) {
		mlsec_free(h);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->srv = c->srv;
	h->producer = c->producer;
	h->interval_ms = c->interval_ms > 0 ? c->interval_ms : MLSEC_SERVICE_HEALTH_INTERVAL_MS;
	h->ready = -1;
	mlsec_err e = MLSEC_OK;
	if (c->store)
		e = mlsec_store_clone(c->store, &h->store, err);
	if (e == MLSEC_OK && c->listen && *c->listen)
		e = mlsec_rpc_health_server_start(c->listen, c->srv, &h->listener, err);
	if (e == MLSEC_OK && (h->store || h->producer)) {
		health_check_once(h);
		if (pthread_create(&h->thread, NULL, health_main, h) != 0)
			e = mlsec_error_set(err, MLSEC_ERR_NOMEM, "cannot start the health thread");
		else
			h->started = 1;
	}
	if (e != MLSEC_OK) {
		mlsec_service_health_stop(h);
		return e;
	}
	*out = h;
	return MLSEC_OK;
}

int mlsec_service_health_port(const mlsec_service_health *h)
{
	return h && h->listener ? mlsec_rpc_server_port(h->listener) : 0;
}

void mlsec_service_health_stop(mlsec_service_health *h)
{
	if (!h)
		return;
	if (h->started) {
		pthread_mutex_lock(&h->lock);
		h->stop = 1;
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->thread, NULL);
	}
	if (h->listener)
		mlsec_rpc_server_stop(h->listener, 0);
	mlsec_rpc_server_free(h->listener);
	mlsec_store_free(h->store);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	mlsec_free(h->service);
	mlsec_free(h);
}
