/*
 * sha256.c - SHA-256 via OpenSSL's SHA256_* functions, streaming for files.
 *
 * The low-level interface is deprecated in OpenSSL 3 but still the same
 * assembly (SHA-NI where the CPU has it). The EVP route costs a provider
 * load at start-up (~1.5 ms) and a context allocation, an algorithm
 * lookup and a provider dispatch per digest, which for many small
 * artifacts (750-byte Triton configs) cost more than the hashing itself.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "mlsec/alloc.h"
#include "mlsec/sha256.h"

struct mlsec_sha256 {
	SHA256_CTX ctx;
};

mlsec_sha256 *mlsec_sha256_new(void)
{
	mlsec_sha256 *h = mlsec_malloc(sizeof *h);
	if (!h)
		return NULL;
	if (SHA256_Init(&h->ctx) != 1) {
		mlsec_free(h);
		return NULL;
	}
	return h;
}

void mlsec_sha256_update(mlsec_sha256 *h, const void *data, size_t len)
{
	SHA256_Update(&h->ctx, data, len);
}

void mlsec_hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void mlsec_sha256_final(mlsec_sha256 *h, unsigned char out[32], char hex[MLSEC_SHA256_HEX_LEN])
{
	unsigned char md[32];
	SHA256_Final(md, &h->ctx);
	if (out)
		memcpy(out, md, 32);
	if (hex)
		mlsec_hex_encode(md, 32, hex);
	mlsec_free(h);
}

void mlsec_sha256_buf(const void *data, size_t len, char hex[MLSEC_SHA256_HEX_LEN])
{
	unsigned char out[32];
	SHA256_CTX ctx;
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, data, len);
	SHA256_Final(out, &ctx);
	mlsec_hex_encode(out, 32, hex);
}

mlsec_err mlsec_sha256_file(const char *path, char hex[MLSEC_SHA256_HEX_LEN], uint64_t *size,
                            mlsec_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mlsec_error_set(err, MLSEC_ERR_IO, "%s: not a regular file", path);
	}
	mlsec_sha256 *h = mlsec_sha256_new();
	static const size_t chunk = 1 << 20;
	unsigned char *buf = mlsec_malloc(chunk);
	if (!h || !buf) {
		close(fd);
		mlsec_free(buf);
		if (h)
			mlsec_sha256_final(h, NULL, NULL);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory hashing %s", path);
	}
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			mlsec_free(buf);
			mlsec_sha256_final(h, NULL, NULL);
			return mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		mlsec_sha256_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	close(fd);
	mlsec_free(buf);
	mlsec_sha256_final(h, NULL, hex);
	if (size)
		*size = total;
	return MLSEC_OK;
}

/* 1 for [0-9a-fA-F]. */
static const unsigned char hexdigit[256] = {
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
        ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
        ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
};

int mlsec_sha256_hex_valid(const char *s)
{
	if (!s)
		return 0;
	unsigned ok = 1;
	for (int i = 0; i < 64; i++) {
		ok &= hexdigit[(unsigned char)s[i]];
		if (!ok)
			return 0; /* also stops at the NUL of a short string */
	}
	return s[64] == '\0';
}
