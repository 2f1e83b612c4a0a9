/*
 * options.h - reading engine options from the JSON object every engine
 * receives (CLI flags and job options alike). Numbers may be JSON numbers or
 * numeric strings ("0.03"), so flags can be passed through as strings.
 * Errors are MLSEC_ERR_INVALID_ARG naming the option; *out is untouched then.
 */
#ifndef MLSEC_OPTIONS_H
#define MLSEC_OPTIONS_H

#include <jansson.h>

#include "mlsec/err.h"

/* A finite number in [lo, hi]. */
mlsec_err mlsec_option_number(const json_t *v, const char *key, double lo, double hi, double *out,
                              mlsec_error *err);

/* The same, and a whole number (a count or a seed: 1.5 is a typo, not 1). */
mlsec_err mlsec_option_integer(const json_t *v, const char *key, double lo, double hi, double *out,
                               mlsec_error *err);

/* Parses one list of names ("fgsm,pgd") into flag bits. */
typedef mlsec_err (*mlsec_option_flag_parser)(const char *s, unsigned *out, mlsec_error *err);

/*
 * A set of flags given as a string ("fgsm,pgd", handed to parse) or a JSON
 * list of such strings: *out is the union (0 for an empty list; the caller
 * decides whether that is allowed).
 */
mlsec_err mlsec_option_flags(const json_t *v, const char *key, mlsec_option_flag_parser parse,
                             unsigned *out, mlsec_error *err);

#endif
