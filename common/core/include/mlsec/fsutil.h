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
