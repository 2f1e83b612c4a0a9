/*
 * queue_int.h - internals shared by the producer and the worker.
 */
#ifndef MLSEC_QUEUE_INT_H
#define MLSEC_QUEUE_INT_H

#include <librdkafka/rdkafka.h>

#include "mlsec/queue.h"

/*
 * A librdkafka conf with our defaults, the broker list, client id and the
 * pass-through properties (applied last), logging routed to log.h.
 * `defaults` is a NULL-terminated key/value list applied before the
 * pass-through. On error returns NULL and fills err (never echoing the
 * value of a secret-looking property).
 */
rd_kafka_conf_t *queue_conf_new(const mlsec_queue_conf *qc, const char *const *defaults,
                                mlsec_error *err);

/* Nonzero for property names whose values must never be printed. */
int queue_prop_secret(const char *key);

#endif
