/*
 * rpc_util.c - status mapping, tokens, byte buffers and PEM files for
 * common/rpc.
 */
#include <ctype.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <openssl/crypto.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"
#include "rpc_internal.h"

grpc_status_code mlsec_rpc_status_from_err(mlsec_err e)
{
	switch (e) {
	case MLSEC_OK:
		return GRPC_STATUS_OK;
	case MLSEC_ERR_INVALID_ARG:
	case MLSEC_ERR_PARSE:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case MLSEC_ERR_NOT_FOUND:
		return GRPC_STATUS_NOT_FOUND;
	case MLSEC_ERR_LIMIT:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case MLSEC_ERR_UNSUPPORTED:
		return GRPC_STATUS_UNIMPLEMENTED;
	case MLSEC_ERR_PERMISSION:
		return GRPC_STATUS_PERMISSION_DENIED;
	case MLSEC_ERR_TIMEOUT:
		return GRPC_STATUS_DEADLINE_EXCEEDED;
	case MLSEC_ERR_UNAVAILABLE:
		return GRPC_STATUS_UNAVAILABLE;
	case MLSEC_ERR_AUTH:
		return GRPC_STATUS_UNAUTHENTICATED;
	case MLSEC_ERR_INTEGRITY:
		return GRPC_STATUS_FAILED_PRECONDITION;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}

mlsec_err mlsec_rpc_err_from_status(grpc_status_code s)
{
	switch (s) {
	case GRPC_STATUS_OK:
		return MLSEC_OK;
	case GRPC_STATUS_INVALID_ARGUMENT:
	case GRPC_STATUS_OUT_OF_RANGE:
		return MLSEC_ERR_INVALID_ARG;
	case GRPC_STATUS_NOT_FOUND:
		return MLSEC_ERR_NOT_FOUND;
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
		return MLSEC_ERR_LIMIT;
	case GRPC_STATUS_UNIMPLEMENTED:
		return MLSEC_ERR_UNSUPPORTED;
	case GRPC_STATUS_PERMISSION_DENIED:
		return MLSEC_ERR_PERMISSION;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return MLSEC_ERR_TIMEOUT;
	case GRPC_STATUS_UNAVAILABLE:
	case GRPC_STATUS_CANCELLED:
		return MLSEC_ERR_UNAVAILABLE;
	case GRPC_STATUS_UNAUTHENTICATED:
		return MLSEC_ERR_AUTH;
	case GRPC_STATUS_FAILED_PRECONDITION:
		return MLSEC_ERR_INTEGRITY;
	default:
		return MLSEC_ERR_INTERNAL;
	}
}

const char *mlsec_rpc_status_name(grpc_status_code s)
{
	static const char *const names[] = {"OK",
	                                    "CANCELLED",
	                                    "UNKNOWN",
	                                    "INVALID_ARGUMENT",
	                                    "DEADLINE_EXCEEDED",
	                                    "NOT_FOUND",
	                                    "ALREADY_EXISTS",
	                                    "PERMISSION_DENIED",
	                                    "RESOURCE_EXHAUSTED",
	                                    "FAILED_PRECONDITION",
	                                    "ABORTED",
	                                    "OUT_OF_RANGE",
	                                    "UNIMPLEMENTED",
	                                    "INTERNAL",
	                                    "UNAVAILABLE",
	                                    "DATA_LOSS",
	                                    "UNAUTHENTICATED"};
	if ((int)s >= 0 && (size_t)s < sizeof(names) / sizeof(names[0]))
		return names[s];
	return "UNKNOWN";
}

/* Both sides are hashed first so that the comparison takes the same time
 * whatever the lengths and contents (no early exit on the first byte). */
int mlsec_rpc_token_equal(const char *a, const char *b)
{
	unsigned char ha[32], hb[32];
	mlsec_sha256 *h1 = mlsec_sha256_new(), *h2 = mlsec_sha256_new();
	if (!h1 || !h2) {
		if (h1)
			mlsec_sha256_final(h1, ha, NULL);
		if (h2)
			mlsec_sha256_final(h2, hb, NULL);
		return 0;
	}
	mlsec_sha256_update(h1, a, strlen(a));
	mlsec_sha256_update(h2, b, strlen(b));
	mlsec_sha256_final(h1, ha, NULL);
	mlsec_sha256_final(h2, hb, NULL);
	return CRYPTO_memcmp(ha, hb, sizeof(ha)) == 0;
}

mlsec_err mlsec_rpc_token_read(const char *path, char **token, mlsec_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	*token = NULL;
	mlsec_err e = mlsec_file_read_all(path, MLSEC_RPC_MAX_TOKEN + 64, &buf, &len, err);
	if (e != MLSEC_OK)
		return e;
	size_t start = 0;
	while (start < len && isspace((unsigned char)buf[start]))
		start++;
	while (len > start && isspace((unsigned char)buf[len - 1]))
		len--;
	if (len == start || len - start > MLSEC_RPC_MAX_TOKEN) {
		mlsec_free(buf);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "%s: token must be 1..%d characters", path,
		                       MLSEC_RPC_MAX_TOKEN);
	}
	for (size_t i = start; i < len; i++) {
		if (!isgraph((unsigned char)buf[i])) {
			mlsec_free(buf);
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "%s: token has whitespace or control characters",
			                       path);
		}
	}
	*token = mlsec_strndup(buf + start, len - start);
	mlsec_free(buf);
	return *token ? MLSEC_OK : mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
}

grpc_byte_buffer *rpc_buffer_from(const uint8_t *data, size_t len)
{
	grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

mlsec_err rpc_buffer_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len)
{
	grpc_byte_buffer_reader rd;
	*out = NULL;
	*len = 0;
	if (!grpc_byte_buffer_reader_init(&rd, bb))
		return MLSEC_ERR_PARSE;
	grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	size_t n = GRPC_SLICE_LENGTH(all);
	uint8_t *p = mlsec_malloc(n ? n : 1);
	if (!p) {
		grpc_slice_unref(all);
		return MLSEC_ERR_NOMEM;
	}
	if (n)
		memcpy(p, GRPC_SLICE_START_PTR(all), n);
	grpc_slice_unref(all);
	*out = p;
	*len = n;
	return MLSEC_OK;
}

mlsec_err rpc_pem_load(const char *path, char **out, mlsec_error *err)
{
	size_t len;
	return mlsec_file_read_all(path, RPC_MAX_PEM, out, &len, err);
}

int rpc_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline, int *timed_out)
{
	grpc_event ev = grpc_completion_queue_pluck(cq, tag, deadline, NULL);
	if (timed_out)
		*timed_out = ev.type == GRPC_QUEUE_TIMEOUT;
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

gpr_timespec rpc_deadline_ms(int64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

void rpc_cq_destroy(grpc_completion_queue *cq)
{
	if (!cq)
		return;
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_pluck(
		        cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}
	grpc_completion_queue_destroy(cq);
}
