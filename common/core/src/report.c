/* report.c - the findings model: building a report in memory. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mlsec/alloc.h"
#include "report_impl.h"

static const char *const severity_names[MLSEC_SEV__COUNT] = {"info", "low", "medium", "high",
                                                             "critical"};

const char *mlsec_severity_name(mlsec_severity s)
{
	return (unsigned)s < MLSEC_SEV__COUNT ? severity_names[s] : "unknown";
}

mlsec_err mlsec_severity_parse(const char *name, mlsec_severity *out)
{
	for (int i = 0; name && i < MLSEC_SEV__COUNT; i++) {
		if (strcasecmp(name, severity_names[i]) == 0) {
			*out = (mlsec_severity)i;
			return MLSEC_OK;
		}
	}
	return MLSEC_ERR_INVALID_ARG;
}

/* Grows *arr (of element size sz) so that one more element fits. */
static int grow(void *arr, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 1;
	size_t ncap = *cap ? *cap * 2 : 4;
	void *na = mlsec_reallocarray(*(void **)arr, ncap, sz);
	if (!na)
		return 0;
	*(void **)arr = na;
	*cap = ncap;
	return 1;
}

#define ARENA_CHUNK (16u << 10)

/* Allocates n bytes (max_align_t aligned) that live until the report is freed. */
static void *arena_alloc(report_arena *ar, size_t n)
{
	n = (n + _Alignof(max_align_t) - 1) & ~(size_t)(_Alignof(max_align_t) - 1);
	if (n > ar->left) {
		/* Big requests get a chunk of their own behind the current one, so
		 * the space left in the current chunk is not wasted. */
		size_t size = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
		if (size > SIZE_MAX - sizeof(report_chunk))
			return NULL;
		report_chunk *c = mlsec_malloc(sizeof *c + size);
		if (!c)
			return NULL;
		c->size = size;
		if (size != ARENA_CHUNK && ar->head) {
			c->next = ar->head->next;
			ar->head->next = c;
			return c->data;
		}
		c->next = ar->head;
		ar->head = c;
		ar->cur = (char *)c->data;
		ar->left = size;
	}
	void *p = ar->cur;
	ar->cur += n;
	ar->left -= n;
	return p;
}

static char *arena_strdup(report_arena *ar, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = arena_alloc(ar, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static void arena_free(report_arena *ar)
{
	for (report_chunk *c = ar->head, *next; c; c = next) {
		next = c->next;
		mlsec_free(c);
	}
	ar->head = NULL;
	ar->cur = NULL;
	ar->left = 0;
}

/* Replaces *dst with an arena copy of src (NULL clears). */
static mlsec_err set_str(report_arena *ar, char **dst, const char *src)
{
	char *c = NULL;
	if (src && !(c = arena_strdup(ar, src)))
		return MLSEC_ERR_NOMEM;
	*dst = c;
	return MLSEC_OK;
}

static json_t *empty_evidence;
static pthread_once_t empty_evidence_once = PTHREAD_ONCE_INIT;

static void make_empty_evidence(void)
{
	empty_evidence = json_object();
}

json_t *report_empty_evidence(void)
{
	pthread_once(&empty_evidence_once, make_empty_evidence);
	return empty_evidence;
}

int report_evidence_own(mlsec_finding *f)
{
	if (f->evidence != empty_evidence)
		return 1;
	json_t *o = json_object();
	if (!o)
		return 0;
	f->evidence = o;
	return 1;
}

static report_arena *finding_arena(mlsec_finding *f)
{
	return &((report_finding *)f)->report->arena;
}

mlsec_report *mlsec_report_new(const char *stage)
{
	mlsec_report *r = mlsec_calloc(1, sizeof *r);
	if (!r)
		return NULL;
	if (!(r->stage = mlsec_strdup(stage ? stage : "unknown"))) {
		mlsec_free(r);
		return NULL;
	}
	return r;
}

/* Strings and the finding itself are in the arena: only evidence is ours. */
static void finding_free(mlsec_finding *f)
{
	if (f && f->evidence != empty_evidence)
		json_decref(f->evidence);
}

static void artifact_free(mlsec_artifact *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nfindings; i++)
		finding_free(a->findings[i]);
	json_decref(a->details); /* the findings array is in the arena */
}

void mlsec_report_free(mlsec_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nartifacts; i++)
		artifact_free(r->artifacts[i]);
	for (size_t i = 0; i < r->nerrors; i++)
		mlsec_free(r->errors[i]);
	mlsec_free(r->artifacts);
	mlsec_free(r->errors);
	mlsec_free(r->stage);
	arena_free(&r->arena);
	mlsec_free(r);
}

const char *mlsec_report_stage(const mlsec_report *r)
{
	return r->stage;
}

mlsec_artifact *mlsec_report_add_artifact(mlsec_report *r, const char *path, const char *format)
{
	if (!grow(&r->artifacts, &r->capartifacts, r->nartifacts, sizeof *r->artifacts))
		return NULL;
	mlsec_artifact *a = arena_alloc(&r->arena, sizeof *a);
	if (!a)
		return NULL;
	memset(a, 0, sizeof *a);
	a->report = r;
	a->path = arena_strdup(&r->arena, path ? path : "");
	a->format = arena_strdup(&r->arena, format ? format : "unknown");
	a->stage = r->stage; /* never freed before the report; set_stage copies */
	/* details: made on first use (most artifacts of a table run never
	 * need the JSON object). */
	if (!a->path || !a->format) {
		artifact_free(a);
		return NULL;
	}
	r->artifacts[r->nartifacts++] = a;
	return a;
}

size_t mlsec_report_artifact_count(const mlsec_report *r)
{
	return r->nartifacts;
}

mlsec_artifact *mlsec_report_artifact(const mlsec_report *r, size_t i)
{
	return i < r->nartifacts ? r->artifacts[i] : NULL;
}

const char *mlsec_artifact_path(const mlsec_artifact *a)
{
	return a->path;
}
const char *mlsec_artifact_format(const mlsec_artifact *a)
{
	return a->format;
}
const char *mlsec_artifact_stage(const mlsec_artifact *a)
{
	return a->stage;
}
const char *mlsec_artifact_sha256(const mlsec_artifact *a)
{
	return a->sha256;
}
uint64_t mlsec_artifact_size(const mlsec_artifact *a)
{
	return a->size;
}

mlsec_err mlsec_artifact_set_format(mlsec_artifact *a, const char *format)
{
	return set_str(&a->report->arena, &a->format, format ? format : "unknown");
}

mlsec_err mlsec_artifact_set_stage(mlsec_artifact *a, const char *stage)
{
	return set_str(&a->report->arena, &a->stage, stage ? stage : "unknown");
}

mlsec_err mlsec_artifact_set_digest(mlsec_artifact *a, const char *hex, uint64_t size)
{
	if (hex && !mlsec_sha256_hex_valid(hex))
		return MLSEC_ERR_INVALID_ARG;
	if (hex)
		for (int i = 0; i < 65; i++)
			a->sha256[i] = (char)(hex[i] | (hex[i] >= 'A' ? 0x20 : 0)); /* A-F -> a-f */
	else
		a->sha256[0] = '\0';
	a->size = size;
	return MLSEC_OK;
}

mlsec_err mlsec_artifact_hash_file(mlsec_artifact *a, mlsec_error *err)
{
	return mlsec_sha256_file(a->path, a->sha256, &a->size, err);
}

void report_details_ready(const mlsec_artifact *ca)
{
	mlsec_artifact *a = (mlsec_artifact *)ca; /* a cache fill, not a visible change */
	mlsec_details_fill_fn fn = a->fill;
	if (!fn)
		return;
	if (!a->details && !(a->details = json_object()))
		return; /* out of memory: fill later */
	a->fill = NULL;
	(void)fn(a->details, a->fill_data);
}

json_t *mlsec_artifact_details(mlsec_artifact *a)
{
	if (!a->details)
		a->details = json_object();
	report_details_ready(a);
	return a->details;
}

mlsec_err mlsec_artifact_set_details_fill(mlsec_artifact *a, mlsec_details_fill_fn fn,
                                          const void *data, size_t size)
{
	void *copy = NULL;
	if (size) {
		if (!(copy = arena_alloc(&a->report->arena, size)))
			return MLSEC_ERR_NOMEM;
		memcpy(copy, data, size);
	}
	a->fill = fn;
	a->fill_data = copy;
	return MLSEC_OK;
}

/* A zeroed finding of a (room made in its array, not yet counted), or NULL. */
static mlsec_finding *finding_new(mlsec_artifact *a, mlsec_severity sev)
{
	report_arena *ar = &a->report->arena;
	if (a->nfindings == a->capfindings) {
		/* In the arena: grown by copying, freed with the report. */
		size_t ncap = a->capfindings ? a->capfindings * 2 : 4;
		mlsec_finding **v =
		        ncap <= SIZE_MAX / sizeof *v ? arena_alloc(ar, ncap * sizeof *v) : NULL;
		if (!v)
			return NULL;
		if (a->nfindings)
			memcpy(v, a->findings, a->nfindings * sizeof *v);
		a->findings = v;
		a->capfindings = ncap;
	}
	report_finding *rf = arena_alloc(ar, sizeof *rf);
	if (!rf || !report_empty_evidence())
		return NULL;
	memset(rf, 0, sizeof *rf);
	rf->report = a->report;
	mlsec_finding *f = &rf->pub;
	f->severity = (unsigned)sev < MLSEC_SEV__COUNT ? sev : MLSEC_SEV_CRITICAL;
	f->offset = -1;
	f->evidence = report_empty_evidence();
	return f;
}

__attribute__((format(printf, 5, 0))) static mlsec_finding *
vadd(mlsec_artifact *a, const char *rule_id, mlsec_severity sev, const char *title, const char *fmt,
     va_list ap)
{
	report_arena *ar = &a->report->arena;
	mlsec_finding *f = finding_new(a, sev);
	if (!f)
		return NULL;
	f->rule_id = arena_strdup(ar, rule_id ? rule_id : "UNKNOWN");
	f->title = arena_strdup(ar, title ? title : "");
	int ok = f->rule_id && f->title;
	if (ok && fmt) {
		if (fmt[0] == '%' && fmt[1] == 's' && fmt[2] == '\0') {
			/* The common "%s" detail: copy it, no formatting pass. Cut
			 * at the same length the formatted path would. */
			const char *src = va_arg(ap, const char *);
			size_t n = src ? strnlen(src, 4095) : 6;
			char *d = arena_alloc(ar, n + 1);
			if ((ok = d != NULL)) {
				memcpy(d, src ? src : "(null)", n);
				d[n] = '\0';
				f->detail = d;
			}
		} else {
			char buf[4096];
			vsnprintf(buf, sizeof buf, fmt, ap);
			ok = (f->detail = arena_strdup(ar, buf)) != NULL;
		}
	}
	if (!ok)
		return NULL; /* the arena keeps the partial finding until report_free */
	a->findings[a->nfindings++] = f;
	return f;
}

mlsec_finding *mlsec_artifact_add_finding_static(mlsec_artifact *a, const char *rule_id,
                                                 mlsec_severity sev, const char *title,
                                                 const char *detail)
{
	mlsec_finding *f = finding_new(a, sev);
	if (!f)
		return NULL;
	f->rule_id = rule_id ? rule_id : "UNKNOWN";
	f->title = title ? title : "";
	if (detail && !(f->detail = arena_strdup(&a->report->arena, detail)))
		return NULL;
	a->findings[a->nfindings++] = f;
	return f;
}

mlsec_finding *mlsec_artifact_add_finding(mlsec_artifact *a, const char *rule_id,
                                          mlsec_severity sev, const char *title,
                                          const char *detail_fmt, ...)
{
	va_list ap;
	va_start(ap, detail_fmt);
	mlsec_finding *f = vadd(a, rule_id, sev, title, detail_fmt, ap);
	va_end(ap);
	return f;
}

size_t mlsec_artifact_finding_count(const mlsec_artifact *a)
{
	return a->nfindings;
}

const mlsec_finding *mlsec_artifact_finding(const mlsec_artifact *a, size_t i)
{
	return i < a->nfindings ? a->findings[i] : NULL;
}

mlsec_finding *mlsec_artifact_add_malformed(mlsec_artifact *a, const char *rule_prefix,
                                            const mlsec_error *err)
{
	char rule[64];
	snprintf(rule, sizeof rule, "%s-MALFORMED", rule_prefix ? rule_prefix : "MLSEC");
	const char *text = err && err->text[0] ? err->text : "the artifact could not be parsed";
	mlsec_finding *f = mlsec_artifact_add_finding(
	        a, rule, MLSEC_SEV_HIGH, "Artifact could not be parsed (failing closed)", "%s",
	        text);
	if (!f || !err)
		return f;
	if (mlsec_finding_set_location(f, err->file[0] ? err->file : NULL, err->line, err->column,
	                               NULL) != MLSEC_OK)
		return f;
	f->offset = err->offset;
	mlsec_finding_set_remediation(f, "Do not deploy an artifact that mlsec cannot parse: "
	                                 "regenerate it from a trusted source, or report a parser "
	                                 "bug if the file is known good.");
	return f;
}

mlsec_err mlsec_finding_set_location(mlsec_finding *f, const char *file, long line, long column,
                                     const char *field)
{
	report_arena *ar = finding_arena(f);
	if (set_str(ar, &f->file, file) != MLSEC_OK || set_str(ar, &f->field, field) != MLSEC_OK)
		return MLSEC_ERR_NOMEM;
	f->line = line;
	f->column = column;
	return MLSEC_OK;
}

mlsec_err mlsec_finding_set_offset(mlsec_finding *f, long long offset)
{
	f->offset = offset;
	return MLSEC_OK;
}

mlsec_err mlsec_finding_set_remediation(mlsec_finding *f, const char *text)
{
	char *c = NULL;
	if (text && !(c = arena_strdup(finding_arena(f), text)))
		return MLSEC_ERR_NOMEM;
	f->remediation = c;
	return MLSEC_OK;
}

void mlsec_finding_set_remediation_static(mlsec_finding *f, const char *text)
{
	f->remediation = text;
}

mlsec_err mlsec_finding_set_evidence(mlsec_finding *f, const char *key, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	if (fmt[0] == '%' && fmt[1] == 's' && fmt[2] == '\0') {
		/* No formatting pass for "%s"; the same 2047-byte cut. */
		const char *v = va_arg(ap, const char *);
		va_end(ap);
		if (!v)
			v = "(null)";
		return mlsec_finding_set_evidence_json(f, key,
		                                       json_stringn(v, strnlen(v, sizeof buf - 1)));
	}
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return mlsec_finding_set_evidence_json(f, key, json_string(buf));
}

mlsec_err mlsec_finding_set_evidence_json(mlsec_finding *f, const char *key, json_t *value)
{
	if (!value)
		return MLSEC_ERR_NOMEM;
	if (!report_evidence_own(f)) {
		json_decref(value);
		return MLSEC_ERR_NOMEM;
	}
	return json_object_set_new(f->evidence, key, value) == 0 ? MLSEC_OK : MLSEC_ERR_NOMEM;
}

mlsec_err mlsec_report_add_error(mlsec_report *r, const char *fmt, ...)
{
	if (!grow(&r->errors, &r->caperrors, r->nerrors, sizeof *r->errors))
		return MLSEC_ERR_NOMEM;
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	char *s = mlsec_strdup(buf);
	if (!s)
		return MLSEC_ERR_NOMEM;
	r->errors[r->nerrors++] = s;
	return MLSEC_OK;
}

typedef struct sort_item {
	const char *key;
	void *item;
	size_t index; /* ties keep their order */
} sort_item;

static int cmp_sort_item(const void *a, const void *b)
{
	const sort_item *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->index > y->index) - (x->index < y->index);
}

static const char *sort_key(void *item, int errors)
{
	return errors ? (const char *)item : ((mlsec_artifact *)item)->path;
}

/*
 * Sorts v[0..n) of artifacts (errors = 0) or error strings, t (2n items)
 * as scratch. A natural merge sort: the reports of k worker threads, each
 * in order, are k runs, merged in about n log2(k) comparisons where qsort
 * would spend n log2(n).
 */
static void sort_range(void **v, size_t n, int errors, sort_item *t)
{
	sort_item *a = t, *b = t + n;
	for (size_t i = 0; i < n; i++)
		a[i] = (sort_item){sort_key(v[i], errors), v[i], i};
	for (;;) {
		size_t runs = 0, i = 0, o = 0;
		while (i < n) {
			size_t m = i + 1;
			while (m < n && cmp_sort_item(&a[m - 1], &a[m]) <= 0)
				m++;
			size_t e = m + 1;
			while (e < n && cmp_sort_item(&a[e - 1], &a[e]) <= 0)
				e++;
			if (e > n)
				e = n;
			/* Merge a[i..m) and a[m..e) into b[o..). */
			size_t x = i, y = m;
			while (x < m && y < e)
				b[o++] = cmp_sort_item(&a[y], &a[x]) < 0 ? a[y++] : a[x++];
			while (x < m)
				b[o++] = a[x++];
			while (y < e)
				b[o++] = a[y++];
			i = e;
			runs++;
		}
		sort_item *sw = a;
		a = b;
		b = sw;
		if (runs <= 1)
			break;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = a[i].item;
}

mlsec_err mlsec_report_sort(mlsec_report *r, size_t first_artifact, size_t first_error)
{
	size_t na = first_artifact < r->nartifacts ? r->nartifacts - first_artifact : 0;
	size_t ne = first_error < r->nerrors ? r->nerrors - first_error : 0;
	if (na < 2 && ne < 2)
		return MLSEC_OK;
	sort_item *t = mlsec_reallocarray(NULL, 2 * (na > ne ? na : ne), sizeof *t);
	if (!t)
		return MLSEC_ERR_NOMEM;
	sort_range((void **)(r->artifacts + first_artifact), na, 0, t);
	sort_range((void **)(r->errors + first_error), ne, 1, t);
	mlsec_free(t);
	return MLSEC_OK;
}

mlsec_err mlsec_report_adopt(mlsec_report *dst, mlsec_report *src)
{
	if (!src)
		return MLSEC_OK;
	/* Make room first so that a failure changes nothing. */
	size_t na = dst->nartifacts + src->nartifacts, ne = dst->nerrors + src->nerrors;
	if (na > dst->capartifacts) {
		mlsec_artifact **v = mlsec_reallocarray(dst->artifacts, na, sizeof *v);
		if (!v)
			return MLSEC_ERR_NOMEM;
		dst->artifacts = v;
		dst->capartifacts = na;
	}
	if (ne > dst->caperrors) {
		char **v = mlsec_reallocarray(dst->errors, ne, sizeof *v);
		if (!v)
			return MLSEC_ERR_NOMEM;
		dst->errors = v;
		dst->caperrors = ne;
	}
	char *stage = NULL;
	if (strcmp(src->stage, dst->stage) != 0 && !(stage = arena_strdup(&src->arena, src->stage)))
		return MLSEC_ERR_NOMEM;
	for (size_t i = 0; i < src->nartifacts; i++) {
		mlsec_artifact *a = src->artifacts[i];
		a->report = dst;
		if (a->stage == src->stage)
			a->stage = stage ? stage : dst->stage;
		for (size_t k = 0; k < a->nfindings; k++)
			((report_finding *)a->findings[k])->report = dst;
		dst->artifacts[dst->nartifacts++] = a;
	}
	for (size_t i = 0; i < src->nerrors; i++)
		dst->errors[dst->nerrors++] = src->errors[i];
	/* The strings now referenced from dst live in src's chunks: keep them,
	 * behind dst's current chunk so its free space is still used. */
	report_chunk *last = src->arena.head;
	if (last) {
		while (last->next)
			last = last->next;
		if (dst->arena.head) {
			last->next = dst->arena.head->next;
			dst->arena.head->next = src->arena.head;
		} else {
			dst->arena = src->arena;
		}
	}
	mlsec_free(src->artifacts);
	mlsec_free(src->errors);
	mlsec_free(src->stage);
	mlsec_free(src);
	return MLSEC_OK;
}

size_t mlsec_report_error_count(const mlsec_report *r)
{
	return r->nerrors;
}

const char *mlsec_report_error(const mlsec_report *r, size_t i)
{
	return i < r->nerrors ? r->errors[i] : NULL;
}

void mlsec_report_counts(const mlsec_report *r, size_t counts[MLSEC_SEV__COUNT])
{
	memset(counts, 0, sizeof(size_t) * MLSEC_SEV__COUNT);
	for (size_t i = 0; i < r->nartifacts; i++)
		for (size_t k = 0; k < r->artifacts[i]->nfindings; k++)
			counts[r->artifacts[i]->findings[k]->severity]++;
}

int mlsec_report_exit_code(const mlsec_report *r, mlsec_severity gate)
{
	size_t counts[MLSEC_SEV__COUNT];
	mlsec_report_counts(r, counts);
	for (int s = (int)gate; s < MLSEC_SEV__COUNT; s++)
		if (counts[s])
			return 2;
	return r->nerrors ? 1 : 0;
}
