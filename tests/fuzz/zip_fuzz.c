/*
 * zip_fuzz.c - libFuzzer harness for the zip reader: open from memory and
 * stream every member (CRC check, inflate bounds).
 */
#include <stdint.h>
#include <stddef.h>

#include "mlsec/alloc.h"
#include "mlsec/zip.h"

static int sink(void *ctx, const uint8_t *d, size_t n, uint64_t pos)
{
	(void)d;
	(void)pos;
	*(uint64_t *)ctx += n;
	return *(uint64_t *)ctx > (64u << 20);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_src src;
	mlsec_src_init_mem(&src, data, size);
	mlsec_zip *z;
	mlsec_error err;
	if (mlsec_zip_open(&src, &z, &err) != MLSEC_OK)
		return 0;
	for (size_t i = 0; i < mlsec_zip_count(z) && i < 64; i++) {
		uint64_t total = 0;
		int crc;
		mlsec_zip_member_stream(z, i, sink, &total, &crc, &err);
		uint8_t *buf;
		size_t len;
		if (mlsec_zip_member_read(z, i, 1 << 20, &buf, &len, &crc, &err) == MLSEC_OK)
			mlsec_free(buf);
	}
	mlsec_zip_free(z);
	return 0;
}
