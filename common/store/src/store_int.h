/*
 * store_int.h - internals of mlsec_store shared between its files.
 */
#ifndef MLSEC_STORE_INT_H
#define MLSEC_STORE_INT_H

#include "mlsec/err.h"

typedef struct store_url {
	char *host;
	int port;
	char *user;     /* NULL unless redis://user[:pass]@ */
	char *password; /* NULL when no credentials */
	int db;
} store_url;

/* Parses url into u (fresh strings; store_url_clear frees). Never echoes the URL. */
mlsec_err store_url_parse(const char *url, store_url *u, mlsec_error *err);
void store_url_clear(store_url *u);

#endif
