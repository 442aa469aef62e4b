/* metrics.h: counters, gauges and histograms kept on the loop and rendered as Prometheus text. */
#ifndef LOKET_METRICS_H
#define LOKET_METRICS_H

#include <stddef.h>

struct evbuffer;
struct metrics;
struct metric_series;

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/*
 * Finds or creates one series; labels is the Prometheus label text without
 * braces ("route=\"/healthz\",status=\"200\"") or "". The series lives as long
 * as m. For histograms, bounds (ascending, borrowed for m's lifetime) are taken
 * from the first call for a family.
 */
struct metric_series *metrics_series(struct metrics *m, enum metric_type type, const char *name,
    const char *help, const char *labels, const double *bounds, size_t nbounds);
/* The series of name with exactly labels, or NULL when there is none yet (never creates one). */
struct metric_series *metrics_find(struct metrics *m, const char *name, const char *labels);
void metrics_add(struct metric_series *s, double v);
void metrics_set(struct metric_series *s, double v);
void metrics_observe(struct metric_series *s, double v);
/* A gauge whose value fn computes at render time. */
int metrics_gauge_fn(struct metrics *m, const char *name, const char *help, const char *labels,
    double (*fn)(void *arg), void *arg);
double metrics_value(const struct metric_series *s);
int metrics_render(struct metrics *m, struct evbuffer *out);
/* Escapes a label value into buf (quotes, backslashes, newlines). */
const char *metrics_label_escape(char *buf, size_t len, const char *value);

extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_nbounds;

#endif
