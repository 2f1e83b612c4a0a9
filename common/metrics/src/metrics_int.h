/*
 * metrics_int.h - registry internals shared by registry.c, render.c and
 * service.c. Not installed, not part of the API.
 *
 * Locking: the registry mutex guards the family list; each family's mutex
 * guards its series. A thread holding a family mutex never takes the
 * registry mutex, so render (registry, then each family) cannot deadlock
 * with an update (one family).
 */
#ifndef MLSEC_METRICS_INT_H
#define MLSEC_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "mlsec/metrics.h"

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

typedef struct metric_series {
	char **values; /* one per label name, owned */
	double value;  /* counter / gauge */
	double sum;    /* histogram */
	unsigned long long count;
	unsigned long long *buckets; /* nbounds + 1 non-cumulative counts */
} metric_series;

struct mlsec_metric {
	struct mlsec_metric *next;
	metric_type type;
	char *name;
	char *help;
	char **labels;
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	pthread_mutex_t mu;
	metric_series **series;
	size_t nseries;
	size_t cap;
	mlsec_metrics *reg;
};

struct mlsec_metrics {
	pthread_mutex_t mu;
	mlsec_metric *head;
	mlsec_metric *tail;
	atomic_ulong dropped; /* updates refused by a limit */
};

/* The family called name, or NULL. Takes the registry mutex. */
mlsec_metric *mlsec_metrics_find_(mlsec_metrics *reg, const char *name);

/* Drops the series whose label number `label` equals value. */
void mlsec_metric_remove_where_(mlsec_metric *m, size_t label, const char *value);

#endif
