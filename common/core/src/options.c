/* options.c - bounded numeric engine options (see mlsec/options.h). */
#include <math.h>
#include <stdlib.h>

#include "mlsec/options.h"

mlsec_err mlsec_option_number(const json_t *v, const char *key, double lo, double hi, double *out,
                              mlsec_error *err)
{
	double d;
	if (json_is_number(v)) {
		d = json_number_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		d = strtod(s, &end);
		if (end == s || *end)
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "option %s: not a number", key);
	} else {
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "option %s: not a number", key);
	}
	if (!(d >= lo && d <= hi)) /* also rejects NaN */
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "option %s: %g is outside [%g, %g]", key, d, lo, hi);
	*out = d;
	return MLSEC_OK;
}

mlsec_err mlsec_option_integer(const json_t *v, const char *key, double lo, double hi, double *out,
                               mlsec_error *err)
{
	double d;
	mlsec_err rc = mlsec_option_number(v, key, lo, hi, &d, err);
	if (rc != MLSEC_OK)
		return rc;
	if (d != floor(d))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "option %s: %g is not an integer", key, d);
	*out = d;
	return MLSEC_OK;
}

mlsec_err mlsec_option_flags(const json_t *v, const char *key, mlsec_option_flag_parser parse,
                             unsigned *out, mlsec_error *err)
{
	if (json_is_string(v))
		return parse(json_string_value(v), out, err);
	if (!json_is_array(v))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
		                       "option %s: string or list expected", key);
	unsigned bits = 0, b;
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "option %s: strings expected", key);
		mlsec_err rc = parse(json_string_value(e), &b, err);
		if (rc != MLSEC_OK)
			return rc;
		bits |= b;
	}
	*out = bits;
	return MLSEC_OK;
}
