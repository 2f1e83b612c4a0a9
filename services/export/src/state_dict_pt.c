/*
 * state_dict_pt.c - the canonical state-dict digest of a PyTorch zip
 * checkpoint (torch.save since 1.6), with the same byte stream as the
 * safetensors one (state_dict.c), so that a checkpoint and its safetensors
 * conversion have the same digest.
 *
 * The archive and its pickle are read with the checkpoint engine's
 * restricted readers (common/formats: bounded zip reader, pickle VM that
 * never imports or calls anything, allowlisted tensor rebuilds). Each
 * tensor's elements are gathered in row-major order through its
 * shape/stride/offset view of the storage, so views and shared storages
 * digest as the values a state_dict holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/bytesrc.h"
#include "mlsec/pickle.h"
#include "mlsec/sha256.h"
#include "mlsec/tensorref.h"
#include "mlsec/torchfmt.h"
#include "mlsec/zip.h"

#define PT_MAX_STORAGE ((uint64_t)8u << 30) /* bytes of one storage member read */

static int ref_cmp(const void *a, const void *b)
{
	return strcmp((*(const mlsec_tensor_ref *const *)a)->name,
	              (*(const mlsec_tensor_ref *const *)b)->name);
}

typedef struct pt_ctx {
	mlsec_zip *zip;
	char prefix[512];
	mlsec_tensor_list tl;
} pt_ctx;

static void put_u64(mlsec_sha256 *h, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	mlsec_sha256_update(h, b, 8);
}

static void put_str(mlsec_sha256 *h, const char *s)
{
	put_u64(h, strlen(s));
	mlsec_sha256_update(h, s, strlen(s));
}

/* Hashes tensor t's elements in row-major order from its storage bytes. */
static mlsec_err hash_tensor(pt_ctx *c, const mlsec_tensor_ref *t, mlsec_sha256 *h,
                             mlsec_error *err)
{
	char member[1200];
	snprintf(member, sizeof member, "%s/data/%s", c->prefix, t->storage_key);
	long m = mlsec_zip_find(c->zip, member);
	size_t es = mlsec_dtype_size(t->storage_dtype);
	if (m < 0)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': storage %s missing",
		                       t->name, member);
	if (!es || t->dtype != t->storage_dtype)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': unsupported dtype",
		                       t->name);
	mlsec_zip_entry *e = mlsec_zip_entry_at(c->zip, (size_t)m);
	if (t->storage_numel > e->usize / es)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': storage too small",
		                       t->name);
	mlsec_err rc = mlsec_tensor_ref_check_bounds(t, err);
	if (rc != MLSEC_OK)
		return rc;
	uint8_t *buf = NULL;
	size_t len = 0;
	int crc_ok = 0;
	rc = mlsec_zip_member_read(c->zip, (size_t)m, PT_MAX_STORAGE, &buf, &len, &crc_ok, err);
	if (rc != MLSEC_OK)
		return rc;
	if (crc_ok != 1 || len < t->storage_numel * es) {
		mlsec_free(buf);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': storage corrupt",
		                       t->name);
	}
	put_u64(h, t->numel * es);
	if (t->numel && mlsec_tensor_ref_contiguous(t)) {
		mlsec_sha256_update(h, buf + t->offset * es, t->numel * es);
	} else if (t->numel) {
		/* Strided view: walk the index space with a carry counter. */
		int64_t idx[MLSEC_TENSOR_MAX_DIMS] = {0};
		for (uint64_t k = 0; k < t->numel; k++) {
			uint64_t el = t->offset;
			for (int d = 0; d < t->ndim; d++)
				el += (uint64_t)idx[d] * (uint64_t)t->stride[d];
			mlsec_sha256_update(h, buf + el * es, es);
			for (int d = t->ndim - 1; d >= 0; d--) {
				if (++idx[d] < t->shape[d])
					break;
				idx[d] = 0;
			}
		}
	}
	mlsec_free(buf);
	return MLSEC_OK;
}

/* Finds the single "<prefix>/data.pkl" member. */
static long find_pickle(pt_ctx *c, mlsec_error *err)
{
	long found = -1;
	for (size_t i = 0; i < mlsec_zip_count(c->zip); i++) {
		const mlsec_zip_entry *e = mlsec_zip_entry_at(c->zip, i);
		const char *slash = strchr(e->name, '/');
		if (!slash || strcmp(slash, "/data.pkl"))
			continue;
		if (found >= 0 || (e->problems & MLSEC_ZIP_P_DUPLICATE)) {
			mlsec_error_set(err, MLSEC_ERR_PARSE, "several data.pkl members");
			return -1;
		}
		if ((size_t)(slash - e->name) >= sizeof c->prefix) {
			mlsec_error_set(err, MLSEC_ERR_PARSE, "archive prefix too long");
			return -1;
		}
		memcpy(c->prefix, e->name, (size_t)(slash - e->name));
		c->prefix[slash - e->name] = '\0';
		found = (long)i;
	}
	if (found < 0)
		mlsec_error_set(err, MLSEC_ERR_PARSE, "no data.pkl member");
	return found;
}

mlsec_err export_pt_state_dict_digest(const char *path, char hex[65], size_t *ntensors,
                                      mlsec_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	struct stat st;
	pt_ctx c;
	memset(&c, 0, sizeof c);
	mlsec_pickle *vm = NULL;
	uint8_t *pkl = NULL;
	const mlsec_tensor_ref **refs = NULL;
	mlsec_sha256 *h = NULL;
	mlsec_err rc;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = mlsec_error_set(err, MLSEC_ERR_IO, "%s: not a regular file", path);
		goto out;
	}
	mlsec_src src;
	mlsec_src_init_fd(&src, fd, (uint64_t)st.st_size);
	if ((rc = mlsec_zip_open(&src, &c.zip, err)) != MLSEC_OK)
		goto out;
	long pi = find_pickle(&c, err);
	if (pi < 0) {
		rc = MLSEC_ERR_PARSE;
		goto out;
	}
	size_t plen = 0;
	int crc_ok = 0;
	rc = mlsec_zip_member_read(c.zip, (size_t)pi, MLSEC_TORCH_MAX_PICKLE, &pkl, &plen, &crc_ok,
	                           err);
	if (rc != MLSEC_OK)
		goto out;
	vm = mlsec_pickle_new(NULL);
	if (!vm) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = mlsec_pickle_run(vm, pkl, plen, err)) != MLSEC_OK ||
	    (rc = mlsec_torch_collect(vm, mlsec_pickle_root(vm), &c.tl, err)) != MLSEC_OK)
		goto out;
	refs = mlsec_calloc(c.tl.n ? c.tl.n : 1, sizeof *refs);
	h = mlsec_sha256_new();
	if (!refs || !h) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.tl.n; i++)
		refs[i] = &c.tl.t[i];
	qsort(refs, c.tl.n, sizeof *refs, ref_cmp);
	static const char tag[] = "mlsec-state-dict-v1\n";
	mlsec_sha256_update(h, tag, sizeof tag - 1);
	for (size_t i = 0; i < c.tl.n; i++) {
		const mlsec_tensor_ref *t = refs[i];
		const char *dn = mlsec_dtype_st_name(t->dtype);
		if (!dn) {
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "tensor '%s': dtype %s", t->name,
			                     mlsec_dtype_name(t->dtype));
			goto out;
		}
		put_str(h, t->name);
		put_str(h, dn);
		put_u64(h, (uint64_t)t->ndim);
		for (int d = 0; d < t->ndim; d++)
			put_u64(h, (uint64_t)t->shape[d]);
		if ((rc = hash_tensor(&c, t, h, err)) != MLSEC_OK)
			goto out;
	}
	mlsec_sha256_final(h, NULL, hex);
	h = NULL;
	if (ntensors)
		*ntensors = c.tl.n;
	rc = MLSEC_OK;
out:
	if (h)
		mlsec_sha256_final(h, NULL, NULL);
	mlsec_free(refs);
	mlsec_tensor_list_free(&c.tl);
	mlsec_pickle_free(vm);
	mlsec_free(pkl);
	mlsec_zip_free(c.zip);
	close(fd);
	if (rc == MLSEC_ERR_LIMIT || rc == MLSEC_ERR_UNSUPPORTED)
		rc = MLSEC_ERR_PARSE; /* to the caller: this checkpoint cannot be digested */
	return rc;
}
