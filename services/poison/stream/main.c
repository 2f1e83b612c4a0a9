/*
 * mlsec-poison-streamd - the poison monitor on the cluster's gradient
 * stream: consumes mlsec.gradients (key = run id), alerts on mlsec.alerts,
 * keeps per-run detector state in Redis (services/poison/stream).
 * (mlsec-poisond --gradient-stream runs the same consumer in-process.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/config.h"
#include "mlsec/log.h"
#include "mlsec/poison_stream.h"
#include "mlsec/shutdown.h"

int main(int argc, char **argv)
{
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_config *cfg =
	        mlsec_config_new("mlsec-poison-streamd",
	                         "CUSUM poison monitor on the mlsec.gradients stream", "[options]");
	mlsec_config_help help = MLSEC_CONFIG_HELP_NONE;
	if (!cfg || mlsec_poison_stream_add_options(cfg, &err) ||
	    mlsec_config_add_std(
	            cfg, MLSEC_CONFIG_STD_LOG | MLSEC_CONFIG_STD_KAFKA | MLSEC_CONFIG_STD_REDIS,
	            &err) ||
	    mlsec_config_parse(cfg, argc, argv, &help, &err)) {
		fprintf(stderr, "mlsec-poison-streamd: %s\n", cfg ? err.text : "out of memory");
		mlsec_config_free(cfg);
		return 1;
	}
	if (help != MLSEC_CONFIG_HELP_NONE) {
		if (help == MLSEC_CONFIG_HELP_TEXT)
			mlsec_config_print_help(cfg, stdout);
		else
			mlsec_config_print_markdown(cfg, stdout);
		mlsec_config_free(cfg);
		return 0;
	}
	int code = 1;
	mlsec_poison_stream_conf c;
	if (mlsec_poison_stream_conf_from_config(cfg, "mlsec-poison-streamd", &c, &err)) {
		fprintf(stderr, "mlsec-poison-streamd: %s\n", err.text);
		goto out;
	}
	if (mlsec_config_setup_log(cfg, &err) || mlsec_shutdown_install(&err)) {
		fprintf(stderr, "mlsec-poison-streamd: %s\n", err.text);
		goto out;
	}
	mlsec_config_log_effective(cfg);
	if (mlsec_poison_stream_run(&c, NULL, &err) == MLSEC_OK)
		code = 0;
	else
		MLSEC_LOGE("poison stream stopped: %s", err.text);
	mlsec_log_shutdown();
out:
	mlsec_config_free(cfg);
	return code;
}
