/*
 * mlsec-poisond - the poison stage service: a Submit whose artifact is a
 * gradient-log directory runs `monitor` through the shared service harness.
 * (The live gradient stream is consumed by mlsec-poison-streamd.)
 */
#include "mlsec/poison.h"
#include "mlsec/service.h"

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_poison);
}
