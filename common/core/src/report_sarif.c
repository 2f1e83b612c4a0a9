/*
 * report_sarif.c - SARIF 2.1.0 output, so code-scanning UIs (GitHub) can
 * show mlsec findings. One run, one rule per distinct rule id.
 */
#include <string.h>

#include "mlsec/alloc.h"
#include "report_impl.h"

static const char *sarif_level(mlsec_severity s)
{
	return s >= MLSEC_SEV_HIGH ? "error" : s == MLSEC_SEV_MEDIUM ? "warning" : "note";
}

/* GitHub reads properties.security-severity (a number as a string). */
static const char *security_severity(mlsec_severity s)
{
	static const char *const v[MLSEC_SEV__COUNT] = {"0.0", "3.0", "5.5", "8.0", "9.5"};
	return (unsigned)s < MLSEC_SEV__COUNT ? v[s] : "0.0";
}

/* Percent-encodes a path into a relative or file URI reference. */
static char *path_to_uri(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(path);
	char *out = mlsec_malloc(n * 3 + 8);
	if (!out)
		return NULL;
	char *o = out;
	if (path[0] == '/') {
		memcpy(o, "file://", 7);
		o += 7;
	}
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		unsigned char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~/", c)) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

static json_t *location_json(const mlsec_artifact *a, const mlsec_finding *f)
{
	char *uri = path_to_uri(f->file ? f->file : a->path);
	if (!uri)
		return NULL;
	json_t *phys = json_pack("{s:{s:s}}", "artifactLocation", "uri", uri);
	mlsec_free(uri);
	if (!phys)
		return NULL;
	if (f->line > 0) {
		json_t *region = json_pack("{s:I}", "startLine", (json_int_t)f->line);
		if (region && f->column > 0)
			json_object_set_new(region, "startColumn", json_integer(f->column));
		json_object_set_new(phys, "region", region);
	} else if (f->offset >= 0) {
		json_object_set_new(phys, "region",
		                    json_pack("{s:I,s:I}", "byteOffset", (json_int_t)f->offset,
		                              "byteLength", (json_int_t)1));
	}
	json_t *loc = json_pack("{s:o}", "physicalLocation", phys);
	if (loc && f->field)
		json_object_set_new(loc, "logicalLocations",
		                    json_pack("[{s:s}]", "fullyQualifiedName", f->field));
	return loc;
}

mlsec_err mlsec_report_write_sarif(const mlsec_report *r, FILE *out)
{
	json_t *rules = json_array(), *results = json_array(), *artifacts = json_array();
	json_t *rule_index = json_object();
	mlsec_err rc = MLSEC_ERR_NOMEM;
	json_t *root = NULL;
	if (!rules || !results || !artifacts || !rule_index)
		goto done;
	for (size_t i = 0; i < r->nartifacts; i++) {
		const mlsec_artifact *a = r->artifacts[i];
		char *uri = path_to_uri(a->path);
		if (!uri)
			goto done;
		json_t *ja = json_pack("{s:{s:s},s:I}", "location", "uri", uri, "length",
		                       (json_int_t)a->size);
		mlsec_free(uri);
		if (!ja)
			goto done;
		if (a->sha256[0])
			json_object_set_new(ja, "hashes", json_pack("{s:s}", "sha-256", a->sha256));
		json_array_append_new(artifacts, ja);
		for (size_t k = 0; k < a->nfindings; k++) {
			const mlsec_finding *f = a->findings[k];
			json_t *idx = json_object_get(rule_index, f->rule_id);
			if (!idx) {
				json_t *rule = json_pack(
				        "{s:s,s:s,s:{s:s},s:{s:s},s:{s:[s,s],s:s}}", "id",
				        f->rule_id, "name", f->rule_id, "shortDescription", "text",
				        f->title, "defaultConfiguration", "level",
				        sarif_level(f->severity), "properties", "tags", "security",
				        mlsec_severity_name(f->severity), "security-severity",
				        security_severity(f->severity));
				if (!rule)
					goto done;
				if (f->remediation)
					json_object_set_new(
					        rule, "help",
					        json_pack("{s:s}", "text", f->remediation));
				idx = json_integer((json_int_t)json_array_size(rules));
				json_array_append_new(rules, rule);
				json_object_set_new(rule_index, f->rule_id, idx);
			}
			char *msg = f->detail ? mlsec_sprintf("%s: %s", f->title, f->detail)
			                      : mlsec_strdup(f->title);
			json_t *loc = location_json(a, f);
			if (!msg || !loc) {
				mlsec_free(msg);
				json_decref(loc);
				goto done;
			}
			json_t *res =
			        json_pack("{s:s,s:I,s:s,s:{s:s},s:[o],s:{s:s,s:s}}", "ruleId",
			                  f->rule_id, "ruleIndex", json_integer_value(idx), "level",
			                  sarif_level(f->severity), "message", "text", msg,
			                  "locations", loc, "properties", "severity",
			                  mlsec_severity_name(f->severity), "stage", a->stage);
			mlsec_free(msg);
			if (!res)
				goto done;
			if (json_object_size(f->evidence))
				json_object_set(json_object_get(res, "properties"), "evidence",
				                f->evidence);
			json_array_append_new(results, res);
		}
	}
	root = json_pack("{s:s,s:s,s:[{s:{s:{s:s,s:s,s:s,s:O}},s:O,s:O}]}", "$schema",
	                 "https://json.schemastore.org/sarif-2.1.0.json", "version", "2.1.0",
	                 "runs", "tool", "driver", "name", MLSEC_TOOL_NAME, "version",
	                 MLSEC_VERSION, "informationUri", "https://github.com/mlsec/mlsec", "rules",
	                 rules, "artifacts", artifacts, "results", results);
	if (!root)
		goto done;
	rc = report_json_dump(root, out, JSON_INDENT(2)) == 0 && fputc('\n', out) != EOF
	             ? MLSEC_OK
	             : MLSEC_ERR_IO;
done:
	json_decref(root);
	json_decref(rules);
	json_decref(results);
	json_decref(artifacts);
	json_decref(rule_index);
	return rc;
}
