/*
 * main.c - mlsec-tritond: the Triton stage service (Kafka worker + gRPC
 * Analyze) around the mlsec_triton engine; all the wiring is the shared
 * service harness.
 */
#include "mlsec/service.h"
#include "mlsec/triton.h"

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_triton);
}
