/*
 * metrics_demo.c - test helper for scrape_check.py: serves the standard
 * service registry on 127.0.0.1 (free port, printed as "port N"), then
 * applies commands read from stdin, one per line, answering "ok" or "err":
 *   job STAGE OUTCOME SECONDS
 *   findings STAGE SEVERITY COUNT
 *   grpc METHOD CODE
 *   quit
 * A series with a label value full of characters that need escaping is
 * registered at start, so the parser on the other side checks escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/metrics.h"
#include "mlsec/metrics_http.h"

#define LINE_MAX_LEN 512

int main(void)
{
	mlsec_metrics *reg = mlsec_metrics_new_service("mlsec-demod");
	mlsec_metrics_server *srv = NULL;
	mlsec_error err;
	if (!reg || mlsec_metrics_server_start(reg, "127.0.0.1:0", &srv, &err) != MLSEC_OK) {
		fprintf(stderr, "metrics_demo: %s\n", reg ? err.text : "out of memory");
		mlsec_metrics_free(reg);
		return 1;
	}
	mlsec_metrics_findings(reg, "we\"ird\\stage\nname", "low", 1);
	printf("port %u\n", mlsec_metrics_server_port(srv));
	fflush(stdout);

	char line[LINE_MAX_LEN];
	while (fgets(line, sizeof(line), stdin)) {
		char a[128], b[128], c[128];
		int n = sscanf(line, "%127s %127s %127s", a, b, c);
		mlsec_err rc = MLSEC_ERR_INVALID_ARG;
		if (n >= 1 && strcmp(a, "quit") == 0)
			break;
		if (n == 3 && strcmp(a, "grpc") == 0)
			rc = mlsec_metrics_grpc_request(reg, b, atoi(c));
		if (n >= 1 && (strcmp(a, "job") == 0 || strcmp(a, "findings") == 0)) {
			char d[128];
			if (sscanf(line, "%*s %127s %127s %127s", b, c, d) == 3)
				rc = strcmp(a, "job") == 0
				             ? mlsec_metrics_job_done(reg, b, c, strtod(d, NULL))
				             : mlsec_metrics_findings(reg, b, c,
				                                      strtoul(d, NULL, 10));
		}
		printf("%s\n", rc == MLSEC_OK ? "ok" : "err");
		fflush(stdout);
	}
	mlsec_metrics_server_stop(srv);
	mlsec_metrics_free(reg);
	return 0;
}
