/*
 * engine.c - mlsec_engine_poison (artifact = a log directory; runs the
 * monitor) and the event -> finding glue shared with the CLI and service.
 */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/poison.h"

static mlsec_severity event_severity(const mlsec_poison_event *ev)
{
	/* A worker that alone reports zero/invalid norms leaves every
	 * comparison on that metric: this event is all the gate will see. */
	if (ev->kind == MLSEC_POISON_EV_NONFINITE && ev->isolated)
		return MLSEC_SEV_HIGH;
	return mlsec_poison_event_is_alarm(ev->kind) ? MLSEC_SEV_HIGH : MLSEC_SEV_MEDIUM;
}

static const char *dir_word(int d)
{
	return d > 0 ? "upward" : "downward";
}

static json_t *details_array(mlsec_artifact *a, const char *key)
{
	json_t *det = mlsec_artifact_details(a);
	json_t *arr = json_object_get(det, key);
	if (!arr) {
		arr = json_array();
		if (!arr || json_object_set_new(det, key, arr))
			return NULL;
	}
	return arr;
}

static void count_dropped(mlsec_artifact *a)
{
	json_t *det = mlsec_artifact_details(a);
	json_t *v = json_object_get(det, "events_dropped");
	json_int_t n = v ? json_integer_value(v) : 0;
	json_object_set_new(det, "events_dropped", json_integer(n + 1));
}

mlsec_err mlsec_poison_report_event(mlsec_artifact *a, const mlsec_poison_event *ev)
{
	int alarm = mlsec_poison_event_is_alarm(ev->kind);
	json_t *arr = details_array(a, alarm ? "alarms" : "events");
	if (!arr)
		return MLSEC_ERR_NOMEM;
	if (json_array_size(arr) >= MLSEC_POISON_MAX_ALARMS) {
		count_dropped(a);
		return MLSEC_OK;
	}
	json_t *j = mlsec_poison_event_to_json(ev);
	if (!j || json_array_append_new(arr, j))
		return MLSEC_ERR_NOMEM;

	const char *metric = mlsec_poison_metric_name(ev->metric);
	const char *rule = mlsec_poison_event_rule(ev->kind);
	mlsec_severity sev = event_severity(ev);
	mlsec_finding *f = NULL;
	switch (ev->kind) {
	case MLSEC_POISON_EV_CUSUM:
		f = mlsec_artifact_add_finding(
		        a, rule, sev, "sustained gradient drift on one worker",
		        "rank %lld: %s drifts %s from its peers since about step %lld "
		        "(CUSUM %.2f above the threshold at step %lld)",
		        (long long)ev->rank, metric, dir_word(ev->direction),
		        (long long)ev->onset_step, ev->statistic, (long long)ev->alarm_step);
		break;
	case MLSEC_POISON_EV_SPIKE:
		f = mlsec_artifact_add_finding(a, rule, sev, "gradient spike on one worker",
		                               "rank %lld: %s is %.1f robust standard deviations "
		                               "from its peers at step %lld",
		                               (long long)ev->rank, metric, ev->statistic,
		                               (long long)ev->alarm_step);
		break;
	case MLSEC_POISON_EV_SILENT:
		f = mlsec_artifact_add_finding(a, rule, sev, "worker stopped reporting",
		                               "rank %lld: last record at step %lld, still silent "
		                               "at step %lld",
		                               (long long)ev->rank, (long long)ev->onset_step,
		                               (long long)ev->alarm_step);
		break;
	case MLSEC_POISON_EV_MISSING:
		f = mlsec_artifact_add_finding(a, rule, sev, "expected worker never reported",
		                               "rank %lld sent no record", (long long)ev->rank);
		break;
	case MLSEC_POISON_EV_NONFINITE:
		f = mlsec_artifact_add_finding(
		        a, rule, sev, "zero or non-finite gradient statistic",
		        "rank %lld: %s = %g at step %lld%s", (long long)ev->rank, metric,
		        ev->statistic, (long long)ev->alarm_step,
		        ev->isolated ? " while its peers report valid values" : "");
		break;
	default:
		return MLSEC_ERR_INTERNAL;
	}
	if (!f)
		return MLSEC_ERR_NOMEM;
	char field[64];
	if (ev->kind == MLSEC_POISON_EV_SILENT || ev->kind == MLSEC_POISON_EV_MISSING)
		snprintf(field, sizeof field, "rank=%lld", (long long)ev->rank);
	else
		snprintf(field, sizeof field, "rank=%lld/%s", (long long)ev->rank, metric);
	mlsec_err rc = mlsec_finding_set_location(f, NULL, 0, 0, field);
	if (!rc)
		rc = mlsec_finding_set_evidence_json(f, "event", json_deep_copy(j));
	if (!rc && alarm)
		rc = mlsec_finding_set_remediation(
		        f,
		        "Inspect this rank's data shard, host and code for tampering; "
		        "compare its checkpoint contribution with its peers; if confirmed, "
		        "exclude the worker and roll back to a checkpoint before the onset step.");
	return rc;
}

mlsec_err mlsec_poison_report_stats(mlsec_artifact *a, const mlsec_poison_config *cfg,
                                    const mlsec_poison_stats *st)
{
	json_t *det = mlsec_artifact_details(a);
	json_t *c = json_pack("{s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "threshold", cfg->spike_z,
	                      "cusum_threshold", cfg->cusum_h, "cusum_drift", cfg->cusum_k,
	                      "expected_workers", (json_int_t)cfg->expected_workers, "window",
	                      (json_int_t)cfg->window, "warmup", (json_int_t)cfg->warmup,
	                      "silent_steps", (json_int_t)cfg->silent_steps);
	json_t *s = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "records",
	                      (json_int_t)st->records, "steps", (json_int_t)st->steps, "steps_thin",
	                      (json_int_t)st->steps_thin, "duplicates", (json_int_t)st->duplicates,
	                      "late", (json_int_t)st->late, "out_of_order",
	                      (json_int_t)st->out_of_order, "rejected", (json_int_t)st->rejected,
	                      "alarms", (json_int_t)st->alarms, "first_step",
	                      (json_int_t)st->first_step, "last_step", (json_int_t)st->last_step,
	                      "workers", (json_int_t)st->workers);
	if (!c || !s || json_object_set_new(det, "config", c) ||
	    json_object_set_new(det, "stats", s)) {
		return MLSEC_ERR_NOMEM;
	}
	/* Make "alarms" present (possibly empty) so consumers need no special case. */
	return details_array(a, "alarms") ? MLSEC_OK : MLSEC_ERR_NOMEM;
}

typedef struct engine_ctx {
	mlsec_artifact **arts; /* one per file of the run (or the directory) */
	size_t narts;
	const int32_t *rank_file; /* NULL for a directory run */
	mlsec_err rc;
} engine_ctx;

/* Each event goes to the artifact (file) the rank's records came from. */
static void on_event(void *p, const mlsec_poison_event *ev)
{
	engine_ctx *c = p;
	size_t i = 0;
	if (c->rank_file && ev->rank >= 0 && ev->rank <= MLSEC_POISON_MAX_RANK &&
	    c->rank_file[ev->rank] >= 0 && (size_t)c->rank_file[ev->rank] < c->narts)
		i = (size_t)c->rank_file[ev->rank];
	mlsec_err rc = mlsec_poison_report_event(c->arts[i], ev);
	if (rc && !c->rc)
		c->rc = rc;
}

/* After a run: the fail-closed finding for a log that does not parse (on
 * the file's artifact when known), or the error, or the stats. */
static mlsec_err finish_run(engine_ctx *ctx, const char *const *paths, mlsec_err rc,
                            const mlsec_error *e, const mlsec_poison_config *cfg,
                            const mlsec_poison_stats *st, mlsec_error *err)
{
	if (rc == MLSEC_ERR_PARSE) {
		size_t i = 0;
		for (size_t k = 0; paths && k < ctx->narts; k++)
			if (!strcmp(paths[k], e->file))
				i = k;
		if (!mlsec_artifact_add_malformed(ctx->arts[i], "POISON", e))
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	} else if (rc) {
		if (err)
			*err = *e;
		return rc;
	}
	if (ctx->rc)
		return mlsec_error_set(err, ctx->rc, "could not record events");
	if ((rc = mlsec_poison_report_stats(ctx->arts[0], cfg, st)))
		return mlsec_error_set(err, rc, "out of memory");
	return MLSEC_OK;
}

/*
 * Artifacts: a directory is one run (its worker_*.jsonl merged); all the
 * regular files of a request together are one run too (the stage services
 * accept regular files only, so a Submit lists the worker logs), with each
 * finding on the file of the rank it accuses. A log that does not parse is
 * the fail-closed POISON-MALFORMED finding (the CLI instead exits 1 naming
 * file and line, as its users asked). No logs at all is an error.
 */
static mlsec_err analyze(const mlsec_engine_request *req, mlsec_report *rep, mlsec_error *err)
{
	mlsec_poison_config cfg;
	mlsec_poison_config_init(&cfg);
	mlsec_err rc = mlsec_poison_config_from_options(&cfg, req->options, err);
	if (rc)
		return rc;
	if (!req->npaths)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no log directory given");
	if (req->npaths > MLSEC_POISON_MAX_FILES)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "more than %d artifacts",
		                       MLSEC_POISON_MAX_FILES);
	char **real = mlsec_calloc(req->npaths, sizeof *real);
	mlsec_artifact **farts = mlsec_calloc(req->npaths, sizeof *farts);
	const char **fpaths = mlsec_calloc(req->npaths, sizeof *fpaths);
	int32_t *rank_file = mlsec_calloc(MLSEC_POISON_MAX_RANK + 1, sizeof *rank_file);
	size_t nfiles = 0;
	mlsec_error e;
	mlsec_poison_stats st;
	if (!real || !farts || !fpaths || !rank_file) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < req->npaths; i++) {
		const char *path = req->paths[i];
		if (req->artifact_root) {
			if ((rc = mlsec_path_confine(req->artifact_root, path, &real[i], err)))
				goto out;
			path = real[i];
		}
		struct stat sb;
		int is_file = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
		mlsec_artifact *a = mlsec_report_add_artifact(rep, req->paths[i], "gradient-logs");
		if (!a) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (is_file) {
			farts[nfiles] = a;
			fpaths[nfiles++] = path;
			continue;
		}
		engine_ctx ctx = {&a, 1, NULL, MLSEC_OK};
		memset(&st, 0, sizeof st);
		mlsec_error_clear(&e);
		rc = mlsec_poison_monitor_dir(path, &cfg, on_event, &ctx, NULL, NULL, req->cancel,
		                              &st, &e);
		if ((rc = finish_run(&ctx, NULL, rc, &e, &cfg, &st, err)))
			goto out;
	}
	if (nfiles) {
		engine_ctx ctx = {farts, nfiles, rank_file, MLSEC_OK};
		memset(&st, 0, sizeof st);
		mlsec_error_clear(&e);
		rc = mlsec_poison_monitor_files(fpaths, nfiles, &cfg, on_event, &ctx, NULL, NULL,
		                                req->cancel, rank_file, &st, &e);
		rc = finish_run(&ctx, fpaths, rc, &e, &cfg, &st, err);
	}
out:
	for (size_t i = 0; real && i < req->npaths; i++)
		mlsec_free(real[i]);
	mlsec_free(real);
	mlsec_free(farts);
	mlsec_free(fpaths);
	mlsec_free(rank_file);
	return rc;
}

const mlsec_engine mlsec_engine_poison = {
        .stage = "poison",
        .rule_prefix = "POISON",
        .summary = "CUSUM change-point detection of gradient poisoning in DDP logs",
        .analyze = analyze,
};
