/*
 * mlsec-poisond - the poison stage service: a Submit whose artifact is a
 * gradient-log directory runs `monitor` through the shared service harness.
 * With --gradient-stream (MLSEC_POISON_GRADIENT_STREAM) it also consumes
 * the live mlsec.gradients stream in-process (the consumer of
 * mlsec-poison-streamd, same options), so one Deployment does both.
 */
#include "mlsec/poison.h"
#include "mlsec/service.h"

#ifdef MLSEC_HAVE_POISON_STREAM
#include "mlsec/poison_stream.h"

static const mlsec_config_option poisond_options[] = {
        {"gradient-stream", MLSEC_CONFIG_BOOL, "false", 0, 0, NULL, "MLSEC_POISON_GRADIENT_STREAM",
         0, "also consume the mlsec.gradients stream in this process (as mlsec-poison-streamd)"},
};

static mlsec_err add_options(mlsec_config *cfg, mlsec_error *err)
{
	mlsec_err rc = mlsec_config_add(cfg, poisond_options,
	                                sizeof poisond_options / sizeof poisond_options[0], err);
	return rc ? rc : mlsec_poison_stream_add_options(cfg, err);
}

static mlsec_err stream_worker(const mlsec_config *cfg, void *ctx, mlsec_error *err)
{
	(void)ctx;
	if (!mlsec_config_get_bool(cfg, "gradient-stream"))
		return MLSEC_OK;
	mlsec_poison_stream_conf c;
	mlsec_err rc = mlsec_poison_stream_conf_from_config(cfg, "mlsec-poisond", &c, err);
	return rc ? rc : mlsec_poison_stream_run(&c, NULL, err);
}

static const mlsec_service_hooks hooks = {
        .add_options = add_options,
        .worker = stream_worker,
        .name = "gradient stream",
};

int main(int argc, char **argv)
{
	return mlsec_service_main_ex(argc, argv, &mlsec_engine_poison, &hooks);
}
#else
int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_poison);
}
#endif
