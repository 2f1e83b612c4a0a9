/*
 * main.c - mlsec-poisond: the poison monitor as a stage service (a Submit
 * with a log-directory artifact runs `monitor`); the wiring is the shared
 * service harness.
 */
#include "mlsec/poison.h"
#include "mlsec/service.h"

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_poison);
}
