/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus registry (metrics.c): counters, histograms, gauges read
 * at scrape time, and the text exposition.
 */
#ifndef DKM_SVC_METRICS_H
#define DKM_SVC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

struct svc_metrics;
struct svc_metric;
typedef double svc_gauge_fn(void *arg);

DKM_MUSTCHECK int svc_metrics_new(struct svc_metrics **ret);
void svc_metrics_free(struct svc_metrics *m);

/*
 * Registration API. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*);
 * a counter has up to two labels, a histogram up to one (NULL for none).
 * Children per label value are created on first use. Register before the
 * worker threads start; updating is thread-safe.
 */
DKM_MUSTCHECK int svc_metrics_counter(struct svc_metrics *m, const char *name,
                                      const char *help, const char *label1,
                                      const char *label2, struct svc_metric **ret);
DKM_MUSTCHECK int svc_metrics_histogram(struct svc_metrics *m, const char *name,
                                        const char *help, const char *label,
                                        const double *bounds, size_t nbounds,
                                        struct svc_metric **ret);
/* A gauge read at scrape time by calling fn(arg) (cache sizes, connections). */
DKM_MUSTCHECK int svc_metrics_gauge(struct svc_metrics *m, const char *name,
                                    const char *help, svc_gauge_fn *fn, void *arg);

void svc_metric_inc(struct svc_metric *c, const char *v1, const char *v2, uint64_t n);
void svc_metric_observe(struct svc_metric *h, const char *v, double value);

/* Default latency buckets in seconds, 0.5 ms .. 10 s. */
extern const double svc_latency_buckets[];
extern const size_t svc_latency_nbuckets;

/* The Prometheus text exposition (malloc'd); NULL when out of memory. */
char *svc_metrics_render(struct svc_metrics *m);

#endif
