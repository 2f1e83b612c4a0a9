/*
 * monitor.c - runs the detector over a directory of worker_<rank>.jsonl
 * logs. All files are read at once, one line at a time, and merged by
 * step (a min-heap on the next step of each file), so the detector's
 * window - not the run length - bounds memory even for 100,000-step runs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/poison.h"

#define CANCEL_POLL 4096 /* records between checks of the cancel flag */

typedef struct reader {
	FILE *f;
	const char *path;
	long line;
	int eof;
	mlsec_poison_record rec;
	char buf[MLSEC_POISON_MAX_RECORD + 2];
} reader;

static int want_log(const char *name)
{
	size_t n = strlen(name);
	return n > 13 && !strncmp(name, "worker_", 7) && !strcmp(name + n - 6, ".jsonl");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the logs: DIR/worker_*.jsonl sorted, or the path itself if it is a
 * regular file. */
static mlsec_err list_logs(const char *path, mlsec_strlist *out, mlsec_error *err)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	if (S_ISREG(st.st_mode))
		return mlsec_strlist_push(out, path) ? mlsec_error_set(err, MLSEC_ERR_NOMEM, "oom")
		                                     : MLSEC_OK;
	if (!S_ISDIR(st.st_mode))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: not a directory", path);
	DIR *dir = opendir(path);
	if (!dir)
		return mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", path, strerror(errno));
	struct dirent *de;
	mlsec_err rc = MLSEC_OK;
	while ((de = readdir(dir))) {
		if (!want_log(de->d_name))
			continue;
		if (out->count >= MLSEC_POISON_MAX_FILES) {
			rc = mlsec_error_set(err, MLSEC_ERR_LIMIT, "%s: more than %d worker logs",
			                     path, MLSEC_POISON_MAX_FILES);
			break;
		}
		char *p = mlsec_sprintf("%s/%s", path, de->d_name);
		if (!p || mlsec_strlist_push(out, p)) {
			mlsec_free(p);
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			break;
		}
		mlsec_free(p);
	}
	closedir(dir);
	if (rc)
		return rc;
	if (!out->count)
		return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "no worker_*.jsonl logs in %s",
		                       path);
	qsort(out->items, out->count, sizeof *out->items, cmp_str);
	return MLSEC_OK;
}

static int blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
			return 0;
	return 1;
}

/* Reads the next record of rd; sets rd->eof at the end. */
static mlsec_err reader_next(reader *rd, mlsec_error *err)
{
	for (;;) {
		if (!fgets(rd->buf, sizeof rd->buf, rd->f)) {
			if (ferror(rd->f))
				return mlsec_error_set_at(err, MLSEC_ERR_IO, rd->path, rd->line + 1,
				                          0, -1, "read error");
			rd->eof = 1;
			return MLSEC_OK;
		}
		rd->line++;
		size_t n = strlen(rd->buf);
		if (n == sizeof rd->buf - 1 && rd->buf[n - 1] != '\n')
			return mlsec_error_set_at(err, MLSEC_ERR_PARSE, rd->path, rd->line, 0, -1,
			                          "line longer than %d bytes",
			                          MLSEC_POISON_MAX_RECORD);
		if (blank(rd->buf))
			continue;
		mlsec_error e;
		mlsec_error_clear(&e);
		if (mlsec_poison_record_parse(rd->buf, n, &rd->rec, &e)) {
			mlsec_error_set_at(err, MLSEC_ERR_PARSE, rd->path, rd->line, e.column, -1,
			                   "%s", e.text);
			return MLSEC_ERR_PARSE;
		}
		return MLSEC_OK;
	}
}

/* Min-heap of reader indexes by (step, index). */
static int heap_less(reader *rs, size_t a, size_t b)
{
	return rs[a].rec.step < rs[b].rec.step || (rs[a].rec.step == rs[b].rec.step && a < b);
}

static void heap_down(reader *rs, size_t *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && heap_less(rs, h[l], h[m]))
			m = l;
		if (r < n && heap_less(rs, h[r], h[m]))
			m = r;
		if (m == i)
			return;
		size_t t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/*
 * Logs the detector could not judge must not pass as a clean run: no
 * record at all, no step with the 3 workers a comparison needs, or no step
 * past the warm-up (which only learns the scale). Findings raised on the
 * way (missing or silent workers) stay in the caller's report.
 */
static mlsec_err check_coverage(mlsec_poison_detector *det, const mlsec_poison_config *c,
                                size_t npaths, mlsec_error *err)
{
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(det, &st);
	if (st.records == 0)
		return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND,
		                       "no gradient records in %zu log file(s): nothing to monitor",
		                       npaths);
	if (st.steps == 0)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "no step could be checked: a comparison needs at least 3 "
		                       "workers per step, these logs have %u worker(s) (%llu steps "
		                       "with fewer)",
		                       st.workers, (unsigned long long)st.steps_thin);
	if (st.steps <= c->warmup)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED,
		                       "no step could be checked: all %llu evaluated steps fall in "
		                       "the warm-up of %u steps that only learns the scale (lower "
		                       "--warmup for short runs)",
		                       (unsigned long long)st.steps, c->warmup);
	return MLSEC_OK;
}

mlsec_err mlsec_poison_monitor_files(const char *const *paths, size_t npaths,
                                     const mlsec_poison_config *cfg, mlsec_poison_event_fn on_event,
                                     void *ev_ctx, mlsec_poison_step_fn on_step, void *step_ctx,
                                     const volatile int *cancel, int32_t *rank_file,
                                     mlsec_poison_stats *stats, mlsec_error *err)
{
	reader *rs = NULL;
	size_t *heap = NULL, nr = 0;
	mlsec_poison_detector *det = NULL;
	mlsec_err rc = MLSEC_OK;
	if (npaths == 0 || npaths > MLSEC_POISON_MAX_FILES)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "between 1 and %d logs",
		                       MLSEC_POISON_MAX_FILES);
	if (rank_file)
		for (size_t r = 0; r <= MLSEC_POISON_MAX_RANK; r++)
			rank_file[r] = -1;
	mlsec_poison_config c = *cfg;
	if (!c.expected_workers)
		c.expected_workers = (unsigned)npaths;
	det = mlsec_poison_detector_new(&c, on_event, ev_ctx, err);
	if (!det) {
		rc = err ? err->code : MLSEC_ERR_NOMEM;
		goto out;
	}
	mlsec_poison_detector_set_step_fn(det, on_step, step_ctx);
	rs = mlsec_calloc(npaths, sizeof *rs);
	heap = mlsec_calloc(npaths, sizeof *heap);
	if (!rs || !heap) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (nr = 0; nr < npaths; nr++) {
		rs[nr].path = paths[nr];
		if (!(rs[nr].f = fopen(rs[nr].path, "r"))) {
			rc = mlsec_error_set_at(err, MLSEC_ERR_IO, rs[nr].path, 0, 0, -1, "%s",
			                        strerror(errno));
			goto out;
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < nr; i++) {
		if ((rc = reader_next(&rs[i], err)))
			goto out;
		if (!rs[i].eof)
			heap[n++] = i;
	}
	for (size_t i = n / 2; i-- > 0;)
		heap_down(rs, heap, n, i);
	uint64_t fed = 0;
	while (n) {
		reader *rd = &rs[heap[0]];
		/* before the feed: events about a rank can only follow its first record */
		if (rank_file && rank_file[rd->rec.rank] < 0)
			rank_file[rd->rec.rank] = (int32_t)heap[0];
		if ((rc = mlsec_poison_detector_feed(det, &rd->rec, err))) {
			if (err) {
				snprintf(err->file, sizeof err->file, "%s", rd->path);
				err->line = rd->line;
			}
			goto out;
		}
		if (++fed % CANCEL_POLL == 0 && cancel && *cancel) {
			rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled");
			goto out;
		}
		if ((rc = reader_next(rd, err)))
			goto out;
		if (rd->eof)
			heap[0] = heap[--n];
		heap_down(rs, heap, n, 0);
	}
	rc = mlsec_poison_detector_flush(det, err);
	if (rc == MLSEC_OK)
		rc = check_coverage(det, &c, npaths, err);
out:
	if (det && stats)
		mlsec_poison_detector_stats(det, stats);
	mlsec_poison_detector_free(det);
	for (size_t i = 0; i < nr; i++)
		if (rs[i].f)
			fclose(rs[i].f);
	mlsec_free(rs);
	mlsec_free(heap);
	return rc;
}

mlsec_err mlsec_poison_monitor_dir(const char *dir, const mlsec_poison_config *cfg,
                                   mlsec_poison_event_fn on_event, void *ev_ctx,
                                   mlsec_poison_step_fn on_step, void *step_ctx,
                                   const volatile int *cancel, mlsec_poison_stats *stats,
                                   mlsec_error *err)
{
	mlsec_strlist files = {0};
	mlsec_err rc = list_logs(dir, &files, err);
	if (!rc)
		rc = mlsec_poison_monitor_files((const char *const *)files.items, files.count, cfg,
		                                on_event, ev_ctx, on_step, step_ctx, cancel, NULL,
		                                stats, err);
	mlsec_strlist_free(&files);
	return rc;
}
