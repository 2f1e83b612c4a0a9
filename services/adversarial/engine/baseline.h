/*
 * baseline.h - robustness baselines in the original Python mlsec's format:
 * { "<model>": { "<attack>": { "epsilon=<eps>": accuracy } } }.
 * CW-L2 has no budget and is stored as "epsilon=inf".
 */
#ifndef MLSEC_ADV_BASELINE_H
#define MLSEC_ADV_BASELINE_H

#include <jansson.h>

#include "mlsec/err.h"

/* "epsilon=0.03" with the shortest round-trip formatting (as Python's repr). */
void adv_baseline_key(double eps, char *buf, size_t size);

/* Loads a baseline file: *out is NULL (and MLSEC_OK) when the file does not
 * exist; MLSEC_ERR_PARSE for invalid JSON or a wrong shape. */
mlsec_err adv_baseline_load(const char *path, json_t **out, mlsec_error *err);

/* Checks the entry of one model: b[model] must be an object of attacks,
 * each an object of "epsilon=<number>" keys with accuracies in [0, 1].
 * An entry we cannot compare is MLSEC_ERR_PARSE naming the key: skipping
 * it would silently turn the regression gate off. A missing model is OK. */
mlsec_err adv_baseline_check(const json_t *b, const char *model, mlsec_error *err);

/* The stored accuracy, or a negative value when absent. Keys are matched
 * numerically, so "epsilon=0.030" finds 0.03. */
double adv_baseline_lookup(const json_t *b, const char *model, const char *attack, double eps);

/* Sets b[model][attack][key(eps)] = acc, creating levels as needed. */
mlsec_err adv_baseline_set(json_t *b, const char *model, const char *attack, double eps,
                           double acc);

/* Writes b to path atomically (temp file + rename), pretty-printed. */
mlsec_err adv_baseline_save(const json_t *b, const char *path, mlsec_error *err);

#endif
