/*
 * canon.c - small helpers the attestation writer and verifier must agree
 * on byte for byte: the canonical JSON digest of a stage record, the
 * timestamp format and the tool versions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/opensslv.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/sha256.h"

/* Canonical form: keys sorted, no whitespace, non-ASCII escaped. Records
 * hold only strings, integers, booleans, null, arrays and objects (never
 * reals), so the encoding has no float-printing ambiguity. */
mlsec_err export_json_digest(const json_t *j, char hex[65])
{
	char *s =
	        json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
	if (!s)
		return MLSEC_ERR_NOMEM;
	mlsec_sha256_buf(s, strlen(s), hex);
	free(s);
	return MLSEC_OK;
}

/* SOURCE_DATE_EPOCH (reproducible-builds convention) pins the clock. */
void export_timestamp(char buf[32])
{
	time_t t = time(NULL);
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	if (sde && *sde) {
		char *end = NULL;
		long long v = strtoll(sde, &end, 10);
		if (end && !*end && v >= 0)
			t = (time_t)v;
	}
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *export_tool_versions(void)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "mlsec", MLSEC_VERSION, "openssl",
	                 OpenSSL_version(OPENSSL_VERSION_STRING), "jansson", JANSSON_VERSION,
	                 "protobuf-c", protobuf_c_version());
}

const char *export_basename(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* TensorRT serialized engines start with a small header whose magic tag
 * "ftrt" sits at offset 0 or, in newer versions, after a 4..16-byte
 * preamble; we record whether it is present, not what it means. */
int export_plan_has_ftrt(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	unsigned char b[32];
	size_t n = fread(b, 1, sizeof b, f);
	fclose(f);
	for (size_t i = 0; i + 4 <= n && i <= 16; i++)
		if (!memcmp(b + i, "ftrt", 4))
			return 1;
	return 0;
}
