/*
 * torchfmt.h - PyTorch checkpoints: tensor extraction from an unpickled
 * value tree, and the legacy (pre-1.6) file layout.
 *
 * Tensors are recognised only through the allowlisted rebuild functions
 * (torch._utils._rebuild_tensor(_v2), _rebuild_parameter(_with_state))
 * applied to storages given as persistent ids
 * ('storage', torch.<T>Storage, key, location, numel[, view]).
 */
#ifndef MLSEC_TORCHFMT_H
#define MLSEC_TORCHFMT_H

#include "mlsec/bytesrc.h"
#include "mlsec/pickle.h"
#include "mlsec/tensorref.h"

#define MLSEC_TORCH_WALK_DEPTH 64
#define MLSEC_TORCH_MAX_PICKLE (1024u * 1024 * 1024)    /* bytes of one pickle read */
#define MLSEC_TORCH_LEGACY_MAGIC "6cfc9c46f9206aa85019" /* 0x1950a86a20f9469cfc6c, LE hex */

/*
 * Walks root and appends every tensor with a dotted name. NumPy arrays
 * (numpy.core.multiarray._reconstruct + BUILD state) become tensors whose
 * data is inline (mem points into vm's values: keep vm alive while the
 * list is used). When root is a
 * training checkpoint ({"state_dict": {...}, "optimizer": ...}), tensors
 * under the first wrapper key found (state_dict, model_state_dict, model,
 * module, ema, ...) are named relative to it (out->wrapper says which);
 * the others keep their full path. vm provides the walk epoch.
 */
mlsec_err mlsec_torch_collect(mlsec_pickle *vm, const mlsec_pval *root, mlsec_tensor_list *out,
                              mlsec_error *err);

/* The key string of a dict key for naming ("3" for ints, "?" otherwise). */
const char *mlsec_torch_key_name(const mlsec_pval *k, char *buf, size_t n);

/* Looks up a string key in a DICT value (last match wins, as in Python). */
const mlsec_pval *mlsec_pval_dict_get(const mlsec_pval *d, const char *key);

#endif
