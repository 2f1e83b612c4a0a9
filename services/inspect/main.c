/* mlsec-inspectd - the inspect engine as a stage service. */
#include "mlsec/inspect.h"
#include "mlsec/service.h"

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &mlsec_engine_inspect);
}
