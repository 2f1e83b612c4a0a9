/*
 * pickle_fuzz.c - libFuzzer harness for the restricted pickle VM: run,
 * then walk the result for tensors and classify every global, as the
 * checkpoint engine does. Small limits keep each input fast.
 */
#include <stdint.h>
#include <stddef.h>

#include "mlsec/pickle.h"
#include "mlsec/torchfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* input_mapped stays 0: the input is heap memory */
	mlsec_pickle_limits lim = {100000, 10000, 1000, 10000, 16u << 20, 100000, size & 1, 0};
	mlsec_pickle *vm = mlsec_pickle_new(&lim);
	if (!vm)
		return 0;
	mlsec_error err;
	if (mlsec_pickle_run(vm, data, size, &err) == MLSEC_OK) {
		mlsec_tensor_list tl = {0};
		mlsec_torch_collect(vm, mlsec_pickle_root(vm), &tl, &err);
		for (size_t i = 0; i < tl.n; i++)
			mlsec_tensor_ref_check_bounds(&tl.t[i], &err);
		mlsec_tensor_list_free(&tl);
	}
	for (size_t i = 0; i < mlsec_pickle_global_count(vm); i++) {
		const mlsec_pickle_global *g = mlsec_pickle_global_at(vm, i);
		mlsec_pickle_classify(g->module, g->name, NULL);
	}
	mlsec_pickle_free(vm);
	return 0;
}
