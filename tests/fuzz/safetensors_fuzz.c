/*
 * safetensors_fuzz.c - libFuzzer harness for safetensors header validation.
 */
#include <stdint.h>
#include <stddef.h>

#include "mlsec/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_src src;
	mlsec_src_init_mem(&src, data, size);
	mlsec_tensor_list tl = {0};
	json_t *meta = NULL;
	mlsec_error err;
	if (mlsec_safetensors_read(&src, &tl, &meta, &err) == MLSEC_OK) {
		for (size_t i = 0; i < tl.n; i++)
			mlsec_tensor_ref_check_bounds(&tl.t[i], &err);
	}
	json_decref(meta);
	mlsec_tensor_list_free(&tl);
	return 0;
}
