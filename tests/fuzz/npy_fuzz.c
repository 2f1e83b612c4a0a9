/*
 * npy_fuzz.c - libFuzzer harness for the NumPy .npy header parser (the
 * Python-dict-literal header of .npy files and of every .npz member).
 * A header that parses must describe an array whose data fits the claimed
 * shape without overflow, and whose fields are self-consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_npy_sniff(data, size);
	mlsec_npy_info info;
	mlsec_error err;
	if (mlsec_npy_parse(data, size, &info, &err) != MLSEC_OK)
		return 0;
	/* Invariants the loaders rely on. */
	if (info.ndim < 0 || info.ndim > MLSEC_TENSOR_MAX_DIMS)
		abort();
	if (memchr(info.descr, '\0', sizeof info.descr) == NULL)
		abort();
	uint64_t numel = 1;
	for (int i = 0; i < info.ndim; i++) {
		if (info.shape[i] < 0)
			abort();
		if (info.shape[i] && numel > UINT64_MAX / (uint64_t)info.shape[i])
			abort(); /* numel must not have wrapped */
		numel *= (uint64_t)info.shape[i];
	}
	if (numel != info.numel)
		abort();
	/* An object dtype (a pickle) must never pass as a plain array. */
	const char *dk = info.descr;
	if (*dk == '|' || *dk == '<' || *dk == '>' || *dk == '=')
		dk++;
	if (*dk == 'O' && !info.is_object)
		abort();
	if (info.data_offset < 10 || info.data_offset > (uint64_t)MLSEC_NPY_MAX_HEADER + 12)
		abort();
	return 0;
}
