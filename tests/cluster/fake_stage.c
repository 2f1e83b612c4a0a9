/*
 * fake_stage.c - a test-only stage service (mlsec-fake-tritond): the
 * generic service harness around a tiny engine with stage "triton", so the
 * cluster tests control timing and findings without depending on the real
 * Triton engine:
 *   a file containing "EVIL"        -> finding FAKE-EVIL (high)
 *   a file containing "NOTE"        -> finding FAKE-NOTE (low)
 *   a file containing "SLOW"        -> the analysis takes MLSEC_FAKE_SLOW_MS (default 3000)
 *   a file containing "FAIL"        -> the engine fails (stage ERROR)
 *   option "fake-severity": "<sev>"  -> finding FAKE-OPTION at that severity
 * Each analysis appends one line to $MLSEC_FAKE_LOG (if set) so tests can
 * count how many times a job was really analysed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/service.h"

static mlsec_err fake_analyze(const mlsec_engine_request *req, mlsec_report *rep, mlsec_error *err)
{
	for (size_t i = 0; i < req->npaths; i++) {
		char *buf = NULL;
		size_t len = 0;
		mlsec_err e = mlsec_file_read_all(req->paths[i], 1 << 20, &buf, &len, err);
		if (e != MLSEC_OK)
			return e;
		mlsec_artifact *a = mlsec_report_add_artifact(rep, req->paths[i], "triton-config");
		if (!a) {
			mlsec_free(buf);
			return MLSEC_ERR_NOMEM;
		}
		mlsec_artifact_hash_file(a, NULL);
		const char *log = getenv("MLSEC_FAKE_LOG");
		if (log && *log) {
			FILE *f = fopen(log, "a");
			if (f) {
				fprintf(f, "%d %s\n", (int)getpid(), req->paths[i]);
				fclose(f);
			}
		}
		if (strstr(buf, "SLOW")) {
			const char *ms = getenv("MLSEC_FAKE_SLOW_MS");
			long total = ms ? atol(ms) : 3000;
			for (long t = 0; t < total; t += 50) {
				if (req->cancel && *req->cancel) {
					mlsec_free(buf);
					return MLSEC_ERR_TIMEOUT;
				}
				usleep(50 * 1000);
			}
		}
		if (strstr(buf, "FAIL")) {
			mlsec_free(buf);
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "fake engine failure");
		}
		if (strstr(buf, "EVIL")) {
			mlsec_finding *f = mlsec_artifact_add_finding(
			        a, "FAKE-EVIL", MLSEC_SEV_HIGH, "Evil marker found", "marker %s",
			        "EVIL");
			if (f)
				mlsec_finding_set_evidence(f, "marker", "%s", "EVIL");
		}
		const char *fs = json_string_value(json_object_get(req->options, "fake-severity"));
		mlsec_severity sev;
		if (fs && mlsec_severity_parse(fs, &sev) == MLSEC_OK)
			mlsec_artifact_add_finding(a, "FAKE-OPTION", sev,
			                           "Option-requested finding", NULL);
		if (strstr(buf, "NOTE"))
			mlsec_artifact_add_finding(a, "FAKE-NOTE", MLSEC_SEV_LOW,
			                           "Note marker found", NULL);
		mlsec_free(buf);
	}
	return MLSEC_OK;
}

static const mlsec_engine fake_engine = {.stage = "triton",
                                         .rule_prefix = "FAKE",
                                         .summary = "test-only fake Triton stage",
                                         .analyze = fake_analyze};

int main(int argc, char **argv)
{
	return mlsec_service_main(argc, argv, &fake_engine);
}
