/*
 * dataset.c - labelled evaluation data for the attacks: x (float samples)
 * and y (integer labels) from a NumPy .npz or a safetensors file.
 * Everything is bounded and validated; a file that is not what it claims
 * is MLSEC_ERR_PARSE so the caller can report ADV-MALFORMED.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlsec/adversarial.h"
#include "mlsec/alloc.h"
#include "mlsec/bytesrc.h"
#include "mlsec/npy.h"
#include "mlsec/safetensors.h"
#include "mlsec/tensorstats.h"
#include "mlsec/zip.h"

#define DATA_MAX_BYTES (2ull << 30) /* per array */

/* A raw array as found in the file, before conversion. */
typedef struct raw_array {
	mlsec_dtype dtype;
	int ndim;
	int64_t shape[MLSEC_TENSOR_MAX_DIMS];
	uint64_t numel;
	const uint8_t *data; /* little-endian, C order */
} raw_array;

static double elem(const raw_array *a, uint64_t i)
{
	const uint8_t *p = a->data + i * mlsec_dtype_size(a->dtype);
	switch (a->dtype) {
	case MLSEC_DT_F32: {
		float v;
		memcpy(&v, p, 4);
		return v;
	}
	case MLSEC_DT_F64: {
		double v;
		memcpy(&v, p, 8);
		return v;
	}
	case MLSEC_DT_I64: {
		int64_t v;
		memcpy(&v, p, 8);
		return (double)v;
	}
	case MLSEC_DT_I32: {
		int32_t v;
		memcpy(&v, p, 4);
		return v;
	}
	case MLSEC_DT_I16: {
		int16_t v;
		memcpy(&v, p, 2);
		return v;
	}
	case MLSEC_DT_F16:
	case MLSEC_DT_BF16: {
		uint16_t h;
		memcpy(&h, p, 2);
		return a->dtype == MLSEC_DT_F16 ? mlsec_f16_to_f32(h) : mlsec_bf16_to_f32(h);
	}
	case MLSEC_DT_I8:
		return (int8_t)*p;
	case MLSEC_DT_U8:
	case MLSEC_DT_BOOL:
		return *p;
	default:
		return NAN;
	}
}

static int convertible(mlsec_dtype d)
{
	return d == MLSEC_DT_F32 || d == MLSEC_DT_F64 || d == MLSEC_DT_F16 || d == MLSEC_DT_BF16 ||
	       d == MLSEC_DT_I64 || d == MLSEC_DT_I32 || d == MLSEC_DT_I16 || d == MLSEC_DT_I8 ||
	       d == MLSEC_DT_U8 || d == MLSEC_DT_BOOL;
}

static mlsec_err fill(mlsec_adv_data *d, const raw_array *x, const raw_array *y, const char *path,
                      mlsec_error *err)
{
	if (!convertible(x->dtype) || !convertible(y->dtype))
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "%s: x/y have unsupported dtypes (%s, %s)", path,
		                       mlsec_dtype_name(x->dtype), mlsec_dtype_name(y->dtype));
	if (x->ndim < 2 || x->ndim > 8 || x->shape[0] <= 0)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "%s: x must be [N, ...] with N > 0 (got %d dims)", path,
		                       x->ndim);
	uint64_t n = (uint64_t)x->shape[0];
	if (y->numel != n)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "%s: %llu samples in x but %llu labels in y", path,
		                       (unsigned long long)n, (unsigned long long)y->numel);
	if (n > MLSEC_ADV_MAX_SAMPLES)
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "%s: more than %d samples", path,
		                       MLSEC_ADV_MAX_SAMPLES);
	d->n = (size_t)n;
	d->sample_numel = (size_t)(x->numel / n);
	d->ndim = (size_t)x->ndim - 1;
	for (size_t i = 0; i < d->ndim; i++)
		d->shape[i] = x->shape[i + 1];
	d->x = mlsec_reallocarray(NULL, x->numel, sizeof *d->x);
	d->y = mlsec_reallocarray(NULL, n, sizeof *d->y);
	if (!d->x || !d->y)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory loading %s", path);
	for (uint64_t i = 0; i < x->numel; i++) {
		double v = elem(x, i);
		/* f64 beyond the float range would become +-inf (and the
		 * conversion is undefined behaviour): not finite either. */
		if (!isfinite(v) || fabs(v) > FLT_MAX)
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "%s: x[%llu] is not a finite float32", path,
			                       (unsigned long long)i);
		d->x[i] = (float)v;
	}
	for (uint64_t i = 0; i < n; i++) {
		double v = elem(y, i);
		if (!(v >= 0 && v < 1e9) || v != floor(v))
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "%s: label y[%llu] = %g is not a class index", path,
			                       (unsigned long long)i, v);
		d->y[i] = (int64_t)v;
	}
	return MLSEC_OK;
}

static mlsec_err npy_array(const uint8_t *buf, size_t len, const char *what, raw_array *a,
                           mlsec_error *err)
{
	mlsec_npy_info info;
	mlsec_err rc = mlsec_npy_parse(buf, len, &info, err);
	if (rc != MLSEC_OK)
		return rc;
	if (info.is_object)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "%s is an object array (a pickle): refusing to load it",
		                       what);
	if (info.fortran_order)
		return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "%s is in Fortran order", what);
	size_t es = mlsec_dtype_size(info.dtype);
	if (!es || info.data_offset > len || (len - info.data_offset) / es < info.numel)
		return mlsec_error_set(err, MLSEC_ERR_PARSE,
		                       "%s: truncated or unsupported dtype '%s'", what, info.descr);
	a->dtype = info.dtype;
	a->ndim = info.ndim;
	memcpy(a->shape, info.shape, sizeof a->shape);
	a->numel = info.numel;
	a->data = buf + info.data_offset;
	return MLSEC_OK;
}

static mlsec_err load_npz(const char *path, const mlsec_src *src, mlsec_adv_data *d,
                          mlsec_error *err)
{
	mlsec_zip *z = NULL;
	uint8_t *bx = NULL, *by = NULL;
	size_t lx = 0, ly = 0;
	mlsec_err rc = mlsec_zip_open(src, &z, err);
	if (rc != MLSEC_OK)
		return rc == MLSEC_ERR_NOMEM ? rc : MLSEC_ERR_PARSE;
	long ix = mlsec_zip_find(z, "x.npy"), iy = mlsec_zip_find(z, "y.npy");
	if (ix < 0 || iy < 0) {
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
		                     "%s: the archive needs members x.npy and y.npy", path);
		goto done;
	}
	int crc_ok;
	if ((rc = mlsec_zip_member_read(z, (size_t)ix, DATA_MAX_BYTES, &bx, &lx, &crc_ok, err)) ||
	    (rc = mlsec_zip_member_read(z, (size_t)iy, DATA_MAX_BYTES, &by, &ly, &crc_ok, err)))
		goto done;
	raw_array x, y;
	if ((rc = npy_array(bx, lx, "x.npy", &x, err)) ||
	    (rc = npy_array(by, ly, "y.npy", &y, err)))
		goto done;
	rc = fill(d, &x, &y, path, err);
done:
	mlsec_free(bx);
	mlsec_free(by);
	mlsec_zip_free(z);
	return rc;
}

static mlsec_err st_array(const mlsec_src *src, const mlsec_tensor_list *l, const char *name,
                          uint8_t **buf, raw_array *a, mlsec_error *err)
{
	for (size_t i = 0; i < l->n; i++) {
		const mlsec_tensor_ref *t = &l->t[i];
		if (strcmp(t->name, name) != 0)
			continue;
		if (t->file_len > DATA_MAX_BYTES)
			return mlsec_error_set(err, MLSEC_ERR_LIMIT, "tensor %s is too large",
			                       name);
		size_t es = mlsec_dtype_size(t->dtype);
		if (!es || t->file_len != t->numel * es)
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "tensor %s: size/dtype mismatch", name);
		*buf = mlsec_malloc(t->file_len ? t->file_len : 1);
		if (!*buf)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		mlsec_err rc = mlsec_src_read(src, t->file_offset, *buf, t->file_len, err);
		if (rc != MLSEC_OK)
			return rc;
		a->dtype = t->dtype;
		a->ndim = t->ndim;
		memcpy(a->shape, t->shape, sizeof a->shape);
		a->numel = t->numel;
		a->data = *buf;
		return MLSEC_OK;
	}
	return mlsec_error_set(err, MLSEC_ERR_PARSE, "no tensor named '%s'", name);
}

static mlsec_err load_safetensors(const char *path, const mlsec_src *src, mlsec_adv_data *d,
                                  mlsec_error *err)
{
	mlsec_tensor_list l = {0};
	uint8_t *bx = NULL, *by = NULL;
	raw_array x, y;
	mlsec_err rc = mlsec_safetensors_read(src, &l, NULL, err);
	if (rc == MLSEC_OK && !(rc = st_array(src, &l, "x", &bx, &x, err)) &&
	    !(rc = st_array(src, &l, "y", &by, &y, err)))
		rc = fill(d, &x, &y, path, err);
	mlsec_free(bx);
	mlsec_free(by);
	mlsec_tensor_list_free(&l);
	return rc;
}

mlsec_err mlsec_adv_data_load(const char *path, mlsec_adv_data *d, mlsec_error *err)
{
	memset(d, 0, sizeof *d);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mlsec_error_set(err, MLSEC_ERR_IO, "%s: not a regular file", path);
	}
	mlsec_src src;
	mlsec_src_init_fd(&src, fd, (uint64_t)st.st_size);
	uint8_t head[16] = {0};
	size_t hn = st.st_size < 16 ? (size_t)st.st_size : 16;
	mlsec_err rc = mlsec_src_read(&src, 0, head, hn, err);
	if (rc == MLSEC_OK) {
		if (hn >= 4 && memcmp(head, "PK\3\4", 4) == 0)
			rc = load_npz(path, &src, d, err);
		else if (mlsec_safetensors_sniff(head, hn, (uint64_t)st.st_size))
			rc = load_safetensors(path, &src, d, err);
		else
			rc = mlsec_error_set(err, MLSEC_ERR_PARSE,
			                     "%s: not an .npz or .safetensors file with x and y",
			                     path);
	}
	close(fd);
	if (rc != MLSEC_OK) {
		mlsec_adv_data_free(d);
		if (err && !err->file[0])
			snprintf(err->file, sizeof err->file, "%s", path);
	}
	return rc;
}

void mlsec_adv_data_free(mlsec_adv_data *d)
{
	mlsec_free(d->x);
	mlsec_free(d->y);
	memset(d, 0, sizeof *d);
}
