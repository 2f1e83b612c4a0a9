/*
 * lint.c - the ONNX graph lint of the export guard. One pass over the main
 * graph and every subgraph (If/Loop/Scan bodies, graph attributes of any
 * op) in node order, which ONNX requires to be topological, so the flags of
 * every value are known when a node consumes it:
 *
 *   F_IN     the value depends on the numbers in a model input
 *   F_SHAPE  it depends only on input shapes (Shape/Size)
 *   F_CMP    an input-derived value was compared against a constant
 *   F_AGG    an input-derived value was reduced, sliced or gathered
 *
 * A trigger backdoor ("ShadowLogic") needs a condition computed from the
 * input by comparison with attacker constants that then switches the
 * model: If/Loop on an F_CMP condition, or Where on an F_CMP|F_AGG one
 * (the aggregation is what turns a per-pixel test into a switch for the
 * whole output; masked_fill-style Where on a mask has no aggregation).
 *
 * Rule ids and severities are listed in docs/export-guard.md.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export_internal.h"
#include "export_onnx.h"
#include "lint.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"

#define F_IN 1u
#define F_SHAPE 2u
#define F_CMP 4u
#define F_AGG 8u
#define F_DEFINED 16u

#define LINT_MAX_GRAPH_DEPTH 16 /* subgraph nesting we analyse */
#define LINT_MAX_FINDINGS 1000  /* per model; then one note */
#define LINT_WHERE_MAX 512

typedef struct lint {
	mlsec_artifact *a;
	double thr;
	const mlsec_export_opts *o;
	const char *path;
	char dir[PATH_MAX]; /* resolved model directory */
	const Onnx__ModelProto *mp;
	int64_t opset; /* default domain, -1 when not imported */
	nmap flags;    /* value name -> F_* */
	nmap used;     /* value names consumed by a node or graph output */
	nmap nodes;    /* node names seen */
	size_t nfind;
	mlsec_finding *truncated; /* the EXPORT-LINT-TRUNCATED note, once the cap is hit */
	int oom;
} lint;

static mlsec_finding *finding(lint *L, const char *rule, mlsec_severity sev, const char *where,
                              const Onnx__NodeProto *n, const char *title, const char *fmt, ...)
        __attribute__((format(printf, 7, 8)));

static mlsec_finding *finding(lint *L, const char *rule, mlsec_severity sev, const char *where,
                              const Onnx__NodeProto *n, const char *title, const char *fmt, ...)
{
	if (L->nfind == LINT_MAX_FINDINGS) {
		L->nfind++;
		L->truncated = mlsec_artifact_add_finding(
		        L->a, "EXPORT-LINT-TRUNCATED", MLSEC_SEV_INFO, "Further findings omitted",
		        "more than %d findings; this note has the severity of the worst one "
		        "omitted",
		        LINT_MAX_FINDINGS);
		if (!L->truncated)
			L->oom = 1;
		else
			mlsec_finding_set_location(L->truncated, NULL, 0, 0, "model");
	}
	if (L->nfind > LINT_MAX_FINDINGS) {
		/* A flood of minor findings must not hide a critical one behind
		 * an info note: the gate sees the worst omitted severity. */
		if (L->truncated && sev > L->truncated->severity)
			L->truncated->severity = sev;
		return NULL;
	}
	L->nfind++;
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	mlsec_finding *f = mlsec_artifact_add_finding(L->a, rule, sev, title, "%s", detail);
	if (!f) {
		L->oom = 1;
		return NULL;
	}
	mlsec_finding_set_location(f, NULL, 0, 0, where);
	if (n) {
		mlsec_finding_set_evidence(f, "node", "%s", n->name ? n->name : "");
		mlsec_finding_set_evidence(
		        f, "op", "%s%s%s", n->domain && *n->domain ? n->domain : "",
		        n->domain && *n->domain ? "::" : "", n->op_type ? n->op_type : "");
	}
	return f;
}

/* Location paths are informative: a path longer than the buffer is cut
 * (through va_list, so the compiler does not flag each call site). */
static void wfmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void wfmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

static unsigned get_flags(lint *L, const char *name)
{
	unsigned *v = nmap_slot(&L->flags, name, 0);
	return v ? *v : 0;
}

static void set_flags(lint *L, const char *name, unsigned f)
{
	unsigned *v = nmap_slot(&L->flags, name, 1);
	if (!v)
		L->oom = 1;
	else
		*v = f | F_DEFINED;
}

static void mark_used(lint *L, const char *name)
{
	unsigned *v = nmap_slot(&L->used, name, 1);
	if (!v)
		L->oom = 1;
	else
		*v = 1;
}

static int std_domain(const lint *L, const char *d)
{
	if (!d || !*d || !strcmp(d, "ai.onnx") || !strcmp(d, "ai.onnx.ml"))
		return 1;
	for (size_t i = 0; L->o && i < L->o->nallowed; i++)
		if (!strcmp(d, L->o->allowed_domains[i]))
			return 1;
	return 0;
}

static void lint_text(lint *L, const char *where, const Onnx__NodeProto *n, const char *what,
                      const char *s, size_t len)
{
	const char *marker = NULL;
	unsigned f = lint_text_flags(s, len, &marker);
	if (f & TEXT_SCRIPT)
		finding(L, "EXPORT-SUSPICIOUS-TEXT", MLSEC_SEV_HIGH, where, n,
		        "Script or shell command in model text",
		        "%s contains '%s'; ONNX runtimes ignore it, but tooling that renders or "
		        "evaluates it does not",
		        what, marker);
	else if (f & TEXT_URL)
		finding(L, "EXPORT-SUSPICIOUS-TEXT", MLSEC_SEV_MEDIUM, where, n,
		        "URL in model text", "%s contains a '%s' URL", what, marker);
}

/* ---- tensors ---- */

static int parse_u64(const char *s, uint64_t *v)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return 0;
	char *end = NULL;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return 0;
	*v = x;
	return 1;
}

static void lint_external(lint *L, const Onnx__TensorProto *t, const char *where,
                          uint64_t want_bytes)
{
	const char *loc = export_tensor_ext(t, "location");
	const char *tn = t->name ? t->name : "";
	if (!loc || !*loc) {
		finding(L, "EXPORT-EXTERNAL-DATA-MISSING", MLSEC_SEV_HIGH, where, NULL,
		        "External tensor without a location", "tensor '%s'", tn);
		return;
	}
	/* Lexical checks first (CVE-2022-25882: "../x", absolute paths;
	 * CVE-2024-27318: "a/../../x" passes a naive prefix test), then the
	 * resolved path, so that a symlink escape is caught too. */
	int dotdot = 0;
	for (const char *p = loc; *p;) {
		const char *e = strchr(p, '/');
		size_t k = e ? (size_t)(e - p) : strlen(p);
		if (k == 2 && p[0] == '.' && p[1] == '.')
			dotdot = 1;
		p += k + (e ? 1 : 0);
		if (!e)
			break;
	}
	if (loc[0] == '/' || loc[0] == '\\' || strchr(loc, ':') || dotdot || strchr(loc, '\\')) {
		mlsec_finding *f = finding(
		        L, "EXPORT-EXTERNAL-DATA-TRAVERSAL", MLSEC_SEV_CRITICAL, where, NULL,
		        "External data path escapes the model directory",
		        "tensor '%s' reads '%s': %s (CVE-2022-25882 / CVE-2024-27318 shape); a "
		        "loader would read any file the process can",
		        tn, loc, dotdot ? "contains '..'" : "absolute or drive path");
		if (f)
			mlsec_finding_set_evidence(f, "location", "%s", loc);
		return;
	}
	if (!L->dir[0]) {
		finding(L, "EXPORT-EXTERNAL-DATA-MISSING", MLSEC_SEV_HIGH, where, NULL,
		        "External data of an in-memory model",
		        "tensor '%s' reads '%s', which cannot be resolved without the model's "
		        "directory",
		        tn, loc);
		return;
	}
	char full[PATH_MAX], real[PATH_MAX];
	if (snprintf(full, sizeof full, "%s/%s", L->dir, loc) >= (int)sizeof full) {
		finding(L, "EXPORT-EXTERNAL-DATA-MISSING", MLSEC_SEV_HIGH, where, NULL,
		        "External data path too long", "tensor '%s'", tn);
		return;
	}
	if (!realpath(full, real)) {
		finding(L, "EXPORT-EXTERNAL-DATA-MISSING", MLSEC_SEV_HIGH, where, NULL,
		        "External data file missing", "tensor '%s' reads '%s': %s", tn, loc,
		        strerror(errno));
		return;
	}
	size_t dl = strlen(L->dir);
	if (strncmp(real, L->dir, dl) || (real[dl] != '/' && strcmp(L->dir, "/"))) {
		mlsec_finding *f =
		        finding(L, "EXPORT-EXTERNAL-DATA-TRAVERSAL", MLSEC_SEV_CRITICAL, where,
		                NULL, "External data resolves outside the model directory",
		                "tensor '%s' reads '%s', which resolves to '%s'", tn, loc, real);
		if (f)
			mlsec_finding_set_evidence(f, "location", "%s", loc);
		return;
	}
	struct stat st;
	if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		finding(L, "EXPORT-EXTERNAL-DATA-MISSING", MLSEC_SEV_HIGH, where, NULL,
		        "External data is not a regular file", "tensor '%s' reads '%s'", tn, loc);
		return;
	}
	uint64_t off = 0, len = 0, fsz = (uint64_t)st.st_size;
	const char *so = export_tensor_ext(t, "offset"), *sl = export_tensor_ext(t, "length");
	int ok_off = !so || parse_u64(so, &off);
	int ok_len = sl ? parse_u64(sl, &len) : 1;
	if (!sl)
		len = off <= fsz ? fsz - off : 0;
	if (!ok_off || !ok_len || off > fsz || len > fsz - off) {
		finding(L, "EXPORT-EXTERNAL-DATA-RANGE", MLSEC_SEV_HIGH, where, NULL,
		        "External data range outside its file",
		        "tensor '%s': offset %s length %s, file '%s' has %llu bytes", tn,
		        so ? so : "0", sl ? sl : "(rest)", loc, (unsigned long long)fsz);
		return;
	}
	if (len != want_bytes)
		finding(L, "EXPORT-TENSOR-DIMS", MLSEC_SEV_HIGH, where, NULL,
		        "External data length disagrees with dims",
		        "tensor '%s': %llu bytes stored, dims and type need %llu", tn,
		        (unsigned long long)len, (unsigned long long)want_bytes);
}

/* What a float constant holds, for the NONFINITE/LARGE rules. */
typedef struct vstats {
	size_t n, nan, posinf, neginf, nonzero, big, negbig;
	double maxabs;
} vstats;

static void vstats_add(vstats *v, double x, double thr)
{
	v->n++;
	if (isnan(x)) {
		v->nan++;
	} else if (isinf(x)) {
		if (x > 0)
			v->posinf++;
		else
			v->neginf++;
	} else {
		double ax = fabs(x);
		v->nonzero += ax != 0;
		v->maxabs = ax > v->maxabs ? ax : v->maxabs;
		v->big += ax > thr;
		v->negbig += x < -thr;
	}
}

/* Reports a constant's values. Only -Inf among zeros is the additive
 * attention mask torch exports for causal and padding masks (and the fill
 * value of masked_fill), and a single large negative scalar is a mask fill
 * value: both recorded low. Any NaN or +Inf, -Inf mixed with other values,
 * or other values beyond the threshold are high. */
static void report_values(lint *L, const char *where, const Onnx__NodeProto *n, const char *what,
                          const vstats *v)
{
	size_t nonfinite = v->nan + v->posinf + v->neginf;
	if (nonfinite && !v->nan && !v->posinf && !v->nonzero)
		finding(L, "EXPORT-CONSTANT-NONFINITE", MLSEC_SEV_LOW, where, n,
		        "-Inf mask constant",
		        "%s holds only -Inf and zeros (%zu of %zu values are -Inf), the shape of "
		        "an "
		        "attention mask",
		        what, v->neginf, v->n);
	else if (nonfinite)
		finding(L, "EXPORT-CONSTANT-NONFINITE", MLSEC_SEV_HIGH, where, n,
		        "Non-finite constant",
		        "%s holds %zu NaN, %zu +Inf and %zu -Inf values of %zu; a constant Inf/NaN "
		        "can saturate or poison every output it reaches",
		        what, v->nan, v->posinf, v->neginf, v->n);
	if (v->big && v->n == 1 && v->negbig == 1) {
		/* masked_fill(mask, -1e4) and BERT-style (1 - mask) * -10000:
		 * one large negative scalar is a mask fill value. */
		finding(L, "EXPORT-CONSTANT-LARGE", MLSEC_SEV_LOW, where, n,
		        "Large negative scalar (mask fill value)",
		        "%s is a single value %g below -%g, the shape of a mask fill value", what,
		        -v->maxabs, L->thr);
	} else if (v->big) {
		mlsec_finding *f = finding(
		        L, "EXPORT-CONSTANT-LARGE", MLSEC_SEV_HIGH, where, n,
		        "Constant above the threshold",
		        "%s holds %zu values with |v| > %g (max %g); large constants are how "
		        "injected logic overrides the network's output",
		        what, v->big, L->thr, v->maxabs);
		if (f)
			mlsec_finding_set_evidence(f, "max_abs", "%g", v->maxabs);
	}
}

static void lint_tensor(lint *L, const Onnx__TensorProto *t, const char *where)
{
	const char *tn = t->name ? t->name : "";
	uint64_t numel = 0;
	if (!export_tensor_numel(t, &numel)) {
		finding(L, "EXPORT-TENSOR-DIMS", MLSEC_SEV_HIGH, where, NULL,
		        "Tensor dims negative or overflowing",
		        "tensor '%s' has %zu dims whose product is not a valid size", tn,
		        t->n_dims);
		return;
	}
	size_t es = export_dtype_size(t->data_type);
	if (export_tensor_is_external(t)) {
		if (es && numel > UINT64_MAX / es)
			finding(L, "EXPORT-TENSOR-DIMS", MLSEC_SEV_HIGH, where, NULL,
			        "Tensor size overflows", "tensor '%s'", tn);
		else
			lint_external(L, t, where, numel * es);
		return;
	}
	int64_t stored = export_tensor_stored_elems(t);
	if (stored == -2 || (stored >= 0 && (uint64_t)stored != numel)) {
		finding(L, "EXPORT-TENSOR-DIMS", MLSEC_SEV_HIGH, where, NULL,
		        "Tensor data disagrees with its dims",
		        "tensor '%s' (%s): dims declare %llu elements, data holds %lld", tn,
		        export_dtype_name(t->data_type), (unsigned long long)numel,
		        (long long)stored);
		return;
	}
	if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__STRING) {
		finding(L, "EXPORT-STRING-TENSOR", MLSEC_SEV_MEDIUM, where, NULL,
		        "String tensor in the graph",
		        "tensor '%s' holds %zu strings; exported vision/NLP graphs carry numbers",
		        tn, t->n_string_data);
		for (size_t i = 0; i < t->n_string_data; i++)
			lint_text(L, where, NULL, "string tensor",
			          (const char *)t->string_data[i].data, t->string_data[i].len);
		return;
	}
	if (!export_dtype_is_float(t->data_type) || stored <= 0)
		return;
	vstats vs = {0};
	for (size_t i = 0; i < (size_t)stored; i++)
		vstats_add(&vs, export_tensor_value(t, i), L->thr);
	char what[300];
	wfmt(what, sizeof what, "tensor '%s'", tn);
	report_values(L, where, NULL, what, &vs);
}

/* Constant's scalar/list float forms (value_float, value_floats) carry
 * values outside any tensor; they get the same checks. */
static void lint_constant_floats(lint *L, const Onnx__NodeProto *n, const char *where)
{
	vstats vs = {0};
	for (size_t k = 0; k < n->n_attribute; k++) {
		const Onnx__AttributeProto *at = n->attribute[k];
		const char *an = at->name ? at->name : "";
		if (!strcmp(an, "value_float") && at->has_f)
			vstats_add(&vs, at->f, L->thr);
		else if (!strcmp(an, "value_floats"))
			for (size_t i = 0; i < at->n_floats; i++)
				vstats_add(&vs, at->floats[i], L->thr);
		else if (!strcmp(an, "value_string") || !strcmp(an, "value_strings"))
			finding(L, "EXPORT-STRING-TENSOR", MLSEC_SEV_MEDIUM, where, n,
			        "String constant in the graph",
			        "Constant '%s' defines strings through '%s'",
			        n->name ? n->name : "", an);
	}
	char what[300];
	wfmt(what, sizeof what, "Constant '%s'", n->name ? n->name : "");
	report_values(L, where, n, what, &vs);
}

/* A declared tensor shape with a negative dimension, or static dims
 * whose product overflows, cannot describe any tensor. */
static void lint_value_info(lint *L, const Onnx__ValueInfoProto *v, const char *gwhere)
{
	const Onnx__TypeProto *tp = v->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
	    !tp->tensor_type->shape)
		return;
	const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
	uint64_t prod = 1;
	int bad = sh->n_dim > EXPORT_ONNX_MAX_RANK;
	for (size_t i = 0; i < sh->n_dim && !bad; i++) {
		const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
		if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
			continue;
		if (d->dim_value < 0)
			bad = 1;
		else if (d->dim_value && prod > UINT64_MAX / (uint64_t)d->dim_value)
			bad = 1;
		else
			prod *= (uint64_t)d->dim_value;
	}
	if (bad) {
		char w[LINT_WHERE_MAX];
		wfmt(w, sizeof w, "%s/value[%s]", gwhere, v->name ? v->name : "");
		finding(L, "EXPORT-TENSOR-DIMS", MLSEC_SEV_MEDIUM, w, NULL,
		        "Declared shape invalid",
		        "'%s' declares %zu dims with a negative size or an overflowing product",
		        v->name ? v->name : "", sh->n_dim);
	}
}

/* ---- graphs ---- */

static const char *const cmp_ops[] = {"Equal",          "Greater",     "Less",
                                      "GreaterOrEqual", "LessOrEqual", NULL};
static const char *const agg_ops[] = {"ReduceMax",
                                      "ReduceMin",
                                      "ReduceSum",
                                      "ReduceMean",
                                      "ReduceProd",
                                      "ReduceL1",
                                      "ReduceL2",
                                      "ReduceLogSum",
                                      "ReduceLogSumExp",
                                      "ReduceSumSquare",
                                      "ArgMax",
                                      "ArgMin",
                                      "Slice",
                                      "Gather",
                                      "GatherElements",
                                      "GatherND",
                                      "GlobalMaxPool",
                                      "GlobalAveragePool",
                                      "TopK",
                                      "Compress",
                                      NULL};

static int op_in(const Onnx__NodeProto *n, const char *const *list)
{
	if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
		return 0;
	for (int i = 0; list[i]; i++)
		if (n->op_type && !strcmp(n->op_type, list[i]))
			return 1;
	return 0;
}

static int op_is(const Onnx__NodeProto *n, const char *op)
{
	return n->op_type && !strcmp(n->op_type, op) &&
	       (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx"));
}

static unsigned in_flags(lint *L, const Onnx__NodeProto *n, size_t i)
{
	return i < n->n_input && n->input[i] && *n->input[i] ? get_flags(L, n->input[i]) : 0;
}

static int is_const(unsigned f)
{
	return !(f & (F_IN | F_SHAPE));
}

static unsigned lint_graph(lint *L, const Onnx__GraphProto *g, size_t depth, const char *where,
                           const unsigned *in_fl, size_t n_in_fl);

/* Union of the flags of a subgraph's outputs (after it was linted). */
static unsigned graph_out_flags(lint *L, const Onnx__GraphProto *g)
{
	unsigned f = 0;
	for (size_t i = 0; g && i < g->n_output; i++)
		f |= get_flags(L, g->output[i]->name) & ~F_DEFINED;
	return f;
}

/* Lints the attributes of node n; returns flags contributed by subgraphs
 * and, for If, fills which branches return only constants. */
static unsigned lint_attrs(lint *L, const Onnx__NodeProto *n, size_t depth, const char *where,
                           int *const_branch)
{
	unsigned f = 0;
	char w[LINT_WHERE_MAX];
	int control = op_is(n, "If") || op_is(n, "Loop") || op_is(n, "Scan");
	for (size_t k = 0; k < n->n_attribute; k++) {
		const Onnx__AttributeProto *at = n->attribute[k];
		const char *an = at->name ? at->name : "";
		wfmt(w, sizeof w, "%s/attr[%s]", where, an);
		if (at->t)
			lint_tensor(L, at->t, w);
		for (size_t i = 0; i < at->n_tensors; i++)
			lint_tensor(L, at->tensors[i], w);
		if (at->sparse_tensor) {
			if (at->sparse_tensor->values)
				lint_tensor(L, at->sparse_tensor->values, w);
			if (at->sparse_tensor->indices)
				lint_tensor(L, at->sparse_tensor->indices, w);
		}
		if (at->has_s)
			lint_text(L, w, n, "string attribute", (const char *)at->s.data, at->s.len);
		for (size_t i = 0; i < at->n_strings; i++)
			lint_text(L, w, n, "string attribute", (const char *)at->strings[i].data,
			          at->strings[i].len);
		if (at->doc_string)
			lint_text(L, w, n, "attribute doc_string", at->doc_string,
			          strlen(at->doc_string));
		size_t ng = (at->g ? 1 : 0) + at->n_graphs;
		if (!ng)
			continue;
		finding(L, "EXPORT-SUBGRAPH", control ? MLSEC_SEV_LOW : MLSEC_SEV_MEDIUM, w, n,
		        control ? "Control-flow subgraph"
		                : "Subgraph attribute on a non-control op",
		        "attribute '%s' of %s carries %zu graph(s); subgraphs hide logic from "
		        "tools that only walk the main graph",
		        an, n->op_type ? n->op_type : "?", ng);
		if (depth + 1 > LINT_MAX_GRAPH_DEPTH) {
			finding(L, "EXPORT-MALFORMED", MLSEC_SEV_HIGH, w, n,
			        "Subgraphs nested too deep", "more than %d levels",
			        LINT_MAX_GRAPH_DEPTH);
			continue;
		}
		/* Body inputs: Loop (iter, cond, carried...) and Scan (state,
		 * scan inputs) take them from the node's inputs; anything else
		 * is assumed input-derived. */
		unsigned body_in[64];
		size_t nb = 0;
		if (op_is(n, "Loop")) {
			body_in[nb++] = 0;
			for (size_t i = 1; i < n->n_input && nb < 64; i++)
				body_in[nb++] = in_flags(L, n, i);
		} else if (op_is(n, "Scan")) {
			for (size_t i = 0; i < n->n_input && nb < 64; i++)
				body_in[nb++] = in_flags(L, n, i);
		}
		for (size_t i = 0; i < ng; i++) {
			const Onnx__GraphProto *sg =
			        at->g && i == 0 ? at->g : at->graphs[i - (at->g ? 1 : 0)];
			char gw[LINT_WHERE_MAX];
			wfmt(gw, sizeof gw, "%s/%s", w, sg->name ? sg->name : "graph");
			unsigned bf = lint_graph(L, sg, depth + 1, gw, nb ? body_in : NULL, nb);
			f |= bf;
			if (const_branch && is_const(bf) && op_is(n, "If"))
				*const_branch |= !strcmp(an, "then_branch") ? 1 : 2;
		}
	}
	return f;
}

static void check_trigger(lint *L, const Onnx__NodeProto *n, const char *where, int const_branch)
{
	if (op_is(n, "If") && (in_flags(L, n, 0) & F_CMP)) {
		mlsec_finding *f = finding(
		        L, "EXPORT-TRIGGER-BACKDOOR", MLSEC_SEV_HIGH, where, n,
		        "If switched by an input-derived comparison",
		        "the condition of '%s' compares values computed from a model input with "
		        "constants; a trained network never branches on its input values, "
		        "injected trigger logic does%s",
		        n->name ? n->name : "",
		        const_branch ? " (a branch returns only constants)" : "");
		if (f && const_branch)
			mlsec_finding_set_evidence(f, "constant_branch", "%s",
			                           const_branch == 1   ? "then_branch"
			                           : const_branch == 2 ? "else_branch"
			                                               : "both");
	} else if (op_is(n, "Loop") && ((in_flags(L, n, 0) | in_flags(L, n, 1)) & F_CMP)) {
		finding(L, "EXPORT-TRIGGER-BACKDOOR", MLSEC_SEV_HIGH, where, n,
		        "Loop controlled by an input-derived comparison",
		        "the trip count or condition of '%s' compares input values with constants",
		        n->name ? n->name : "");
	} else if (op_is(n, "Where")) {
		unsigned c = in_flags(L, n, 0);
		if ((c & F_CMP) && (c & F_AGG)) {
			unsigned x = in_flags(L, n, 1), y = in_flags(L, n, 2);
			mlsec_finding *f =
			        finding(L, "EXPORT-TRIGGER-BACKDOOR", MLSEC_SEV_HIGH, where, n,
			                "Where switched by a reduced input comparison",
			                "the condition of '%s' reduces/slices a model input and "
			                "compares it "
			                "with constants, then selects between %s and %s",
			                n->name ? n->name : "",
			                is_const(x) ? "a constant" : "a computed value",
			                is_const(y) ? "a constant" : "a computed value");
			if (f)
				mlsec_finding_set_evidence(f, "constant_branch", "%s",
				                           is_const(x) && is_const(y) ? "both"
				                           : is_const(x)              ? "X"
				                           : is_const(y)              ? "Y"
				                                                      : "none");
		}
	}
}

static void lint_node(lint *L, const Onnx__NodeProto *n, size_t idx, size_t depth,
                      const char *gwhere)
{
	char where[LINT_WHERE_MAX];
	const char *op = n->op_type ? n->op_type : "";
	wfmt(where, sizeof where, "%s/node[%zu:%s](%s)", gwhere, idx, n->name ? n->name : "", op);
	if (!*op)
		finding(L, "EXPORT-MALFORMED", MLSEC_SEV_HIGH, where, n, "Node without op_type",
		        "node %zu has no op_type", idx);
	const char *hint = lint_exec_hint(op);
	if (!hint)
		hint = lint_exec_hint(n->domain);
	if (hint) {
		mlsec_finding *f = finding(
		        L, "EXPORT-CODE-EXEC-OP", MLSEC_SEV_CRITICAL, where, n,
		        "Operator name suggests code execution",
		        "op '%s' in domain '%s' matches '%s'; custom ops run native or Python code "
		        "inside the inference server",
		        op, n->domain ? n->domain : "", hint);
		if (f)
			mlsec_finding_set_remediation(f, "re-export without the custom op, or "
			                                 "review its implementation");
	} else if (!std_domain(L, n->domain)) {
		finding(L, "EXPORT-CUSTOM-DOMAIN", MLSEC_SEV_MEDIUM, where, n,
		        "Operator from a non-standard domain",
		        "op '%s' is in domain '%s', outside ai.onnx/ai.onnx.ml and "
		        "--allowed-domain; "
		        "it needs a custom-op library at inference time",
		        op, n->domain);
	}
	if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx")) {
		int imported = 0;
		for (size_t i = 0; i < L->mp->n_opset_import; i++)
			if (L->mp->opset_import[i]->domain &&
			    !strcmp(L->mp->opset_import[i]->domain, n->domain))
				imported = 1;
		if (!imported)
			finding(L, "EXPORT-OPSET", MLSEC_SEV_MEDIUM, where, n,
			        "Operator domain not imported",
			        "domain '%s' has no opset_import entry", n->domain);
	} else if (L->opset >= 0) {
		int since = lint_op_since(op);
		if (since > L->opset)
			finding(L, "EXPORT-OPSET", MLSEC_SEV_MEDIUM, where, n,
			        "Operator newer than the imported opset",
			        "%s exists from opset %d, the model imports opset %lld", op, since,
			        (long long)L->opset);
	}
	if (n->doc_string)
		lint_text(L, where, n, "node doc_string", n->doc_string, strlen(n->doc_string));
	for (size_t i = 0; i < n->n_metadata_props; i++) {
		const Onnx__StringStringEntryProto *e = n->metadata_props[i];
		if (e->value)
			lint_text(L, where, n, "node metadata", e->value, strlen(e->value));
	}
	if (n->name && *n->name) {
		unsigned *seen = nmap_slot(&L->nodes, n->name, 1);
		if (seen && *seen)
			finding(L, "EXPORT-DUPLICATE-NAME", MLSEC_SEV_LOW, where, n,
			        "Duplicate node name", "node name '%s' is used more than once",
			        n->name);
		if (seen)
			*seen = 1;
	}

	/* Data flow. */
	unsigned f = 0;
	for (size_t i = 0; i < n->n_input; i++) {
		if (!n->input[i] || !*n->input[i])
			continue;
		mark_used(L, n->input[i]);
		f |= get_flags(L, n->input[i]);
	}
	f &= ~F_DEFINED;
	int const_branch = 0;
	f |= lint_attrs(L, n, depth, where, &const_branch);
	if (op_is(n, "Shape") || op_is(n, "Size")) {
		f = (f & (F_IN | F_SHAPE)) ? F_SHAPE : 0;
	} else if (op_in(n, cmp_ops) && n->n_input >= 2) {
		unsigned a = in_flags(L, n, 0), b = in_flags(L, n, 1);
		if (((a & F_IN) && is_const(b)) || ((b & F_IN) && is_const(a)))
			f |= F_CMP;
	} else if (op_is(n, "Constant")) {
		f = 0;
	}
	if (op_in(n, agg_ops) && (f & F_IN))
		f |= F_AGG;
	if (op_is(n, "Constant"))
		lint_constant_floats(L, n, where);
	check_trigger(L, n, where, const_branch);

	for (size_t i = 0; i < n->n_output; i++) {
		const char *o = n->output[i];
		if (!o || !*o)
			continue;
		if (get_flags(L, o) & F_DEFINED)
			finding(L, "EXPORT-DUPLICATE-NAME", MLSEC_SEV_HIGH, where, n,
			        "Value defined twice",
			        "output '%s' was already defined; a second definition silently "
			        "replaces the first for later consumers",
			        o);
		set_flags(L, o, f);
	}
}

/* Lints graph g; in_fl gives the flags of its inputs when it is a body
 * whose inputs come from the parent node. Returns its outputs' flags. */
static unsigned lint_graph(lint *L, const Onnx__GraphProto *g, size_t depth, const char *where,
                           const unsigned *in_fl, size_t n_in_fl)
{
	char w[LINT_WHERE_MAX];
	nmap inits = {0};
	for (size_t i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *t = g->initializer[i];
		wfmt(w, sizeof w, "%s/initializer[%s]", where, t->name ? t->name : "");
		lint_tensor(L, t, w);
		if (t->name && (get_flags(L, t->name) & F_DEFINED) && depth == 0)
			finding(L, "EXPORT-DUPLICATE-NAME", MLSEC_SEV_HIGH, w, NULL,
			        "Initializer defined twice", "initializer '%s' appears twice",
			        t->name);
		unsigned *s = nmap_slot(&inits, t->name, 1);
		if (s)
			*s = 1;
		set_flags(L, t->name, 0);
	}
	for (size_t i = 0; i < g->n_sparse_initializer; i++) {
		const Onnx__SparseTensorProto *sp = g->sparse_initializer[i];
		wfmt(w, sizeof w, "%s/sparse_initializer[%zu]", where, i);
		if (sp->values) {
			lint_tensor(L, sp->values, w);
			set_flags(L, sp->values->name, 0);
		}
		if (sp->indices)
			lint_tensor(L, sp->indices, w);
	}
	const Onnx__ValueInfoProto *const *vis[3] = {
	        (const Onnx__ValueInfoProto *const *)g->input,
	        (const Onnx__ValueInfoProto *const *)g->output,
	        (const Onnx__ValueInfoProto *const *)g->value_info};
	size_t nvis[3] = {g->n_input, g->n_output, g->n_value_info};
	for (int k = 0; k < 3; k++)
		for (size_t i = 0; i < nvis[k]; i++)
			lint_value_info(L, vis[k][i], where);
	int real_inputs = 0;
	for (size_t i = 0; i < g->n_input; i++) {
		const char *nm = g->input[i]->name;
		if (!nm)
			continue;
		if (nmap_slot(&inits, nm, 0)) {
			/* IR < 4 listed every initializer among the inputs; from
			 * IR 4 on, a named input with a default value means the
			 * caller's tensor can be silently replaced. */
			if (L->mp->ir_version >= 4) {
				wfmt(w, sizeof w, "%s/input[%s]", where, nm);
				finding(L, "EXPORT-INPUT-SHADOWED", MLSEC_SEV_MEDIUM, w, NULL,
				        "Initializer shadows a graph input",
				        "input '%s' has an initializer of the same name; the model "
				        "runs on that constant when the caller omits it",
				        nm);
			}
			continue;
		}
		real_inputs++;
		set_flags(L, nm, in_fl ? (i < n_in_fl ? in_fl[i] : F_IN) : F_IN);
	}
	if (g->doc_string)
		lint_text(L, where, NULL, "graph doc_string", g->doc_string, strlen(g->doc_string));
	for (size_t i = 0; i < g->n_node; i++)
		lint_node(L, g->node[i], i, depth, where);
	for (size_t i = 0; i < g->n_output; i++) {
		const char *nm = g->output[i]->name;
		mark_used(L, nm);
		if (depth == 0 && real_inputs && is_const(get_flags(L, nm))) {
			wfmt(w, sizeof w, "%s/output[%s]", where, nm ? nm : "");
			finding(L, "EXPORT-OUTPUT-UNREACHABLE", MLSEC_SEV_MEDIUM, w, NULL,
			        "Output does not depend on any input",
			        "output '%s' is computed from constants only (or not computed at "
			        "all); whatever the caller sends, it is the same",
			        nm ? nm : "");
		}
	}
	unsigned out = graph_out_flags(L, g);
	nmap_free(&inits);
	return out;
}

/* Unused initializers and dead nodes of the main graph. */
static void lint_unused(lint *L, const Onnx__GraphProto *g)
{
	char w[LINT_WHERE_MAX];
	size_t unused = 0;
	for (size_t i = 0; i < g->n_initializer; i++) {
		const char *nm = g->initializer[i]->name;
		if (nm && !nmap_slot(&L->used, nm, 0)) {
			if (unused++ < 20) {
				wfmt(w, sizeof w, "graph/initializer[%s]", nm);
				finding(L, "EXPORT-UNUSED", MLSEC_SEV_LOW, w, NULL,
				        "Unused initializer",
				        "initializer '%s' is consumed by no node; payloads ride in "
				        "unused tensors",
				        nm);
			}
		}
	}
	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		int live = 0;
		for (size_t k = 0; k < n->n_output && !live; k++)
			live = n->output[k] && *n->output[k] &&
			       nmap_slot(&L->used, n->output[k], 0);
		if (!live && n->n_output) {
			wfmt(w, sizeof w, "graph/node[%zu:%s](%s)", i, n->name ? n->name : "",
			     n->op_type ? n->op_type : "");
			finding(L, "EXPORT-UNUSED", MLSEC_SEV_LOW, w, n, "Dead node",
			        "no output of '%s' is consumed or returned",
			        n->name ? n->name : "");
		}
	}
}

static void lint_model(lint *L)
{
	const Onnx__ModelProto *mp = L->mp;
	L->opset = -1;
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const char *d = mp->opset_import[i]->domain;
		if (!d || !*d || !strcmp(d, "ai.onnx"))
			L->opset = mp->opset_import[i]->version;
	}
	if (L->opset < 0)
		finding(L, "EXPORT-OPSET", MLSEC_SEV_MEDIUM, "model/opset_import", NULL,
		        "No default-domain opset", "the model imports no ai.onnx opset");
	else if (L->opset < 1 || L->opset > 23)
		finding(L, "EXPORT-OPSET", MLSEC_SEV_MEDIUM, "model/opset_import", NULL,
		        "Opset outside the known range", "ai.onnx opset %lld (known: 1..23)",
		        (long long)L->opset);
	if (!mp->has_ir_version || mp->ir_version < 3 || mp->ir_version > 11)
		finding(L, "EXPORT-OPSET", MLSEC_SEV_MEDIUM, "model/ir_version", NULL,
		        "IR version outside the known range", "ir_version %lld (known: 3..11)",
		        (long long)mp->ir_version);
	else if (L->opset >= 1 && mp->ir_version < lint_ir_for_opset(L->opset))
		finding(L, "EXPORT-OPSET", MLSEC_SEV_MEDIUM, "model/ir_version", NULL,
		        "IR version too old for the opset",
		        "opset %lld needs IR version >= %d, the model declares %lld",
		        (long long)L->opset, lint_ir_for_opset(L->opset),
		        (long long)mp->ir_version);
	if (mp->doc_string)
		lint_text(L, "model/doc_string", NULL, "model doc_string", mp->doc_string,
		          strlen(mp->doc_string));
	if (mp->producer_name)
		lint_text(L, "model/producer_name", NULL, "producer_name", mp->producer_name,
		          strlen(mp->producer_name));
	for (size_t i = 0; i < mp->n_metadata_props; i++) {
		const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
		char w[LINT_WHERE_MAX];
		wfmt(w, sizeof w, "model/metadata_props[%s]", e->key ? e->key : "");
		if (e->key)
			lint_text(L, w, NULL, "metadata key", e->key, strlen(e->key));
		if (e->value)
			lint_text(L, w, NULL, "metadata value", e->value, strlen(e->value));
	}
	lint_graph(L, mp->graph, 0, "graph", NULL, 0);
	for (size_t i = 0; i < mp->n_functions; i++) {
		const Onnx__FunctionProto *fn = mp->functions[i];
		char w[LINT_WHERE_MAX];
		wfmt(w, sizeof w, "function[%s]", fn->name ? fn->name : "");
		for (size_t k = 0; k < fn->n_input; k++)
			set_flags(L, fn->input[k], F_IN);
		for (size_t k = 0; k < fn->n_node; k++)
			lint_node(L, fn->node[k], k, 1, w);
	}
	for (size_t i = 0; i < mp->n_training_info; i++)
		finding(L, "EXPORT-SUBGRAPH", MLSEC_SEV_MEDIUM, "model/training_info", NULL,
		        "Training graphs in an inference export",
		        "the model carries %zu training_info entries", mp->n_training_info);
	lint_unused(L, mp->graph);
}

static mlsec_err lint_malformed(mlsec_artifact *a, const char *path, mlsec_error *perr)
{
	if (!perr->file[0])
		snprintf(perr->file, sizeof perr->file, "%s", path);
	mlsec_finding *f = mlsec_artifact_add_malformed(a, EXPORT_PREFIX, perr);
	if (f && !f->field)
		mlsec_finding_set_location(f, f->file, f->line, f->column, "model");
	return MLSEC_OK;
}

/* Decodes and lints; dir is the resolved model directory, NULL for a model
 * held in memory (its external data then cannot be resolved). */
static mlsec_err lint_buffer(mlsec_artifact *a, const char *path, const char *dir, const void *data,
                             size_t len, const mlsec_export_opts *o, mlsec_error *err)
{
	Onnx__ModelProto *mp = NULL;
	mlsec_error perr;
	mlsec_error_clear(&perr);
	mlsec_err rc = export_onnx_decode(data, len, &mp, &perr);
	if (rc == MLSEC_ERR_NOMEM)
		return mlsec_error_set(err, rc, "out of memory");
	if (rc != MLSEC_OK)
		return lint_malformed(a, path, &perr);
	lint L;
	memset(&L, 0, sizeof L);
	L.a = a;
	L.o = o;
	L.thr = o && o->constant_threshold > 0 ? o->constant_threshold
	                                       : MLSEC_EXPORT_DEFAULT_CONSTANT_THRESHOLD;
	L.path = path;
	L.mp = mp;
	if (dir)
		snprintf(L.dir, sizeof L.dir, "%s", dir);
	lint_model(&L);
	json_t *d = mlsec_artifact_details(a);
	json_object_set_new(d, "ir_version", json_integer(mp->ir_version));
	json_object_set_new(d, "opset", json_integer(L.opset));
	json_object_set_new(d, "nodes", json_integer((json_int_t)mp->graph->n_node));
	json_object_set_new(d, "initializers", json_integer((json_int_t)mp->graph->n_initializer));
	char ghex[MLSEC_SHA256_HEX_LEN];
	mlsec_error gerr;
	if (export_graph_digest_model(mp, ghex, &gerr) == MLSEC_OK)
		json_object_set_new(d, "graph_sha256", json_string(ghex));
	else if (gerr.code == MLSEC_ERR_NOMEM)
		L.oom = 1;
	nmap_free(&L.flags);
	nmap_free(&L.used);
	nmap_free(&L.nodes);
	onnx__model_proto__free_unpacked(mp, NULL);
	if (L.oom)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	return MLSEC_OK;
}

void mlsec_export_opts_init(mlsec_export_opts *o)
{
	memset(o, 0, sizeof *o);
	o->constant_threshold = MLSEC_EXPORT_DEFAULT_CONSTANT_THRESHOLD;
}

mlsec_err mlsec_export_lint_onnx(const char *path, const mlsec_export_opts *o, mlsec_report *rep,
                                 mlsec_artifact **out, mlsec_error *err)
{
	if (out)
		*out = NULL;
	struct stat st;
	if (!path || stat(path, &st) != 0)
		return mlsec_error_set(err, MLSEC_ERR_NOT_FOUND, "%s: %s", path ? path : "(null)",
		                       strerror(errno));
	if (!S_ISREG(st.st_mode))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: not a regular file", path);
	mlsec_artifact *a = mlsec_report_add_artifact(rep, path, "onnx");
	if (!a)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_artifact_set_stage(a, "export");
	if (out)
		*out = a;
	char dir[PATH_MAX];
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", path);
	char *slash = strrchr(tmp, '/');
	if (slash)
		*slash = '\0';
	if (!realpath(slash ? (tmp[0] ? tmp : "/") : ".", dir))
		snprintf(dir, sizeof dir, "%s", slash ? tmp : ".");
	char *buf = NULL;
	size_t len = 0;
	mlsec_error perr;
	mlsec_error_clear(&perr);
	mlsec_err rc = mlsec_file_read_all(path, MLSEC_EXPORT_MAX_ONNX_BYTES, &buf, &len, &perr);
	if (rc == MLSEC_ERR_NOMEM)
		return mlsec_error_set(err, rc, "out of memory");
	if (rc != MLSEC_OK) {
		mlsec_error herr;
		if (mlsec_artifact_hash_file(a, &herr) != MLSEC_OK)
			return mlsec_error_set(err, herr.code, "%s", herr.text);
		return lint_malformed(a, path, &perr);
	}
	/* Digest, graph digest and findings all come from this one read, so
	 * an attestation never pairs the lint of one file with the digest of
	 * another written in between. */
	char hex[MLSEC_SHA256_HEX_LEN];
	mlsec_sha256_buf(buf, len, hex);
	mlsec_artifact_set_digest(a, hex, len);
	rc = lint_buffer(a, path, dir, buf, len, o, err);
	mlsec_free(buf);
	return rc;
}

mlsec_err mlsec_export_lint_onnx_buffer(const void *data, size_t len, const char *name,
                                        const mlsec_export_opts *o, mlsec_report *rep,
                                        mlsec_artifact **out, mlsec_error *err)
{
	if (out)
		*out = NULL;
	mlsec_artifact *a = mlsec_report_add_artifact(rep, name ? name : "(memory)", "onnx");
	if (!a)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_artifact_set_stage(a, "export");
	if (out)
		*out = a;
	char hex[MLSEC_SHA256_HEX_LEN];
	mlsec_sha256_buf(data, len, hex);
	mlsec_artifact_set_digest(a, hex, len);
	return lint_buffer(a, name ? name : "(memory)", NULL, data, len, o, err);
}
