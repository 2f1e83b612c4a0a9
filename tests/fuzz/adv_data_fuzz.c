/*
 * adv_data_fuzz.c - libFuzzer harness for the adversarial stage's labelled
 * data loader: x/y from a NumPy .npz (zip + npy headers) or a safetensors
 * file. The loader reads from a path, so each input goes to a memfd. A
 * data set that loads must be self-consistent: n labels, n * sample_numel
 * finite floats, the per-sample shape multiplying out to sample_numel.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mlsec/adversarial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("adv_data_fuzz", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	mlsec_adv_data d;
	mlsec_error err;
	if (mlsec_adv_data_load(path, &d, &err) == MLSEC_OK) {
		uint64_t per = 1;
		for (size_t i = 0; i < d.ndim; i++) {
			if (d.shape[i] < 0)
				abort();
			per *= (uint64_t)d.shape[i];
		}
		if (d.n == 0 || !d.x || !d.y || per != d.sample_numel)
			abort();
		for (size_t i = 0; i < d.n * d.sample_numel; i++)
			if (!isfinite(d.x[i]))
				abort();
		for (size_t i = 0; i < d.n; i++)
			if (d.y[i] < 0)
				abort();
		mlsec_adv_data_free(&d);
	}
	return 0;
}
