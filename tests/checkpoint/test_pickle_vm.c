/*
 * test_pickle_vm.c - CPython semantics of the restricted pickle VM that
 * scanners get wrong (memo, marks, fences), its bounds, the recovery scan
 * and the global classification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/pickle.h"

#include "bigpickle.h"

typedef struct run {
	mlsec_pickle *vm;
	mlsec_err rc;
	mlsec_error err;
} run;

static run go(const char *bytes, size_t n, const mlsec_pickle_limits *lim)
{
	run r;
	r.vm = mlsec_pickle_new(lim);
	assert_non_null(r.vm);
	r.rc = mlsec_pickle_run(r.vm, (const uint8_t *)bytes, n, &r.err);
	return r;
}
#define GO(lit) go(lit, sizeof(lit) - 1, NULL)

static void test_memoize_overwrites_binput(void **s)
{
	(void)s;
	/* BINPUT 1 "a"; MEMOIZE "b" writes index len(memo) == 1 */
	run r = GO("\x80\x04\x8c\x01"
	           "aq\x01"
	           "0\x8c\x01"
	           "b\x94"
	           "0h\x01.");
	assert_int_equal(r.rc, MLSEC_OK);
	const mlsec_pval *v = mlsec_pickle_root(r.vm);
	assert_int_equal(v->kind, MLSEC_PV_STR);
	assert_string_equal(v->u.str.s, "b");
	mlsec_pickle_free(r.vm);
}

/* A sparse key stored in the hash stays visible once the dense array grows
 * over it, and an overwrite through the dense path updates both. */
static void test_memo_sparse_then_dense(void **s)
{
	(void)s;
	run r = GO("K\x07"
	           "r\xd0\x07\x00\x00"
	           "0"
	           "K\x08"
	           "r\x01\x04\x00\x00"
	           "0"
	           "j\xd0\x07\x00\x00"
	           ".");
	assert_int_equal(r.rc, MLSEC_OK);
	assert_int_equal(mlsec_pickle_root(r.vm)->u.i, 7);
	mlsec_pickle_free(r.vm);
	r = GO("K\x07"
	       "r\xd0\x07\x00\x00"
	       "0"
	       "K\x08"
	       "r\x01\x04\x00\x00"
	       "0"
	       "K\x09"
	       "r\xd0\x07\x00\x00"
	       "0"
	       "j\xd0\x07\x00\x00"
	       ".");
	assert_int_equal(r.rc, MLSEC_OK);
	assert_int_equal(mlsec_pickle_root(r.vm)->u.i, 9);
	mlsec_pickle_free(r.vm);
}

static void test_memo_aliasing(void **s)
{
	(void)s;
	/* a list memoized, then appended to: the memo sees the same object */
	run r = GO("\x80\x02]q\x00h\x00K\x05"
	           "a\x86.");
	assert_int_equal(r.rc, MLSEC_OK);
	const mlsec_pval *t = mlsec_pickle_root(r.vm);
	assert_int_equal(t->kind, MLSEC_PV_TUPLE);
	assert_int_equal(t->u.seq.n, 2);
	assert_ptr_equal(t->u.seq.items[0], t->u.seq.items[1]);
	assert_int_equal(t->u.seq.items[0]->u.seq.n, 1);
	mlsec_pickle_free(r.vm);
}

static void test_pop_pops_mark(void **s)
{
	(void)s;
	run r = GO("K\x07(0.");
	assert_int_equal(r.rc, MLSEC_OK);
	assert_int_equal(mlsec_pickle_root(r.vm)->u.i, 7);
	mlsec_pickle_free(r.vm);
}

static void test_fence_underflow(void **s)
{
	(void)s;
	run r = GO("K\x01(K\x02R.");
	assert_int_equal(r.rc, MLSEC_ERR_PARSE);
	assert_int_equal(r.err.offset, 5);
	mlsec_pickle_free(r.vm);
	r = GO("(K\x01K\x02K\x03"
	       "d.");
	assert_int_equal(r.rc, MLSEC_ERR_PARSE);
	mlsec_pickle_free(r.vm);
	r = GO("\x80\x02h\x05.");
	assert_int_equal(r.rc, MLSEC_ERR_PARSE);
	mlsec_pickle_free(r.vm);
}

static void test_limits(void **s)
{
	(void)s;
	mlsec_pickle_limits lim = {0};
	lim.max_ops = 3;
	run r = go("K\x01K\x02K\x03K\x04.", 9, &lim);
	assert_int_equal(r.rc, MLSEC_ERR_LIMIT);
	mlsec_pickle_free(r.vm);
	memset(&lim, 0, sizeof lim);
	lim.max_memo = 2;
	r = go("K\x01q\x01q\x02q\x03.", 9, &lim);
	assert_int_equal(r.rc, MLSEC_ERR_LIMIT);
	mlsec_pickle_free(r.vm);
	memset(&lim, 0, sizeof lim);
	lim.max_marks = 4;
	r = go("(((((((.", 8, &lim);
	assert_int_equal(r.rc, MLSEC_ERR_LIMIT);
	mlsec_pickle_free(r.vm);
	/* a declared length beyond the data fails without allocating it */
	r = GO("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.");
	assert_int_equal(r.rc, MLSEC_ERR_PARSE);
	mlsec_pickle_free(r.vm);
}

static void test_protocol0_values(void **s)
{
	(void)s;
	run r = GO("(S'a\\x41\\n'\nI01\nL-12L\nF2.5\nVsn\\u00e9\ntp0\n.");
	assert_int_equal(r.rc, MLSEC_OK);
	const mlsec_pval *t = mlsec_pickle_root(r.vm);
	assert_int_equal(t->u.seq.n, 5);
	assert_string_equal(t->u.seq.items[0]->u.str.s, "aA\n");
	assert_int_equal(t->u.seq.items[1]->kind, MLSEC_PV_BOOL);
	assert_int_equal(t->u.seq.items[2]->u.i, -12);
	assert_true(t->u.seq.items[3]->u.f == 2.5);
	assert_string_equal(t->u.seq.items[4]->u.str.s, "sn\xc3\xa9");
	mlsec_pickle_free(r.vm);
	r = GO("\x80\x02\x8a\x01\xff.");
	assert_int_equal(mlsec_pickle_root(r.vm)->u.i, -1);
	mlsec_pickle_free(r.vm);
}

static void test_recovery_scan(void **s)
{
	(void)s;
	run r = GO("\x80\x02}\xff"
	           "cos\nsystem\n\x8c\x02os\x8c\x05popen\x93.");
	assert_int_equal(r.rc, MLSEC_ERR_PARSE);
	assert_int_equal(r.err.offset, 3);
	assert_int_equal(mlsec_pickle_global_count(r.vm), 2);
	const mlsec_pickle_global *g = mlsec_pickle_global_at(r.vm, 1);
	assert_true(g->recovered);
	assert_string_equal(g->module, "os");
	assert_string_equal(g->name, "popen");
	mlsec_pickle_free(r.vm);
}

static void test_nested_note(void **s)
{
	(void)s;
	run r = GO("\x80\x03"
	           "C\x05\x80\x02K\x01.\x85.");
	assert_int_equal(r.rc, MLSEC_OK);
	assert_int_equal(mlsec_pickle_note_count(r.vm), 1);
	assert_int_equal(mlsec_pickle_note_at(r.vm, 0)->kind, MLSEC_PNOTE_NESTED_PICKLE);
	mlsec_pickle_free(r.vm);
}

static void test_setitems_on_ordereddict(void **s)
{
	(void)s;
	run r = GO("\x80\x02"
	           "ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00"
	           "aK\x01u.");
	assert_int_equal(r.rc, MLSEC_OK);
	const mlsec_pval *v = mlsec_pickle_root(r.vm);
	assert_int_equal(v->kind, MLSEC_PV_CALL);
	assert_non_null(v->u.call.dictitems);
	assert_int_equal(v->u.call.dictitems->u.seq.n, 2);
	assert_int_equal(mlsec_pickle_note_count(r.vm), 0);
	mlsec_pickle_free(r.vm);
}

static void test_classify(void **s)
{
	(void)s;
	assert_int_equal(mlsec_pickle_classify("os", "system", NULL), MLSEC_PCLASS_DANGEROUS);
	assert_int_equal(mlsec_pickle_classify("__builtin__", "eval", NULL),
	                 MLSEC_PCLASS_DANGEROUS);
	assert_int_equal(mlsec_pickle_classify("builtins", "getattr", NULL),
	                 MLSEC_PCLASS_DANGEROUS);
	assert_int_equal(mlsec_pickle_classify("torch._utils", "os.system", NULL),
	                 MLSEC_PCLASS_DANGEROUS);
	assert_int_equal(mlsec_pickle_classify("posix", "system", NULL), MLSEC_PCLASS_DANGEROUS);
	assert_int_equal(mlsec_pickle_classify("torch._utils", "_rebuild_tensor_v2", NULL),
	                 MLSEC_PCLASS_SAFE);
	assert_int_equal(mlsec_pickle_classify("torch", "BFloat16Storage", NULL),
	                 MLSEC_PCLASS_SAFE);
	assert_int_equal(mlsec_pickle_classify("collections", "OrderedDict", NULL),
	                 MLSEC_PCLASS_SAFE);
	assert_int_equal(mlsec_pickle_classify("argparse", "Namespace", NULL),
	                 MLSEC_PCLASS_NOTABLE);
	assert_int_equal(mlsec_pickle_classify("mymodule", "Net", NULL), MLSEC_PCLASS_UNKNOWN);
	assert_int_equal(mlsec_pickle_classify("ossified", "thing", NULL), MLSEC_PCLASS_UNKNOWN);
}

/*
 * A scan-only run long enough to collect its arena many times and to pass
 * the kept-memo bound: values built before the collections (the memo'd
 * strings, a REDUCE call and its global) are still exact at the end, the
 * fetch of an entry past the bound is an unknown value with a note.
 */
static void test_scan_only_collects_and_bounds_memo(void **s)
{
	(void)s;
	bigpickle g;
	memset(&g, 0, sizeof g);
	uint32_t late;
	/* 4 memo entries a row: past MLSEC_PICKLE_SCAN_MEMO */
	size_t rows = MLSEC_PICKLE_SCAN_MEMO / 4 + 150000;
	assert_int_equal(bp_write(&g, rows, &late), 0);
	assert_true(late >= MLSEC_PICKLE_SCAN_MEMO);
	mlsec_pickle_limits lim;
	memset(&lim, 0, sizeof lim);
	lim.scan_only = 1;
	run r = go((const char *)g.buf, g.len, &lim);
	assert_int_equal(r.rc, MLSEC_OK);
	assert_true(mlsec_pickle_collections(r.vm) >= 2);
	/* globals recorded before and after collections */
	assert_int_equal(mlsec_pickle_global_count(r.vm), 2);
	const mlsec_pickle_global *g0 = mlsec_pickle_global_at(r.vm, 0);
	const mlsec_pickle_global *g1 = mlsec_pickle_global_at(r.vm, 1);
	assert_string_equal(g0->module, "collections");
	assert_string_equal(g0->name, "OrderedDict");
	assert_string_equal(g1->module, "os");
	assert_string_equal(g1->name, "system");
	assert_true(g1->offset > (long long)g.len - 64);
	const mlsec_pval *t = mlsec_pickle_root(r.vm);
	assert_int_equal(t->kind, MLSEC_PV_TUPLE);
	assert_int_equal(t->u.seq.n, 3);
	const mlsec_pval *c = t->u.seq.items[0];
	assert_int_equal(c->kind, MLSEC_PV_CALL);
	assert_int_equal(c->u.call.callable->kind, MLSEC_PV_GLOBAL);
	assert_string_equal(c->u.call.callable->u.global.name, "OrderedDict");
	assert_int_equal(c->offset, 49); /* the REDUCE, kept through collections */
	const mlsec_pval *os = t->u.seq.items[1];
	assert_int_equal(os->kind, MLSEC_PV_STR);
	assert_int_equal(os->u.str.len, 2);
	assert_memory_equal(os->u.str.s, "os", 2);
	assert_int_equal(t->u.seq.items[2]->kind, MLSEC_PV_NONE);
	assert_int_equal(mlsec_pickle_note_count(r.vm), 1);
	assert_int_equal(mlsec_pickle_note_at(r.vm, 0)->kind, MLSEC_PNOTE_MEMO_UNTRACKED);
	mlsec_pickle_free(r.vm);
	free(g.buf);
}

/* Many collections under a small decoded budget (as the fuzzer runs): every
 * value the tail fetches from the memo is exact, including a late string. */
static void test_scan_only_many_collections(void **s)
{
	(void)s;
	bigpickle g;
	memset(&g, 0, sizeof g);
	uint32_t late;
	assert_int_equal(bp_write(&g, 20000, &late), 0);
	mlsec_pickle_limits lim;
	memset(&lim, 0, sizeof lim);
	lim.scan_only = 1;
	lim.max_decoded = 8u << 20;
	run r = go((const char *)g.buf, g.len, &lim);
	assert_int_equal(r.rc, MLSEC_OK);
	assert_true(mlsec_pickle_collections(r.vm) >= 5);
	assert_int_equal(mlsec_pickle_global_count(r.vm), 2);
	assert_string_equal(mlsec_pickle_global_at(r.vm, 1)->name, "system");
	const mlsec_pval *t = mlsec_pickle_root(r.vm);
	assert_int_equal(t->kind, MLSEC_PV_TUPLE);
	assert_int_equal(t->u.seq.n, 3);
	assert_int_equal(t->u.seq.items[0]->kind, MLSEC_PV_CALL);
	assert_string_equal(t->u.seq.items[0]->u.call.callable->u.global.module, "collections");
	const mlsec_pval *x = t->u.seq.items[2];
	assert_int_equal(x->kind, MLSEC_PV_STR);
	assert_int_equal(x->u.str.len, strlen("item-19999"));
	assert_memory_equal(x->u.str.s, "item-19999", x->u.str.len);
	assert_int_equal(mlsec_pickle_note_count(r.vm), 0);
	mlsec_pickle_free(r.vm);
	free(g.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_memoize_overwrites_binput),
	        cmocka_unit_test(test_memo_aliasing),
	        cmocka_unit_test(test_memo_sparse_then_dense),
	        cmocka_unit_test(test_pop_pops_mark),
	        cmocka_unit_test(test_fence_underflow),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_protocol0_values),
	        cmocka_unit_test(test_recovery_scan),
	        cmocka_unit_test(test_nested_note),
	        cmocka_unit_test(test_setitems_on_ordereddict),
	        cmocka_unit_test(test_classify),
	        cmocka_unit_test(test_scan_only_collects_and_bounds_memo),
	        cmocka_unit_test(test_scan_only_many_collections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
