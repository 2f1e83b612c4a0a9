/*
 * gradlog_fuzz.c - fuzzes the gradient-log record parser and, through it,
 * the streaming detector: the input is split into lines, each line parsed
 * as a record and fed; the detector state is then serialised, restored and
 * flushed. Parsing must never crash, and a record that parses must be
 * re-parsed identically from its canonical formatting.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/poison.h"

#define FUZZ_MAX_LINES 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlsec_poison_config c;
	mlsec_poison_config_init(&c);
	c.window = 8;
	c.warmup = 2;
	mlsec_poison_detector *d = mlsec_poison_detector_new(&c, NULL, NULL, NULL);
	if (!d)
		return 0;
	const char *p = (const char *)data, *end = p + size;
	for (int n = 0; p < end && n < FUZZ_MAX_LINES; n++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		mlsec_poison_record r, r2;
		mlsec_error err;
		if (mlsec_poison_record_parse(p, len, &r, &err) == MLSEC_OK) {
			char buf[512];
			int k = mlsec_poison_record_format(&r, buf, sizeof buf);
			if (k <= 0 || (size_t)k >= sizeof buf ||
			    mlsec_poison_record_parse(buf, (size_t)k, &r2, NULL) != MLSEC_OK ||
			    memcmp(&r, &r2, sizeof r) != 0)
				abort();
			mlsec_poison_detector_feed(d, &r, NULL);
		}
		p += len + (nl ? 1 : 0);
	}
	json_t *j = mlsec_poison_detector_to_json(d);
	if (j) {
		mlsec_poison_detector *d2 = mlsec_poison_detector_from_json(j, NULL, NULL, NULL);
		if (d2) {
			mlsec_poison_detector_flush(d2, NULL);
			mlsec_poison_detector_free(d2);
		}
		json_decref(j);
	}
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_detector_free(d);
	return 0;
}
