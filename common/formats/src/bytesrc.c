/*
 * bytesrc.c - file/memory byte sources with windowed streaming.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mlsec/bytesrc.h"

void mlsec_src_init_fd(mlsec_src *s, int fd, uint64_t size)
{
	s->fd = fd;
	s->mem = NULL;
	s->size = size;
}

void mlsec_src_init_mem(mlsec_src *s, const uint8_t *buf, size_t len)
{
	s->fd = -1;
	s->mem = buf;
	s->size = len;
}

mlsec_err mlsec_src_read(const mlsec_src *s, uint64_t off, void *buf, size_t len, mlsec_error *err)
{
	if (off > s->size || len > s->size - off)
		return mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, 0, 0, (long long)off,
		                          "read of %zu bytes at %llu is past the end (%llu bytes)",
		                          len, (unsigned long long)off,
		                          (unsigned long long)s->size);
	if (s->mem) {
		memcpy(buf, s->mem + off, len);
		return MLSEC_OK;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(s->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mlsec_error_set(err, MLSEC_ERR_IO, "read failed at %llu: %s",
			                       (unsigned long long)(off + done),
			                       n < 0 ? strerror(errno) : "unexpected end of file");
		done += (size_t)n;
	}
	return MLSEC_OK;
}

mlsec_err mlsec_src_stream(const mlsec_src *s, uint64_t off, uint64_t len, mlsec_sink sink,
                           void *ctx, int *stopped, mlsec_error *err)
{
	if (stopped)
		*stopped = 0;
	if (off > s->size || len > s->size - off)
		return mlsec_error_set_at(err, MLSEC_ERR_PARSE, NULL, 0, 0, (long long)off,
		                          "range of %llu bytes at %llu is past the end",
		                          (unsigned long long)len, (unsigned long long)off);
	uint64_t pos = 0;
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		page = 4096;
	while (pos < len) {
		uint64_t n = len - pos;
		if (n > MLSEC_SRC_WINDOW)
			n = MLSEC_SRC_WINDOW;
		int r;
		if (s->mem) {
			r = sink(ctx, s->mem + off + pos, (size_t)n, pos);
		} else {
			uint64_t at = off + pos;
			uint64_t base = at - at % (uint64_t)page;
			size_t maplen = (size_t)(n + (at - base));
			void *m = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE | MAP_POPULATE, s->fd,
			               (off_t)base);
			if (m == MAP_FAILED)
				return mlsec_error_set(err, MLSEC_ERR_IO, "mmap failed: %s",
				                       strerror(errno));
			r = sink(ctx, (const uint8_t *)m + (at - base), (size_t)n, pos);
			munmap(m, maplen);
		}
		if (r) {
			if (stopped)
				*stopped = r;
			return MLSEC_OK;
		}
		pos += n;
	}
	return MLSEC_OK;
}
