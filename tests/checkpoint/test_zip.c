/*
 * test_zip.c - the zip reader: CRC-32 equal to zlib's for every length and
 * alignment (the PCLMUL path included), problem flags on crafted archives,
 * CRC mismatch found while streaming, bounded member reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/zip.h"

static void test_crc_matches_zlib(void **s)
{
	(void)s;
	size_t n = 70000;
	uint8_t *b = malloc(n + 64);
	srand(5);
	for (size_t i = 0; i < n + 64; i++)
		b[i] = (uint8_t)rand();
	for (size_t len = 0; len < 600; len++)
		for (size_t off = 0; off < 17; off += 4)
			assert_int_equal(mlsec_crc32(0x1234u, b + off, len),
			                 (uint32_t)crc32(0x1234u, b + off, (uInt)len));
	/* the 512-bit path (from 1 KiB on AVX-512 CPUs): every residue of
	 * its 256-byte stride, with the 64- and 16-byte tails after it */
	for (size_t len = 1000; len < 1600; len++)
		assert_int_equal(mlsec_crc32(0x1234u, b + (len & 7), len),
		                 (uint32_t)crc32(0x1234u, b + (len & 7), (uInt)len));
	assert_int_equal(mlsec_crc32(0, b + 3, n), (uint32_t)crc32(0, b + 3, (uInt)n));
	/* chaining: two halves equal the whole */
	uint32_t c = mlsec_crc32(mlsec_crc32(0, b, 1000), b + 1000, n - 1000);
	assert_int_equal(c, (uint32_t)crc32(0, b, (uInt)n));
	free(b);
}

typedef struct opened {
	char *buf;
	size_t len;
	mlsec_src src;
	mlsec_zip *z;
} opened;

static void open_fixture(opened *o, const char *name)
{
	char p[1024];
	const char *src = getenv("MLSEC_SOURCE_DIR");
	snprintf(p, sizeof p, "%s/tests/data/checkpoint/%s", src ? src : ".", name);
	assert_int_equal(mlsec_file_read_all(p, 1 << 24, &o->buf, &o->len, NULL), MLSEC_OK);
	mlsec_src_init_mem(&o->src, (const uint8_t *)o->buf, o->len);
	assert_int_equal(mlsec_zip_open(&o->src, &o->z, NULL), MLSEC_OK);
}

static void close_fixture(opened *o)
{
	mlsec_zip_free(o->z);
	mlsec_free(o->buf);
}

static void test_problem_flags(void **s)
{
	(void)s;
	opened o;
	open_fixture(&o, "zip_traversal.pt");
	long t = mlsec_zip_find(o.z, "../../evil.txt"), a = mlsec_zip_find(o.z, "/etc/evil");
	assert_true(t >= 0 && a >= 0);
	assert_true(mlsec_zip_entry_at(o.z, (size_t)t)->problems & MLSEC_ZIP_P_TRAVERSAL);
	assert_true(mlsec_zip_entry_at(o.z, (size_t)a)->problems & MLSEC_ZIP_P_ABSOLUTE);
	assert_int_equal(mlsec_zip_entry_at(o.z, 0)->problems, 0);
	close_fixture(&o);
	open_fixture(&o, "zip_duplicate.pt");
	size_t dups = 0;
	for (size_t i = 0; i < mlsec_zip_count(o.z); i++)
		dups += !!(mlsec_zip_entry_at(o.z, i)->problems & MLSEC_ZIP_P_DUPLICATE);
	assert_int_equal(dups, 2);
	close_fixture(&o);
}

static void test_crc_while_streaming(void **s)
{
	(void)s;
	opened o;
	open_fixture(&o, "zip_bad_crc.pt");
	long i = mlsec_zip_find(o.z, "archive/data/1");
	assert_true(i >= 0);
	int crc = 5;
	assert_int_equal(mlsec_zip_member_stream(o.z, (size_t)i, NULL, NULL, &crc, NULL), MLSEC_OK);
	assert_int_equal(crc, 0);
	assert_true(mlsec_zip_entry_at(o.z, (size_t)i)->problems & MLSEC_ZIP_P_CRC);
	uint8_t *buf;
	size_t len;
	long p = mlsec_zip_find(o.z, "archive/data.pkl");
	assert_int_equal(mlsec_zip_member_read(o.z, (size_t)p, 16, &buf, &len, &crc, NULL),
	                 MLSEC_ERR_LIMIT);
	assert_int_equal(mlsec_zip_member_read(o.z, (size_t)p, 1 << 20, &buf, &len, &crc, NULL),
	                 MLSEC_OK);
	assert_int_equal(crc, 1);
	assert_int_equal(buf[0], 0x80);
	mlsec_free(buf);
	close_fixture(&o);
}

static void test_not_a_zip(void **s)
{
	(void)s;
	static const uint8_t junk[64] = "PK\5\6 this is not really a zip";
	mlsec_src src;
	mlsec_src_init_mem(&src, junk, sizeof junk);
	mlsec_zip *z = (mlsec_zip *)1;
	mlsec_error e;
	assert_int_not_equal(mlsec_zip_open(&src, &z, &e), MLSEC_OK);
	assert_null(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_crc_matches_zlib),
	        cmocka_unit_test(test_problem_flags),
	        cmocka_unit_test(test_crc_while_streaming),
	        cmocka_unit_test(test_not_a_zip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
