/* test_util.h - fixture loading shared by the tensor-engine tests. */
#ifndef MLSEC_TEST_TENSOR_UTIL_H
#define MLSEC_TEST_TENSOR_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Directory of the committed fixtures (tests run from the source root). */
static inline const char *fixture_dir(void)
{
	const char *s = getenv("MLSEC_SOURCE_DIR");
	static char buf[1024];
	snprintf(buf, sizeof buf, "%s/tests/data/tensor", s ? s : ".");
	return buf;
}

/* Reads <dir>/<name><suffix> into a fresh buffer; *n gets the byte count. */
static inline void *fixture_read(const char *name, const char *suffix, size_t *n)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/%s%s", fixture_dir(), name, suffix);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*n = buf ? (size_t)len : 0;
	return buf;
}

static inline void fixture_path(char *out, size_t cap, const char *name, const char *suffix)
{
	snprintf(out, cap, "%s/%s%s", fixture_dir(), name, suffix);
}

#endif
