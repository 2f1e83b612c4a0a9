/*
 * lint_util.c - small pieces of the ONNX lint that are not about graphs:
 * a string-keyed map for value names, the suspicious-text scanner, the
 * op/opset tables and the lint summary stored in attestations.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"
#include "lint.h"
#include "mlsec/alloc.h"

static size_t hash(const char *s)
{
	size_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static int nmap_grow(nmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 256;
	const char **k = mlsec_calloc(cap, sizeof *k);
	unsigned *v = mlsec_calloc(cap, sizeof *v);
	if (!k || !v) {
		mlsec_free(k);
		mlsec_free(v);
		return 0;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = hash(m->keys[i]) & (cap - 1);
		while (k[j])
			j = (j + 1) & (cap - 1);
		k[j] = m->keys[i];
		v[j] = m->vals[i];
	}
	mlsec_free(m->keys);
	mlsec_free(m->vals);
	m->keys = k;
	m->vals = v;
	m->cap = cap;
	return 1;
}

unsigned *nmap_slot(nmap *m, const char *key, int create)
{
	if (!key)
		return NULL;
	if (create && (m->n + 1) * 2 > m->cap && !nmap_grow(m))
		return NULL;
	if (!m->cap)
		return NULL;
	size_t j = hash(key) & (m->cap - 1);
	while (m->keys[j]) {
		if (!strcmp(m->keys[j], key))
			return &m->vals[j];
		j = (j + 1) & (m->cap - 1);
	}
	if (!create)
		return NULL;
	m->keys[j] = key;
	m->vals[j] = 0;
	m->n++;
	return &m->vals[j];
}

void nmap_free(nmap *m)
{
	mlsec_free(m->keys);
	mlsec_free(m->vals);
	memset(m, 0, sizeof *m);
}

/* Case-insensitive bounded substring search. */
static int has(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;
		while (j < k && tolower((unsigned char)s[i + j]) == needle[j])
			j++;
		if (j == k)
			return 1;
	}
	return 0;
}

#define TEXT_SCAN_MAX (1u << 20) /* bytes of one string we look at */

unsigned lint_text_flags(const char *s, size_t n, const char **what)
{
	static const char *urls[] = {"http://", "https://", "ftp://", "file://",
	                             "s3://",   "gs://",    NULL};
	static const char *scripts[] = {"<script",    "javascript:", "import os", "__import__",
	                                "subprocess", "os.system",   "os.popen",  "eval(",
	                                "exec(",      "/bin/sh",     "/bin/bash", "bash -c",
	                                "powershell", "curl ",       "wget ",     "base64 -d",
	                                "rm -rf",     "nc -e",       NULL};
	unsigned f = 0;
	if (!s)
		return 0;
	if (n > TEXT_SCAN_MAX)
		n = TEXT_SCAN_MAX;
	for (int i = 0; scripts[i]; i++)
		if (has(s, n, scripts[i])) {
			f |= TEXT_SCRIPT;
			if (what)
				*what = scripts[i];
			break;
		}
	for (int i = 0; urls[i] && !(f & TEXT_SCRIPT); i++)
		if (has(s, n, urls[i])) {
			f |= TEXT_URL;
			if (what)
				*what = urls[i];
			break;
		}
	return f;
}

const char *lint_exec_hint(const char *s)
{
	static const char *hints[] = {"python",  "pyop",   "pyfunc",      "exec",    "eval",
	                              "shell",   "system", "subprocess",  "popen",   "script",
	                              "command", "dlopen", "loadlibrary", "syscall", NULL};
	if (!s)
		return NULL;
	size_t n = strlen(s);
	for (int i = 0; hints[i]; i++)
		if (has(s, n, hints[i]))
			return hints[i];
	return NULL;
}

/* Default-domain operators introduced after opset 1, with the opset that
 * introduced them (from the ONNX operator changelog). Ops not listed are
 * either opset-1 ops or unknown; the lint only checks what it knows. */
static const struct {
	const char *op;
	int since;
} op_since[] = {
        {"Where", 9},
        {"Erf", 9},
        {"IsNaN", 9},
        {"Shrink", 9},
        {"Sign", 9},
        {"NonZero", 9},
        {"ConstantOfShape", 9},
        {"OneHot", 9},
        {"Scatter", 9},
        {"MaxUnpool", 9},
        {"EyeLike", 9},
        {"Compress", 9},
        {"Acosh", 9},
        {"Asinh", 9},
        {"Atanh", 9},
        {"Cosh", 9},
        {"Sinh", 9},
        {"Mod", 10},
        {"StringNormalizer", 10},
        {"ThresholdedRelu", 10},
        {"Resize", 10},
        {"ReverseSequence", 10},
        {"RoiAlign", 10},
        {"QuantizeLinear", 10},
        {"DequantizeLinear", 10},
        {"QLinearConv", 10},
        {"QLinearMatMul", 10},
        {"ConvInteger", 10},
        {"MatMulInteger", 10},
        {"IsInf", 10},
        {"NonMaxSuppression", 10},
        {"Range", 11},
        {"Round", 11},
        {"ScatterElements", 11},
        {"ScatterND", 11},
        {"GatherElements", 11},
        {"GatherND", 11},
        {"CumSum", 11},
        {"Det", 11},
        {"BitShift", 11},
        {"DynamicQuantizeLinear", 11},
        {"Unique", 11},
        {"SequenceAt", 11},
        {"SequenceConstruct", 11},
        {"SequenceEmpty", 11},
        {"SequenceErase", 11},
        {"SequenceInsert", 11},
        {"SequenceLength", 11},
        {"SplitToSequence", 11},
        {"ConcatFromSequence", 11},
        {"Celu", 12},
        {"Einsum", 12},
        {"GreaterOrEqual", 12},
        {"LessOrEqual", 12},
        {"NegativeLogLikelihoodLoss", 12},
        {"SoftmaxCrossEntropyLoss", 12},
        {"Trilu", 14},
        {"HardSwish", 14},
        {"Bernoulli", 15},
        {"CastLike", 15},
        {"Optional", 15},
        {"OptionalGetElement", 15},
        {"OptionalHasElement", 15},
        {"GridSample", 16},
        {"LayerNormalization", 17},
        {"DFT", 17},
        {"BlackmanWindow", 17},
        {"HannWindow", 17},
        {"HammingWindow", 17},
        {"MelWeightMatrix", 17},
        {"STFT", 17},
        {"SequenceMap", 17},
        {"BitwiseAnd", 18},
        {"BitwiseOr", 18},
        {"BitwiseXor", 18},
        {"BitwiseNot", 18},
        {"CenterCropPad", 18},
        {"Col2Im", 18},
        {"GroupNormalization", 18},
        {"Mish", 18},
        {"DeformConv", 19},
        {"Gelu", 20},
        {"AffineGrid", 20},
        {"ImageDecoder", 20},
        {"RegexFullMatch", 20},
        {"StringConcat", 20},
        {"StringSplit", 20},
};

int lint_op_since(const char *op)
{
	for (size_t i = 0; op && i < sizeof op_since / sizeof op_since[0]; i++)
		if (!strcmp(op_since[i].op, op))
			return op_since[i].since;
	return 0;
}

/* Minimum IR version for a default-domain opset (ONNX versioning table). */
int lint_ir_for_opset(int64_t opset)
{
	static const int ir[] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 4,  5,  6,
	                         7, 7, 7, 8, 8, 8, 8, 9, 9, 10, 10, 11};
	if (opset < 0)
		return 0;
	if ((size_t)opset < sizeof ir / sizeof ir[0])
		return ir[opset];
	return 11;
}

static int cmp_finding(const void *x, const void *y)
{
	json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	const char *k[] = {"rule", "field"};
	for (int i = 0; i < 2; i++) {
		const char *sa = json_string_value(json_object_get(a, k[i]));
		const char *sb = json_string_value(json_object_get(b, k[i]));
		int c = strcmp(sa ? sa : "", sb ? sb : "");
		if (c)
			return c;
	}
	return 0;
}

json_t *export_lint_summary(const mlsec_artifact *a)
{
	size_t counts[MLSEC_SEV__COUNT] = {0};
	size_t n = mlsec_artifact_finding_count(a);
	json_t **items = mlsec_calloc(n ? n : 1, sizeof *items);
	json_t *out = json_object(), *c = json_object(), *list = json_array();
	if (!items || !out || !c || !list) {
		mlsec_free(items);
		json_decref(out);
		json_decref(c);
		json_decref(list);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const mlsec_finding *f = mlsec_artifact_finding(a, i);
		counts[f->severity < MLSEC_SEV__COUNT ? f->severity : 0]++;
		items[i] = json_pack("{s:s, s:s, s:s}", "rule", f->rule_id, "severity",
		                     mlsec_severity_name(f->severity), "field",
		                     f->field ? f->field : "");
	}
	qsort(items, n, sizeof *items, cmp_finding);
	for (size_t i = 0; i < n; i++) {
		if (i < MLSEC_EXPORT_MAX_LINT_FINDINGS)
			json_array_append(list, items[i]);
		json_decref(items[i]);
	}
	mlsec_free(items);
	for (int s = 0; s < MLSEC_SEV__COUNT; s++)
		json_object_set_new(c, mlsec_severity_name((mlsec_severity)s),
		                    json_integer((json_int_t)counts[s]));
	json_object_set_new(out, "counts", c);
	json_object_set_new(out, "findings", list);
	json_object_set_new(out, "truncated", json_boolean(n > MLSEC_EXPORT_MAX_LINT_FINDINGS));
	return out;
}
