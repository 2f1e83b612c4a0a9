/*
 * load.c - the model's float weights as float32 arrays in memory, with the
 * role each plays (layer weight, layer bias) and the final layer, from an
 * ONNX graph (initializers and the nodes consuming them), a safetensors
 * file or a PyTorch zip checkpoint (names: "<layer>.weight/.bias").
 *
 * Per-layer checks need whole tensors (rows are compared with each other),
 * so everything is loaded, bounded by MLSEC_INSPECT_MAX_WEIGHT_BYTES.
 * Pickles are interpreted by the restricted VM of common/formats, never run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/bytesrc.h"
#include "mlsec/pickle.h"
#include "mlsec/safetensors.h"
#include "mlsec/tensorstats.h"
#include "mlsec/torchfmt.h"
#include "mlsec/zip.h"

#define FINAL_TRACE_STEPS 64 /* pass-through nodes followed back from the output */
#define MAX_PICKLE (256u * 1024 * 1024)

void insp_weights_init(insp_weights *w)
{
	memset(w, 0, sizeof *w);
	w->final_w = w->final_b = -1;
}

void insp_weights_free(insp_weights *w)
{
	for (size_t i = 0; i < w->n; i++) {
		mlsec_free(w->t[i].name);
		mlsec_free(w->t[i].data);
	}
	mlsec_free(w->t);
	insp_weights_init(w);
}

/* Appends a tensor with room for numel floats; returns it or NULL. */
static insp_tensor *push(insp_weights *w, const char *name, int ndim, const int64_t *shape,
                         size_t numel, mlsec_error *err)
{
	if ((uint64_t)numel * 4 > MLSEC_INSPECT_MAX_WEIGHT_BYTES - w->bytes) {
		mlsec_error_set(err, MLSEC_ERR_LIMIT, "weights exceed %llu bytes as float32",
		                (unsigned long long)MLSEC_INSPECT_MAX_WEIGHT_BYTES);
		return NULL;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 32;
		insp_tensor *t = mlsec_reallocarray(w->t, cap, sizeof *t);
		if (!t) {
			mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			return NULL;
		}
		w->t = t;
		w->cap = cap;
	}
	insp_tensor *t = &w->t[w->n];
	memset(t, 0, sizeof *t);
	t->name = mlsec_strdup(name);
	t->data = mlsec_reallocarray(NULL, numel ? numel : 1, sizeof(float));
	if (!t->name || !t->data) {
		mlsec_free(t->name);
		mlsec_free(t->data);
		mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		return NULL;
	}
	t->ndim = ndim > MLSEC_TENSOR_MAX_DIMS ? MLSEC_TENSOR_MAX_DIMS : ndim;
	for (int d = 0; d < t->ndim; d++)
		t->shape[d] = shape[d];
	t->numel = numel;
	w->bytes += (uint64_t)numel * 4;
	w->n++;
	return t;
}

/* ---- ONNX ------------------------------------------------------------- */

static int is_float_dtype(int32_t dt)
{
	return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
	       dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

static long lookup(json_t *map, const char *name)
{
	json_t *v = name ? json_object_get(map, name) : NULL;
	return v ? (long)json_integer_value(v) : -1;
}

/* Role of the initializer used as input k of node n. */
static void onnx_role(const Onnx__NodeProto *n, size_t k, insp_tensor *t)
{
	const char *op = n->op_type ? n->op_type : "";
	if (!strcmp(op, "Gemm")) {
		if (k == 1 && t->ndim == 2) {
			t->role = INSP_ROLE_WEIGHT;
			t->unit_axis = mlsec_onnx_attr_int(n, "transB", 0) ? 0 : 1;
		} else if (k == 2 && t->ndim == 1) {
			t->role = INSP_ROLE_BIAS;
		}
	} else if (!strcmp(op, "Conv") || !strcmp(op, "ConvTranspose")) {
		if (k == 1 && t->ndim >= 3) {
			t->role = INSP_ROLE_WEIGHT;
			t->unit_axis = !strcmp(op, "Conv") ? 0 : 1;
		} else if (k == 2 && t->ndim == 1) {
			t->role = INSP_ROLE_BIAS;
		}
	} else if (!strcmp(op, "MatMul") && t->ndim == 2) {
		t->role = INSP_ROLE_WEIGHT;
		t->unit_axis = k == 1 ? 1 : 0;
	} else if (!strcmp(op, "Add") && t->ndim == 1 && t->role == INSP_ROLE_OTHER) {
		t->role = INSP_ROLE_BIAS;
	}
}

/* Follows the first graph output back through pass-through nodes to the
 * layer that computes the logits. */
static void onnx_final(const Onnx__GraphProto *g, json_t *inits, json_t *producers, insp_weights *w)
{
	static const char *const pass[] = {"Softmax", "LogSoftmax", "Identity", "Flatten",
	                                   "Reshape", "Squeeze",    "Sigmoid",  "Cast",
	                                   "Dropout", NULL};
	if (!g->n_output || !g->output[0]->name)
		return;
	const char *value = g->output[0]->name;
	for (int step = 0; step < FINAL_TRACE_STEPS; step++) {
		long ni = lookup(producers, value);
		if (ni < 0)
			return;
		const Onnx__NodeProto *n = g->node[ni];
		const char *op = n->op_type ? n->op_type : "";
		int passthrough = 0;
		for (const char *const *p = pass; *p; p++)
			passthrough |= !strcmp(op, *p);
		if (passthrough && n->n_input) {
			value = n->input[0];
			continue;
		}
		if (!strcmp(op, "Gemm") || !strcmp(op, "Conv") || !strcmp(op, "MatMul")) {
			for (size_t k = 0; k < n->n_input && k < 3; k++) {
				long ti = lookup(inits, n->input[k]);
				if (ti < 0)
					continue;
				if (w->t[ti].role == INSP_ROLE_WEIGHT && w->final_w < 0)
					w->final_w = ti;
				else if (w->t[ti].role == INSP_ROLE_BIAS && w->final_b < 0)
					w->final_b = ti;
			}
			return;
		}
		if (!strcmp(op, "Add") && n->n_input == 2) {
			long b0 = lookup(inits, n->input[0]), b1 = lookup(inits, n->input[1]);
			if ((b0 < 0) == (b1 < 0))
				return;
			if (w->final_b < 0 && w->t[b0 >= 0 ? b0 : b1].role == INSP_ROLE_BIAS)
				w->final_b = b0 >= 0 ? b0 : b1;
			value = n->input[b0 >= 0 ? 1 : 0];
			continue;
		}
		return;
	}
}

mlsec_err insp_weights_onnx(const mlsec_onnx_model *m, insp_weights *w, mlsec_error *err)
{
	const Onnx__GraphProto *g = mlsec_onnx_model_proto(m)->graph;
	if (!g)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "the model has no graph");
	json_t *inits = json_object(), *producers = json_object();
	mlsec_err rc = inits && producers ? MLSEC_OK
	                                  : mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == MLSEC_OK && i < g->n_initializer; i++) {
		const Onnx__TensorProto *tp = g->initializer[i];
		if (!is_float_dtype(tp->data_type) || !tp->name)
			continue;
		uint64_t numel;
		rc = mlsec_onnx_tensor_numel(tp, UINT64_MAX / 8, &numel, err);
		if (rc != MLSEC_OK)
			break;
		/* A rank beyond what a descriptor holds is no layer weight, but
		 * its values are still checked (NaN hides there as well as
		 * anywhere): it is described as a flat vector. */
		int64_t shape[MLSEC_TENSOR_MAX_DIMS];
		int ndim = (int)tp->n_dims;
		if (tp->n_dims > MLSEC_TENSOR_MAX_DIMS) {
			ndim = 1;
			shape[0] = (int64_t)numel;
		} else {
			for (size_t d = 0; d < tp->n_dims; d++)
				shape[d] = tp->dims[d];
		}
		insp_tensor *t = push(w, tp->name, ndim, shape, (size_t)numel, err);
		if (!t) {
			rc = err ? err->code : MLSEC_ERR_NOMEM;
			break;
		}
		rc = mlsec_onnx_tensor_read_float(m, tp, t->data, (size_t)numel, err);
		if (rc == MLSEC_OK &&
		    json_object_set_new(inits, tp->name, json_integer((json_int_t)(w->n - 1))))
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; rc == MLSEC_OK && i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		for (size_t k = 0; k < n->n_output; k++)
			if (n->output[k] && *n->output[k])
				json_object_set_new(producers, n->output[k],
				                    json_integer((json_int_t)i));
		for (size_t k = 0; k < n->n_input; k++) {
			long ti = lookup(inits, n->input[k]);
			if (ti >= 0 && w->t[ti].role == INSP_ROLE_OTHER)
				onnx_role(n, k, &w->t[ti]);
		}
	}
	if (rc == MLSEC_OK)
		onnx_final(g, inits, producers, w);
	json_decref(inits);
	json_decref(producers);
	return rc;
}

/* ---- checkpoints -------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/* Roles by PyTorch naming, and the final layer = the last "<p>.weight"
 * (2-D) in file order that has a "<p>.bias". */
static void name_roles(insp_weights *w)
{
	for (size_t i = 0; i < w->n; i++) {
		insp_tensor *t = &w->t[i];
		/* Embedding tables are lookups, not layers: a zero padding row
		 * (nn.Embedding(padding_idx=...)) is normal there. */
		if (strstr(t->name, "embed") || strstr(t->name, "wte") || strstr(t->name, "wpe"))
			continue;
		if (ends_with(t->name, "weight") && t->ndim >= 2) {
			t->role = INSP_ROLE_WEIGHT;
			t->unit_axis = 0;
		} else if (ends_with(t->name, "bias") && t->ndim == 1) {
			t->role = INSP_ROLE_BIAS;
		}
	}
	for (size_t i = w->n; i-- > 0;) {
		insp_tensor *t = &w->t[i];
		if (t->role != INSP_ROLE_WEIGHT || t->ndim != 2)
			continue;
		size_t pl = strlen(t->name) - strlen("weight");
		for (size_t j = 0; j < w->n; j++) {
			insp_tensor *b = &w->t[j];
			if (b->role == INSP_ROLE_BIAS && strlen(b->name) == pl + 4 &&
			    !strncmp(b->name, t->name, pl) && b->shape[0] == t->shape[0]) {
				w->final_w = (long)i;
				w->final_b = (long)j;
				return;
			}
		}
	}
}

/* Converts n elements of dtype dt at src into dst. 0 when dt is not a float type. */
static int to_float(mlsec_dtype dt, const uint8_t *src, size_t n, float *dst)
{
	switch (dt) {
	case MLSEC_DT_F32:
		memcpy(dst, src, n * 4);
		return 1;
	case MLSEC_DT_F64:
		for (size_t i = 0; i < n; i++) {
			double v;
			memcpy(&v, src + 8 * i, 8);
			dst[i] = (float)v;
		}
		return 1;
	case MLSEC_DT_F16:
	case MLSEC_DT_BF16:
		for (size_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, src + 2 * i, 2);
			dst[i] = dt == MLSEC_DT_F16 ? mlsec_f16_to_f32(h) : mlsec_bf16_to_f32(h);
		}
		return 1;
	default:
		return 0;
	}
}

static int open_file(const char *path, mlsec_src *src, mlsec_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO, "%s: %s",
		                path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "%s: not a regular file", path);
		return -1;
	}
	mlsec_src_init_fd(src, fd, (uint64_t)st.st_size);
	return fd;
}

static int by_offset(const void *a, const void *b)
{
	const mlsec_tensor_ref *x = a, *y = b;
	return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

mlsec_err insp_weights_safetensors(const char *path, insp_weights *w, mlsec_error *err)
{
	mlsec_src src;
	int fd = open_file(path, &src, err);
	if (fd < 0)
		return err ? err->code : MLSEC_ERR_IO;
	mlsec_tensor_list tl = {0};
	mlsec_err rc = mlsec_safetensors_read(&src, &tl, NULL, err);
	/* safetensors names carry no order; writers lay data out in module order */
	if (rc == MLSEC_OK && tl.n)
		qsort(tl.t, tl.n, sizeof *tl.t, by_offset);
	for (size_t i = 0; rc == MLSEC_OK && i < tl.n; i++) {
		const mlsec_tensor_ref *r = &tl.t[i];
		size_t es = mlsec_dtype_size(r->dtype);
		if (!mlsec_dtype_is_float(r->dtype) || !es || r->dtype == MLSEC_DT_C64 ||
		    r->dtype == MLSEC_DT_C128)
			continue;
		insp_tensor *t = push(w, r->name, r->ndim, r->shape, (size_t)r->numel, err);
		if (!t) {
			rc = err ? err->code : MLSEC_ERR_NOMEM;
			break;
		}
		uint8_t *buf = mlsec_reallocarray(NULL, r->numel ? r->numel : 1, es);
		if (!buf) {
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			break;
		}
		rc = mlsec_src_read(&src, r->file_offset + r->offset * es, buf,
		                    (size_t)r->numel * es, err);
		if (rc == MLSEC_OK)
			to_float(r->dtype, buf, (size_t)r->numel, t->data);
		mlsec_free(buf);
	}
	mlsec_tensor_list_free(&tl);
	close(fd);
	if (rc == MLSEC_OK)
		name_roles(w);
	return rc;
}

/* Gathers a (possibly strided) view of a storage into dst as float. */
static mlsec_err gather(const mlsec_tensor_ref *r, const uint8_t *storage, float *dst,
                        mlsec_error *err)
{
	size_t es = mlsec_dtype_size(r->dtype);
	if (mlsec_tensor_ref_contiguous(r)) {
		if (!to_float(r->dtype, storage + r->offset * es, (size_t)r->numel, dst))
			return mlsec_error_set(err, MLSEC_ERR_UNSUPPORTED, "tensor '%s': dtype",
			                       r->name);
		return MLSEC_OK;
	}
	int64_t idx[MLSEC_TENSOR_MAX_DIMS] = {0};
	uint64_t off = r->offset;
	for (uint64_t k = 0; k < r->numel; k++) {
		to_float(r->dtype, storage + off * es, 1, dst + k);
		for (int d = r->ndim - 1; d >= 0; d--) {
			if (++idx[d] < r->shape[d]) {
				off += (uint64_t)r->stride[d];
				break;
			}
			off -= (uint64_t)(r->shape[d] - 1) * (uint64_t)r->stride[d];
			idx[d] = 0;
		}
	}
	return MLSEC_OK;
}

static mlsec_err torch_tensors(mlsec_zip *z, const char *prefix, mlsec_tensor_list *tl,
                               insp_weights *w, mlsec_error *err)
{
	for (size_t i = 0; i < tl->n; i++) {
		mlsec_tensor_ref *r = &tl->t[i];
		size_t es = mlsec_dtype_size(r->dtype);
		if (!mlsec_dtype_is_float(r->dtype) || !es || r->dtype == MLSEC_DT_C64 ||
		    r->dtype == MLSEC_DT_C128 || !r->storage_key)
			continue;
		char name[MLSEC_ZIP_MAX_NAME + 64];
		snprintf(name, sizeof name, "%s/data/%s", prefix, r->storage_key);
		long m = mlsec_zip_find(z, name);
		if (m < 0)
			return mlsec_error_set(err, MLSEC_ERR_PARSE,
			                       "tensor '%s': storage %s is missing", r->name, name);
		uint8_t *buf;
		size_t len;
		int crc;
		mlsec_err rc =
		        mlsec_zip_member_read(z, (size_t)m, (size_t)MLSEC_INSPECT_MAX_WEIGHT_BYTES,
		                              &buf, &len, &crc, err);
		if (rc != MLSEC_OK)
			return rc;
		if (crc == 0) {
			mlsec_free(buf);
			return mlsec_error_set(err, MLSEC_ERR_PARSE, "storage %s: CRC mismatch",
			                       name);
		}
		if (r->storage_numel > len / es)
			r->storage_numel = len / es;
		rc = mlsec_tensor_ref_check_bounds(r, err);
		insp_tensor *t =
		        rc == MLSEC_OK ? push(w, r->name, r->ndim, r->shape, (size_t)r->numel, err)
		                       : NULL;
		if (rc == MLSEC_OK && !t)
			rc = err ? err->code : MLSEC_ERR_NOMEM;
		if (t)
			rc = gather(r, buf, t->data, err);
		mlsec_free(buf);
		if (rc != MLSEC_OK)
			return rc;
	}
	return MLSEC_OK;
}

mlsec_err insp_weights_torch(const char *path, insp_weights *w, mlsec_error *err)
{
	mlsec_src src;
	int fd = open_file(path, &src, err);
	if (fd < 0)
		return err ? err->code : MLSEC_ERR_IO;
	mlsec_zip *z = NULL;
	mlsec_pickle *vm = NULL;
	uint8_t *pk = NULL;
	mlsec_tensor_list tl = {0};
	mlsec_err rc = mlsec_zip_open(&src, &z, err);
	char prefix[MLSEC_ZIP_MAX_NAME + 1] = "";
	long pkl = -1;
	if (rc == MLSEC_OK && mlsec_zip_count(z)) {
		/* PyTorch takes the archive name from the first entry */
		const char *first = mlsec_zip_entry_at(z, 0)->name;
		const char *sl = strchr(first, '/');
		if (sl)
			snprintf(prefix, sizeof prefix, "%.*s", (int)(sl - first), first);
		char pn[MLSEC_ZIP_MAX_NAME + 16];
		snprintf(pn, sizeof pn, "%s/data.pkl", prefix);
		pkl = *prefix ? mlsec_zip_find(z, pn) : -1;
	}
	if (rc == MLSEC_OK && pkl < 0)
		rc = mlsec_error_set(err, MLSEC_ERR_PARSE, "zip archive without <name>/data.pkl");
	size_t len = 0;
	int crc;
	if (rc == MLSEC_OK)
		rc = mlsec_zip_member_read(z, (size_t)pkl, MAX_PICKLE, &pk, &len, &crc, err);
	if (rc == MLSEC_OK && !(vm = mlsec_pickle_new(NULL)))
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (rc == MLSEC_OK)
		rc = mlsec_pickle_run(vm, pk, len, err);
	if (rc == MLSEC_OK)
		rc = mlsec_torch_collect(vm, mlsec_pickle_root(vm), &tl, err);
	if (rc == MLSEC_OK)
		rc = torch_tensors(z, prefix, &tl, w, err);
	if (rc == MLSEC_OK)
		name_roles(w);
	mlsec_tensor_list_free(&tl);
	mlsec_pickle_free(vm);
	mlsec_free(pk);
	mlsec_zip_free(z);
	close(fd);
	return rc;
}
