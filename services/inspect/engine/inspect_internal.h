/*
 * inspect_internal.h - what the inspect engine's files share. Not installed;
 * not an API.
 */
#ifndef MLSEC_INSPECT_INTERNAL_H
#define MLSEC_INSPECT_INTERNAL_H

#include "mlsec/inspect.h"
#include "mlsec/onnx.h"
#include "mlsec/tensor.h"
#include "mlsec/tensorref.h"

#define INSP_PREFIX "INSPECT"

typedef enum insp_role {
	INSP_ROLE_OTHER = 0,
	INSP_ROLE_WEIGHT, /* >= 2-D weight of a Gemm/MatMul/Conv or a *.weight */
	INSP_ROLE_BIAS,   /* 1-D bias of such a layer */
} insp_role;

/* One float tensor of the model, converted to float32 in memory. */
typedef struct insp_tensor {
	char *name; /* owned */
	int ndim;
	int64_t shape[MLSEC_TENSOR_MAX_DIMS];
	size_t numel;
	float *data; /* owned, numel floats */
	insp_role role;
	int unit_axis; /* axis of the output units (filters/rows) for weights */
} insp_tensor;

typedef struct insp_weights {
	insp_tensor *t;
	size_t n, cap;
	uint64_t bytes;
	/* The layer producing the model's output, when known (index or -1). */
	long final_w, final_b;
} insp_weights;

void insp_weights_init(insp_weights *w);
void insp_weights_free(insp_weights *w);

/*
 * Loaders. MLSEC_ERR_PARSE/LIMIT mean the artifact is malformed (the
 * caller reports INSPECT-MALFORMED with err); other codes are tool errors.
 */
mlsec_err insp_weights_onnx(const mlsec_onnx_model *m, insp_weights *w, mlsec_error *err);
mlsec_err insp_weights_safetensors(const char *path, insp_weights *w, mlsec_error *err);
mlsec_err insp_weights_torch(const char *path, insp_weights *w, mlsec_error *err);

/* Statistics and findings over the loaded weights; details["weights"]. */
mlsec_err insp_weight_checks(const insp_weights *w, const mlsec_inspect_opts *o, mlsec_artifact *a,
                             mlsec_error *err);

/* Inputs for the graph checks: n samples of numel floats, optional labels. */
typedef struct insp_inputs {
	const float *x;
	const int64_t *y; /* NULL: no labels */
	size_t n, numel;
	int synthetic;
} insp_inputs;

/*
 * Runs every input through g (compiled for batch B) with the monitoring
 * hook; per-node statistics and findings. classes = width of output 0 when
 * it is [B, classes], else 0. details["activations"].
 */
mlsec_err insp_activations(mlsec_tensor_graph *g, const insp_inputs *in, size_t classes,
                           const mlsec_inspect_opts *o, mlsec_artifact *a, mlsec_error *err);

/* One-step FGSM on g (compiled with gradients); details["fgsm"]. */
mlsec_err insp_fgsm(mlsec_tensor_graph *g, const insp_inputs *in, size_t classes,
                    const mlsec_inspect_opts *o, mlsec_artifact *a, mlsec_error *err);

/* Copies nb samples into the graph input and pads the batch with sample 0. */
void insp_load_batch(mlsec_tensor_graph *g, const float *x, size_t nb, size_t numel);

/* Argmax per row of output 0 for the first nb rows; -1 for non-finite rows.
 * Returns the number of non-finite rows. */
size_t insp_argmax(const mlsec_tensor_graph *g, size_t nb, size_t classes, int64_t *pred);

static inline int insp_cancelled(const mlsec_inspect_opts *o)
{
	return o->cancel && *o->cancel;
}

#endif
