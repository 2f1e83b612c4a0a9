/*
 * tensor_internal.h - the compiled graph shared by the executor's files:
 * values (tensors), nodes, the operator table and helper kernels.
 */
#ifndef MLSEC_TENSOR_INTERNAL_H
#define MLSEC_TENSOR_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "mlsec/tensor.h"

#define MAXR MLSEC_TENSOR_MAX_RANK

/* Hot element-wise kernels are cloned for AVX2 and picked at load time
 * (GCC function multiversioning); the default clone runs anywhere. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(MLSEC_NO_CLONES)
#define TENSOR_HOT __attribute__((target_clones("avx2", "default")))
#else
#define TENSOR_HOT
#endif
#define NODE_MAX_IN 16 /* Concat beyond this is refused at compile */
#define NODE_MAX_OUT 4

enum { VK_UNSET = 0, VK_INPUT, VK_CONST, VK_RUNTIME };
enum { TD_F32 = 0, TD_I64 = 1 };

typedef struct tval {
	const char *name; /* borrowed from the model */
	int kind;
	int dtype;
	mlsec_tensor_shape sh;
	float *f;       /* float data: const storage or arena */
	int64_t *i;     /* int64 data (constants only) */
	void *owned;    /* const storage owned by the value */
	float *g;       /* gradient buffer (arena) or NULL */
	int needs_grad; /* depends on a graph input */
	int producer;   /* node index or -1 */
	int alias;      /* value whose buffers this one shares, or -1 */
	int last_use;   /* last node (schedule index) reading it */
	int is_output;
	size_t off, goff; /* arena offsets in floats, (size_t)-1 = none */
} tval;

/* Parameters precomputed at plan time, per op family. */
typedef struct conv_params {
	int64_t kh, kw, sh, sw, ph0, pw0, ph1, pw1, dh, dw, group;
	int64_t n, c, h, w, m, oh, ow;
	int64_t chunk; /* images per im2col chunk */
	int64_t tbwd;  /* backward as a convolution of dY with flipped weights */
} conv_params;

/* conv_direct.c: 3x3 stride-1 same-padded convolutions without im2col
 * (AVX-512 CPUs). ok() says whether p qualifies; tensor_conv_direct then
 * computes images [i0, i1) of y (=, or += with TENSOR_CONV_ACC in acc;
 * bias NULL then; TENSOR_CONV_RELU applies a fused Relu to what is
 * stored), with scratch of at least m * c * 9 floats for the packed
 * weights. */
#define TENSOR_CONV_ACC 1
#define TENSOR_CONV_RELU 2
int tensor_conv_direct_ok(const conv_params *p);
void tensor_conv_direct(const conv_params *p, const float *x, const float *w, const float *bias,
                        float *y, int acc, int64_t i0, int64_t i1, float *scratch);
void tensor_conv_direct_disable(int off); /* tests: 1 forces im2col */

typedef struct pool_params {
	int64_t kh, kw, sh, sw, ph0, pw0, ph1, pw1, dh, dw;
	int64_t n, c, h, w, oh, ow;
	int count_include_pad;
} pool_params;

typedef struct gemm_params {
	int ta, tb;
	float alpha, beta;
	int64_t m, k, n;
} gemm_params;

typedef struct tnode {
	const Onnx__NodeProto *p;
	const struct op_def *op;
	int nin, nout;
	int in[NODE_MAX_IN];
	int out[NODE_MAX_OUT];
	int runtime; /* executed at run time (else folded at plan) */
	int sched;   /* position in the schedule */
	union {
		conv_params conv;
		pool_params pool;
		gemm_params gemm;
		int64_t iv[4 * MAXR + 8];
		float fv[8];
	} u;
	int64_t axis;      /* softmax/concat/gather/flatten... */
	float fa, fb;      /* scalar attributes (alpha, eps, clip bounds) */
	size_t aux_floats; /* per-node arena buffer (argmax, BN scale/shift...) */
	size_t aux_off;
	float *aux;
	size_t scratch_floats; /* shared scratch needed by fwd/bwd */
	/* opts.fuse: a Conv applies the ReLU of its only reader (fuse_relu),
	 * which then runs as an alias of the Conv's output (fused). */
	int fuse_relu, fused;
} tnode;

int tensor_node_is_relu(const tnode *n); /* ops_elem.c */
/* y = relu(y) in place; g = y > 0 ? g : 0 (the ReLU's backward on the
 * gradient of an output that already holds relu values). */
void tensor_relu_inplace(float *y, size_t n);
void tensor_relu_mask_grad(const float *y, float *g, size_t n);

typedef struct op_def {
	const char *name;
	/* Checks attributes/inputs, sets output shapes and dtypes, params,
	 * aux/scratch sizes. Inputs' shapes (and constant data) are known. */
	mlsec_err (*infer)(struct mlsec_tensor_graph *g, tnode *n, mlsec_error *err);
	/* Forward on float data (runtime and float constant folding). */
	void (*fwd)(struct mlsec_tensor_graph *g, tnode *n);
	/* Constant evaluation supporting int64 (NULL: only float via fwd). */
	mlsec_err (*fold)(struct mlsec_tensor_graph *g, tnode *n, mlsec_error *err);
	/* Accumulates input gradients from output gradients (NULL: not
	 * differentiable; compile refuses it on a gradient path). */
	void (*bwd)(struct mlsec_tensor_graph *g, tnode *n);
	int alias;        /* output 0 shares input 0's buffers (reshape family) */
	int folds_always; /* Shape, Constant...: always constant */
} op_def;

extern const op_def tensor_op_conv; /* ops_linalg.c */
/* An Add or Sub node, whose output may take a fused Relu (ops_elem.c). */
int tensor_node_fuses_relu(const tnode *n);

typedef struct tensor_pool tensor_pool;

struct mlsec_tensor_graph {
	tensor_pool *pool; /* NULL when single-threaded */
	const mlsec_onnx_model *m;
	const Onnx__GraphProto *gp;
	mlsec_tensor_opts opts;
	int64_t opset;
	tval *v;
	size_t nv;
	tnode *n; /* in schedule (topological) order */
	size_t nn;
	int *inputs, *outputs;
	size_t ninputs, noutputs;
	int *sched; /* indices of runtime nodes in order */
	size_t nsched;
	/* name -> value index (open addressing) */
	int *ht;
	size_t htcap;
	float *arena;
	uint64_t arena_bytes;
	float *scratch;
	size_t scratch_floats;
	size_t scratch_stride; /* floats between workers' scratch areas */
	float *dlogits;        /* loss gradient for loss_grad() */
	mlsec_tensor_hook hook;
	void *hook_ctx;
	int planned_grad;
	uint64_t folded_bytes; /* constants made by folding, bounded like the arena */
	double flops;          /* estimated work of one forward */
};

typedef struct mlsec_tensor_graph G;

const op_def *tensor_op_find(const char *name);

/* Helpers shared by ops. */
static inline tval *IN(G *g, tnode *n, int k)
{
	return (k < n->nin && n->in[k] >= 0) ? &g->v[n->in[k]] : NULL;
}
static inline tval *OUT(G *g, tnode *n, int k)
{
	return &g->v[n->out[k]];
}
static inline void *vdata(tval *v)
{
	return v->dtype == TD_I64 ? (void *)v->i : (void *)v->f;
}
static inline size_t vesize(const tval *v)
{
	return v->dtype == TD_I64 ? 8 : 4;
}
size_t shape_numel(const mlsec_tensor_shape *s);
void shape_set(mlsec_tensor_shape *s, size_t ndim, const int64_t *dims);
/* Element count with overflow/limit check; -1 on overflow. */
int shape_finish(mlsec_tensor_shape *s);
/* Reads a constant input as int64 values (any dtype); NULL if not const. */
const int64_t *const_i64(G *g, tnode *n, int k, size_t *count);
int64_t node_opset(G *g);
mlsec_err op_error(mlsec_error *err, mlsec_err code, tnode *n, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Broadcasting: computes the output shape of numpy broadcasting a and b. */
int shape_broadcast(const mlsec_tensor_shape *a, const mlsec_tensor_shape *b,
                    mlsec_tensor_shape *out);
/* Element strides of x broadcast to out (0 on broadcast axes), right-aligned. */
void bcast_strides(const mlsec_tensor_shape *x, const mlsec_tensor_shape *out, int64_t *st);

/* Parallel loops: fn runs on [begin, end) slices of [0, count), tid in
 * [0, threads); it may call BLAS (single-threaded inside workers). */
typedef void (*tensor_par_fn)(G *g, tnode *n, int64_t begin, int64_t end, int tid, void *ctx);
void tensor_par(G *g, tnode *n, int64_t count, tensor_par_fn fn, void *ctx);
int tensor_threads(const G *g);
mlsec_err tensor_pool_new(int nthreads, tensor_pool **out, mlsec_error *err);
void tensor_pool_free(tensor_pool *p);
/* Scratch of worker tid (scratch_floats each). */
static inline float *tensor_scratch(G *g, int tid)
{
	return g->scratch + (size_t)tid * g->scratch_stride;
}

/* BLAS */
void tensor_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* The OPENBLAS_CORETYPE this CPU can run ("SkylakeX" with AVX-512
 * F/BW/DQ/VL, "Haswell" with AVX2+FMA), or NULL: let OpenBLAS decide. */
const char *tensor_blas_core_for_cpu(void);

#endif
