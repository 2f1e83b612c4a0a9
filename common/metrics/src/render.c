/*
 * render.c - the Prometheus text exposition format (version 0.0.4):
 *   # HELP name text      (help escapes \ and newline)
 *   # TYPE name counter|gauge|histogram
 *   name{label="value",...} 1
 * Histograms expand to name_bucket{...,le="b"} (cumulative), name_sum and
 * name_count. Label values escape \, " and newline.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"
#include "mlsec/alloc.h"

typedef struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t more)
{
	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = mlsec_realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Escapes \ and newline always, and " when quoted (label values). */
static void sb_escaped(sbuf *b, const char *s, int quoted)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_put(b, "\\\\", 2);
		else if (*s == '\n')
			sb_put(b, "\\n", 2);
		else if (quoted && *s == '"')
			sb_put(b, "\\\"", 2);
		else
			sb_put(b, s, 1);
	}
}

/*
 * Shortest decimal that reads back as the same double, laid out as Go's
 * strconv.FormatFloat(v, 'g', -1, 64) does (what Prometheus' own clients
 * print): plain digits unless the exponent is < -4 or >= 6 (Go's rule in
 * shortest mode), e.g. 10 -> "10", 1e6 -> "1e+06", 0.25 -> "0.25".
 */
static void fmt_double(char *out, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(out, size, "0");
		return;
	}
	int digits = 17;
	for (int p = 1; p <= 17; p++) {
		snprintf(out, size, "%.*e", p - 1, v);
		if (strtod(out, NULL) == v) {
			digits = p;
			break;
		}
	}
	snprintf(out, size, "%.*e", digits - 1, v);
	const char *e = strchr(out, 'e');
	int exp = e ? atoi(e + 1) : 0;
	if (exp < -4 || exp >= 6)
		return; /* keep the exponent form */
	int decimals = digits - 1 - exp;
	snprintf(out, size, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void sb_double(sbuf *b, double v)
{
	char num[40];
	fmt_double(num, sizeof(num), v);
	sb_str(b, num);
}

/* {l1="v1",l2="v2"[,le="x"]} or nothing when there are no labels. */
static void sb_labels(sbuf *b, const mlsec_metric *m, const metric_series *s, const char *le)
{
	if (m->nlabels == 0 && !le)
		return;
	sb_put(b, "{", 1);
	for (size_t k = 0; k < m->nlabels; k++) {
		if (k)
			sb_put(b, ",", 1);
		sb_str(b, m->labels[k]);
		sb_put(b, "=\"", 2);
		sb_escaped(b, s->values[k], 1);
		sb_put(b, "\"", 1);
	}
	if (le) {
		if (m->nlabels)
			sb_put(b, ",", 1);
		sb_str(b, "le=\"");
		sb_str(b, le);
		sb_put(b, "\"", 1);
	}
	sb_put(b, "}", 1);
}

static void render_family(sbuf *b, mlsec_metric *m)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	sb_str(b, "# HELP ");
	sb_str(b, m->name);
	sb_put(b, " ", 1);
	sb_escaped(b, m->help, 0);
	sb_str(b, "\n# TYPE ");
	sb_str(b, m->name);
	sb_put(b, " ", 1);
	sb_str(b, type_names[m->type]);
	sb_put(b, "\n", 1);

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nseries; i++) {
		const metric_series *s = m->series[i];
		if (m->type != METRIC_HISTOGRAM) {
			sb_str(b, m->name);
			sb_labels(b, m, s, NULL);
			sb_put(b, " ", 1);
			sb_double(b, s->value);
			sb_put(b, "\n", 1);
			continue;
		}
		unsigned long long cum = 0;
		for (size_t k = 0; k <= m->nbounds; k++) {
			char le[40];
			cum += s->buckets[k];
			if (k < m->nbounds)
				fmt_double(le, sizeof(le), m->bounds[k]);
			else
				snprintf(le, sizeof(le), "+Inf");
			sb_str(b, m->name);
			sb_str(b, "_bucket");
			sb_labels(b, m, s, le);
			snprintf(le, sizeof(le), " %llu\n", cum);
			sb_str(b, le);
		}
		sb_str(b, m->name);
		sb_str(b, "_sum");
		sb_labels(b, m, s, NULL);
		sb_put(b, " ", 1);
		sb_double(b, s->sum);
		sb_put(b, "\n", 1);
		sb_str(b, m->name);
		sb_str(b, "_count");
		sb_labels(b, m, s, NULL);
		char cnt[32];
		snprintf(cnt, sizeof(cnt), " %llu\n", s->count);
		sb_str(b, cnt);
	}
	pthread_mutex_unlock(&m->mu);
}

char *mlsec_metrics_render(mlsec_metrics *reg, size_t *len)
{
	sbuf b = {0};
	sb_reserve(&b, 4096);
	pthread_mutex_lock(&reg->mu);
	for (mlsec_metric *m = reg->head; m && !b.oom; m = m->next)
		render_family(&b, m);
	pthread_mutex_unlock(&reg->mu);

	/* Always last, so updates refused by a limit are visible somewhere. */
	char tail[256];
	snprintf(tail, sizeof(tail),
	         "# HELP mlsec_metrics_dropped_total Metric updates refused by a "
	         "cardinality or size limit.\n"
	         "# TYPE mlsec_metrics_dropped_total counter\n"
	         "mlsec_metrics_dropped_total %lu\n",
	         atomic_load(&reg->dropped));
	sb_str(&b, tail);
	if (b.oom) {
		mlsec_free(b.p);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}
