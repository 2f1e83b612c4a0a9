/*
 * fsutil.h - bounded file reading, artifact-root confinement, target
 * expansion (files, directories, globs with **) and content sniffing.
 */
#ifndef MLSEC_FSUTIL_H
#define MLSEC_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

/*
 * Reads a whole regular file into a fresh NUL-terminated buffer (caller
 * mlsec_free()s *out). Fails with MLSEC_ERR_LIMIT when larger than max.
 */
mlsec_err mlsec_file_read_all(const char *path, size_t max, char **out, size_t *len,
                              mlsec_error *err);

/*
 * Writes data to path atomically (temp file in the same directory, fsync,
 * rename). mode is the final file mode (e.g. 0644).
 */
mlsec_err mlsec_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                                  mlsec_error *err);

/*
 * Resolves path (following symlinks) and checks it lies under root (also
 * resolved). On success *resolved is a fresh string (caller frees).
 * MLSEC_ERR_PERMISSION when it escapes, MLSEC_ERR_NOT_FOUND when missing.
 */
mlsec_err mlsec_path_confine(const char *root, const char *path, char **resolved, mlsec_error *err);

/*
 * For a worker thread this library itself started, before it opens files:
 * gives the thread a private copy of the descriptor table. Threads of one
 * process share one table, so every open() and close() takes its lock and
 * every call on a descriptor bumps the file's reference count, cache lines
 * that then bounce between CPUs. Descriptors the thread opens afterwards
 * exist only in its table and are closed when it exits, and a descriptor
 * another thread closes meanwhile stays open until then: never call it in
 * a thread whose descriptors must outlive it, or in a caller's thread.
 * Best effort: a seccomp policy that refuses unshare() changes nothing.
 */
void mlsec_thread_private_fds(void);

/* A growable list of owned strings. */
typedef struct mlsec_strlist {
	char **items;
	size_t count;
	size_t cap;
} mlsec_strlist;
mlsec_err mlsec_strlist_push(mlsec_strlist *l, const char *s);
void mlsec_strlist_free(mlsec_strlist *l); /* frees items, leaves l empty */

/*
 * Decides which files found under a directory are wanted (basename and full
 * path given). Explicitly named files are always taken.
 */
typedef int (*mlsec_target_filter)(const char *path, const char *base, void *ctx);

/*
 * Expands command-line targets into a sorted, de-duplicated list of files:
 * a file is taken as is; a directory is walked recursively (no symlink
 * following, depth and count bounded) keeping files the filter accepts
 * (NULL filter = all); a pattern with * ? [ or ** is expanded by the tool.
 * A target that matches nothing is MLSEC_ERR_NOT_FOUND naming it.
 */
mlsec_err mlsec_targets_expand(const char *const *targets, size_t n, mlsec_target_filter filter,
                               void *ctx, mlsec_strlist *out, mlsec_error *err);

/*
 * Called for a wanted file found by mlsec_dir_visit: dirfd is its
 * directory, open for the duration of the call (open the file with
 * openat(dirfd, name, ...): one lookup), path its full path. worker is the
 * calling walker's index, below MLSEC_WALK_THREADS_MAX; calls with the
 * same index never overlap and come in strcmp() order of their paths.
 * A non-OK return stops the walk; set err then.
 */
typedef mlsec_err (*mlsec_walk_visit)(void *ctx, unsigned worker, int dirfd, const char *name,
                                      const char *path, mlsec_error *err);
#define MLSEC_WALK_THREADS_MAX 4

/*
 * Walks one directory as mlsec_targets_expand does (same limits, no
 * symlink following, same filter) but hands each wanted file to visit as
 * it is found instead of listing it: the walk and the work on the files
 * share one pass and one set of threads. threads: 0 = automatic (CPUs,
 * load, MLSEC_THREADS), 1 = this thread only, n = up to n walkers. A
 * directory with no wanted file is MLSEC_ERR_NOT_FOUND; on several
 * errors, the one the sequential walk would meet first is returned.
 */
mlsec_err mlsec_dir_visit(const char *dir, mlsec_target_filter filter, void *filter_ctx,
                          int threads, mlsec_walk_visit visit, void *visit_ctx, mlsec_error *err);

#define MLSEC_WALK_MAX_DEPTH 64
#define MLSEC_WALK_MAX_FILES 1000000

/* Artifact kinds recognised by content (never by extension alone). */
typedef enum mlsec_format {
	MLSEC_FMT_UNKNOWN = 0,
	MLSEC_FMT_DIRECTORY,
	MLSEC_FMT_ZIP,         /* zip that is not a PyTorch archive or npz */
	MLSEC_FMT_PYTORCH_ZIP, /* zip with a <prefix>/data.pkl member */
	MLSEC_FMT_PYTORCH_LEGACY,
	MLSEC_FMT_PICKLE,
	MLSEC_FMT_NPY,
	MLSEC_FMT_NPZ,
	MLSEC_FMT_SAFETENSORS,
	MLSEC_FMT_ONNX,
	MLSEC_FMT_TRITON_CONFIG, /* config.pbtxt */
	MLSEC_FMT_JSONL,         /* gradient logs */
	MLSEC_FMT_TENSORRT,      /* TensorRT plan ("ftrt") */
	MLSEC_FMT_JSON
} mlsec_format;

const char *mlsec_format_name(mlsec_format f); /* e.g. "pytorch-zip" */

/* Sniffs a file (reads at most a few KiB of it). */
mlsec_format mlsec_format_sniff(const char *path);

#endif
