/*
 * torchfmt.c - finds tensors in an unpickled PyTorch value tree.
 */
#include <stdio.h>
#include <string.h>

#include "mlsec/alloc.h"
#include "mlsec/torchfmt.h"

#define NAME_MAX_LEN 4096

/* Keys under which training checkpoints keep the model's state dict, in
 * the order we prefer them. */
static const char *const wrappers[] = {
        "state_dict",     "model_state_dict", "model",          "module", "ema",
        "ema_state_dict", "model_ema",        "state_dict_ema", "net",    "network",
        "params",         "weights",          "generator",
};

const mlsec_pval *mlsec_pval_dict_get(const mlsec_pval *d, const char *key)
{
	if (d && d->kind == MLSEC_PV_CALL)
		d = d->u.call.dictitems;
	if (!d || d->kind != MLSEC_PV_DICT)
		return NULL;
	const mlsec_pval *r = NULL;
	size_t l = strlen(key);
	for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
		const mlsec_pval *k = d->u.seq.items[i];
		if (k->kind == MLSEC_PV_STR && k->u.str.len == l && !memcmp(k->u.str.s, key, l))
			r = d->u.seq.items[i + 1];
	}
	return r;
}

const char *mlsec_torch_key_name(const mlsec_pval *k, char *buf, size_t n)
{
	if (k->kind == MLSEC_PV_STR)
		return k->u.str.s;
	if (k->kind == MLSEC_PV_INT) {
		snprintf(buf, n, "%lld", (long long)k->u.i);
		return buf;
	}
	return "?";
}

static int is_global(const mlsec_pval *v, const char *m, const char *n)
{
	return v && v->kind == MLSEC_PV_GLOBAL && !strcmp(v->u.global.module, m) &&
	       !strcmp(v->u.global.name, n);
}

static const mlsec_pval *targ(const mlsec_pval *call, size_t i)
{
	const mlsec_pval *a = call->u.call.args;
	if (!a || a->kind != MLSEC_PV_TUPLE || i >= a->u.seq.n)
		return NULL;
	return a->u.seq.items[i];
}

static int int_tuple(const mlsec_pval *t, int64_t *out, int *n)
{
	if (!t || (t->kind != MLSEC_PV_TUPLE && t->kind != MLSEC_PV_LIST))
		return -1;
	/* torch.Size((...)) is pickled as REDUCE(torch.Size, ((...),)) */
	if (t->u.seq.n > MLSEC_TENSOR_MAX_DIMS)
		return -1;
	for (size_t i = 0; i < t->u.seq.n; i++) {
		if (t->u.seq.items[i]->kind != MLSEC_PV_INT)
			return -1;
		out[i] = t->u.seq.items[i]->u.i;
	}
	*n = (int)t->u.seq.n;
	return 0;
}

static const mlsec_pval *unwrap_size(const mlsec_pval *v)
{
	if (v && v->kind == MLSEC_PV_CALL && is_global(v->u.call.callable, "torch", "Size"))
		return targ(v, 0);
	return v;
}

/* Fills t from a rebuild call; 0 ok, -1 arguments do not make sense. */
static int rebuild_tensor(const mlsec_pval *call, mlsec_tensor_ref *t)
{
	const mlsec_pval *st = targ(call, 0), *off = targ(call, 1);
	const mlsec_pval *size = unwrap_size(targ(call, 2)), *stride = unwrap_size(targ(call, 3));
	if (!st || st->kind != MLSEC_PV_PERSID || !off || off->kind != MLSEC_PV_INT || off->u.i < 0)
		return -1;
	const mlsec_pval *pid = st->u.persid.pid;
	if (!pid || pid->kind != MLSEC_PV_TUPLE || pid->u.seq.n < 5)
		return -1;
	const mlsec_pval *tag = pid->u.seq.items[0], *cls = pid->u.seq.items[1];
	const mlsec_pval *key = pid->u.seq.items[2], *numel = pid->u.seq.items[4];
	if (tag->kind != MLSEC_PV_STR || strcmp(tag->u.str.s, "storage") ||
	    cls->kind != MLSEC_PV_GLOBAL || key->kind != MLSEC_PV_STR ||
	    numel->kind != MLSEC_PV_INT || numel->u.i < 0)
		return -1;
	if (strcmp(cls->u.global.module, "torch") && strcmp(cls->u.global.module, "torch.cuda"))
		return -1;
	int nd = 0, ns = 0;
	if (int_tuple(size, t->shape, &nd) < 0 || int_tuple(stride, t->stride, &ns) < 0 || nd != ns)
		return -1;
	t->ndim = nd;
	t->storage_dtype = mlsec_dtype_from_storage(cls->u.global.name);
	t->dtype = t->storage_dtype;
	t->offset = (uint64_t)off->u.i;
	t->storage_numel = (uint64_t)numel->u.i;
	uint64_t n = 1;
	for (int i = 0; i < nd; i++) {
		if (t->shape[i] < 0)
			return -1;
		if (t->shape[i] && n > UINT64_MAX / (uint64_t)t->shape[i])
			return -1;
		n *= (uint64_t)t->shape[i];
	}
	t->numel = n;
	t->storage_key = mlsec_strdup(key->u.str.s);
	t->pickle_offset = call->offset;
	return t->storage_key ? 0 : -1;
}

static int is_reconstruct(const mlsec_pval *c)
{
	return is_global(c, "numpy.core.multiarray", "_reconstruct") ||
	       is_global(c, "numpy._core.multiarray", "_reconstruct");
}

/* numpy.dtype('f4', False, True) with BUILD state (3, '<', ...). */
static mlsec_dtype numpy_dtype(const mlsec_pval *d)
{
	if (!d || d->kind != MLSEC_PV_CALL ||
	    (!is_global(d->u.call.callable, "numpy", "dtype") &&
	     !is_global(d->u.call.callable, "numpy.core.multiarray", "dtype")))
		return MLSEC_DT_UNKNOWN;
	const mlsec_pval *code = targ(d, 0), *st = d->u.call.state;
	if (!code || code->kind != MLSEC_PV_STR || code->u.str.len > 4)
		return MLSEC_DT_UNKNOWN;
	char order = '|';
	if (st && st->kind == MLSEC_PV_TUPLE && st->u.seq.n > 1 &&
	    st->u.seq.items[1]->kind == MLSEC_PV_STR && st->u.seq.items[1]->u.str.len == 1)
		order = st->u.seq.items[1]->u.str.s[0];
	if (order == '>')
		return MLSEC_DT_UNKNOWN; /* big-endian: not analysed */
	char descr[8];
	snprintf(descr, sizeof descr, "%c%s",
	         code->u.str.s[0] == 'b' || code->u.str.s[1] == '1' ? '|' : '<', code->u.str.s);
	return mlsec_dtype_from_npy(descr);
}

/* Raw bytes of an ndarray state: bytes, or _codecs.encode(str, 'latin1'). */
static int numpy_bytes(const mlsec_pval *v, const uint8_t **data, size_t *len, uint8_t **owned)
{
	*owned = NULL;
	if (v && (v->kind == MLSEC_PV_BYTES || v->kind == MLSEC_PV_BYTEARRAY)) {
		*data = (const uint8_t *)v->u.str.s;
		*len = v->u.str.len;
		return 0;
	}
	if (!v || v->kind != MLSEC_PV_CALL || !is_global(v->u.call.callable, "_codecs", "encode"))
		return -1;
	const mlsec_pval *s = targ(v, 0);
	if (!s || s->kind != MLSEC_PV_STR)
		return -1;
	/* the str is latin-1 text stored as UTF-8: back to bytes */
	uint8_t *o = mlsec_malloc(s->u.str.len + 1);
	if (!o)
		return -1;
	size_t k = 0;
	const uint8_t *b = (const uint8_t *)s->u.str.s;
	for (size_t i = 0; i < s->u.str.len; i++) {
		if (b[i] < 0x80) {
			o[k++] = b[i];
		} else if ((b[i] & 0xe0) == 0xc0 && i + 1 < s->u.str.len && b[i] <= 0xc3) {
			o[k++] = (uint8_t)(((b[i] & 0x1f) << 6) | (b[i + 1] & 0x3f));
			i++;
		} else {
			mlsec_free(o);
			return -1; /* not latin-1 */
		}
	}
	*owned = o;
	*data = o;
	*len = k;
	return 0;
}

/* ndarray via _reconstruct + BUILD (version, shape, dtype, fortran, data). */
static int numpy_array(const mlsec_pval *call, mlsec_tensor_ref *t)
{
	const mlsec_pval *st = call->u.call.state;
	if (!st || st->kind != MLSEC_PV_TUPLE || st->u.seq.n < 5)
		return -1;
	const mlsec_pval *shape = st->u.seq.items[1], *fortran = st->u.seq.items[3];
	t->dtype = t->storage_dtype = numpy_dtype(st->u.seq.items[2]);
	size_t es = mlsec_dtype_size(t->dtype);
	int nd = 0;
	if (!es || int_tuple(shape, t->shape, &nd) < 0)
		return -1;
	t->ndim = nd;
	uint64_t n = 1;
	for (int i = 0; i < nd; i++) {
		if (t->shape[i] < 0 || (t->shape[i] && n > UINT64_MAX / (uint64_t)t->shape[i]))
			return -1;
		n *= (uint64_t)t->shape[i];
	}
	int f = fortran && fortran->kind == MLSEC_PV_BOOL && fortran->u.i;
	int64_t s = 1;
	for (int d = f ? 0 : nd - 1; f ? d < nd : d >= 0; d += f ? 1 : -1) {
		t->stride[d] = s;
		s *= t->shape[d] ? t->shape[d] : 1;
	}
	const uint8_t *data;
	size_t len;
	if (numpy_bytes(st->u.seq.items[4], &data, &len, &t->owned) < 0)
		return -1;
	if (n > len / es) {
		mlsec_free(t->owned);
		t->owned = NULL;
		return -1;
	}
	t->numel = t->storage_numel = n;
	t->mem = data;
	t->file_len = n * es;
	t->located = 1;
	t->pickle_offset = call->offset;
	return 0;
}

typedef struct walker {
	mlsec_tensor_list *out;
	uint32_t epoch;
	mlsec_err rc;
} walker;

static void walk(walker *w, const mlsec_pval *v, const char *name, int depth);

static void walk_child(walker *w, const mlsec_pval *v, const char *prefix, const char *key,
                       int depth)
{
	char nm[NAME_MAX_LEN];
	if (*prefix)
		snprintf(nm, sizeof nm, "%s.%s", prefix, key);
	else
		snprintf(nm, sizeof nm, "%s", key);
	walk(w, v, nm, depth + 1);
}

static void walk_dict(walker *w, const mlsec_pval *d, const char *name, int depth)
{
	char kb[32];
	for (size_t i = 0; i + 1 < d->u.seq.n && w->rc == MLSEC_OK; i += 2)
		walk_child(w, d->u.seq.items[i + 1], name,
		           mlsec_torch_key_name(d->u.seq.items[i], kb, sizeof kb), depth);
}

static void walk(walker *w, const mlsec_pval *cv, const char *name, int depth)
{
	mlsec_pval *v = (mlsec_pval *)cv; /* the mark is walker scratch */
	if (!v || depth > MLSEC_TORCH_WALK_DEPTH || w->rc != MLSEC_OK || v->mark == w->epoch)
		return;
	char kb[32];
	switch (v->kind) {
	case MLSEC_PV_DICT:
		v->mark = w->epoch;
		walk_dict(w, v, name, depth);
		return;
	case MLSEC_PV_LIST:
	case MLSEC_PV_TUPLE:
		v->mark = w->epoch;
		for (size_t i = 0; i < v->u.seq.n; i++) {
			snprintf(kb, sizeof kb, "%zu", i);
			walk_child(w, v->u.seq.items[i], name, kb, depth);
		}
		return;
	case MLSEC_PV_CALL: {
		v->mark = w->epoch;
		const mlsec_pval *c = v->u.call.callable;
		if (is_global(c, "torch._utils", "_rebuild_tensor_v2") ||
		    is_global(c, "torch._utils", "_rebuild_tensor")) {
			mlsec_tensor_ref t;
			memset(&t, 0, sizeof t);
			if (rebuild_tensor(v, &t) < 0) {
				mlsec_free(t.storage_key);
				w->out->bad_rebuild++;
				return;
			}
			t.name = mlsec_strdup(*name ? name : "<root>");
			if (!t.name || (w->rc = mlsec_tensor_list_push(w->out, &t)) != MLSEC_OK) {
				mlsec_free(t.name);
				mlsec_free(t.storage_key);
				if (w->rc == MLSEC_OK)
					w->rc = MLSEC_ERR_NOMEM;
			}
			return;
		}
		if (is_reconstruct(c)) {
			mlsec_tensor_ref t;
			memset(&t, 0, sizeof t);
			if (numpy_array(v, &t) < 0)
				return; /* object or exotic arrays: their items are values */
			t.name = mlsec_strdup(*name ? name : "<root>");
			if (!t.name || (w->rc = mlsec_tensor_list_push(w->out, &t)) != MLSEC_OK) {
				mlsec_free(t.name);
				mlsec_free(t.owned);
				if (w->rc == MLSEC_OK)
					w->rc = MLSEC_ERR_NOMEM;
			}
			return;
		}
		if (is_global(c, "torch._utils", "_rebuild_parameter") ||
		    is_global(c, "torch._utils", "_rebuild_parameter_with_state")) {
			walk(w, targ(v, 0), name, depth + 1);
			return;
		}
		/* containers (OrderedDict) and arbitrary objects: their items and
		 * state may hold tensors (a pickled nn.Module keeps them in
		 * state["_parameters"]) */
		if (v->u.call.dictitems)
			walk_dict(w, v->u.call.dictitems, name, depth);
		if (v->u.call.listitems)
			walk(w, v->u.call.listitems, name, depth + 1);
		if (v->u.call.state)
			walk(w, v->u.call.state, name, depth + 1);
		return;
	}
	default:
		return;
	}
}

static int has_tensor_prefix(const mlsec_tensor_list *l, size_t from, const char *p)
{
	size_t n = strlen(p);
	for (size_t i = from; i < l->n; i++)
		if (!strncmp(l->t[i].name, p, n) && l->t[i].name[n] == '.')
			return 1;
	return 0;
}

mlsec_err mlsec_torch_collect(mlsec_pickle *vm, const mlsec_pval *root, mlsec_tensor_list *out,
                              mlsec_error *err)
{
	size_t from = out->n;
	walker w = {out, mlsec_pickle_epoch(vm), MLSEC_OK};
	walk(&w, root, "", 0);
	if (w.rc != MLSEC_OK)
		return mlsec_error_set(err, w.rc, "collecting tensors: %s", mlsec_strerror(w.rc));
	/* strip the training-checkpoint wrapper from the model's tensor names */
	for (size_t k = 0; k < sizeof wrappers / sizeof wrappers[0]; k++) {
		if (!mlsec_pval_dict_get(root, wrappers[k]) ||
		    !has_tensor_prefix(out, from, wrappers[k]))
			continue;
		size_t pl = strlen(wrappers[k]) + 1;
		for (size_t i = from; i < out->n; i++) {
			char *nm = out->t[i].name;
			if (strncmp(nm, wrappers[k], pl - 1) || nm[pl - 1] != '.')
				continue;
			/* keep the full name if stripping would collide */
			int clash = 0;
			for (size_t j = from; j < out->n && !clash; j++)
				clash = j != i && !strcmp(out->t[j].name, nm + pl);
			if (!clash)
				memmove(nm, nm + pl, strlen(nm + pl) + 1);
		}
		out->wrapper = mlsec_strdup(wrappers[k]);
		if (!out->wrapper)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		break;
	}
	return MLSEC_OK;
}
