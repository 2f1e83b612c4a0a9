/*
 * dsse.c - the DSSE pieces of the attestation: base64, the
 * pre-authentication encoding, and Ed25519 keys through OpenSSL 3 EVP.
 * Ed25519 is "pure" (no pre-hash): EVP_DigestSign with a NULL digest.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"

/* A key PEM larger than this is not a key. */
#define EXPORT_MAX_KEY_FILE 16384

struct export_key {
	EVP_PKEY *pkey;
	char id[MLSEC_SHA256_HEX_LEN];
};

char *export_b64_encode(const unsigned char *in, size_t n)
{
	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	size_t cap = 4 * ((n + 2) / 3) + 1;
	char *out = mlsec_malloc(cap);
	if (!out)
		return NULL;
	int w = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	out[w] = '\0';
	return out;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Hand-checked rather than EVP_DecodeBlock, which accepts whitespace and
 * does not report the padding it consumed. */
mlsec_err export_b64_decode(const char *in, unsigned char **out, size_t *n)
{
	size_t len = strlen(in);
	*out = NULL;
	*n = 0;
	if (len % 4)
		return MLSEC_ERR_PARSE;
	unsigned char *buf = mlsec_malloc(len / 4 * 3 + 1);
	if (!buf)
		return MLSEC_ERR_NOMEM;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after '=' */
				goto bad;
			v[k] = b64_val(c);
			if (v[k] < 0)
				goto bad;
		}
		unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
		                  ((unsigned long)v[2] << 6) | (unsigned long)v[3];
		buf[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			buf[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			buf[o++] = (unsigned char)w;
	}
	*out = buf;
	*n = o;
	return MLSEC_OK;
bad:
	mlsec_free(buf);
	return MLSEC_ERR_PARSE;
}

unsigned char *export_pae(const char *type, const unsigned char *body, size_t blen, size_t *out_len)
{
	size_t tlen = strlen(type);
	char head[96];
	/* "DSSEv1" SP len(type) SP type SP len(body) SP body */
	int h1 = snprintf(head, sizeof head, "DSSEv1 %zu ", tlen);
	char mid[48];
	int h2 = snprintf(mid, sizeof mid, " %zu ", blen);
	if (h1 < 0 || h2 < 0)
		return NULL;
	size_t total = (size_t)h1 + tlen + (size_t)h2 + blen;
	unsigned char *p = mlsec_malloc(total ? total : 1);
	if (!p)
		return NULL;
	size_t o = 0;
	memcpy(p + o, head, (size_t)h1);
	o += (size_t)h1;
	memcpy(p + o, type, tlen);
	o += tlen;
	memcpy(p + o, mid, (size_t)h2);
	o += (size_t)h2;
	if (blen)
		memcpy(p + o, body, blen);
	*out_len = total;
	return p;
}

static mlsec_err key_fill_id(export_key *k)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0)
		return MLSEC_ERR_INTERNAL;
	mlsec_sha256_buf(der, (size_t)n, k->id);
	OPENSSL_free(der);
	return MLSEC_OK;
}

mlsec_err export_key_load(const char *path, int want_private, export_key **out, mlsec_error *err)
{
	*out = NULL;
	char *pem = NULL;
	size_t len = 0;
	mlsec_err rc = mlsec_file_read_all(path, EXPORT_MAX_KEY_FILE, &pem, &len, err);
	if (rc != MLSEC_OK)
		return rc;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = NULL;
	if (bio) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		if (!pkey && !want_private) {
			(void)BIO_reset(bio);
			pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		}
		BIO_free(bio);
	}
	OPENSSL_cleanse(pem, len);
	mlsec_free(pem);
	if (!pkey)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: not a PEM %s key", path,
		                       want_private ? "private" : "public");
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: not an Ed25519 key", path);
	}
	export_key *k = mlsec_calloc(1, sizeof *k);
	if (!k) {
		EVP_PKEY_free(pkey);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	k->pkey = pkey;
	if (key_fill_id(k) != MLSEC_OK) {
		export_key_free(k);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: cannot encode key", path);
	}
	*out = k;
	return MLSEC_OK;
}

void export_key_free(export_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	mlsec_free(k);
}

const char *export_key_id(const export_key *k)
{
	return k->id;
}

mlsec_err export_key_sign(const export_key *k, const unsigned char *msg, size_t n,
                          unsigned char **sig, size_t *slen, mlsec_error *err)
{
	*sig = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = 0;
	unsigned char *buf = NULL;
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, &len, msg, n) != 1 || !(buf = mlsec_malloc(len)) ||
	    EVP_DigestSign(ctx, buf, &len, msg, n) != 1) {
		EVP_MD_CTX_free(ctx);
		mlsec_free(buf);
		return mlsec_error_set(err, MLSEC_ERR_INTERNAL, "Ed25519 signing failed");
	}
	EVP_MD_CTX_free(ctx);
	*sig = buf;
	*slen = len;
	return MLSEC_OK;
}

int export_key_verify(const export_key *k, const unsigned char *msg, size_t n,
                      const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	         EVP_DigestVerify(ctx, sig, slen, msg, n) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}
