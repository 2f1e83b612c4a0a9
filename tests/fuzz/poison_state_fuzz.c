/*
 * poison_state_fuzz.c - fuzzes the poison detector's state restore
 * (mlsec_poison_detector_from_json): the state comes back from Redis, so it
 * is validated as untrusted. A state that is accepted must be usable: the
 * detector is fed records, serialised again, and the result must restore.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/poison.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	if (!j)
		return 0;
	mlsec_poison_detector *d = mlsec_poison_detector_from_json(j, NULL, NULL, NULL);
	json_decref(j);
	if (!d)
		return 0;
	mlsec_poison_sim s;
	mlsec_poison_sim_init(&s);
	s.workers = 4;
	for (int64_t t = 0; t < 40; t++)
		for (unsigned r = 0; r < s.workers; r++) {
			mlsec_poison_record rec;
			mlsec_poison_sim_record(&s, r, t * 7 + 3, &rec);
			mlsec_poison_detector_feed(d, &rec, NULL);
		}
	json_t *out = mlsec_poison_detector_to_json(d);
	if (out) {
		mlsec_poison_detector *d2 = mlsec_poison_detector_from_json(out, NULL, NULL, NULL);
		if (!d2)
			abort(); /* our own output must always restore */
		mlsec_poison_detector_free(d2);
		json_decref(out);
	}
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_detector_free(d);
	return 0;
}
