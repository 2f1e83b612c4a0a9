/*
 * sniff.c - recognise artifact formats by content (and, only to break ties
 * between text formats, by name). Used by the orchestrator's `auto` stage
 * selection and by engines to name an artifact's format in reports.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlsec/fsutil.h"

#define SNIFF_BYTES 4096

const char *mlsec_format_name(mlsec_format f)
{
	static const char *const names[] = {
	        [MLSEC_FMT_UNKNOWN] = "unknown",
	        [MLSEC_FMT_DIRECTORY] = "directory",
	        [MLSEC_FMT_ZIP] = "zip",
	        [MLSEC_FMT_PYTORCH_ZIP] = "pytorch-zip",
	        [MLSEC_FMT_PYTORCH_LEGACY] = "pytorch-legacy",
	        [MLSEC_FMT_PICKLE] = "pickle",
	        [MLSEC_FMT_NPY] = "npy",
	        [MLSEC_FMT_NPZ] = "npz",
	        [MLSEC_FMT_SAFETENSORS] = "safetensors",
	        [MLSEC_FMT_ONNX] = "onnx",
	        [MLSEC_FMT_TRITON_CONFIG] = "triton-config",
	        [MLSEC_FMT_JSONL] = "jsonl",
	        [MLSEC_FMT_TENSORRT] = "tensorrt-plan",
	        [MLSEC_FMT_JSON] = "json",
	};
	if ((unsigned)f >= sizeof names / sizeof names[0] || !names[f])
		return "unknown";
	return names[f];
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Does the zip's central directory mention a member ending in `suffix`?
 * The first local header name is enough for PyTorch (data.pkl comes first,
 * but we also scan the sniff buffer for the name to be lenient). */
static int buf_contains(const unsigned char *b, size_t n, const char *needle)
{
	size_t m = strlen(needle);
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(b + i, needle, m) == 0)
			return 1;
	return 0;
}

static const unsigned char legacy_magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                             0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

mlsec_format mlsec_format_sniff(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return MLSEC_FMT_UNKNOWN;
	if (S_ISDIR(st.st_mode))
		return MLSEC_FMT_DIRECTORY;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return MLSEC_FMT_UNKNOWN;
	unsigned char b[SNIFF_BYTES];
	ssize_t r = read(fd, b, sizeof b);
	close(fd);
	if (r <= 0)
		return strcmp(base, "config.pbtxt") == 0 ? MLSEC_FMT_TRITON_CONFIG
		                                         : MLSEC_FMT_UNKNOWN;
	size_t n = (size_t)r;

	if (n >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) {
		if (buf_contains(b, n, "data.pkl"))
			return MLSEC_FMT_PYTORCH_ZIP;
		if (buf_contains(b, n, ".npy"))
			return MLSEC_FMT_NPZ;
		return MLSEC_FMT_ZIP;
	}
	if (n >= 6 && memcmp(b, "\x93NUMPY", 6) == 0)
		return MLSEC_FMT_NPY;
	if (n >= 8 && memcmp(b + 4, "ftrt", 4) == 0)
		return MLSEC_FMT_TENSORRT;
	if (n >= 2 + sizeof legacy_magic && b[0] == 0x80 &&
	    memcmp(b + 2, legacy_magic, sizeof legacy_magic) == 0)
		return MLSEC_FMT_PYTORCH_LEGACY;
	/* safetensors: u64 little-endian header length, then '{'. */
	if (n >= 9 && b[8] == '{') {
		uint64_t hl = 0;
		for (int i = 7; i >= 0; i--)
			hl = hl << 8 | b[i];
		if (hl >= 2 && hl <= (uint64_t)st.st_size - 8)
			return MLSEC_FMT_SAFETENSORS;
	}
	/* Pickle protocol 2+ starts with PROTO; 0/1 are recognised by name. */
	if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
		return MLSEC_FMT_PICKLE;
	if (strcmp(base, "config.pbtxt") == 0 || ends_with(base, ".pbtxt"))
		return MLSEC_FMT_TRITON_CONFIG;
	if (ends_with(base, ".jsonl"))
		return MLSEC_FMT_JSONL;
	if (n >= 1 && (b[0] == '{' || b[0] == '['))
		return MLSEC_FMT_JSON;
	/* ONNX ModelProto: field 1 (ir_version, varint) tag 0x08 first in
	 * every exporter we know; require a graph field (0x3a) in the file. */
	if (b[0] == 0x08 && (ends_with(base, ".onnx") || buf_contains(b, n, "\x3a")))
		return MLSEC_FMT_ONNX;
	if (ends_with(base, ".pkl") || ends_with(base, ".pickle") || ends_with(base, ".pt") ||
	    ends_with(base, ".pth") || ends_with(base, ".ckpt") || ends_with(base, ".bin") ||
	    ends_with(base, ".joblib"))
		return MLSEC_FMT_PICKLE; /* protocol 0/1 or unknown: scan as pickle */
	return MLSEC_FMT_UNKNOWN;
}
