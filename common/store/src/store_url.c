/*
 * store_url.c - parses redis://[user[:password]@]host[:port][/db] into its
 * parts (redis://user@host names an ACL user whose password comes from
 * elsewhere, e.g. MLSEC_REDIS_PASSWORD_FILE). Kept apart from the connection code so it can be
 * tested alone.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/alloc.h"

#define URL_MAX 2048

static int parse_uint(const char *s, size_t n, long max, long *out)
{
	if (n == 0 || n > 10)
		return 0;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return 0;
	*out = v;
	return 1;
}

/* Percent-decodes n bytes of s into a fresh string; NULL on a bad escape. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = mlsec_malloc(n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n) { /* '%' needs two hex digits */
				mlsec_free(out);
				return NULL;
			}
			char hex[3] = {s[i + 1], s[i + 2], 0};
			if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1])) {
				mlsec_free(out);
				return NULL;
			}
			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

void store_url_clear(store_url *u)
{
	mlsec_free(u->host);
	mlsec_free(u->user);
	if (u->password) {
		memset(u->password, 0, strlen(u->password));
		mlsec_free(u->password);
	}
	memset(u, 0, sizeof *u);
}

mlsec_err store_url_parse(const char *url, store_url *u, mlsec_error *err)
{
	memset(u, 0, sizeof *u);
	u->port = 6379;
	if (url && strncmp(url, "rediss://", 9) == 0)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "rediss:// (TLS) is not supported by this build's hiredis; "
		                       "use redis:// on a trusted network or a TLS tunnel");
	/* Never echo the URL: it may carry the password. */
	if (!url || strlen(url) > URL_MAX || strncmp(url, "redis://", 8) != 0)
		return mlsec_error_set(
		        err, MLSEC_ERR_INVALID_ARG,
		        "redis URL must look like redis://[[user][:password]@]host[:port][/db]");
	const char *p = url + 8;
	const char *end = p + strlen(p);
	const char *slash = strchr(p, '/');
	const char *auth_end = NULL;
	for (const char *q = p; q < (slash ? slash : end); q++)
		if (*q == '@')
			auth_end = q; /* the last '@' ends the credentials */
	if (auth_end) {
		const char *colon = memchr(p, ':', (size_t)(auth_end - p));
		const char *uend = colon ? colon : auth_end;
		/* redis://user@host: a user without a password (as in RFC 3986
		 * userinfo); the password may come from a file. */
		if (!colon && uend == p)
			goto bad;
		if (uend > p && !(u->user = pct_decode(p, (size_t)(uend - p))))
			goto bad;
		if (colon && !(u->password = pct_decode(colon + 1, (size_t)(auth_end - colon - 1))))
			goto bad;
		p = auth_end + 1;
	}
	const char *hend = slash ? slash : end;
	const char *host_start = p, *host_end;
	const char *port_start = NULL;
	if (*p == '[') { /* [::1]:6379 */
		const char *rb = memchr(p, ']', (size_t)(hend - p));
		if (!rb)
			goto bad;
		host_start = p + 1;
		host_end = rb;
		if (rb + 1 < hend) {
			if (rb[1] != ':')
				goto bad;
			port_start = rb + 2;
		}
	} else {
		const char *colon = memchr(p, ':', (size_t)(hend - p));
		host_end = colon ? colon : hend;
		if (colon)
			port_start = colon + 1;
	}
	if (host_end == host_start)
		goto bad;
	for (const char *q = host_start; q < host_end; q++)
		if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '-' || *q == ':' ||
		      *q == '_'))
			goto bad;
	if (!(u->host = mlsec_strndup(host_start, (size_t)(host_end - host_start))))
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (port_start) {
		long port;
		if (!parse_uint(port_start, (size_t)(hend - port_start), 65535, &port) || port == 0)
			goto bad;
		u->port = (int)port;
	}
	if (slash && slash + 1 < end) {
		long db;
		if (!parse_uint(slash + 1, (size_t)(end - slash - 1), 1000000, &db))
			goto bad;
		u->db = (int)db;
	}
	return MLSEC_OK;
bad:
	store_url_clear(u);
	return mlsec_error_set(
	        err, MLSEC_ERR_INVALID_ARG,
	        "malformed redis URL (expected redis://[[user][:password]@]host[:port][/db])");
}
