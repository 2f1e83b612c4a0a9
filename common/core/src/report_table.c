/* report_table.c - the human-readable report: compact, colour on a TTY. */
#include <string.h>

#include "report_impl.h"

static const char *sev_color(mlsec_severity s)
{
	static const char *const c[MLSEC_SEV__COUNT] = {"\033[2m", "\033[36m", "\033[33m",
	                                                "\033[31m", "\033[1;31m"};
	return (unsigned)s < MLSEC_SEV__COUNT ? c[s] : "";
}

/*
 * Small writers instead of fprintf: the table is thousands of short lines
 * and printf's format parsing dominated it (all the more when a loaded
 * library, e.g. libquadmath, registers printf hooks: glibc then takes its
 * slow positional path for every call).
 */
static void put_s(const char *s, FILE *out)
{
	fputs(s, out);
}

/* %-*s: s, then spaces up to width. */
static void put_pad(const char *s, int width, FILE *out)
{
	size_t n = strlen(s);
	fwrite(s, 1, n, out);
	for (; n < (size_t)width; n++)
		putc(' ', out);
}

static void put_u(unsigned long long v, FILE *out)
{
	char b[24];
	size_t i = sizeof b;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fwrite(b + i, 1, sizeof b - i, out);
}

/* Signed, for line/column/offset (callers print them only when > 0 or >= 0). */
static void put_i(long long v, FILE *out)
{
	if (v < 0) {
		putc('-', out);
		put_u(0ull - (unsigned long long)v, out);
	} else {
		put_u((unsigned long long)v, out);
	}
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
		put_s(f->file, out);
		any = 1;
	}
	if (f->line > 0) {
		put_s(any ? ":" : "line ", out);
		put_i(f->line, out);
		if (f->column > 0) {
			putc(':', out);
			put_i(f->column, out);
		}
		any = 1;
	} else if (f->offset >= 0) {
		put_s(any ? " @" : "@", out);
		put_i(f->offset, out);
		any = 1;
	}
	if (f->field) {
		put_s(any ? " " : "", out);
		put_s(f->field, out);
	}
}

static void print_counts(const size_t c[MLSEC_SEV__COUNT], FILE *out)
{
	put_s("critical=", out);
	put_u(c[MLSEC_SEV_CRITICAL], out);
	put_s(" high=", out);
	put_u(c[MLSEC_SEV_HIGH], out);
	put_s(" medium=", out);
	put_u(c[MLSEC_SEV_MEDIUM], out);
	put_s(" low=", out);
	put_u(c[MLSEC_SEV_LOW], out);
	put_s(" info=", out);
	put_u(c[MLSEC_SEV_INFO], out);
	put_s(" total=", out);
	put_u(c[0] + c[1] + c[2] + c[3] + c[4], out);
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
			put_s(a->path, out);
			put_s("  ", out);
			print_counts(c, out);
			fputc('\n', out);
			continue;
		}
		put_s(bold, out);
		put_s(a->path, out);
		put_s(reset, out);
		put_s("  [", out);
		put_s(a->stage, out);
		put_s(", ", out);
		put_s(a->format, out);
		if (a->sha256[0]) {
			put_s(", sha256 ", out);
			fwrite(a->sha256, 1, strnlen(a->sha256, 12), out);
		}
		put_s("]\n", out);
		if (a->nfindings == 0)
			put_s("  no findings\n", out);
		for (size_t k = 0; k < a->nfindings; k++) {
			const mlsec_finding *f = a->findings[k];
			char sev[16];
			upper(mlsec_severity_name(f->severity), sev, sizeof sev);
			put_s("  ", out);
			put_s(o->color ? sev_color(f->severity) : "", out);
			put_pad(sev, 8, out);
			put_s(reset, out);
			put_s("  ", out);
			put_pad(f->rule_id, 30, out);
			putc(' ', out);
			put_s(f->title, out);
			if (f->line > 0 || f->field || f->offset >= 0 ||
			    (f->file && strcmp(f->file, a->path))) {
				fputs("  (", out);
				print_location(a, f, out);
				fputc(')', out);
			}
			fputc('\n', out);
			if (!o->verbose)
				continue;
			if (f->detail) {
				put_s("            ", out);
				put_s(f->detail, out);
				putc('\n', out);
			}
			const char *key;
			json_t *v;
			json_object_foreach(f->evidence, key, v)
			{
				if (json_is_string(v)) {
					fprintf(out, "            %s: %s\n", key,
					        json_string_value(v));
				} else {
					char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
					fprintf(out, "            %s: %s\n", key, s ? s : "?");
					free(s);
				}
			}
			if (f->remediation) {
				put_s("            fix: ", out);
				put_s(f->remediation, out);
				putc('\n', out);
			}
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
	        code == 2   ? "FAIL"
	        : code == 1 ? "ERROR"
	                    : "PASS",
	        reset);
}
