/*
 * main.c - mlsec-checkpointd: the checkpoint engine as a stage service
 * (Kafka worker + gRPC Analyze + health), via the shared harness.
 */
#include "mlsec/checkpoint.h"
#include "mlsec/service.h"

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_checkpoint);
}
