/* report_json.c - the report as JSON (docs/report-format.md) and back. */
#include <string.h>

#include "mlsec/alloc.h"
#include "report_impl.h"

#define REPORT_SCHEMA_VERSION 1

static json_t *finding_to_json(const mlsec_finding *f)
{
	json_t *loc = json_object();
	json_t *o = json_object();
	if (!loc || !o) {
		json_decref(loc);
		json_decref(o);
		return NULL;
	}
	if (f->file)
		json_object_set_new(loc, "file", json_string(f->file));
	if (f->line > 0)
		json_object_set_new(loc, "line", json_integer(f->line));
	if (f->column > 0)
		json_object_set_new(loc, "column", json_integer(f->column));
	if (f->offset >= 0)
		json_object_set_new(loc, "offset", json_integer(f->offset));
	if (f->field)
		json_object_set_new(loc, "field", json_string(f->field));
	json_object_set_new(o, "rule_id", json_string(f->rule_id));
	json_object_set_new(o, "severity", json_string(mlsec_severity_name(f->severity)));
	json_object_set_new(o, "title", json_string(f->title));
	json_object_set_new(o, "detail", f->detail ? json_string(f->detail) : json_null());
	json_object_set_new(o, "location", loc);
	/* The shared empty evidence must not leak into a tree callers may edit. */
	if (f->evidence == report_empty_evidence())
		json_object_set_new(o, "evidence", json_object());
	else
		json_object_set(o, "evidence", f->evidence);
	json_object_set_new(o, "remediation",
	                    f->remediation ? json_string(f->remediation) : json_null());
	return o;
}

static json_t *counts_to_json(const size_t counts[MLSEC_SEV__COUNT])
{
	json_t *s = json_object();
	size_t total = 0;
	for (int i = 0; s && i < MLSEC_SEV__COUNT; i++) {
		json_object_set_new(s, mlsec_severity_name((mlsec_severity)i),
		                    json_integer((json_int_t)counts[i]));
		total += counts[i];
	}
	if (s)
		json_object_set_new(s, "total", json_integer((json_int_t)total));
	return s;
}

json_t *mlsec_report_to_json(const mlsec_report *r, mlsec_severity gate)
{
	json_t *root = json_object();
	json_t *arts = json_array();
	json_t *errs = json_array();
	if (!root || !arts || !errs)
		goto fail;
	json_object_set_new(root, "tool", json_string(MLSEC_TOOL_NAME));
	json_object_set_new(root, "version", json_string(MLSEC_VERSION));
	json_object_set_new(root, "schema_version", json_integer(REPORT_SCHEMA_VERSION));
	json_object_set_new(root, "stage", json_string(r->stage));
	json_object_set_new(root, "fail_on", json_string(mlsec_severity_name(gate)));
	json_object_set_new(root, "exit_code", json_integer(mlsec_report_exit_code(r, gate)));
	for (size_t i = 0; i < r->nartifacts; i++) {
		const mlsec_artifact *a = r->artifacts[i];
		json_t *ja = json_object();
		json_t *fs = json_array();
		if (!ja || !fs) {
			json_decref(ja);
			json_decref(fs);
			goto fail;
		}
		size_t counts[MLSEC_SEV__COUNT] = {0};
		for (size_t k = 0; k < a->nfindings; k++) {
			json_t *jf = finding_to_json(a->findings[k]);
			if (!jf || json_array_append_new(fs, jf) != 0) {
				json_decref(ja);
				json_decref(fs);
				goto fail;
			}
			counts[a->findings[k]->severity]++;
		}
		json_object_set_new(ja, "path", json_string(a->path));
		json_object_set_new(ja, "stage", json_string(a->stage));
		json_object_set_new(ja, "sha256",
		                    a->sha256[0] ? json_string(a->sha256) : json_null());
		json_object_set_new(ja, "size", json_integer((json_int_t)a->size));
		json_object_set_new(ja, "format", json_string(a->format));
		json_object_set_new(ja, "findings", fs);
		json_object_set_new(ja, "summary", counts_to_json(counts));
		report_details_ready(a);
		if (a->details)
			json_object_set(ja, "details", a->details);
		else
			json_object_set_new(ja, "details", json_object());
		json_array_append_new(arts, ja);
	}
	for (size_t i = 0; i < r->nerrors; i++)
		json_array_append_new(errs, json_string(r->errors[i]));
	size_t counts[MLSEC_SEV__COUNT];
	mlsec_report_counts(r, counts);
	json_object_set_new(root, "artifacts", arts);
	json_object_set_new(root, "errors", errs);
	json_object_set_new(root, "summary", counts_to_json(counts));
	return root;
fail:
	json_decref(root);
	json_decref(arts);
	json_decref(errs);
	return NULL;
}

/* json_dumpf writes every token with its own fwrite, each taking the
 * stream's lock (13% of a 2,000-config --json run): gather 64 KiB first. */
typedef struct dump_buf {
	FILE *out;
	size_t n;
	int failed;
	char data[64 << 10];
} dump_buf;

static int dump_flush(dump_buf *b)
{
	if (b->n && fwrite(b->data, 1, b->n, b->out) != b->n)
		b->failed = 1;
	b->n = 0;
	return b->failed ? -1 : 0;
}

static int dump_put(const char *buf, size_t size, void *data)
{
	dump_buf *b = data;
	if (size > sizeof b->data - b->n && dump_flush(b) != 0)
		return -1;
	if (size > sizeof b->data) /* a huge token: straight through */
		return fwrite(buf, 1, size, b->out) == size ? 0 : (b->failed = 1, -1);
	memcpy(b->data + b->n, buf, size);
	b->n += size;
	return 0;
}

int report_json_dump(const json_t *j, FILE *out, size_t flags)
{
	dump_buf *b = mlsec_malloc(sizeof *b);
	if (!b)
		return json_dumpf(j, out, flags);
	b->out = out;
	b->n = 0;
	b->failed = 0;
	int rc = json_dump_callback(j, dump_put, b, flags);
	if (dump_flush(b) != 0)
		rc = -1;
	mlsec_free(b);
	return rc;
}

mlsec_err mlsec_report_write_json(const mlsec_report *r, mlsec_severity gate, FILE *out)
{
	json_t *j = mlsec_report_to_json(r, gate);
	if (!j)
		return MLSEC_ERR_NOMEM;
	int rc = report_json_dump(j, out, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(j);
	if (rc != 0 || fputc('\n', out) == EOF || fflush(out) != 0)
		return MLSEC_ERR_IO;
	return MLSEC_OK;
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : dflt;
}

static long long int_or(const json_t *o, const char *key, long long dflt)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static mlsec_err merge_finding(mlsec_artifact *a, const json_t *jf, mlsec_error *err)
{
	if (!json_is_object(jf))
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "finding is not an object");
	mlsec_severity sev;
	if (mlsec_severity_parse(str_or(jf, "severity", NULL), &sev) != MLSEC_OK)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "finding has no valid severity");
	const char *rule = str_or(jf, "rule_id", NULL);
	if (!rule)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "finding has no rule_id");
	const char *detail = str_or(jf, "detail", NULL);
	mlsec_finding *f =
	        detail ? mlsec_artifact_add_finding(a, rule, sev, str_or(jf, "title", ""), "%s",
	                                            detail)
	               : mlsec_artifact_add_finding(a, rule, sev, str_or(jf, "title", ""), NULL);
	if (!f)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	const json_t *loc = json_object_get(jf, "location");
	if (json_is_object(loc)) {
		if (mlsec_finding_set_location(
		            f, str_or(loc, "file", NULL), (long)int_or(loc, "line", 0),
		            (long)int_or(loc, "column", 0), str_or(loc, "field", NULL)) != MLSEC_OK)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		f->offset = int_or(loc, "offset", -1);
	}
	const json_t *ev = json_object_get(jf, "evidence");
	if (json_is_object(ev) && json_object_size(ev) &&
	    (!report_evidence_own(f) || json_object_update(f->evidence, (json_t *)ev) != 0))
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (mlsec_finding_set_remediation(f, str_or(jf, "remediation", NULL)) != MLSEC_OK)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	return MLSEC_OK;
}

mlsec_err mlsec_report_merge_json(mlsec_report *r, const json_t *json, mlsec_error *err)
{
	if (!json_is_object(json))
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "report is not a JSON object");
	const json_t *arts = json_object_get(json, "artifacts");
	if (!json_is_array(arts))
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "report has no artifacts array");
	const char *stage = str_or(json, "stage", "unknown");
	size_t i;
	const json_t *ja;
	json_array_foreach(arts, i, ja)
	{
		if (!json_is_object(ja))
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "artifact %zu is not an object", i);
		mlsec_artifact *a = mlsec_report_add_artifact(r, str_or(ja, "path", ""),
		                                              str_or(ja, "format", "unknown"));
		if (!a || mlsec_artifact_set_stage(a, str_or(ja, "stage", stage)) != MLSEC_OK)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		const char *sha = str_or(ja, "sha256", NULL);
		json_int_t size = json_integer_value(json_object_get(ja, "size"));
		if (sha &&
		    mlsec_artifact_set_digest(a, sha, size > 0 ? (uint64_t)size : 0) != MLSEC_OK)
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "artifact %zu: bad sha256", i);
		const json_t *det = json_object_get(ja, "details");
		if (json_is_object(det) &&
		    json_object_update(mlsec_artifact_details(a), (json_t *)det) != 0)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		const json_t *fs = json_object_get(ja, "findings");
		if (fs && !json_is_array(fs))
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "artifact %zu: findings is not an array", i);
		size_t k;
		const json_t *jf;
		json_array_foreach(fs, k, jf)
		{
			mlsec_err rc = merge_finding(a, jf, err);
			if (rc != MLSEC_OK)
				return rc;
		}
	}
	const json_t *errs = json_object_get(json, "errors");
	const json_t *je;
	json_array_foreach(errs, i, je)
	{
		if (json_is_string(je) &&
		    mlsec_report_add_error(r, "%s", json_string_value(je)) != MLSEC_OK)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	return MLSEC_OK;
}
