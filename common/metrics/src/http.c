/*
 * http.c - the /metrics endpoint on libmicrohttpd. All HTTP parsing is
 * libmicrohttpd's; this file only maps a request to a rendered registry.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "mlsec/alloc.h"
#include "mlsec/metrics_http.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define MAX_LISTEN_LEN 128

struct mlsec_metrics_server {
	struct MHD_Daemon *daemon;
	mlsec_metrics *reg;
	unsigned short port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void free_body(void *p)
{
	mlsec_free(p);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	mlsec_metrics_server *srv = cls;
	(void)version;
	(void)upload_data;

	/* Answer as soon as the headers are in; a body is never wanted. */
	if (*upload_data_size != 0)
		return reply(conn, MHD_HTTP_CONTENT_TOO_LARGE, "no request body\n");
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, "not found; try /metrics\n");

	size_t len = 0;
	char *body = mlsec_metrics_render(srv->reg, &len);
	if (!body)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	struct MHD_Response *r =
	        MHD_create_response_from_buffer_with_free_callback(len, body, free_body);
	if (!r) {
		mlsec_free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* Parses listen into addr; returns the MHD address-family flag or -1. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr)
{
	char buf[MAX_LISTEN_LEN];
	if (!listen || strlen(listen) >= sizeof(buf))
		return -1;
	strcpy(buf, listen);
	char *colon = strrchr(buf, ':');
	if (!colon || colon[1] == '\0')
		return -1;
	*colon = '\0';
	char *end = NULL;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 0 || port > 65535)
		return -1;
	char *host = buf;

	memset(addr, 0, sizeof(*addr));
	size_t hlen = strlen(host);
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((unsigned short)port);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return -1;
		return MHD_USE_IPv6;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((unsigned short)port);
	if (hlen == 0)
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return -1;
	return 0;
}

mlsec_err mlsec_metrics_server_start(mlsec_metrics *reg, const char *listen,
                                     mlsec_metrics_server **out, mlsec_error *err)
{
	if (!reg || !out)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no registry");
	*out = NULL;
	struct sockaddr_storage addr;
	int family_flag = parse_listen(listen, &addr);
	if (family_flag < 0)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "metrics listen address '%s': want HOST:PORT, "
		                       "[IPV6]:PORT or :PORT",
		                       listen ? listen : "(null)");
	mlsec_metrics_server *srv = mlsec_calloc(1, sizeof(*srv));
	if (!srv)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	srv->reg = reg;
	srv->daemon = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | (unsigned)family_flag, 0, NULL,
	        NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MLSEC_METRICS_HTTP_MAX_CONN,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MLSEC_METRICS_HTTP_TIMEOUT_S,
	        MHD_OPTION_END);
	if (!srv->daemon) {
		mlsec_free(srv);
		return mlsec_error_set(err, MLSEC_ERR_UNAVAILABLE, "metrics: cannot listen on %s",
		                       listen);
	}
	const union MHD_DaemonInfo *info =
	        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : 0;
	*out = srv;
	return MLSEC_OK;
}

unsigned short mlsec_metrics_server_port(const mlsec_metrics_server *srv)
{
	return srv ? srv->port : 0;
}

void mlsec_metrics_server_stop(mlsec_metrics_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->daemon);
	mlsec_free(srv);
}
