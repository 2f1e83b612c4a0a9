/* test_fsutil.c - target expansion, confinement, bounded reads, sniffing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/cpus.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"

static char tmpdir[256];

static void put(const char *rel, const void *data, size_t n)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
	for (char *s = p + strlen(tmpdir) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	fwrite(data, 1, n, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mlsec-fsutil-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	put("models/a/config.pbtxt", "name: \"a\"\n", 10);
	put("models/b/1/model.onnx", "\x08\x07\x3a\x00", 4);
	put("models/b/config.pbtxt", "name: \"b\"\n", 10);
	put("models/c/deep/er/config.pbtxt", "x", 1);
	put("models/notes.txt", "hello", 5);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int only_pbtxt(const char *path, const char *base, void *ctx)
{
	(void)path;
	(void)ctx;
	return strcmp(base, "config.pbtxt") == 0;
}

static void test_directory_walk_with_filter(void **state)
{
	(void)state;
	char t[512];
	snprintf(t, sizeof t, "%s/models", tmpdir);
	const char *targets[] = {t, t}; /* duplicates collapse */
	mlsec_strlist out = {0};
	mlsec_error e;
	assert_int_equal(mlsec_targets_expand(targets, 2, only_pbtxt, NULL, &out, &e), MLSEC_OK);
	assert_int_equal(out.count, 3);
	assert_non_null(strstr(out.items[0], "models/a/config.pbtxt"));
	assert_non_null(strstr(out.items[2], "models/c/deep/er/config.pbtxt"));
	mlsec_strlist_free(&out);
}

static void test_glob_double_star(void **state)
{
	(void)state;
	char t[512];
	snprintf(t, sizeof t, "%s/models/**/config.pbtxt", tmpdir);
	const char *targets[] = {t};
	mlsec_strlist out = {0};
	mlsec_error e;
	assert_int_equal(mlsec_targets_expand(targets, 1, NULL, NULL, &out, &e), MLSEC_OK);
	assert_int_equal(out.count, 3);
	mlsec_strlist_free(&out);

	snprintf(t, sizeof t, "%s/models/*/config.pbtxt", tmpdir);
	assert_int_equal(mlsec_targets_expand(targets, 1, NULL, NULL, &out, &e), MLSEC_OK);
	assert_int_equal(out.count, 2); /* * does not cross directories */
	mlsec_strlist_free(&out);

	snprintf(t, sizeof t, "%s/models/**/*.onnx", tmpdir);
	assert_int_equal(mlsec_targets_expand(targets, 1, NULL, NULL, &out, &e), MLSEC_OK);
	assert_int_equal(out.count, 1);
	mlsec_strlist_free(&out);

	snprintf(t, sizeof t, "%s/models/**/*.nothing", tmpdir);
	assert_int_equal(mlsec_targets_expand(targets, 1, NULL, NULL, &out, &e),
	                 MLSEC_ERR_NOT_FOUND);
	assert_non_null(strstr(e.text, "matches no files"));
	mlsec_strlist_free(&out);
}

static void test_missing_target(void **state)
{
	(void)state;
	const char *targets[] = {"/nonexistent/mlsec/path"};
	mlsec_strlist out = {0};
	mlsec_error e;
	assert_int_equal(mlsec_targets_expand(targets, 1, NULL, NULL, &out, &e),
	                 MLSEC_ERR_NOT_FOUND);
	assert_non_null(strstr(e.text, "/nonexistent/mlsec/path"));
	assert_int_equal(out.count, 0);
}

static void test_confinement(void **state)
{
	(void)state;
	char root[512], inside[512], outside[512], link[512], dotdot[512];
	snprintf(root, sizeof root, "%s/models", tmpdir);
	snprintf(inside, sizeof inside, "%s/models/a/config.pbtxt", tmpdir);
	snprintf(dotdot, sizeof dotdot, "%s/models/a/../../models/../models/notes.txt", tmpdir);
	snprintf(outside, sizeof outside, "%s/models/../escape.txt", tmpdir);
	put("escape.txt", "x", 1);
	snprintf(link, sizeof link, "%s/models/link", tmpdir);
	assert_int_equal(symlink("../escape.txt", link), 0);
	char *res = NULL;
	mlsec_error e;
	assert_int_equal(mlsec_path_confine(root, inside, &res, &e), MLSEC_OK);
	assert_non_null(strstr(res, "/models/a/config.pbtxt"));
	mlsec_free(res);
	assert_int_equal(mlsec_path_confine(root, dotdot, &res, &e), MLSEC_OK);
	mlsec_free(res);
	assert_int_equal(mlsec_path_confine(root, outside, &res, &e), MLSEC_ERR_PERMISSION);
	assert_null(res);
	assert_int_equal(mlsec_path_confine(root, link, &res, &e), MLSEC_ERR_PERMISSION);
	/* A sibling whose name shares the root's prefix is outside too. */
	char sib[512];
	snprintf(sib, sizeof sib, "%s/models2", tmpdir);
	mkdir(sib, 0755);
	assert_int_equal(mlsec_path_confine(root, sib, &res, &e), MLSEC_ERR_PERMISSION);
	assert_int_equal(mlsec_path_confine(root, "/nonexistent/x", &res, &e), MLSEC_ERR_NOT_FOUND);
	unlink(link);
}

static void test_read_all_limits(void **state)
{
	(void)state;
	char p[512];
	snprintf(p, sizeof p, "%s/models/notes.txt", tmpdir);
	char *buf;
	size_t len;
	mlsec_error e;
	assert_int_equal(mlsec_file_read_all(p, 5, &buf, &len, &e), MLSEC_OK);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "hello");
	mlsec_free(buf);
	assert_int_equal(mlsec_file_read_all(p, 4, &buf, &len, &e), MLSEC_ERR_LIMIT);
	assert_null(buf);
	snprintf(p, sizeof p, "%s/models", tmpdir);
	assert_int_equal(mlsec_file_read_all(p, 100, &buf, &len, &e), MLSEC_ERR_IO);
}

static void test_write_atomic_and_hash(void **state)
{
	(void)state;
	char p[512];
	snprintf(p, sizeof p, "%s/out.json", tmpdir);
	mlsec_error e;
	assert_int_equal(mlsec_file_write_atomic(p, "abc", 3, 0640, &e), MLSEC_OK);
	char hex[MLSEC_SHA256_HEX_LEN];
	uint64_t size;
	assert_int_equal(mlsec_sha256_file(p, hex, &size, &e), MLSEC_OK);
	assert_int_equal(size, 3);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_true(mlsec_sha256_hex_valid(hex));
	assert_false(mlsec_sha256_hex_valid("abc"));
}

static void test_sniff(void **state)
{
	(void)state;
	struct {
		const char *name;
		const char *data;
		size_t n;
		mlsec_format want;
	} cases[] = {
	        {"ckpt.bin", "PK\3\4....archive/data.pkl", 24, MLSEC_FMT_PYTORCH_ZIP},
	        {"x.npz", "PK\3\4....x.npy", 13, MLSEC_FMT_NPZ},
	        {"weird.onnx", "\x80\x02}q\0.", 6, MLSEC_FMT_PICKLE}, /* content wins over name */
	        {"a.npy", "\x93NUMPY\1\0", 8, MLSEC_FMT_NPY},
	        {"m.safetensors", "\x02\0\0\0\0\0\0\0{}", 10, MLSEC_FMT_SAFETENSORS},
	        {"config.pbtxt", "name: \"m\"", 9, MLSEC_FMT_TRITON_CONFIG},
	        {"worker_0.jsonl", "{\"rank\":0}\n", 11, MLSEC_FMT_JSONL},
	        {"m.onnx", "\x08\x07\x12\x04test:", 9, MLSEC_FMT_ONNX},
	        {"legacy.pt", "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15,
	         MLSEC_FMT_PYTORCH_LEGACY},
	        {"e.plan", "\0\0\0\0ftrt", 8, MLSEC_FMT_TENSORRT},
	        {"random.dat", "hello world", 11, MLSEC_FMT_UNKNOWN},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char rel[64], p[512];
		snprintf(rel, sizeof rel, "sniff/%s", cases[i].name);
		put(rel, cases[i].data, cases[i].n);
		snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
		mlsec_format got = mlsec_format_sniff(p);
		if (got != cases[i].want)
			fail_msg("%s: got %s want %s", cases[i].name, mlsec_format_name(got),
			         mlsec_format_name(cases[i].want));
	}
	char d[512];
	snprintf(d, sizeof d, "%s/sniff", tmpdir);
	assert_int_equal(mlsec_format_sniff(d), MLSEC_FMT_DIRECTORY);
	assert_string_equal(mlsec_format_name(MLSEC_FMT_PYTORCH_ZIP), "pytorch-zip");
}

/* ---- mlsec_dir_visit ---- */

/* What each walker saw, in its order; a walker index touches only its own. */
typedef struct seen {
	char *paths[MLSEC_WALK_THREADS_MAX][128];
	size_t n[MLSEC_WALK_THREADS_MAX];
	const char *fail[2]; /* paths whose visit fails (MLSEC_ERR_IO) */
	int bad_fd;          /* a visit whose dirfd/name was not the file */
} seen;

static mlsec_err record_visit(void *ctx, unsigned worker, int dirfd, const char *name,
                              const char *path, mlsec_error *err)
{
	seen *s = ctx;
	assert_true(worker < MLSEC_WALK_THREADS_MAX);
	/* dirfd/name must name the very file at path, opened with one lookup. */
	struct stat a, b;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino)
		s->bad_fd = 1;
	if (fd >= 0)
		close(fd);
	if (s->n[worker] < 128)
		s->paths[worker][s->n[worker]++] = mlsec_strdup(path);
	for (int i = 0; i < 2; i++)
		if (s->fail[i] && !strcmp(path, s->fail[i]))
			return mlsec_error_set(err, MLSEC_ERR_IO, "refused %s", path);
	return MLSEC_OK;
}

static void seen_free(seen *s)
{
	for (int w = 0; w < MLSEC_WALK_THREADS_MAX; w++)
		for (size_t i = 0; i < s->n[w]; i++)
			mlsec_free(s->paths[w][i]);
	memset(s, 0, sizeof *s);
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A tree whose names sort differently per component than as whole paths
 * ('-' and '.' sort before '/'), with enough entries for parallel walks. */
static void make_visit_tree(char *dir, size_t n)
{
	snprintf(dir, n, "%s/visit", tmpdir);
	put("visit/a/x", "1", 1);
	put("visit/a-b/x", "1", 1);
	put("visit/a.txt", "1", 1);
	put("visit/a.d/x", "1", 1);
	put("visit/ab", "1", 1);
	put("visit/z/deep/er/x", "1", 1);
	/* Names that share their first 16 bytes (past the sort keys). */
	put("visit/long-name-over-16-bytes/x", "1", 1);
	put("visit/long-name-over-16-bytes-b/x", "1", 1);
	put("visit/long-name-over-16-bytes.txt", "1", 1);
	put("visit/long-name-over-16-bytes-a", "1", 1);
	for (int i = 0; i < 90; i++) {
		char rel[64];
		snprintf(rel, sizeof rel, "visit/m%02d/config.pbtxt", i);
		put(rel, "1", 1);
	}
}

static void test_dir_visit_order(void **state)
{
	(void)state;
	char dir[512];
	make_visit_tree(dir, sizeof dir);
	const char *targets[] = {dir};
	mlsec_strlist want = {0};
	mlsec_error e;
	assert_int_equal(mlsec_targets_expand(targets, 1, NULL, NULL, &want, &e), MLSEC_OK);
	assert_int_equal(want.count, 100);
	/* The list is in byte order of whole paths: "a-b/x" < "a.d/x" <
	 * "a.txt" < "a/x" < "ab". */
	for (size_t i = 1; i < want.count; i++)
		assert_true(strcmp(want.items[i - 1], want.items[i]) < 0);
	assert_non_null(strstr(want.items[0], "/visit/a-b/x"));
	assert_non_null(strstr(want.items[3], "/visit/a/x"));

	/* One walker: exactly the list, in its order. */
	seen s = {0};
	assert_int_equal(mlsec_dir_visit(dir, NULL, NULL, 1, record_visit, &s, &e), MLSEC_OK);
	assert_false(s.bad_fd);
	assert_int_equal(s.n[0], want.count);
	for (size_t i = 0; i < want.count; i++)
		assert_string_equal(s.paths[0][i], want.items[i]);
	seen_free(&s);

	/* Several walkers: each in path order, together exactly the list. */
	for (int threads = 2; threads <= MLSEC_WALK_THREADS_MAX; threads++) {
		assert_int_equal(mlsec_dir_visit(dir, NULL, NULL, threads, record_visit, &s, &e),
		                 MLSEC_OK);
		assert_false(s.bad_fd);
		char *all[256];
		size_t total = 0;
		for (int w = 0; w < MLSEC_WALK_THREADS_MAX; w++)
			for (size_t i = 0; i < s.n[w]; i++) {
				if (i)
					assert_true(strcmp(s.paths[w][i - 1], s.paths[w][i]) < 0);
				all[total++] = s.paths[w][i];
			}
		assert_int_equal(total, want.count);
		qsort(all, total, sizeof *all, cmp_strp);
		for (size_t i = 0; i < total; i++)
			assert_string_equal(all[i], want.items[i]);
		seen_free(&s);
	}
	mlsec_strlist_free(&want);
}

static void test_dir_visit_errors(void **state)
{
	(void)state;
	char dir[512], first[600], later[600];
	make_visit_tree(dir, sizeof dir);
	snprintf(first, sizeof first, "%s/m10/config.pbtxt", dir);
	snprintf(later, sizeof later, "%s/m70/config.pbtxt", dir);
	mlsec_error e;
	/* Whatever the threads, the error is the one met first in path order. */
	for (int threads = 1; threads <= MLSEC_WALK_THREADS_MAX; threads++) {
		seen s = {.fail = {later, first}};
		assert_int_equal(
		        mlsec_dir_visit(dir, only_pbtxt, NULL, threads, record_visit, &s, &e),
		        MLSEC_ERR_IO);
		assert_non_null(strstr(e.text, "/m10/config.pbtxt"));
		seen_free(&s);
	}
	/* A directory with nothing wanted. */
	char empty[512];
	snprintf(empty, sizeof empty, "%s/visit-empty", tmpdir);
	put("visit-empty/notes.txt", "x", 1);
	seen s = {0};
	assert_int_equal(mlsec_dir_visit(empty, only_pbtxt, NULL, 0, record_visit, &s, &e),
	                 MLSEC_ERR_NOT_FOUND);
	assert_non_null(strstr(e.text, "no matching files"));
	assert_int_equal(mlsec_dir_visit("/nonexistent/mlsec", NULL, NULL, 0, record_visit, &s, &e),
	                 MLSEC_ERR_NOT_FOUND);
	seen_free(&s);
}

static void test_cpus_for_work(void **state)
{
	(void)state;
	setenv("MLSEC_THREADS", "3", 1);
	assert_int_equal(mlsec_cpus_for_work(8), 3);
	assert_int_equal(mlsec_cpus_for_work(2), 2);
	setenv("MLSEC_THREADS", "0", 1);
	assert_int_equal(mlsec_cpus_for_work(8), 1);
	unsetenv("MLSEC_THREADS");
	int n = mlsec_cpus_for_work(64);
	assert_true(n >= 1 && n <= sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(mlsec_cpus_for_work(0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_directory_walk_with_filter),
	        cmocka_unit_test(test_glob_double_star),
	        cmocka_unit_test(test_missing_target),
	        cmocka_unit_test(test_confinement),
	        cmocka_unit_test(test_read_all_limits),
	        cmocka_unit_test(test_write_atomic_and_hash),
	        cmocka_unit_test(test_sniff),
	        cmocka_unit_test(test_dir_visit_order),
	        cmocka_unit_test(test_dir_visit_errors),
	        cmocka_unit_test(test_cpus_for_work),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
