/*
 * adv_baseline_fuzz.c - libFuzzer harness for the adversarial stage's
 * robustness baseline file ({model: {attack: {"epsilon=<eps>": acc}}}): the
 * loader, the numeric key lookup over every stored key, and an update +
 * save + reload round trip (a baseline we accepted must stay loadable
 * after we write to it).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baseline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[4096], path[4200], out[4200];

/* The scratch directory goes when the process ends (replays under ctest). */
static void cleanup(void)
{
	unlink(path);
	unlink(out);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/adv_baseline_fuzz.XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(dir))
			abort();
		snprintf(path, sizeof path, "%s/in.json", dir);
		snprintf(out, sizeof out, "%s/out.json", dir);
		atexit(cleanup);
	}
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	json_t *b = NULL;
	mlsec_error err;
	if (adv_baseline_load(path, &b, &err) != MLSEC_OK || !b)
		return 0;
	const char *model, *attack, *key;
	json_t *m, *a, *v;
	json_object_foreach(b, model, m)
	{
		json_object_foreach(m, attack, a)
		{
			json_object_foreach(a, key, v)
			{
				double eps = strtod(key + (strlen(key) > 8 ? 8 : 0), NULL);
				double acc = adv_baseline_lookup(b, model, attack, eps);
				if (acc > 1)
					abort();
			}
		}
	}
	/* Update the models/attacks the file names (and a fresh one), write,
	 * re-read: what we save must load and find what we set. */
	json_t *copy = json_deep_copy(b);
	adv_baseline_set(copy ? copy : b, "fuzz-model", "fgsm", 0.03, 0.5);
	const char *first = json_object_iter_key(json_object_iter(b));
	if (first)
		adv_baseline_set(copy ? copy : b, first, "pgd", 1.0 / 3, 0.25);
	if (copy && adv_baseline_save(copy, out, &err) == MLSEC_OK) {
		json_t *back = NULL;
		if (adv_baseline_load(out, &back, &err) != MLSEC_OK || !back)
			abort();
		if (adv_baseline_lookup(back, "fuzz-model", "fgsm", 0.03) != 0.5)
			abort();
		json_decref(back);
	}
	json_decref(copy);
	json_decref(b);
	return 0;
}
