/* metrics.c: counters, gauges and histograms kept on the loop and rendered as Prometheus text. */
#include "config.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

struct metric_series {
	char *labels;
	double value;
	double sum;
	unsigned long long count;
	unsigned long long *buckets;
	double (*fn)(void *arg);
	void *fn_arg;
	const double *bounds;
	size_t nbounds;
};

struct metric_family {
	char *name;
	char *help;
	enum metric_type type;
	const double *bounds;
	size_t nbounds;
	struct metric_series **series;
	size_t nseries;
};

struct metrics {
	struct metric_family **families;
	size_t nfamilies;
};

const double metrics_latency_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5 };
const size_t metrics_latency_nbounds = sizeof(metrics_latency_bounds) / sizeof(double);

struct metrics *
metrics_new(void)
{
	return calloc(1, sizeof(struct metrics));
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfamilies; i++) {
		struct metric_family *f = m->families[i];

		for (size_t j = 0; j < f->nseries; j++) {
			free(f->series[j]->labels);
			free(f->series[j]->buckets);
			free(f->series[j]);
		}
		free(f->series);
		free(f->name);
		free(f->help);
		free(f);
	}
	free(m->families);
	free(m);
}

static struct metric_family *
metrics_family(struct metrics *m, enum metric_type type, const char *name, const char *help,
    const double *bounds, size_t nbounds)
{
	struct metric_family *f, **fams;

	for (size_t i = 0; i < m->nfamilies; i++)
		if (strcmp(m->families[i]->name, name) == 0)
			return m->families[i]->type == type ? m->families[i] : NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->name = strdup(name);
	f->help = strdup(help);
	f->type = type;
	f->bounds = bounds;
	f->nbounds = nbounds;
	fams = realloc(m->families, (m->nfamilies + 1) * sizeof(*fams));
	if (f->name == NULL || f->help == NULL || fams == NULL) {
		free(f->name);
		free(f->help);
		free(f);
		if (fams != NULL)
			m->families = fams;
		return NULL;
	}
	m->families = fams;
	fams[m->nfamilies++] = f;
	return f;
}

struct metric_series *
metrics_find(struct metrics *m, const char *name, const char *labels)
{
	for (size_t i = 0; i < m->nfamilies; i++) {
		struct metric_family *f = m->families[i];

		if (strcmp(f->name, name) != 0)
			continue;
		for (size_t k = 0; k < f->nseries; k++)
			if (strcmp(f->series[k]->labels, labels) == 0)
				return f->series[k];
		return NULL;
	}
	return NULL;
}

struct metric_series *
metrics_series(struct metrics *m, enum metric_type type, const char *name, const char *help,
    const char *labels, const double *bounds, size_t nbounds)
{
	struct metric_family *f = metrics_family(m, type, name, help, bounds, nbounds);
	struct metric_series *s, **ser;

	if (f == NULL)
		return NULL;
	for (size_t i = 0; i < f->nseries; i++)
		if (strcmp(f->series[i]->labels, labels) == 0)
			return f->series[i];
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->labels = strdup(labels);
	if (type == METRIC_HISTOGRAM) {
		s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets));
		s->bounds = f->bounds;
		s->nbounds = f->nbounds;
	}
	ser = realloc(f->series, (f->nseries + 1) * sizeof(*ser));
	if (s->labels == NULL || (type == METRIC_HISTOGRAM && s->buckets == NULL) || ser == NULL) {
		free(s->labels);
		free(s->buckets);
		free(s);
		if (ser != NULL)
			f->series = ser;
		return NULL;
	}
	f->series = ser;
	ser[f->nseries++] = s;
	return s;
}

void
metrics_add(struct metric_series *s, double v)
{
	if (s != NULL)
		s->value += v;
}

void
metrics_set(struct metric_series *s, double v)
{
	if (s != NULL)
		s->value = v;
}

double
metrics_value(const struct metric_series *s)
{
	return s == NULL ? 0 : s->fn != NULL ? s->fn(s->fn_arg) : s->value;
}

void
metrics_observe(struct metric_series *s, double v)
{
	size_t i;

	if (s == NULL || s->buckets == NULL)
		return;
	s->count++;
	s->sum += v;
	/* Buckets are kept per bound, not cumulative; render adds them up. */
	for (i = 0; i < s->nbounds && v > s->bounds[i]; i++)
		;
	s->buckets[i]++;
}

int
metrics_gauge_fn(struct metrics *m, const char *name, const char *help, const char *labels,
    double (*fn)(void *arg), void *arg)
{
	struct metric_series *s = metrics_series(m, METRIC_GAUGE, name, help, labels, NULL, 0);

	if (s == NULL)
		return -1;
	s->fn = fn;
	s->fn_arg = arg;
	return 0;
}

const char *
metrics_label_escape(char *buf, size_t len, const char *value)
{
	size_t o = 0;

	for (const char *p = value; *p != '\0' && o + 3 < len; p++) {
		if (*p == '"' || *p == '\\') {
			buf[o++] = '\\';
			buf[o++] = *p;
		} else if (*p == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	return buf;
}

static void
metrics_render_histogram(struct evbuffer *out, const struct metric_family *f,
    const struct metric_series *s)
{
	const char *sep = s->labels[0] != '\0' ? "," : "";
	unsigned long long cum = 0;

	for (size_t i = 0; i < f->nbounds; i++) {
		cum += s->buckets[i];
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep,
		    f->bounds[i], cum);
	}
	cum += s->buckets[f->nbounds];
	evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep, cum);
	evbuffer_add_printf(out, "%s_sum%s%s%s %.9g\n", f->name, s->labels[0] ? "{" : "", s->labels,
	    s->labels[0] ? "}" : "", s->sum);
	evbuffer_add_printf(out, "%s_count%s%s%s %llu\n", f->name, s->labels[0] ? "{" : "",
	    s->labels, s->labels[0] ? "}" : "", s->count);
}

int
metrics_render(struct metrics *m, struct evbuffer *out)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };

	for (size_t i = 0; i < m->nfamilies; i++) {
		const struct metric_family *f = m->families[i];

		if (f->nseries == 0)
			continue;
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
		    types[f->type]);
		for (size_t j = 0; j < f->nseries; j++) {
			const struct metric_series *s = f->series[j];

			if (f->type == METRIC_HISTOGRAM)
				metrics_render_histogram(out, f, s);
			else if (s->labels[0] != '\0')
				evbuffer_add_printf(out, "%s{%s} %.17g\n", f->name, s->labels,
				    metrics_value(s));
			else
				evbuffer_add_printf(out, "%s %.17g\n", f->name, metrics_value(s));
		}
	}
	return 0;
}
