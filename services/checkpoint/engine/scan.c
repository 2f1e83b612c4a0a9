/*
 * scan.c - format dispatch for one checkpoint file and the container- and
 * pickle-level findings: PyTorch zip and legacy archives, raw pickles,
 * npy/npz, safetensors. Tensor statistics live in stats.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/npy.h"
#include "mlsec/safetensors.h"
#include "mlsec/sha256.h"
#include "mlsec/torchfmt.h"

#define HEAD_LEN 64
/* raw pickles up to this size are fully decoded (NumPy arrays inside them
 * become tensors); larger ones are only scanned */
#define FULL_PICKLE_MAX (64u * 1024 * 1024)
/* Values a full decode of a raw pickle may build; past it the pickle is
 * scanned again in scan-only mode (memory stays bounded: a pickle of small
 * objects builds several times its size in values) */
#define FULL_PICKLE_DECODED (48u * 1024 * 1024)

/* Keeps vm alive until the end of the scan (tensors borrow its values). */
static void keep_vm(ckpt_scan *s, mlsec_pickle *vm)
{
	if (s->nvms < sizeof s->vms / sizeof s->vms[0])
		s->vms[s->nvms++] = vm;
	else
		mlsec_pickle_free(vm); /* cannot happen: at most two per file */
}
#define NPY_HEAD_MAX (MLSEC_NPY_MAX_HEADER + 16)

void ckpt_malformed(ckpt_scan *s, const char *field, long long offset, const char *fmt, ...)
{
	mlsec_error e;
	mlsec_error_clear(&e);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	e.offset = offset;
	mlsec_finding *f = mlsec_artifact_add_malformed(s->a, "CKPT", &e);
	if (f && field)
		mlsec_finding_set_location(f, NULL, 0, 0, field);
	s->malformed = 1;
}

static mlsec_finding *finding(ckpt_scan *s, const char *rule, mlsec_severity sev, const char *field,
                              long long off, const char *title, const char *detail)
{
	mlsec_finding *f =
	        mlsec_artifact_add_finding(s->a, rule, sev, title, "%s", detail ? detail : "");
	if (!f)
		return NULL;
	if (field)
		mlsec_finding_set_location(f, NULL, 0, 0, field);
	if (off >= 0)
		mlsec_finding_set_offset(f, off);
	return f;
}

/* ---- pickles -------------------------------------------------------- */

static const char *note_rule(mlsec_pickle_note_kind k, mlsec_severity *sev, const char **title)
{
	switch (k) {
	case MLSEC_PNOTE_DYNAMIC_GLOBAL:
		*sev = MLSEC_SEV_CRITICAL;
		*title = "STACK_GLOBAL on computed operands (obfuscated import)";
		return "CKPT-PICKLE-DYNAMIC-GLOBAL";
	case MLSEC_PNOTE_EXTENSION:
		*sev = MLSEC_SEV_HIGH;
		*title = "pickle uses the copyreg extension registry (EXT opcodes)";
		return "CKPT-PICKLE-EXTENSION";
	case MLSEC_PNOTE_BUILD_ON_GLOBAL:
		*sev = MLSEC_SEV_HIGH;
		*title = "BUILD modifies a class or module attribute";
		return "CKPT-PICKLE-OBJECT-MUTATION";
	case MLSEC_PNOTE_SETITEM_ON_OBJECT:
		*sev = MLSEC_SEV_MEDIUM;
		*title = "SETITEM/APPEND calls a method of a non-container object";
		return "CKPT-PICKLE-OBJECT-MUTATION";
	case MLSEC_PNOTE_OOB_BUFFER:
		*sev = MLSEC_SEV_MEDIUM;
		*title = "pickle refers to out-of-band buffers";
		return "CKPT-PICKLE-OOB-BUFFER";
	case MLSEC_PNOTE_MEMO_UNTRACKED:
		*sev = MLSEC_SEV_MEDIUM;
		*title = "pickle memo too large to track: a value was fetched from an entry "
		         "the scan did not keep";
		return "CKPT-PICKLE-LIMIT";
	default:
		*sev = MLSEC_SEV_HIGH;
		*title = "pickle contains a nested pickle";
		return "CKPT-PICKLE-NESTED";
	}
}

static void where_field(char *buf, size_t n, const char *where, int depth)
{
	if (depth)
		snprintf(buf, n, "%s (nested pickle, depth %d)", where ? where : "pickle", depth);
	else
		snprintf(buf, n, "%s", where ? where : "pickle");
}

void ckpt_report_pickle(ckpt_scan *s, mlsec_pickle *vm, mlsec_err rc, const mlsec_error *perr,
                        const char *where, long long base, int depth)
{
	char field[600];
	where_field(field, sizeof field, where, depth);
	size_t ng = mlsec_pickle_global_count(vm);
	for (size_t i = 0; i < ng; i++) {
		const mlsec_pickle_global *g = mlsec_pickle_global_at(vm, i);
		/* one finding per distinct global per pickle */
		int seen = 0;
		size_t count = 0;
		for (size_t j = 0; j < ng; j++) {
			const mlsec_pickle_global *h = mlsec_pickle_global_at(vm, j);
			if (!strcmp(h->module, g->module) && !strcmp(h->name, g->name)) {
				if (j < i)
					seen = 1;
				count++;
			}
		}
		if (seen)
			continue;
		const char *why;
		mlsec_pickle_class c = mlsec_pickle_classify(g->module, g->name, &why);
		if (c == MLSEC_PCLASS_SAFE)
			continue;
		const char *rule =
		        c == MLSEC_PCLASS_DANGEROUS ? "CKPT-PICKLE-EXEC" : "CKPT-PICKLE-GLOBAL";
		mlsec_severity sev = c == MLSEC_PCLASS_DANGEROUS ? MLSEC_SEV_CRITICAL
		                     : c == MLSEC_PCLASS_UNKNOWN ? MLSEC_SEV_MEDIUM
		                                                 : MLSEC_SEV_LOW;
		char title[300];
		snprintf(title, sizeof title, "pickle %s %.120s.%.120s",
		         c == MLSEC_PCLASS_DANGEROUS ? "imports dangerous" : "imports", g->module,
		         g->name);
		mlsec_finding *f = finding(s, rule, sev, field, base + g->offset, title, why);
		if (!f)
			continue;
		mlsec_finding_set_evidence(f, "global", "%s.%s", g->module, g->name);
		mlsec_finding_set_evidence(f, "opcode", "%s",
		                           g->opcode == 'c'   ? "GLOBAL"
		                           : g->opcode == 'i' ? "INST"
		                                              : "STACK_GLOBAL");
		mlsec_finding_set_evidence(f, "occurrences", "%zu", count);
		if (g->recovered)
			mlsec_finding_set_evidence(f, "found_by", "linear scan past a parse error");
		if (c == MLSEC_PCLASS_DANGEROUS)
			mlsec_finding_set_remediation(
			        f, "Never load this file with torch.load/pickle: it runs code on "
			           "load. "
			           "Obtain the weights as safetensors from a trusted source.");
	}
	size_t nn = mlsec_pickle_note_count(vm);
	for (size_t i = 0; i < nn; i++) {
		const mlsec_pickle_note *n = mlsec_pickle_note_at(vm, i);
		mlsec_severity sev;
		const char *title;
		const char *rule = note_rule(n->kind, &sev, &title);
		/* one finding per kind per pickle, except nested pickles */
		int dup = 0;
		for (size_t j = 0; j < i && n->kind != MLSEC_PNOTE_NESTED_PICKLE; j++)
			dup |= mlsec_pickle_note_at(vm, j)->kind == n->kind;
		if (dup)
			continue;
		finding(s, rule, sev, field, base + n->offset, title, NULL);
		if (n->kind == MLSEC_PNOTE_NESTED_PICKLE && n->value) {
			if (depth + 1 > MLSEC_CKPT_MAX_NESTING) {
				finding(s, "CKPT-PICKLE-NESTED", MLSEC_SEV_HIGH, field,
				        base + n->offset,
				        "nested pickles deeper than the scan limit", NULL);
				continue;
			}
			const uint8_t *b = (const uint8_t *)n->value->u.str.s;
			size_t l = n->value->u.str.len;
			uint8_t *latin = NULL;
			if (n->value->kind == MLSEC_PV_STR && l >= 2 && b[0] == 0xc2 &&
			    b[1] == 0x80) {
				/* str smuggled through latin-1: decode UTF-8 back to bytes */
				latin = mlsec_malloc(l);
				size_t k = 0;
				for (size_t q = 0; latin && q < l; q++) {
					if ((b[q] & 0xe0) == 0xc0 && q + 1 < l) {
						latin[k++] = (uint8_t)(((b[q] & 0x1f) << 6) |
						                       (b[q + 1] & 0x3f));
						q++;
					} else {
						latin[k++] = b[q];
					}
				}
				b = latin;
				l = k;
			}
			if (b) {
				mlsec_err r2;
				mlsec_pickle *sub = ckpt_run_pickle(
				        s, b, l, where, base + n->offset, depth + 1, &r2);
				mlsec_pickle_free(sub);
			}
			mlsec_free(latin);
		}
	}
	if (mlsec_pickle_truncated(vm))
		finding(s, "CKPT-PICKLE-LIMIT", MLSEC_SEV_MEDIUM, field, -1,
		        "pickle names more globals than the scan records", NULL);
	if (rc != MLSEC_OK) {
		long long off = perr && perr->offset >= 0 ? base + perr->offset : base;
		ckpt_malformed(s, field, off, "pickle: %s", perr ? perr->text : mlsec_strerror(rc));
	}
}

mlsec_pickle *ckpt_run_pickle(ckpt_scan *s, const uint8_t *buf, size_t len, const char *where,
                              long long base, int depth, mlsec_err *rc)
{
	return ckpt_run_pickle_mode(s, buf, len, where, base, depth, 1, rc);
}

mlsec_pickle *ckpt_run_pickle_mode(ckpt_scan *s, const uint8_t *buf, size_t len, const char *where,
                                   long long base, int depth, int scan_only, mlsec_err *rc)
{
	mlsec_pickle_limits lim;
	memset(&lim, 0, sizeof lim);
	lim.scan_only = scan_only;
	mlsec_pickle *vm = mlsec_pickle_new(&lim);
	if (!vm) {
		*rc = MLSEC_ERR_NOMEM;
		return NULL;
	}
	mlsec_error e;
	mlsec_error_clear(&e);
	*rc = mlsec_pickle_run(vm, buf, len, &e);
	ckpt_report_pickle(s, vm, *rc, &e, where, base, depth);
	return vm;
}

/* Stacked pickles followed after a STOP before falling back to a linear scan. */
#define MAX_STACKED 64

/*
 * Bytes after a pickle's STOP: each further pickle is run (a loader calling
 * pickle.load repeatedly executes them all, as torch's legacy loader does),
 * whatever is left is scanned linearly.
 */
static void trailing(ckpt_scan *s, const uint8_t *b, size_t n, const char *where, long long base)
{
	if (!n)
		return;
	char t[200];
	snprintf(t, sizeof t, "%zu bytes after the pickle's STOP opcode", n);
	finding(s, "CKPT-PICKLE-TRAILING", MLSEC_SEV_MEDIUM, where ? where : "pickle", base,
	        "data after the end of the pickle", t);
	for (int k = 1; n && k <= MAX_STACKED && mlsec_pickle_sniff(b, n); k++) {
		char w[600];
		snprintf(w, sizeof w, "%s (stacked pickle %d)", where ? where : "pickle", k);
		mlsec_err rc;
		mlsec_pickle *vm = ckpt_run_pickle(s, b, n, w, base, 0, &rc);
		if (!vm)
			return;
		size_t c = rc == MLSEC_OK ? mlsec_pickle_consumed(vm) : n; /* error: rest scanned */
		mlsec_pickle_free(vm);
		b += c;
		n -= c;
		base += (long long)c;
	}
	if (!n)
		return;
	mlsec_pickle *vm = mlsec_pickle_new(NULL);
	if (!vm)
		return;
	mlsec_pickle_scan_linear(vm, b, n, 0, NULL);
	ckpt_report_pickle(s, vm, MLSEC_OK, NULL, where, base, 0);
	mlsec_pickle_free(vm);
}

static void pickle_details(ckpt_scan *s, mlsec_pickle *vm, const char *where, size_t len)
{
	json_t *arr = json_object_get(s->det, "pickles");
	if (!arr) {
		arr = json_array();
		json_object_set_new(s->det, "pickles", arr);
	}
	json_t *g = json_array();
	for (size_t i = 0; i < mlsec_pickle_global_count(vm) && i < 256; i++) {
		const mlsec_pickle_global *x = mlsec_pickle_global_at(vm, i);
		char b[512];
		snprintf(b, sizeof b, "%s.%s", x->module, x->name);
		int dup = 0;
		for (size_t k = 0; k < json_array_size(g); k++)
			dup |= !strcmp(json_string_value(json_array_get(g, k)), b);
		if (!dup)
			json_array_append_new(g, json_string(b));
	}
	json_array_append_new(arr, json_pack("{s:s, s:I, s:i, s:I, s:o}", "where",
	                                     where ? where : "file", "bytes", (json_int_t)len,
	                                     "protocol", mlsec_pickle_protocol(vm), "opcodes",
	                                     (json_int_t)mlsec_pickle_ops(vm), "globals", g));
}

/* ---- zip ------------------------------------------------------------ */

static const struct {
	unsigned bit;
	const char *rule;
	mlsec_severity sev;
	const char *title;
} zip_rules[] = {
        {MLSEC_ZIP_P_TRAVERSAL, "CKPT-ZIP-TRAVERSAL", MLSEC_SEV_HIGH,
         "zip member name escapes the archive (..)"},
        {MLSEC_ZIP_P_ABSOLUTE, "CKPT-ZIP-TRAVERSAL", MLSEC_SEV_HIGH,
         "zip member has an absolute name"},
        {MLSEC_ZIP_P_DUPLICATE, "CKPT-ZIP-DUPLICATE", MLSEC_SEV_HIGH, "duplicate zip member name"},
        {MLSEC_ZIP_P_CRC, "CKPT-ZIP-CRC", MLSEC_SEV_HIGH, "zip member CRC-32 mismatch"},
        {MLSEC_ZIP_P_LOCAL_MISMATCH, "CKPT-ZIP-ANOMALY", MLSEC_SEV_MEDIUM,
         "zip local header disagrees with the central directory"},
        {MLSEC_ZIP_P_BAD_LOCAL, "CKPT-ZIP-ANOMALY", MLSEC_SEV_HIGH,
         "zip member has no valid local header"},
        {MLSEC_ZIP_P_OVERLAP, "CKPT-ZIP-ANOMALY", MLSEC_SEV_HIGH, "zip members overlap"},
        {MLSEC_ZIP_P_ENCRYPTED, "CKPT-ZIP-ANOMALY", MLSEC_SEV_HIGH,
         "encrypted zip member (cannot be scanned)"},
        {MLSEC_ZIP_P_METHOD, "CKPT-ZIP-ANOMALY", MLSEC_SEV_HIGH,
         "zip member uses an unsupported compression method"},
        {MLSEC_ZIP_P_BAD_NAME, "CKPT-ZIP-ANOMALY", MLSEC_SEV_MEDIUM,
         "zip member name has control characters or backslashes"},
        {MLSEC_ZIP_P_SIZE, "CKPT-ZIP-ANOMALY", MLSEC_SEV_MEDIUM,
         "zip member sizes are inconsistent"},
        {MLSEC_ZIP_P_FLAGS, "CKPT-ZIP-ANOMALY", MLSEC_SEV_LOW, "zip member has unusual flags"},
};

/* only: the problem bits to report (CRC bits appear only once members
 * have been read, so they are reported at the end of the scan) */
static void zip_findings(ckpt_scan *s, unsigned only)
{
	for (size_t i = 0; i < mlsec_zip_count(s->zip); i++) {
		mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, i);
		for (size_t r = 0; r < sizeof zip_rules / sizeof zip_rules[0]; r++) {
			if (!(e->problems & zip_rules[r].bit & only))
				continue;
			mlsec_finding *f =
			        finding(s, zip_rules[r].rule, zip_rules[r].sev, e->name,
			                (long long)e->local_offset, zip_rules[r].title, NULL);
			if (f && zip_rules[r].bit == MLSEC_ZIP_P_CRC)
				mlsec_finding_set_evidence(f, "declared_crc", "%08x", e->crc);
			if (f && zip_rules[r].bit == MLSEC_ZIP_P_FLAGS)
				mlsec_finding_set_evidence(f, "flags", "0x%04x", e->flags);
		}
	}
	if (only == MLSEC_ZIP_P_CRC)
		return;
	if (mlsec_zip_prefix_len(s->zip))
		finding(s, "CKPT-ZIP-ANOMALY", MLSEC_SEV_MEDIUM, NULL, 0,
		        "data prepended to the zip archive (polyglot file)", NULL);
	if (mlsec_zip_trailing_len(s->zip))
		finding(s, "CKPT-ZIP-ANOMALY", MLSEC_SEV_MEDIUM, NULL, -1,
		        "data after the zip end-of-central-directory record", NULL);
}

static void zip_entry_findings(ckpt_scan *s)
{
	zip_findings(s, ~(unsigned)MLSEC_ZIP_P_CRC);
}

static void zip_crc_findings(ckpt_scan *s)
{
	zip_findings(s, MLSEC_ZIP_P_CRC);
}

typedef struct head_ctx {
	uint8_t *buf;
	size_t len, max;
} head_ctx;

static int head_sink(void *c, const uint8_t *d, size_t n, uint64_t pos)
{
	head_ctx *h = c;
	(void)pos;
	size_t k = n < h->max - h->len ? n : h->max - h->len;
	memcpy(h->buf + h->len, d, k);
	h->len += k;
	return h->len >= h->max;
}

/* Bytes of a non-pickle member searched for GLOBAL/INST opcodes. */
#define PRIMITIVE_SCAN_MAX (4u * 1024 * 1024)

/*
 * Linear opcode scan of a member that does not start like a pickle,
 * reporting only dangerous globals (unknown names found this way in
 * arbitrary bytes would be noise).
 */
static void scan_member_for_primitives(ckpt_scan *s, size_t i)
{
	mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, i);
	head_ctx h = {mlsec_malloc(PRIMITIVE_SCAN_MAX), 0, PRIMITIVE_SCAN_MAX};
	int crc;
	mlsec_pickle *vm = h.buf ? mlsec_pickle_new(NULL) : NULL;
	if (vm && mlsec_zip_member_stream(s->zip, i, head_sink, &h, &crc, NULL) == MLSEC_OK &&
	    mlsec_pickle_scan_linear(vm, h.buf, h.len, 0, NULL) == MLSEC_OK) {
		for (size_t k = 0; k < mlsec_pickle_global_count(vm); k++) {
			const mlsec_pickle_global *g = mlsec_pickle_global_at(vm, k);
			const char *why;
			if (mlsec_pickle_classify(g->module, g->name, &why) !=
			    MLSEC_PCLASS_DANGEROUS)
				continue;
			char title[300];
			snprintf(title, sizeof title,
			         "pickle opcodes naming dangerous %.120s.%.120s", g->module,
			         g->name);
			mlsec_finding *f =
			        finding(s, "CKPT-PICKLE-EXEC", MLSEC_SEV_CRITICAL, e->name,
			                (long long)e->data_offset + g->offset, title, why);
			if (f)
				mlsec_finding_set_evidence(
				        f, "found_by",
				        "linear scan of a member that does not start "
				        "like a pickle");
			break; /* one is enough to fail the artifact */
		}
	}
	mlsec_pickle_free(vm);
	mlsec_free(h.buf);
}

/* A member that the loader never reads: reported, and scanned for pickles.
 * quiet: report only members that hold a pickle. */
static void hidden_member_q(ckpt_scan *s, size_t i, int quiet)
{
	mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, i);
	uint8_t head[16];
	head_ctx h = {head, 0, sizeof head};
	mlsec_error err;
	int crc;
	if (mlsec_zip_member_stream(s->zip, i, head_sink, &h, &crc, &err) != MLSEC_OK) {
		finding(s, "CKPT-ZIP-HIDDEN-MEMBER", MLSEC_SEV_MEDIUM, e->name,
		        (long long)e->local_offset,
		        "zip member not used by the checkpoint loader (unreadable)", err.text);
		return;
	}
	if (!mlsec_pickle_sniff(head, h.len)) {
		/* protocol-0 pickles need not start with a recognisable opcode
		 * ("(S'id'\nios\nsystem\n."): look for dangerous names too */
		scan_member_for_primitives(s, i);
		if (quiet)
			return;
		finding(s, "CKPT-ZIP-HIDDEN-MEMBER", MLSEC_SEV_MEDIUM, e->name,
		        (long long)e->local_offset, "zip member not used by the checkpoint loader",
		        NULL);
		return;
	}
	finding(s, "CKPT-PICKLE-HIDDEN", MLSEC_SEV_HIGH, e->name, (long long)e->data_offset,
	        "pickle hidden in a zip member the loader does not reference", NULL);
	uint8_t *buf;
	size_t len;
	mlsec_err rc = mlsec_zip_member_read(s->zip, i, MLSEC_CKPT_MAX_HIDDEN_SCAN, &buf, &len,
	                                     &crc, &err);
	if (rc == MLSEC_ERR_LIMIT) {
		/* too large to interpret: scan the first part linearly */
		head_ctx big = {mlsec_malloc(MLSEC_CKPT_MAX_HIDDEN_SCAN), 0,
		                MLSEC_CKPT_MAX_HIDDEN_SCAN};
		if (big.buf &&
		    mlsec_zip_member_stream(s->zip, i, head_sink, &big, &crc, &err) == MLSEC_OK) {
			mlsec_pickle *vm = mlsec_pickle_new(NULL);
			if (vm) {
				mlsec_pickle_scan_linear(vm, big.buf, big.len, 0, NULL);
				ckpt_report_pickle(s, vm, MLSEC_OK, NULL, e->name,
				                   (long long)e->data_offset, 0);
			}
			mlsec_pickle_free(vm);
		}
		mlsec_free(big.buf);
		return;
	}
	if (rc != MLSEC_OK) {
		ckpt_malformed(s, e->name, (long long)e->data_offset, "hidden member: %s",
		               err.text);
		return;
	}
	mlsec_pickle *vm = ckpt_run_pickle(s, buf, len, e->name, (long long)e->data_offset, 0, &rc);
	if (vm && rc == MLSEC_OK)
		trailing(s, buf + mlsec_pickle_consumed(vm), len - mlsec_pickle_consumed(vm),
		         e->name, (long long)e->data_offset + (long long)mlsec_pickle_consumed(vm));
	mlsec_pickle_free(vm);
	mlsec_free(buf);
}

static void hidden_member(ckpt_scan *s, size_t i)
{
	hidden_member_q(s, i, 0);
}

static int known_torch_member(const char *rest)
{
	static const char *const names[] = {"data.pkl",
	                                    "version",
	                                    ".data/version",
	                                    "byteorder",
	                                    ".data/serialization_id",
	                                    ".format_version",
	                                    ".storage_alignment"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(rest, names[i]))
			return 1;
	return 0;
}

static void scan_torch_zip(ckpt_scan *s, const char *prefix, long pkl)
{
	mlsec_zip_entry *pe = mlsec_zip_entry_at(s->zip, (size_t)pkl);
	uint8_t *buf;
	size_t len;
	int crc;
	mlsec_error err;
	mlsec_err rc = mlsec_zip_member_read(s->zip, (size_t)pkl, MLSEC_CKPT_MAX_PICKLE, &buf, &len,
	                                     &crc, &err);
	if (rc != MLSEC_OK) {
		ckpt_malformed(s, pe->name, (long long)pe->local_offset, "%s", err.text);
		return;
	}
	long long base = (long long)pe->data_offset;
	mlsec_pickle *vm = ckpt_run_pickle_mode(s, buf, len, pe->name, base, 0, 0, &rc);
	if (!vm) {
		mlsec_free(buf);
		return;
	}
	pickle_details(s, vm, pe->name, len);
	if (rc == MLSEC_OK) {
		trailing(s, buf + mlsec_pickle_consumed(vm), len - mlsec_pickle_consumed(vm),
		         pe->name, base + (long long)mlsec_pickle_consumed(vm));
		if (mlsec_torch_collect(vm, mlsec_pickle_root(vm), &s->tl, &err) != MLSEC_OK)
			ckpt_malformed(s, pe->name, -1, "%s", err.text);
	}
	keep_vm(s, vm);
	mlsec_free(buf);

	/* locate storages: <prefix>/data/<key> */
	size_t n = mlsec_zip_count(s->zip);
	unsigned char *used = mlsec_calloc(n ? n : 1, 1);
	if (!used)
		return;
	used[pkl] = 1;
	for (size_t i = 0; i < s->tl.n; i++) {
		mlsec_tensor_ref *t = &s->tl.t[i];
		if (t->mem)
			continue; /* NumPy array inline in the pickle */
		char name[1200];
		snprintf(name, sizeof name, "%s/data/%s", prefix, t->storage_key);
		long m = mlsec_zip_find(s->zip, name);
		if (m < 0) {
			mlsec_finding *f = finding(s, "CKPT-TENSOR-MISSING-STORAGE", MLSEC_SEV_HIGH,
			                           t->name, t->pickle_offset,
			                           "tensor storage missing from the archive", NULL);
			if (f)
				mlsec_finding_set_evidence(f, "member", "%s", name);
			continue;
		}
		used[m] = 1;
		mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, (size_t)m);
		size_t es = mlsec_dtype_size(t->storage_dtype);
		if (!es)
			continue; /* unknown storage type: counted, not read */
		if (t->storage_numel > e->usize / es) {
			finding(s, "CKPT-TENSOR-BOUNDS", MLSEC_SEV_HIGH, t->name,
			        (long long)e->local_offset,
			        "storage member is smaller than the storage it declares", NULL);
			t->storage_numel = e->usize / es;
		}
		if (mlsec_tensor_ref_check_bounds(t, &err) != MLSEC_OK) {
			finding(s, "CKPT-TENSOR-BOUNDS", MLSEC_SEV_HIGH, t->name, t->pickle_offset,
			        "tensor view reaches outside its storage", err.text);
			continue;
		}
		t->in_zip = 1;
		t->zip_index = (size_t)m;
		t->file_offset = 0; /* member-relative base; element offset added when read */
		t->file_len = t->storage_numel * es;
		t->located = 1;
	}
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < n; i++) {
		if (used[i])
			continue;
		mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, i);
		if (e->name_len > pl + 1 && !strncmp(e->name, prefix, pl) && e->name[pl] == '/' &&
		    known_torch_member(e->name + pl + 1) &&
		    !(e->problems & MLSEC_ZIP_P_DUPLICATE)) {
			/* small metadata members: verify their CRC too */
			int c;
			mlsec_zip_member_stream(s->zip, i, NULL, NULL, &c, NULL);
			continue;
		}
		hidden_member(s, i);
	}
	mlsec_free(used);
}

static void scan_npy_bytes(ckpt_scan *s, const uint8_t *head, size_t hl, const char *where,
                           int in_zip, size_t zi, uint64_t total, long long base);

static void scan_npz(ckpt_scan *s)
{
	for (size_t i = 0; i < mlsec_zip_count(s->zip); i++) {
		mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, i);
		size_t nl = e->name_len;
		if (nl < 4 || strcmp(e->name + nl - 4, ".npy")) {
			hidden_member(s, i);
			continue;
		}
		uint8_t *head = mlsec_malloc(NPY_HEAD_MAX);
		if (!head)
			return;
		head_ctx h = {head, 0, NPY_HEAD_MAX};
		int crc;
		mlsec_error err;
		if (mlsec_zip_member_stream(s->zip, i, head_sink, &h, &crc, &err) != MLSEC_OK)
			ckpt_malformed(s, e->name, (long long)e->local_offset, "%s", err.text);
		else
			scan_npy_bytes(s, head, h.len, e->name, 1, i, e->usize,
			               (long long)e->data_offset);
		mlsec_free(head);
	}
}

/* ---- npy ------------------------------------------------------------ */

static void scan_npy_bytes(ckpt_scan *s, const uint8_t *head, size_t hl, const char *where,
                           int in_zip, size_t zi, uint64_t total, long long base)
{
	mlsec_npy_info info;
	mlsec_error err;
	if (mlsec_npy_parse(head, hl, &info, &err) != MLSEC_OK) {
		ckpt_malformed(s, where, base, "npy: %s", err.text);
		return;
	}
	if (info.is_object) {
		finding(s, "CKPT-NPY-OBJECT", MLSEC_SEV_MEDIUM, where, base,
		        "NumPy object array: its data is a pickle (numpy.load needs allow_pickle)",
		        NULL);
		uint8_t *buf = NULL;
		size_t len = 0;
		int crc;
		mlsec_err rc;
		if (in_zip) {
			rc = mlsec_zip_member_read(s->zip, zi, MLSEC_CKPT_MAX_PICKLE, &buf, &len,
			                           &crc, &err);
		} else if (total > MLSEC_CKPT_MAX_PICKLE) {
			rc = mlsec_error_set(&err, MLSEC_ERR_LIMIT,
			                     "object array too large to scan");
		} else {
			buf = mlsec_malloc((size_t)total + 1);
			len = (size_t)total;
			rc = buf ? mlsec_src_read(&s->src, 0, buf, len, &err) : MLSEC_ERR_NOMEM;
		}
		if (rc != MLSEC_OK) {
			ckpt_malformed(s, where, base, "%s", err.text);
		} else if (info.data_offset <= len) {
			mlsec_pickle *vm = ckpt_run_pickle(
			        s, buf + info.data_offset, len - (size_t)info.data_offset, where,
			        base + (long long)info.data_offset, 0, &rc);
			if (vm)
				pickle_details(s, vm, where, len - (size_t)info.data_offset);
			mlsec_pickle_free(vm);
		}
		mlsec_free(buf);
		return;
	}
	mlsec_tensor_ref t;
	memset(&t, 0, sizeof t);
	t.pickle_offset = -1;
	t.dtype = t.storage_dtype = info.dtype;
	t.ndim = info.ndim;
	t.numel = t.storage_numel = info.numel;
	memcpy(t.shape, info.shape, sizeof t.shape);
	/* stats ignore element order; conversion writes row-major, so a
	 * Fortran-ordered array gets its column-major strides */
	int64_t st = 1;
	for (int d = info.fortran_order ? 0 : t.ndim - 1; info.fortran_order ? d < t.ndim : d >= 0;
	     d += info.fortran_order ? 1 : -1) {
		t.stride[d] = st;
		st *= t.shape[d] ? t.shape[d] : 1;
	}
	size_t es = mlsec_dtype_size(t.dtype);
	const char *nm = where ? where : "array";
	size_t nl = strlen(nm);
	t.name = mlsec_strndup(nm, nl > 4 && !strcmp(nm + nl - 4, ".npy") ? nl - 4 : nl);
	if (!t.name)
		return;
	if (!es) {
		finding(s, "CKPT-NPY-DTYPE", MLSEC_SEV_LOW, where, base,
		        "NumPy dtype not analysed (big-endian, structured or exotic)", info.descr);
		mlsec_free(t.name);
		return;
	}
	if (info.numel > (total - info.data_offset) / es || info.data_offset > total) {
		ckpt_malformed(s, where, base, "npy: data shorter than its shape says");
		mlsec_free(t.name);
		return;
	}
	if (info.data_offset + info.numel * es != total)
		finding(s, "CKPT-NPY-TRAILING", MLSEC_SEV_MEDIUM, where, base,
		        "data after the array's elements", NULL);
	t.located = 1;
	t.in_zip = in_zip;
	t.zip_index = zi;
	t.file_offset = info.data_offset + (in_zip ? 0 : 0);
	t.file_len = info.numel * es;
	if (mlsec_tensor_list_push(&s->tl, &t) != MLSEC_OK)
		mlsec_free(t.name);
}

/* ---- legacy torch and raw pickles ------------------------------------ */

static int is_legacy_magic(const mlsec_pval *v)
{
	static const uint8_t magic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
	return v && v->kind == MLSEC_PV_BIGINT && v->u.str.len == sizeof magic &&
	       !memcmp(v->u.str.s, magic, sizeof magic);
}

static void scan_legacy(ckpt_scan *s, const uint8_t *m, size_t size, size_t pos)
{
	/* protocol version, sys_info, the object, then the storage key list */
	mlsec_pickle *main_vm = NULL, *keys_vm = NULL;
	const char *what[] = {"protocol version", "sys info", "object", "storage keys"};
	mlsec_err rc = MLSEC_OK;
	for (int k = 0; k < 4; k++) {
		char where[64];
		snprintf(where, sizeof where, "legacy %s pickle", what[k]);
		mlsec_pickle *vm = ckpt_run_pickle_mode(s, m + pos, size - pos, where,
		                                        (long long)pos, 0, k < 2, &rc);
		if (!vm) {
			mlsec_pickle_free(main_vm);
			return;
		}
		if (k == 2)
			pickle_details(s, vm, "legacy object pickle", mlsec_pickle_consumed(vm));
		if (rc != MLSEC_OK) {
			mlsec_pickle_free(vm);
			mlsec_pickle_free(main_vm);
			return;
		}
		pos += mlsec_pickle_consumed(vm);
		if (k == 2)
			main_vm = vm;
		else if (k == 3)
			keys_vm = vm;
		else
			mlsec_pickle_free(vm);
	}
	mlsec_error err;
	if (mlsec_torch_collect(main_vm, mlsec_pickle_root(main_vm), &s->tl, &err) != MLSEC_OK)
		ckpt_malformed(s, "legacy object pickle", -1, "%s", err.text);
	const mlsec_pval *keys = mlsec_pickle_root(keys_vm);
	if (!keys || keys->kind != MLSEC_PV_LIST) {
		ckpt_malformed(s, "legacy storage keys pickle", (long long)pos,
		               "storage key list is not a list");
		goto out;
	}
	for (size_t k = 0; k < keys->u.seq.n; k++) {
		const mlsec_pval *key = keys->u.seq.items[k];
		if (key->kind != MLSEC_PV_STR) {
			ckpt_malformed(s, "legacy storages", (long long)pos,
			               "storage key is not a string");
			goto out;
		}
		if (size - pos < 8) {
			ckpt_malformed(s, "legacy storages", (long long)pos,
			               "truncated storage header");
			goto out;
		}
		uint64_t numel = 0;
		for (int b = 7; b >= 0; b--)
			numel = numel << 8 | m[pos + (size_t)b];
		pos += 8;
		size_t es = 0;
		for (size_t i = 0; i < s->tl.n && !es; i++)
			if (!s->tl.t[i].mem && s->tl.t[i].storage_key &&
			    !strcmp(s->tl.t[i].storage_key, key->u.str.s))
				es = mlsec_dtype_size(s->tl.t[i].storage_dtype);
		if (!es) {
			ckpt_malformed(s, "legacy storages", (long long)pos,
			               "storage '%s' has no tensor giving its element size",
			               key->u.str.s);
			goto out;
		}
		if (numel > (size - pos) / es) {
			ckpt_malformed(s, "legacy storages", (long long)pos,
			               "storage '%s' is truncated", key->u.str.s);
			goto out;
		}
		for (size_t i = 0; i < s->tl.n; i++) {
			mlsec_tensor_ref *t = &s->tl.t[i];
			if (!t->storage_key || strcmp(t->storage_key, key->u.str.s))
				continue;
			if (t->storage_numel != numel)
				finding(s, "CKPT-TENSOR-BOUNDS", MLSEC_SEV_HIGH, t->name,
				        (long long)pos,
				        "stored storage size differs from the declared one", NULL);
			t->storage_numel = numel;
			if (mlsec_tensor_ref_check_bounds(t, &err) != MLSEC_OK) {
				finding(s, "CKPT-TENSOR-BOUNDS", MLSEC_SEV_HIGH, t->name,
				        t->pickle_offset, "tensor view reaches outside its storage",
				        err.text);
				continue;
			}
			t->located = 1;
			t->file_offset = pos;
			t->file_len = numel * es;
		}
		pos += numel * es;
	}
	for (size_t i = 0; i < s->tl.n; i++)
		if (!s->tl.t[i].located && mlsec_dtype_size(s->tl.t[i].storage_dtype))
			finding(s, "CKPT-TENSOR-MISSING-STORAGE", MLSEC_SEV_HIGH, s->tl.t[i].name,
			        s->tl.t[i].pickle_offset, "tensor storage missing from the file",
			        NULL);
	if (pos < size)
		trailing(s, m + pos, size - pos, "after legacy storages", (long long)pos);
out:
	keep_vm(s, main_vm);
	mlsec_pickle_free(keys_vm);
}

/*
 * A pickle file that is also a valid zip (end-of-central-directory at the
 * end): torch.load takes it as a pickle, zip-based scanners as a zip. Both
 * views are scanned and the ambiguity itself is a finding.
 */
static void polyglot_zip(ckpt_scan *s)
{
	mlsec_zip *z;
	mlsec_error e;
	if (mlsec_zip_open(&s->src, &z, &e) != MLSEC_OK)
		return;
	mlsec_finding *f = finding(s, "CKPT-POLYGLOT", MLSEC_SEV_HIGH, NULL, 0,
	                           "file is both a pickle and a zip archive",
	                           "loaders disagree on what this file is; its zip members are "
	                           "scanned too");
	if (f)
		mlsec_finding_set_evidence(f, "zip_members", "%zu", mlsec_zip_count(z));
	s->zip = z;
	for (size_t i = 0; i < mlsec_zip_count(z); i++)
		hidden_member_q(s, i, 1);
}

/* The legacy magic number pickled as LONG1 in the first bytes. */
static int legacy_head(const uint8_t *b, size_t n)
{
	static const uint8_t pat[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
	                              0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
	size_t lim = n < 32 ? n : 32;
	for (size_t i = 0; i + sizeof pat <= lim; i++)
		if (!memcmp(b + i, pat, sizeof pat))
			return 1;
	return 0;
}

static void scan_pickle_file(ckpt_scan *s, uint64_t size)
{
	if (size > SIZE_MAX) {
		ckpt_malformed(s, NULL, 0, "file too large to map");
		return;
	}
	void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, s->fd, 0);
	if (m == MAP_FAILED) {
		ckpt_malformed(s, NULL, 0, "cannot map the file: %s", strerror(errno));
		return;
	}
	madvise(m, (size_t)size, MADV_SEQUENTIAL);
	const uint8_t *b = m;
	mlsec_err rc;
	int legacy = legacy_head(b, (size_t)size);
	/* a legacy file needs real values (storage ids, key list); a raw
	 * pickle only needs scanning */
	mlsec_pickle_limits lim;
	memset(&lim, 0, sizeof lim);
	lim.scan_only = !legacy && size > FULL_PICKLE_MAX;
	lim.max_decoded = legacy || lim.scan_only ? 0 : FULL_PICKLE_DECODED;
	lim.input_mapped = 1;
	mlsec_pickle *vm = mlsec_pickle_new(&lim);
	if (!vm) {
		munmap(m, (size_t)size);
		return;
	}
	mlsec_error e;
	mlsec_error_clear(&e);
	rc = mlsec_pickle_run(vm, b, (size_t)size, &e);
	if (!legacy && !lim.scan_only && (rc == MLSEC_ERR_LIMIT || rc == MLSEC_ERR_NOMEM)) {
		/* over the full-decode budget (or another bound, which the scan
		 * meets again and reports): the findings come from a scan-only
		 * run; inline NumPy arrays are then not analysed */
		mlsec_pickle_free(vm);
		lim.scan_only = 1;
		lim.max_decoded = 0;
		if (!(vm = mlsec_pickle_new(&lim))) {
			munmap(m, (size_t)size);
			return;
		}
		mlsec_error_clear(&e);
		rc = mlsec_pickle_run(vm, b, (size_t)size, &e);
		json_object_set_new(s->det, "pickle_values",
		                    json_string("not decoded: over the full-decode budget, "
		                                "scanned only"));
	}
	if (rc == MLSEC_OK && legacy && is_legacy_magic(mlsec_pickle_root(vm))) {
		mlsec_artifact_set_format(s->a, "pytorch-legacy");
		ckpt_report_pickle(s, vm, rc, &e, "legacy magic pickle", 0, 0);
		size_t pos = mlsec_pickle_consumed(vm);
		mlsec_pickle_free(vm);
		scan_legacy(s, b, (size_t)size, pos);
	} else {
		mlsec_artifact_set_format(s->a, "pickle");
		ckpt_report_pickle(s, vm, rc, &e, NULL, 0, 0);
		pickle_details(s, vm, NULL, (size_t)size);
		if (rc == MLSEC_OK) {
			size_t c = mlsec_pickle_consumed(vm);
			trailing(s, b + c, (size_t)size - c, "pickle", (long long)c);
		}
		if (rc == MLSEC_OK && !lim.scan_only) {
			/* NumPy arrays inside: inline data, copied into the VM */
			mlsec_error ce;
			if (mlsec_torch_collect(vm, mlsec_pickle_root(vm), &s->tl, &ce) != MLSEC_OK)
				ckpt_malformed(s, NULL, -1, "%s", ce.text);
			size_t unlocated = 0;
			for (size_t i = 0; i < s->tl.n; i++)
				unlocated += !s->tl.t[i].located;
			if (unlocated)
				json_object_set_new(s->det, "tensors_without_storage",
				                    json_integer((json_int_t)unlocated));
		}
		keep_vm(s, vm);
	}
	munmap(m, (size_t)size);
}

/* ---- dispatch ------------------------------------------------------- */

static int pickle_start(const uint8_t *b, size_t n)
{
	if (!n)
		return 0;
	if (b[0] == 0x80)
		return n > 1 && b[1] <= 5;
	/* protocol 0/1 first opcodes */
	return strchr("(}]N)cIJKLSVUTXdlFGM", b[0]) != NULL && b[0] != 0;
}

static void scan_zip(ckpt_scan *s)
{
	mlsec_error err;
	mlsec_artifact_set_format(s->a, "zip");
	if (mlsec_zip_open(&s->src, &s->zip, &err) != MLSEC_OK) {
		ckpt_malformed(s, NULL, err.offset, "zip: %s", err.text);
		return;
	}
	zip_entry_findings(s);
	size_t n = mlsec_zip_count(s->zip);
	/* PyTorch takes the archive name from the first entry */
	char prefix[MLSEC_ZIP_MAX_NAME + 1] = "";
	if (n) {
		const char *first = mlsec_zip_entry_at(s->zip, 0)->name;
		const char *sl = strchr(first, '/');
		if (sl)
			snprintf(prefix, sizeof prefix, "%.*s", (int)(sl - first), first);
	}
	char pk[MLSEC_ZIP_MAX_NAME + 16];
	snprintf(pk, sizeof pk, "%s/data.pkl", prefix);
	long pkl = *prefix ? mlsec_zip_find(s->zip, pk) : -1;
	if (pkl >= 0) {
		mlsec_artifact_set_format(s->a, "pytorch-zip");
		scan_torch_zip(s, prefix, pkl);
	} else {
		int npz = n > 0;
		for (size_t i = 0; i < n; i++) {
			mlsec_zip_entry *e = mlsec_zip_entry_at(s->zip, i);
			npz &= e->name_len > 4 && !strcmp(e->name + e->name_len - 4, ".npy");
		}
		if (npz) {
			mlsec_artifact_set_format(s->a, "npz");
			scan_npz(s);
		} else {
			mlsec_artifact_set_format(s->a, "zip");
			finding(s, "CKPT-ZIP-UNKNOWN", MLSEC_SEV_INFO, NULL, -1,
			        "zip archive without a PyTorch or NumPy layout; members scanned "
			        "for pickles",
			        NULL);
			for (size_t i = 0; i < n; i++)
				hidden_member(s, i);
		}
	}
	/* the pickle readers above verified the members they read; check the
	 * CRC of storages when their data is streamed (stats.c) */
}

/* The artifact's SHA-256 runs on a second thread, overlapping the triage
 * pass (hashing a large checkpoint costs more than triaging it). */
typedef struct hash_job {
	const char *path;
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size;
	mlsec_err rc;
} hash_job;

static void *hash_thread(void *arg)
{
	hash_job *j = arg;
	j->rc = mlsec_sha256_file(j->path, j->hex, &j->size, NULL);
	return NULL;
}

mlsec_err mlsec_checkpoint_scan_file(const char *path, const mlsec_ckpt_opts *o, mlsec_report *rep,
                                     mlsec_error *err)
{
	ckpt_scan s;
	memset(&s, 0, sizeof s);
	s.o = o;
	s.path = path;
	s.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s.fd < 0)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(s.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(s.fd);
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: not a regular file", path);
	}
	s.a = mlsec_report_add_artifact(rep, path, NULL);
	if (!s.a) {
		close(s.fd);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	hash_job hj = {path, "", 0, MLSEC_ERR_INTERNAL};
	pthread_t ht;
	int hashing = 0;
	if (!o->no_hash) {
		hashing = pthread_create(&ht, NULL, hash_thread, &hj) == 0;
		if (!hashing) {
			mlsec_error he;
			mlsec_artifact_hash_file(s.a, &he);
		}
	}
	s.det = mlsec_artifact_details(s.a);
	mlsec_src_init_fd(&s.src, s.fd, (uint64_t)st.st_size);
	uint8_t head[HEAD_LEN];
	size_t hn = st.st_size < HEAD_LEN ? (size_t)st.st_size : HEAD_LEN;
	mlsec_err rc = mlsec_src_read(&s.src, 0, head, hn, err);
	if (rc != MLSEC_OK) {
		if (hashing)
			pthread_join(ht, NULL);
		close(s.fd);
		return rc;
	}
	if (hn == 0) {
		ckpt_malformed(&s, NULL, 0, "empty file");
	} else if (hn >= 4 && (!memcmp(head, "PK\3\4", 4) || !memcmp(head, "PK\5\6", 4))) {
		scan_zip(&s);
	} else if (mlsec_npy_sniff(head, hn)) {
		mlsec_artifact_set_format(s.a, "npy");
		uint64_t hl =
		        (uint64_t)st.st_size < NPY_HEAD_MAX ? (uint64_t)st.st_size : NPY_HEAD_MAX;
		uint8_t *h = mlsec_malloc((size_t)hl);
		if (h && mlsec_src_read(&s.src, 0, h, (size_t)hl, err) == MLSEC_OK)
			scan_npy_bytes(&s, h, (size_t)hl, NULL, 0, 0, (uint64_t)st.st_size, 0);
		mlsec_free(h);
	} else if (mlsec_safetensors_sniff(head, hn, (uint64_t)st.st_size) ||
	           (hn > 8 && head[8] == '{')) {
		mlsec_artifact_set_format(s.a, "safetensors");
		json_t *meta = NULL;
		mlsec_error se;
		if (mlsec_safetensors_read(&s.src, &s.tl, &meta, &se) != MLSEC_OK)
			ckpt_malformed(&s, NULL, se.offset, "safetensors: %s", se.text);
		else if (meta)
			json_object_set_new(s.det, "metadata", meta);
	} else if (pickle_start(head, hn)) {
		scan_pickle_file(&s, (uint64_t)st.st_size);
		polyglot_zip(&s);
	} else {
		ckpt_malformed(&s, NULL, 0,
		               "not a recognised checkpoint format "
		               "(zip, pickle, legacy PyTorch, npy/npz, safetensors)");
	}
	if (!s.malformed || s.tl.n) {
		rc = ckpt_tensor_stats(&s, err);
		if (rc == MLSEC_OK && s.o->write_fingerprint)
			rc = ckpt_fingerprint_write(&s, err);
		if (rc == MLSEC_OK && s.o->reference)
			rc = ckpt_fingerprint_compare(&s, err);
		if (rc == MLSEC_OK && s.o->convert)
			rc = ckpt_convert(&s, err);
	}
	if (s.zip)
		zip_crc_findings(&s);
	if (hashing) {
		pthread_join(ht, NULL);
		if (hj.rc == MLSEC_OK)
			mlsec_artifact_set_digest(s.a, hj.hex, hj.size);
	}
	mlsec_free(s.sum);
	mlsec_free(s.have);
	mlsec_tensor_list_free(&s.tl);
	for (size_t i = 0; i < s.nvms; i++)
		mlsec_pickle_free(s.vms[i]);
	mlsec_zip_free(s.zip);
	close(s.fd);
	if (rc == MLSEC_ERR_NOMEM || rc == MLSEC_ERR_TIMEOUT)
		return rc;
	if (rc != MLSEC_OK)
		mlsec_report_add_error(rep, "%s: %s", path, err ? err->text : mlsec_strerror(rc));
	return MLSEC_OK;
}
