/*
 * main.c - mlsec-exportd: the export guard as a stage service (Kafka worker
 * + gRPC Analyze + health), all of it in the shared service harness.
 */
#include "mlsec/export.h"
#include "mlsec/service.h"

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_export);
}
