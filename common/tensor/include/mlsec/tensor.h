/*
 * tensor.h - the ONNX graph executor with reverse-mode autodiff (layer 2 of
 * the tensor engine), shared by the adversarial, inspect and export stages.
 *
 * Model: float32 tensors, inference semantics (BatchNormalization uses its
 * running statistics, Dropout is the identity). A graph is compiled once
 * from a validated model (mlsec/onnx.h): nodes are scheduled topologically,
 * every shape is inferred for a concrete batch size, constant sub-graphs
 * (the Shape/Gather/Concat plumbing exporters emit) are folded, and all
 * activation, gradient and scratch buffers are carved from one arena. After
 * that, forward() and backward() allocate nothing.
 *
 * Gradients are taken with respect to the graph inputs only (what
 * adversarial attacks need); weights are constants and get none.
 *
 * Compilation fails with MLSEC_ERR_UNSUPPORTED naming every unsupported
 * operator (and the first node of each), or naming the unsupported
 * attribute/dtype/shape: the executor never silently computes something
 * else than ONNX specifies.
 *
 * Threads: a graph compiled with opts.threads = T > 1 owns T-1 worker
 * threads and splits kernels across them; OpenBLAS is set single-threaded
 * (process-wide) at compile. A graph is not safe to use from two threads at
 * once; compile one graph per thread instead (the model may be shared).
 */
#ifndef MLSEC_TENSOR_H
#define MLSEC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"
#include "mlsec/onnx.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSEC_TENSOR_MAX_RANK 8

typedef struct mlsec_tensor_opts {
	int threads;              /* worker threads incl. the caller, 1-64 (default 1) */
	int64_t batch;            /* value bound to dynamic leading dims (default 1) */
	int grad;                 /* 1 (default): keep activations for backward;
	                             0: forward only, activation buffers are reused */
	uint64_t max_arena_bytes; /* default 4 GiB */
	double max_flops;         /* estimated work of one forward (default 4e12):
	                             bounds the time a hostile graph can take */
	int fuse;                 /* 1: a Relu that is the only reader of a Conv's
	                             output runs inside the Conv (no pass of its
	                             own); the hook then sees that Conv's output
	                             after the ReLU. Default 0: leave it off when
	                             monitoring per-node activations. */
} mlsec_tensor_opts;

void mlsec_tensor_opts_default(mlsec_tensor_opts *o);

/* A shape: dims[0..ndim). */
typedef struct mlsec_tensor_shape {
	size_t ndim;
	int64_t dims[MLSEC_TENSOR_MAX_RANK];
	size_t numel;
} mlsec_tensor_shape;

typedef struct mlsec_tensor_graph mlsec_tensor_graph;

/*
 * Compiles the model's main graph. opts may be NULL (defaults). The model
 * must outlive the graph (node attributes are read from it; weights are
 * copied). On success the caller owns *out (mlsec_tensor_graph_free()).
 * Graph inputs must be FLOAT tensors whose dims are known, except dims
 * marked symbolic (dim_param) or missing on axis 0, which bind to
 * opts.batch. Errors: MLSEC_ERR_UNSUPPORTED (ops, attributes, dtypes,
 * dynamic non-batch dims), MLSEC_ERR_PARSE (cycles, missing inputs,
 * inconsistent shapes), MLSEC_ERR_LIMIT (arena), MLSEC_ERR_NOMEM.
 */
mlsec_err mlsec_tensor_graph_compile(const mlsec_onnx_model *m, const mlsec_tensor_opts *opts,
                                     mlsec_tensor_graph **out, mlsec_error *err);

void mlsec_tensor_graph_free(mlsec_tensor_graph *g); /* NULL is fine */

/* Re-plans for another batch size (allocates; not for the hot loop).
 * Input/output pointers obtained before are invalidated. */
mlsec_err mlsec_tensor_graph_set_batch(mlsec_tensor_graph *g, int64_t batch, mlsec_error *err);

/* Sets OpenBLAS's own thread count (process-wide). compile() sets it to 1
 * because the executor parallelises itself; callers rarely need this. */
void mlsec_tensor_set_threads(int threads);

/* OpenBLAS's kernel family, e.g. "SkylakeX", "Haswell", "Prescott". */
const char *mlsec_tensor_blas_core(void);

/*
 * OpenBLAS 0.3.21 (Debian 12) does not recognise recent CPUs (e.g. Intel
 * family 6 model 207) and falls back to its generic "Prescott" SSE3
 * kernels, 3-5x slower. The core is chosen when the library loads, from
 * the OPENBLAS_CORETYPE environment variable if set; when it is not, the
 * tensor engine sets it from the CPU's features before loading OpenBLAS
 * ("SkylakeX" with AVX-512 F/BW/DQ/VL, "Haswell" with AVX2+FMA). This
 * returns that value when the running core is still a generic fallback
 * (the user forced one, or OpenBLAS was loaded by someone else first) and
 * the CPU can do better, else NULL. Callers may warn with it.
 */
const char *mlsec_tensor_blas_core_hint(void);

size_t mlsec_tensor_graph_input_count(const mlsec_tensor_graph *g);
size_t mlsec_tensor_graph_output_count(const mlsec_tensor_graph *g);
/* Name (borrowed, lives with g) and shape of input/output i; NULL if out of range. */
const char *mlsec_tensor_graph_input_name(const mlsec_tensor_graph *g, size_t i,
                                          mlsec_tensor_shape *shape);
const char *mlsec_tensor_graph_output_name(const mlsec_tensor_graph *g, size_t i,
                                           mlsec_tensor_shape *shape);

/* The buffer of input i (numel floats): write the input here before
 * forward(). Valid until set_batch()/free. */
float *mlsec_tensor_graph_input(mlsec_tensor_graph *g, size_t i);
/* Output i after forward(). Valid until the next forward()/set_batch(). */
const float *mlsec_tensor_graph_output(const mlsec_tensor_graph *g, size_t i);

/* Runs the graph. Never allocates. */
mlsec_err mlsec_tensor_graph_forward(mlsec_tensor_graph *g, mlsec_error *err);

/*
 * Reverse pass after forward(): dout[i] is d loss / d output i (numel
 * floats, NULL when output i does not contribute). Afterwards
 * mlsec_tensor_graph_input_grad() holds d loss / d input. Needs opts.grad.
 */
mlsec_err mlsec_tensor_graph_backward(mlsec_tensor_graph *g, const float *const *dout,
                                      mlsec_error *err);

/* d loss / d input i after backward(), or NULL without gradients. */
const float *mlsec_tensor_graph_input_grad(const mlsec_tensor_graph *g, size_t i);

/* ---- losses ---- */

typedef enum mlsec_tensor_loss {
	MLSEC_LOSS_CROSS_ENTROPY = 0, /* mean over the batch of -log softmax(z)[y] */
	MLSEC_LOSS_CW_MARGIN = 1      /* mean of max(z_y - max_{i!=y} z_i, -kappa) */
} mlsec_tensor_loss;

/*
 * Evaluates a loss on logits [batch, classes] with labels in [0, classes):
 * *loss gets the batch mean; dlogits (may be NULL, batch*classes floats)
 * gets its gradient. For CW the subgradient picks the first maximal
 * competitor and is zero where the margin is clamped at -kappa.
 * MLSEC_ERR_INVALID_ARG for a label out of range or classes < 2.
 */
mlsec_err mlsec_tensor_loss_eval(mlsec_tensor_loss kind, const float *logits, int64_t batch,
                                 int64_t classes, const int64_t *labels, float kappa, float *loss,
                                 float *dlogits, mlsec_error *err);

/*
 * Convenience for attacks: forward, loss on output 0 (must be [batch,
 * classes]), backward; then input_grad(g, 0) is d loss / d input 0.
 * loss may be NULL. Uses a gradient buffer inside g (no allocation).
 */
mlsec_err mlsec_tensor_graph_loss_grad(mlsec_tensor_graph *g, mlsec_tensor_loss kind,
                                       const int64_t *labels, float kappa, float *loss,
                                       mlsec_error *err);

/* ---- monitoring hooks ---- */

typedef struct mlsec_tensor_node_info {
	size_t index;     /* position in the schedule */
	const char *name; /* node name ("" when unnamed) */
	const char *op_type;
	const char *output; /* the output value's name */
} mlsec_tensor_node_info;

/*
 * Called after each executed node, once per output, with the activation
 * (borrowed; valid during the call only). Folded constant nodes are not
 * reported. NULL hook disables. The hook must not call back into g.
 */
typedef void (*mlsec_tensor_hook)(const mlsec_tensor_node_info *node, const float *data,
                                  const mlsec_tensor_shape *shape, void *ctx);
void mlsec_tensor_graph_set_hook(mlsec_tensor_graph *g, mlsec_tensor_hook hook, void *ctx);

/* Executed nodes in schedule order (for listing layers to monitor). */
size_t mlsec_tensor_graph_node_count(const mlsec_tensor_graph *g);
mlsec_err mlsec_tensor_graph_node(const mlsec_tensor_graph *g, size_t i,
                                  mlsec_tensor_node_info *info, mlsec_tensor_shape *shape);

/* Names of the operators the executor supports, NULL-terminated (static). */
const char *const *mlsec_tensor_supported_ops(void);

/* Estimated floating-point operations of one forward pass of g. */
double mlsec_tensor_graph_flops(const mlsec_tensor_graph *g);

/* Bytes of the arena (activations + gradients + scratch) of g. */
uint64_t mlsec_tensor_graph_arena_bytes(const mlsec_tensor_graph *g);

#ifdef __cplusplus
}
#endif
#endif
