/*
 * rpc_internal.h - helpers shared by the server and client halves of
 * common/rpc: byte buffers, PEM loading, tags.
 */
#ifndef MLSEC_RPC_INTERNAL_H
#define MLSEC_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "mlsec/rpc.h"

/* Tags on a call's pluck queue: distinct non-NULL pointers. */
#define RPC_TAG_OP ((void *)1)
#define RPC_TAG_CLOSE ((void *)2)
#define RPC_TAG_STATUS ((void *)3)
#define RPC_TAG_NEW ((void *)4)
#define RPC_TAG_SHUTDOWN ((void *)5)

/* Largest PEM file we load. */
#define RPC_MAX_PEM (1024 * 1024)

/* A byte buffer holding a copy of data (caller destroys). */
grpc_byte_buffer *rpc_buffer_from(const uint8_t *data, size_t len);

/* Copies a byte buffer into a fresh mlsec_malloc'd array (a 1-byte buffer
 * for empty messages so that *out is never NULL on success). */
mlsec_err rpc_buffer_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len);

/* Loads a PEM file as a NUL-terminated string (mlsec_free). */
mlsec_err rpc_pem_load(const char *path, char **out, mlsec_error *err);

/* Waits for tag on a pluck queue; returns the event's success flag, or 0
 * when the queue timed out / shut down (*timed_out set if not NULL). */
int rpc_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline, int *timed_out);

gpr_timespec rpc_deadline_ms(int64_t ms);

/* Shuts a pluck queue down and destroys it (no operations may be pending). */
void rpc_cq_destroy(grpc_completion_queue *cq);

#endif
