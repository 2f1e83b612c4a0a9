/*
 * test_tensor_hostile.c - hostile and broken models must give a clear
 * error (the right code, a message naming the problem), never a crash:
 * overflowing dims, huge declared sizes, external data escaping the model
 * directory (../, nested a/../../, absolute, symlink), cycles, missing
 * inputs, unsupported ops (all named), deep nesting, message floods,
 * every truncation of a real model, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/tensor.h"
#include "test_util.h"

/* Loads and compiles a model file; returns the first failing code. */
static mlsec_err load_compile(const char *path, mlsec_error *err)
{
	mlsec_onnx_model *m = NULL;
	mlsec_err rc = mlsec_onnx_model_load(path, NULL, &m, err);
	if (rc)
		return rc;
	mlsec_tensor_graph *g = NULL;
	rc = mlsec_tensor_graph_compile(m, NULL, &g, err);
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	return rc;
}

static void expect(const char *name, mlsec_err code, const char *const *needles)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/hostile/%s.onnx", fixture_dir(), name);
	mlsec_error err;
	mlsec_error_clear(&err);
	mlsec_err rc = load_compile(path, &err);
	if (rc != code)
		print_error("%s: got %d (%s), want %d\n", name, rc, err.text, code);
	assert_int_equal(rc, code);
	for (; needles && *needles; needles++) {
		if (!strstr(err.text, *needles))
			print_error("%s: '%s' not in '%s'\n", name, *needles, err.text);
		assert_non_null(strstr(err.text, *needles));
	}
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_dims_and_sizes(void **state)
{
	expect("dims_overflow", MLSEC_ERR_LIMIT, NEEDLES("dims product", "'w'"));
	expect("huge_declared", MLSEC_ERR_PARSE, NEEDLES("raw_data has 16 bytes"));
	expect("raw_size_mismatch", MLSEC_ERR_PARSE, NEEDLES("raw_data has 12 bytes"));
	expect("shape_mismatch", MLSEC_ERR_PARSE, NEEDLES("broadcast"));
	expect("fold_huge", MLSEC_ERR_LIMIT, NEEDLES("constant folding"));
}

static void test_external_escape(void **state)
{
	expect("ext_parent", MLSEC_ERR_PERMISSION, NEEDLES("escapes the model directory"));
	expect("ext_nested", MLSEC_ERR_PERMISSION, NEEDLES("a/../../etc/passwd"));
	expect("ext_absolute", MLSEC_ERR_PERMISSION, NEEDLES("/etc/passwd"));
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc(*len + 1);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* The valid external-data model loads; the same model whose weights file
 * is a symlink leaving its directory is refused. */
static void test_external_valid_and_symlink(void **state)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/ext/model.onnx", fixture_dir());
	mlsec_onnx_model *m;
	mlsec_error err;
	assert_int_equal(mlsec_onnx_model_load(path, NULL, &m, &err), MLSEC_OK);
	mlsec_tensor_graph *g;
	assert_int_equal(mlsec_tensor_graph_compile(m, NULL, &g, &err), MLSEC_OK);
	size_t n1 = 0, n2 = 0;
	float *in = fixture_read("ext/expected_in", ".f32", &n1);
	float *want = fixture_read("ext/expected_out", ".f32", &n2);
	memcpy(mlsec_tensor_graph_input(g, 0), in, n1);
	assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
	for (size_t i = 0; i < n2 / 4; i++)
		assert_float_equal(mlsec_tensor_graph_output(g, 0)[i], want[i], 1e-5);
	mlsec_tensor_graph_free(g);
	mlsec_onnx_model_free(m);
	free(in);
	free(want);

	char tmpl[] = "/tmp/mlsec-ext-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char dir[1100], model[1200], outside[1200], link[1200];
	snprintf(dir, sizeof dir, "%s/model", tmpl);
	assert_int_equal(mkdir(dir, 0700), 0);
	size_t len;
	char *bytes = slurp(path, &len);
	snprintf(model, sizeof model, "%s/model.onnx", dir);
	spit(model, bytes, len);
	free(bytes);
	snprintf(path, sizeof path, "%s/ext/weights.bin", fixture_dir());
	bytes = slurp(path, &len);
	snprintf(outside, sizeof outside, "%s/secret.bin", tmpl);
	spit(outside, bytes, len);
	free(bytes);
	snprintf(link, sizeof link, "%s/weights.bin", dir);
	assert_int_equal(symlink("../secret.bin", link), 0);
	mlsec_error_clear(&err);
	assert_int_equal(mlsec_onnx_model_load(model, NULL, &m, &err), MLSEC_ERR_PERMISSION);
	assert_non_null(strstr(err.text, "resolves outside"));
	/* a symlink that stays inside is fine */
	unlink(link);
	char inside[1200];
	snprintf(inside, sizeof inside, "%s/real.bin", dir);
	rename(outside, inside);
	assert_int_equal(symlink("real.bin", link), 0);
	assert_int_equal(mlsec_onnx_model_load(model, NULL, &m, &err), MLSEC_OK);
	mlsec_onnx_model_free(m);
	/* in-memory models refuse external data outright */
	bytes = slurp(model, &len);
	assert_int_equal(mlsec_onnx_model_parse(bytes, len, NULL, NULL, &m, &err),
	                 MLSEC_ERR_PERMISSION);
	free(bytes);
	unlink(link);
	unlink(inside);
	unlink(model);
	rmdir(dir);
	rmdir(tmpl);
}

static void test_graph_structure(void **state)
{
	expect("cycle", MLSEC_ERR_PARSE, NEEDLES("cycle"));
	expect("missing_input", MLSEC_ERR_PARSE, NEEDLES("'nowhere'", "not produced"));
	expect("dup_output", MLSEC_ERR_PARSE, NEEDLES("defined twice"));
	expect("unsupported_ops", MLSEC_ERR_UNSUPPORTED,
	       NEEDLES("3 unsupported operators", "NonZero", "TopK", "com.evil:MyOp"));
	expect("dyn_inner_dim", MLSEC_ERR_UNSUPPORTED, NEEDLES("dynamic dim 'seq'"));
	expect("int_input", MLSEC_ERR_UNSUPPORTED, NEEDLES("INT64"));
}

/* ---- hand-made protobuf ---- */

typedef struct buf {
	uint8_t *p;
	size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put_varint(buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t k = 0;
	do {
		t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	put(b, t, k);
}

static void put_len(buf *b, unsigned field, const buf *inner)
{
	put_varint(b, (uint64_t)field << 3 | 2);
	put_varint(b, inner->n);
	put(b, inner->p, inner->n);
}

static void put_str(buf *b, unsigned field, const char *s)
{
	buf t = {(uint8_t *)s, strlen(s), 0};
	put_len(b, field, &t);
}

/* ModelProto{ir 8, opset 13, graph} with `levels` graphs nested via If
 * attributes. */
static buf nested_model(int levels)
{
	buf g = {0};
	for (int i = 0; i < levels; i++) {
		buf attr = {0}, node = {0}, ng = {0};
		put_str(&attr, 1, "then_branch");
		put_varint(&attr, 20 << 3);
		put_varint(&attr, 5);
		put_len(&attr, 6, &g);
		put_str(&node, 4, "If");
		put_len(&node, 5, &attr);
		put_len(&ng, 1, &node);
		free(g.p);
		free(attr.p);
		free(node.p);
		g = ng;
	}
	buf m = {0}, op = {0};
	put_varint(&m, 1 << 3);
	put_varint(&m, 8);
	put_varint(&op, 2 << 3);
	put_varint(&op, 13);
	put_len(&m, 8, &op);
	put_len(&m, 7, &g);
	free(op.p);
	free(g.p);
	return m;
}

static void test_nesting(void **state)
{
	mlsec_onnx_model *m;
	mlsec_error err;
	buf b = nested_model(4);
	assert_int_equal(mlsec_onnx_model_parse(b.p, b.n, NULL, NULL, &m, &err), MLSEC_OK);
	mlsec_onnx_model_free(m);
	free(b.p);
	b = nested_model(12);
	assert_int_equal(mlsec_onnx_model_parse(b.p, b.n, NULL, NULL, &m, &err), MLSEC_ERR_LIMIT);
	assert_non_null(strstr(err.text, "subgraphs nested"));
	free(b.p);
	/* deep enough to overflow a recursive decoder's stack */
	b = nested_model(5000); /* 15,000 messages deep: refused before decoding */
	assert_int_equal(mlsec_onnx_model_parse(b.p, b.n, NULL, NULL, &m, &err), MLSEC_ERR_LIMIT);
	assert_non_null(strstr(err.text, "nesting deeper"));
	free(b.p);
}

static void test_message_flood(void **state)
{
	buf g = {0}, empty = {0}, m = {0};
	for (int i = 0; i < 3000; i++)
		put_len(&g, 1, &empty);
	put_len(&m, 7, &g);
	mlsec_onnx_limits lim;
	mlsec_onnx_limits_default(&lim);
	lim.max_messages = 1000;
	mlsec_onnx_model *mo;
	mlsec_error err;
	assert_int_equal(mlsec_onnx_model_parse(m.p, m.n, NULL, &lim, &mo, &err), MLSEC_ERR_LIMIT);
	assert_non_null(strstr(err.text, "more than 1000"));
	lim.max_messages = 100000;
	lim.max_nodes = 100;
	assert_int_equal(mlsec_onnx_model_parse(m.p, m.n, NULL, &lim, &mo, &err), MLSEC_ERR_LIMIT);
	assert_non_null(strstr(err.text, "nodes"));
	/* garbage and wire types ONNX never uses */
	const uint8_t junk[] = {0x0b, 0x00, 0xff, 0xff};
	assert_int_equal(mlsec_onnx_model_parse(junk, sizeof junk, NULL, NULL, &mo, &err),
	                 MLSEC_ERR_PARSE);
	assert_int_equal(mlsec_onnx_model_parse("", 0, NULL, NULL, &mo, &err), MLSEC_ERR_PARSE);
	free(g.p);
	free(m.p);
}

/* Every truncation of a real model fails cleanly or, when the cut falls on
 * a field boundary, yields a model that compiles or is refused cleanly. */
static void test_truncations(void **state)
{
	char path[1200];
	fixture_path(path, sizeof path, "lenet", ".onnx");
	size_t len;
	char *bytes = slurp(path, &len);
	int ok = 0, refused = 0;
	for (size_t cut = 0; cut < len; cut += (cut < 512 || cut > len - 512) ? 1 : 97) {
		mlsec_onnx_model *m = NULL;
		mlsec_error err;
		if (mlsec_onnx_model_parse(bytes, cut, NULL, NULL, &m, &err) != MLSEC_OK) {
			refused++;
			continue;
		}
		mlsec_tensor_graph *g = NULL;
		if (mlsec_tensor_graph_compile(m, NULL, &g, &err) == MLSEC_OK) {
			assert_int_equal(mlsec_tensor_graph_forward(g, &err), MLSEC_OK);
			ok++;
		} else {
			refused++;
		}
		mlsec_tensor_graph_free(g);
		mlsec_onnx_model_free(m);
	}
	print_message("truncations: %d refused, %d usable\n", refused, ok);
	assert_true(refused > 500);
	free(bytes);
}

/* Fails each allocation in turn: every failure is a clean MLSEC_ERR_NOMEM. */
static void test_alloc_failures(void **state)
{
	char path[1200];
	fixture_path(path, sizeof path, "rescnn", ".onnx");
	for (long n = 0;; n++) {
		mlsec_alloc_fail_after(n);
		mlsec_onnx_model *m = NULL;
		mlsec_tensor_graph *g = NULL;
		mlsec_error err;
		mlsec_err rc = mlsec_onnx_model_load(path, NULL, &m, &err);
		if (!rc)
			rc = mlsec_tensor_graph_compile(m, NULL, &g, &err);
		mlsec_tensor_graph_free(g);
		mlsec_onnx_model_free(m);
		long used = mlsec_alloc_fail_after(-1);
		if (rc == MLSEC_OK) {
			print_message("succeeded after %ld injected failures (%ld allocations)\n",
			              n, used);
			break;
		}
		if (rc != MLSEC_ERR_NOMEM && rc != MLSEC_ERR_IO)
			print_error("allocation %ld: unexpected %d: %s\n", n, rc, err.text);
		assert_true(rc == MLSEC_ERR_NOMEM || rc == MLSEC_ERR_IO);
		assert_true(n < 100000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_dims_and_sizes),
	        cmocka_unit_test(test_external_escape),
	        cmocka_unit_test(test_external_valid_and_symlink),
	        cmocka_unit_test(test_graph_structure),
	        cmocka_unit_test(test_nesting),
	        cmocka_unit_test(test_message_flood),
	        cmocka_unit_test(test_truncations),
	        cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
