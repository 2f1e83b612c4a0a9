/* report_table.c - the human-readable report: compact, colour on a TTY. */
#include <string.h>

#include "report_impl.h"

static const char *sev_color(mlsec_severity s)
{
	static const char *const c[MLSEC_SEV__COUNT] = {"\033[2m", "\033[36m", "\033[33m",
							"\033[31m", "\033[1;31m"};
	return (unsigned)s < MLSEC_SEV__COUNT ? c[s] : "";
}

static void upper(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; s[i] && i + 1 < n; i++)
		out[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
	out[i] = '\0';
}

static void print_location(const mlsec_artifact *a, const mlsec_finding *f, FILE *out)
{
	int any = 0;
	if (f->file && strcmp(f->file, a->path) != 0) {
		fprintf(out, "%s", f->file);
		any = 1;
	}
	if (f->line > 0) {
		fprintf(out, "%s%ld", any ? ":" : "line ", f->line);
		if (f->column > 0)
			fprintf(out, ":%ld", f->column);
		any = 1;
	} else if (f->offset >= 0) {
		fprintf(out, "%s@%lld", any ? " " : "", f->offset);
		any = 1;
	}
	if (f->field)
		fprintf(out, "%s%s", any ? " " : "", f->field);
}

static void print_counts(const size_t c[MLSEC_SEV__COUNT], FILE *out)
{
	fprintf(out, "critical=%zu high=%zu medium=%zu low=%zu info=%zu total=%zu",
		c[MLSEC_SEV_CRITICAL], c[MLSEC_SEV_HIGH], c[MLSEC_SEV_MEDIUM], c[MLSEC_SEV_LOW],
		c[MLSEC_SEV_INFO],
		c[0] + c[1] + c[2] + c[3] + c[4]);
}

void mlsec_report_print_table(const mlsec_report *r, const mlsec_table_opts *o, FILE *out)
{
	const char *reset = o->color ? "\033[0m" : "";
	const char *bold = o->color ? "\033[1m" : "";
	for (size_t i = 0; i < r->nartifacts; i++) {
		const mlsec_artifact *a = r->artifacts[i];
		size_t c[MLSEC_SEV__COUNT] = {0};
		for (size_t k = 0; k < a->nfindings; k++)
			c[a->findings[k]->severity]++;
		if (o->summary) {
			fprintf(out, "%s  ", a->path);
			print_counts(c, out);
			fputc('\n', out);
			continue;
		}
		fprintf(out, "%s%s%s  [%s, %s%s%.12s]\n", bold, a->path, reset, a->stage,
			a->format, a->sha256[0] ? ", sha256 " : "", a->sha256);
		if (a->nfindings == 0)
			fprintf(out, "  no findings\n");
		for (size_t k = 0; k < a->nfindings; k++) {
			const mlsec_finding *f = a->findings[k];
			char sev[16];
			upper(mlsec_severity_name(f->severity), sev, sizeof sev);
			fprintf(out, "  %s%-8s%s  %-30s %s", o->color ? sev_color(f->severity) : "",
				sev, reset, f->rule_id, f->title);
			if (f->line > 0 || f->field || f->offset >= 0 ||
			    (f->file && strcmp(f->file, a->path))) {
				fputs("  (", out);
				print_location(a, f, out);
				fputc(')', out);
			}
			fputc('\n', out);
			if (!o->verbose)
				continue;
			if (f->detail)
				fprintf(out, "            %s\n", f->detail);
			const char *key;
			json_t *v;
			json_object_foreach(f->evidence, key, v)
			{
				if (json_is_string(v)) {
					fprintf(out, "            %s: %s\n", key, json_string_value(v));
				} else {
					char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
					fprintf(out, "            %s: %s\n", key, s ? s : "?");
					free(s);
				}
			}
			if (f->remediation)
				fprintf(out, "            fix: %s\n", f->remediation);
		}
	}
	for (size_t i = 0; i < r->nerrors; i++)
		fprintf(out, "%serror%s: %s\n", o->color ? "\033[1;31m" : "", reset, r->errors[i]);
	size_t c[MLSEC_SEV__COUNT];
	mlsec_report_counts(r, c);
	int code = mlsec_report_exit_code(r, o->gate);
	fprintf(out, "%s%zu artifact%s: ", bold, r->nartifacts, r->nartifacts == 1 ? "" : "s");
	print_counts(c, out);
	fprintf(out, "; fail-on %s: %s%s\n", mlsec_severity_name(o->gate),
		code == 2 ? "FAIL" : code == 1 ? "ERROR" : "PASS", reset);
}
