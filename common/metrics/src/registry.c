/*
 * registry.c - metric families and their series: registration, validation
 * of names and label values, and the update operations.
 */
#include <math.h>
#include <string.h>

#include "metrics_int.h"
#include "mlsec/alloc.h"

mlsec_metrics *mlsec_metrics_new(void)
{
	mlsec_metrics *reg = mlsec_calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	if (pthread_mutex_init(&reg->mu, NULL) != 0) {
		mlsec_free(reg);
		return NULL;
	}
	atomic_init(&reg->dropped, 0);
	return reg;
}

static void series_free(metric_series *s, size_t nlabels)
{
	if (!s)
		return;
	for (size_t i = 0; i < nlabels && s->values; i++)
		mlsec_free(s->values[i]);
	mlsec_free(s->values);
	mlsec_free(s->buckets);
	mlsec_free(s);
}

static void family_free(mlsec_metric *m)
{
	for (size_t i = 0; i < m->nseries; i++)
		series_free(m->series[i], m->nlabels);
	mlsec_free(m->series);
	for (size_t i = 0; i < m->nlabels; i++)
		mlsec_free(m->labels[i]);
	mlsec_free(m->labels);
	mlsec_free(m->bounds);
	mlsec_free(m->name);
	mlsec_free(m->help);
	pthread_mutex_destroy(&m->mu);
	mlsec_free(m);
}

void mlsec_metrics_free(mlsec_metrics *reg)
{
	if (!reg)
		return;
	mlsec_metric *m = reg->head;
	while (m) {
		mlsec_metric *next = m->next;
		family_free(m);
		m = next;
	}
	pthread_mutex_destroy(&reg->mu);
	mlsec_free(reg);
}

static int valid_name(const char *s, int allow_colon)
{
	if (!s || !*s)
		return 0;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		         (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

/* Prometheus requires UTF-8 label values; reject anything else. */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t extra;
		unsigned min;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			extra = 1, min = 0x80, cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			extra = 2, min = 0x800, cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			extra = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= extra)
			return 0;
		for (size_t k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += extra + 1;
	}
	return 1;
}

mlsec_metric *mlsec_metrics_find_(mlsec_metrics *reg, const char *name)
{
	mlsec_metric *found = NULL;
	pthread_mutex_lock(&reg->mu);
	for (mlsec_metric *m = reg->head; m; m = m->next) {
		if (strcmp(m->name, name) == 0) {
			found = m;
			break;
		}
	}
	pthread_mutex_unlock(&reg->mu);
	return found;
}

static mlsec_metric *family_new(mlsec_metrics *reg, metric_type type, const char *name,
                                const char *help, const char *const *label_names,
                                const double *bounds, size_t nbounds, mlsec_error *err)
{
	if (!reg)
		return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no registry"), NULL);
	if (!valid_name(name, 1))
		return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "invalid metric name"), NULL);
	size_t nlabels = 0;
	while (label_names && label_names[nlabels]) {
		const char *l = label_names[nlabels];
		if (!valid_name(l, 0) || strncmp(l, "__", 2) == 0 ||
		    (type == METRIC_HISTOGRAM && strcmp(l, "le") == 0))
			return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                        "invalid label name '%s'", l),
			        NULL);
		for (size_t k = 0; k < nlabels; k++)
			if (strcmp(label_names[k], l) == 0)
				return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                        "duplicate label '%s'", l),
				        NULL);
		if (++nlabels > MLSEC_METRICS_MAX_LABELS)
			return (mlsec_error_set(err, MLSEC_ERR_LIMIT, "too many labels"), NULL);
	}
	if (type == METRIC_HISTOGRAM) {
		if (!bounds || nbounds == 0 || nbounds > MLSEC_METRICS_MAX_BUCKETS)
			return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                        "histogram needs 1..%d bounds",
			                        MLSEC_METRICS_MAX_BUCKETS),
			        NULL);
		for (size_t i = 0; i < nbounds; i++)
			if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
				return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
				                        "histogram bounds must be finite "
				                        "and increasing"),
				        NULL);
	}

	mlsec_metric *m = mlsec_calloc(1, sizeof(*m));
	if (!m)
		return (mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory"), NULL);
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		mlsec_free(m);
		return (mlsec_error_set(err, MLSEC_ERR_NOMEM, "mutex init"), NULL);
	}
	m->type = type;
	m->reg = reg;
	m->name = mlsec_strdup(name);
	m->help = mlsec_strdup(help ? help : "");
	m->labels = nlabels ? mlsec_calloc(nlabels, sizeof(char *)) : NULL;
	int oom = !m->name || !m->help || (nlabels && !m->labels);
	for (size_t i = 0; !oom && i < nlabels; i++) {
		m->labels[i] = mlsec_strdup(label_names[i]);
		if (!m->labels[i])
			oom = 1;
		else
			m->nlabels = i + 1;
	}
	if (!oom && type == METRIC_HISTOGRAM) {
		m->bounds = mlsec_calloc(nbounds, sizeof(double));
		if (!m->bounds)
			oom = 1;
		else {
			memcpy(m->bounds, bounds, nbounds * sizeof(double));
			m->nbounds = nbounds;
		}
	}
	if (oom) {
		family_free(m);
		return (mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory"), NULL);
	}

	pthread_mutex_lock(&reg->mu);
	for (mlsec_metric *o = reg->head; o; o = o->next) {
		if (strcmp(o->name, name) == 0) {
			pthread_mutex_unlock(&reg->mu);
			family_free(m);
			return (mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                        "metric '%s' already registered", name),
			        NULL);
		}
	}
	if (reg->tail)
		reg->tail->next = m;
	else
		reg->head = m;
	reg->tail = m;
	pthread_mutex_unlock(&reg->mu);
	return m;
}

mlsec_metric *mlsec_metrics_counter(mlsec_metrics *reg, const char *name, const char *help,
                                    const char *const *label_names, mlsec_error *err)
{
	return family_new(reg, METRIC_COUNTER, name, help, label_names, NULL, 0, err);
}

mlsec_metric *mlsec_metrics_gauge(mlsec_metrics *reg, const char *name, const char *help,
                                  const char *const *label_names, mlsec_error *err)
{
	return family_new(reg, METRIC_GAUGE, name, help, label_names, NULL, 0, err);
}

mlsec_metric *mlsec_metrics_histogram(mlsec_metrics *reg, const char *name, const char *help,
                                      const char *const *label_names, const double *bounds,
                                      size_t nbounds, mlsec_error *err)
{
	return family_new(reg, METRIC_HISTOGRAM, name, help, label_names, bounds, nbounds, err);
}

/* Checks the label values against the family before any lock is taken. */
static mlsec_err check_values(const mlsec_metric *m, const char *const *values)
{
	size_t n = 0;
	while (values && values[n]) {
		size_t len = strlen(values[n]);
		if (len > MLSEC_METRICS_MAX_LABEL_VALUE)
			return MLSEC_ERR_LIMIT;
		if (!valid_utf8((const unsigned char *)values[n], len))
			return MLSEC_ERR_INVALID_ARG;
		if (++n > m->nlabels)
			return MLSEC_ERR_INVALID_ARG;
	}
	return n == m->nlabels ? MLSEC_OK : MLSEC_ERR_INVALID_ARG;
}

/* Caller holds m->mu. Returns the series for values, creating it if asked. */
static metric_series *series_find(mlsec_metric *m, const char *const *values)
{
	for (size_t i = 0; i < m->nseries; i++) {
		metric_series *s = m->series[i];
		size_t k = 0;
		while (k < m->nlabels && strcmp(s->values[k], values[k]) == 0)
			k++;
		if (k == m->nlabels)
			return s;
	}
	return NULL;
}

static mlsec_err series_get(mlsec_metric *m, const char *const *values, metric_series **out)
{
	metric_series *s = series_find(m, values);
	if (s) {
		*out = s;
		return MLSEC_OK;
	}
	if (m->nseries >= MLSEC_METRICS_MAX_SERIES)
		return MLSEC_ERR_LIMIT;
	if (m->nseries == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		metric_series **grown = mlsec_reallocarray(m->series, cap, sizeof(*grown));
		if (!grown)
			return MLSEC_ERR_NOMEM;
		m->series = grown;
		m->cap = cap;
	}
	s = mlsec_calloc(1, sizeof(*s));
	if (!s)
		return MLSEC_ERR_NOMEM;
	int oom = 0;
	if (m->nlabels) {
		s->values = mlsec_calloc(m->nlabels, sizeof(char *));
		oom = !s->values;
		for (size_t k = 0; !oom && k < m->nlabels; k++)
			oom = !(s->values[k] = mlsec_strdup(values[k]));
	}
	if (!oom && m->type == METRIC_HISTOGRAM)
		oom = !(s->buckets = mlsec_calloc(m->nbounds + 1, sizeof(*s->buckets)));
	if (oom) {
		series_free(s, m->nlabels);
		return MLSEC_ERR_NOMEM;
	}
	m->series[m->nseries++] = s;
	*out = s;
	return MLSEC_OK;
}

typedef enum update_op { OP_ADD, OP_SET, OP_OBSERVE } update_op;

static mlsec_err update(mlsec_metric *m, const char *const *values, update_op op, double v)
{
	if (!m || isnan(v))
		return MLSEC_ERR_INVALID_ARG;
	switch (op) {
	case OP_ADD:
		if (m->type == METRIC_HISTOGRAM || (m->type == METRIC_COUNTER && !(v >= 0)))
			return MLSEC_ERR_INVALID_ARG;
		break;
	case OP_SET:
		if (m->type != METRIC_GAUGE)
			return MLSEC_ERR_INVALID_ARG;
		break;
	case OP_OBSERVE:
		if (m->type != METRIC_HISTOGRAM)
			return MLSEC_ERR_INVALID_ARG;
		break;
	}
	mlsec_err rc = check_values(m, values);
	if (rc != MLSEC_OK) {
		if (rc == MLSEC_ERR_LIMIT)
			atomic_fetch_add(&m->reg->dropped, 1);
		return rc;
	}
	static const char *const none[] = {NULL};
	if (!values)
		values = none;

	pthread_mutex_lock(&m->mu);
	metric_series *s = NULL;
	rc = series_get(m, values, &s);
	if (rc == MLSEC_OK) {
		switch (op) {
		case OP_ADD:
			s->value += v;
			break;
		case OP_SET:
			s->value = v;
			break;
		case OP_OBSERVE: {
			size_t b = 0;
			while (b < m->nbounds && v > m->bounds[b])
				b++;
			s->buckets[b]++;
			s->count++;
			s->sum += v;
			break;
		}
		}
	}
	pthread_mutex_unlock(&m->mu);
	if (rc == MLSEC_ERR_LIMIT)
		atomic_fetch_add(&m->reg->dropped, 1);
	return rc;
}

mlsec_err mlsec_metric_inc(mlsec_metric *m, const char *const *values)
{
	return update(m, values, OP_ADD, 1.0);
}

mlsec_err mlsec_metric_add(mlsec_metric *m, const char *const *values, double delta)
{
	return update(m, values, OP_ADD, delta);
}

mlsec_err mlsec_metric_set(mlsec_metric *m, const char *const *values, double value)
{
	return update(m, values, OP_SET, value);
}

mlsec_err mlsec_metric_observe(mlsec_metric *m, const char *const *values, double value)
{
	return update(m, values, OP_OBSERVE, value);
}

void mlsec_metric_clear(mlsec_metric *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nseries; i++)
		series_free(m->series[i], m->nlabels);
	m->nseries = 0;
	pthread_mutex_unlock(&m->mu);
}

void mlsec_metric_remove_where_(mlsec_metric *m, size_t label, const char *value)
{
	if (!m || label >= m->nlabels)
		return;
	pthread_mutex_lock(&m->mu);
	size_t kept = 0;
	for (size_t i = 0; i < m->nseries; i++) {
		metric_series *s = m->series[i];
		if (strcmp(s->values[label], value) == 0)
			series_free(s, m->nlabels);
		else
			m->series[kept++] = s;
	}
	m->nseries = kept;
	pthread_mutex_unlock(&m->mu);
}

double mlsec_metric_value(mlsec_metric *m, const char *const *values)
{
	if (!m || check_values(m, values) != MLSEC_OK)
		return 0;
	static const char *const none[] = {NULL};
	double v = 0;
	pthread_mutex_lock(&m->mu);
	metric_series *s = series_find(m, values ? values : none);
	if (s)
		v = m->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
	pthread_mutex_unlock(&m->mu);
	return v;
}
