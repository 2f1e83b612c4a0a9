/*
 * jobproto.c - report <-> mlsec.v1 protobuf glue (see jobproto.h).
 * Temporary strings for a message being built live in a small arena that
 * is freed right after packing, so no hand-built message escapes.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mlsec/alloc.h"
#include "mlsec/jobproto.h"

typedef struct arena {
	void **items;
	size_t n, cap;
	int failed;
} arena;

static void *arena_keep(arena *a, void *p)
{
	if (!p) {
		a->failed = 1;
		return NULL;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		void **items = mlsec_reallocarray(a->items, cap, sizeof(void *));
		if (!items) {
			mlsec_free(p);
			a->failed = 1;
			return NULL;
		}
		a->items = items;
		a->cap = cap;
	}
	a->items[a->n++] = p;
	return p;
}

static char *arena_str(arena *a, const char *s)
{
	return arena_keep(a, mlsec_strdup(s ? s : ""));
}

static void arena_free(arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		mlsec_free(a->items[i]);
	mlsec_free(a->items);
}

Mlsec__V1__Severity mlsec_jobproto_severity_to_pb(mlsec_severity s)
{
	switch (s) {
	case MLSEC_SEV_INFO:
		return MLSEC__V1__SEVERITY__SEVERITY_INFO;
	case MLSEC_SEV_LOW:
		return MLSEC__V1__SEVERITY__SEVERITY_LOW;
	case MLSEC_SEV_MEDIUM:
		return MLSEC__V1__SEVERITY__SEVERITY_MEDIUM;
	case MLSEC_SEV_HIGH:
		return MLSEC__V1__SEVERITY__SEVERITY_HIGH;
	default:
		return MLSEC__V1__SEVERITY__SEVERITY_CRITICAL;
	}
}

mlsec_severity mlsec_jobproto_severity_from_pb(Mlsec__V1__Severity s)
{
	switch (s) {
	case MLSEC__V1__SEVERITY__SEVERITY_INFO:
		return MLSEC_SEV_INFO;
	case MLSEC__V1__SEVERITY__SEVERITY_LOW:
		return MLSEC_SEV_LOW;
	case MLSEC__V1__SEVERITY__SEVERITY_MEDIUM:
		return MLSEC_SEV_MEDIUM;
	case MLSEC__V1__SEVERITY__SEVERITY_HIGH:
		return MLSEC_SEV_HIGH;
	default:
		return MLSEC_SEV_CRITICAL;
	}
}

long long mlsec_jobproto_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* root-relative form of path, or path itself when it is not under root. */
static const char *relative_to(const char *path, const char *root)
{
	if (!path || !root || !*root)
		return path;
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (!strncmp(path, root, n) && path[n] == '/' && path[n + 1])
		return path + n + 1;
	return path;
}

static void json_relativize(json_t *obj, const char *key, const char *root)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_string(v)) {
		const char *rel = relative_to(json_string_value(v), root);
		if (rel != json_string_value(v)) {
			char *copy = mlsec_strdup(rel);
			if (copy) {
				json_object_set_new(obj, key, json_string(copy));
				mlsec_free(copy);
			}
		}
	}
}

/* The report JSON with artifact and finding paths made relative to root. */
static char *report_json_text(const mlsec_report *rep, const char *root, mlsec_severity gate)
{
	json_t *j = mlsec_report_to_json(rep, gate);
	if (!j)
		return NULL;
	json_t *arts = json_object_get(j, "artifacts");
	size_t i;
	json_t *a;
	json_array_foreach(arts, i, a)
	{
		json_relativize(a, "path", root);
		json_t *fs = json_object_get(a, "findings");
		size_t k;
		json_t *f;
		json_array_foreach(fs, k, f)
		        json_relativize(json_object_get(f, "location"), "file", root);
	}
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return NULL;
	char *copy = mlsec_strdup(s);
	free(s); /* jansson's allocator */
	return copy;
}

static char *location_text(arena *a, const mlsec_finding *f, const char *artifact_path,
                           const char *root)
{
	const char *file = relative_to(f->file ? f->file : artifact_path, root);
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s", file ? file : "");
	if (f->line > 0 && n < (int)sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ":%ld", f->line);
	if (f->line > 0 && f->column > 0 && n < (int)sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ":%ld", f->column);
	if (f->line <= 0 && f->offset >= 0 && n < (int)sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "@%lld", f->offset);
	if (f->field && n < (int)sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, "#%s", f->field);
	return arena_str(a, buf);
}

mlsec_err mlsec_jobproto_result_pack(const char *job_id, const char *stage, const mlsec_report *rep,
                                     mlsec_err engine_rc, const char *error_text, const char *root,
                                     mlsec_severity gate, long long duration_ms, const char *worker,
                                     uint8_t **out, size_t *len)
{
	arena a = {0};
	Mlsec__V1__StageResult r = MLSEC__V1__STAGE_RESULT__INIT;
	r.job_id = arena_str(&a, job_id);
	r.stage = arena_str(&a, stage);
	r.worker = arena_str(&a, worker);
	r.duration_ms = duration_ms;
	r.finished_unix_ms = mlsec_jobproto_now_ms();
	char errbuf[1024] = "";
	if (error_text)
		snprintf(errbuf, sizeof(errbuf), "%s", error_text);
	else if (engine_rc != MLSEC_OK)
		snprintf(errbuf, sizeof(errbuf), "%s", mlsec_strerror(engine_rc));

	size_t nf = 0;
	if (rep) {
		for (size_t i = 0; i < mlsec_report_artifact_count(rep); i++)
			nf += mlsec_artifact_finding_count(mlsec_report_artifact(rep, i));
	}
	if (nf) {
		r.findings = arena_keep(&a, mlsec_calloc(nf, sizeof(*r.findings)));
		if (r.findings) {
			size_t k = 0;
			for (size_t i = 0; i < mlsec_report_artifact_count(rep); i++) {
				mlsec_artifact *art = mlsec_report_artifact(rep, i);
				const char *apath = mlsec_artifact_path(art);
				for (size_t j = 0; j < mlsec_artifact_finding_count(art); j++) {
					const mlsec_finding *f = mlsec_artifact_finding(art, j);
					Mlsec__V1__Finding *pf =
					        arena_keep(&a, mlsec_malloc(sizeof(*pf)));
					if (!pf)
						break;
					mlsec__v1__finding__init(pf);
					pf->rule_id = arena_str(&a, f->rule_id);
					pf->severity = mlsec_jobproto_severity_to_pb(f->severity);
					pf->title = arena_str(&a, f->title);
					pf->detail = arena_str(&a, f->detail);
					pf->remediation = arena_str(&a, f->remediation);
					pf->artifact = arena_str(&a, relative_to(apath, root));
					pf->location = location_text(&a, f, apath, root);
					size_t ne = json_object_size(f->evidence);
					if (ne) {
						pf->evidence = arena_keep(
						        &a,
						        mlsec_calloc(ne, sizeof(*pf->evidence)));
						const char *key;
						json_t *val;
						size_t m = 0;
						json_object_foreach(f->evidence, key, val)
						{
							if (!pf->evidence || m == ne)
								break;
							Mlsec__V1__Finding__EvidenceEntry *e =
							        arena_keep(&a, mlsec_malloc(
							                               sizeof(*e)));
							if (!e)
								break;
							mlsec__v1__finding__evidence_entry__init(e);
							e->key = arena_str(&a, key);
							if (json_is_string(val)) {
								e->value = arena_str(
								        &a, json_string_value(val));
							} else {
								char *t = json_dumps(
								        val,
								        JSON_COMPACT |
								                JSON_ENCODE_ANY);
								e->value =
								        arena_str(&a, t ? t : "");
								free(t);
							}
							pf->evidence[m++] = e;
						}
						pf->n_evidence = m;
					}
					r.findings[k++] = pf;
				}
			}
			r.n_findings = k;
		}
	}
	int exit_code = rep ? mlsec_report_exit_code(rep, gate) : 1;
	if (engine_rc != MLSEC_OK && exit_code == 0)
		exit_code = 1;
	if (rep && !errbuf[0] && mlsec_report_error_count(rep))
		snprintf(errbuf, sizeof(errbuf), "%s", mlsec_report_error(rep, 0));
	r.status = exit_code == 2   ? MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ALERT
	           : exit_code == 1 ? MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ERROR
	                            : MLSEC__V1__STAGE_STATUS__STAGE_STATUS_OK;
	if (rep) {
		char *js = arena_keep(&a, report_json_text(rep, root, gate));
		if (js && strlen(js) <= MLSEC_JOBPROTO_MAX_REPORT_JSON) {
			r.report_json = js;
		} else if (js && !errbuf[0]) {
			snprintf(errbuf, sizeof(errbuf),
			         "report too large for a result message (%zu bytes); findings kept",
			         strlen(js));
		}
	}
	r.error = arena_str(&a, errbuf);
	mlsec_err e = MLSEC_ERR_NOMEM;
	if (!a.failed)
		e = mlsec_jobproto_pack(&r.base, out, len);
	arena_free(&a);
	return e;
}

mlsec_err mlsec_jobproto_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = mlsec_malloc(n ? n : 1);
	if (!buf)
		return MLSEC_ERR_NOMEM;
	*len = protobuf_c_message_pack(m, buf);
	*out = buf;
	return MLSEC_OK;
}

int mlsec_jobproto_stage_exit(const Mlsec__V1__StageResult *r, mlsec_severity gate)
{
	for (size_t i = 0; i < r->n_findings; i++)
		if (mlsec_jobproto_severity_from_pb(r->findings[i]->severity) >= gate)
			return 2;
	if (r->status == MLSEC__V1__STAGE_STATUS__STAGE_STATUS_OK ||
	    r->status == MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ALERT)
		return 0;
	return 1;
}

int mlsec_jobproto_verdict(const Mlsec__V1__StageResult *const *results, size_t n, size_t nmissing,
                           mlsec_severity gate)
{
	int v = nmissing ? 1 : 0;
	for (size_t i = 0; i < n; i++) {
		int s = mlsec_jobproto_stage_exit(results[i], gate);
		if (s > v)
			v = s;
	}
	return v;
}

const char *mlsec_jobproto_stage_for_format(mlsec_format f)
{
	switch (f) {
	case MLSEC_FMT_TRITON_CONFIG:
		return "triton";
	case MLSEC_FMT_PYTORCH_ZIP:
	case MLSEC_FMT_PYTORCH_LEGACY:
	case MLSEC_FMT_PICKLE:
	case MLSEC_FMT_SAFETENSORS:
	case MLSEC_FMT_NPY:
	case MLSEC_FMT_NPZ:
		return "checkpoint";
	case MLSEC_FMT_ONNX:
		return "export";
	case MLSEC_FMT_JSONL:
		return "poison";
	default:
		return NULL;
	}
}

size_t mlsec_jobproto_stages_for_format(mlsec_format f, const char **out, size_t max)
{
	const char *list[MLSEC_JOBPROTO_MAX_AUTO_STAGES];
	size_t n = 0;
	const char *primary = mlsec_jobproto_stage_for_format(f);
	if (primary)
		list[n++] = primary;
	/* Weight/graph statistics: the formats the inspect engine reads. */
	if (f == MLSEC_FMT_ONNX || f == MLSEC_FMT_SAFETENSORS || f == MLSEC_FMT_PYTORCH_ZIP)
		list[n++] = "inspect";
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = list[i];
	return n;
}

int mlsec_jobproto_auto_accepts(mlsec_format f, const char *stage)
{
	const char *list[MLSEC_JOBPROTO_MAX_AUTO_STAGES];
	size_t n = mlsec_jobproto_stages_for_format(f, list, MLSEC_JOBPROTO_MAX_AUTO_STAGES);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], stage))
			return 1;
	return 0;
}

int mlsec_jobproto_stage_has_formats(const char *stage)
{
	return !strcmp(stage, "triton") || !strcmp(stage, "checkpoint") ||
	       !strcmp(stage, "export") || !strcmp(stage, "poison");
}
