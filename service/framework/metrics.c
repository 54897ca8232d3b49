/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics in the Prometheus text format (version 0.0.4): counters and
 * histograms with label children created on first use, and gauges read
 * through a callback at scrape time. Metrics are registered at start-up
 * (before the worker threads run) by whoever owns them; later parts of the
 * service (TPM operation latency, cache sizes) register theirs the same
 * way. Updates take one mutex: at the request rates of a key service on a
 * few cores that costs nothing measurable and keeps the code simple.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define METRIC_LABEL_MAX 128
#define METRIC_CHILDREN_MAX 512
#define METRIC_BUCKETS_MAX 32

const double svc_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t svc_latency_nbuckets = sizeof(svc_latency_buckets) / sizeof(double);

enum metric_kind { METRIC_COUNTER, METRIC_HISTOGRAM, METRIC_GAUGE };

struct metric_child {
    char v1[METRIC_LABEL_MAX];
    char v2[METRIC_LABEL_MAX];
    uint64_t count;                       /* counter value, or histogram count */
    double sum;                           /* histogram */
    uint64_t buckets[METRIC_BUCKETS_MAX]; /* histogram, not cumulative */
    struct metric_child *next;
};

struct svc_metric {
    struct svc_metrics *owner;
    enum metric_kind kind;
    char *name;
    char *help;
    char *label1;
    char *label2;
    double bounds[METRIC_BUCKETS_MAX];
    size_t nbounds;
    svc_gauge_fn *fn;
    void *arg;
    struct metric_child *children;
    size_t nchildren;
    struct svc_metric *next;
};

struct svc_metrics {
    pthread_mutex_t lock;
    struct svc_metric *first;
    struct svc_metric *last;
};

int svc_metrics_new(struct svc_metrics **ret)
{
    struct svc_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return -ENOMEM;
    }
    *ret = m;
    return 0;
}

static void metric_free(struct svc_metric *x)
{
    struct metric_child *c, *next;

    for (c = x->children; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(x->name);
    free(x->help);
    free(x->label1);
    free(x->label2);
    free(x);
}

void svc_metrics_free(struct svc_metrics *m)
{
    struct svc_metric *x, *next;

    if (m == NULL)
        return;
    for (x = m->first; x != NULL; x = next) {
        next = x->next;
        metric_free(x);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!alpha && !(p != s && *p >= '0' && *p <= '9') && *p != ':')
            return false;
    }
    return true;
}

static int metric_add(struct svc_metrics *m, enum metric_kind kind, const char *name,
                      const char *help, const char *l1, const char *l2,
                      struct svc_metric **ret)
{
    struct svc_metric *x;

    if (!valid_name(name) || help == NULL || (l1 != NULL && !valid_name(l1)) ||
        (l2 != NULL && (l1 == NULL || !valid_name(l2))))
        return dkm_error_set(-EINVAL, "metric %s: invalid name or label",
                             name ? name : "(null)");
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->owner = m;
    x->kind = kind;
    x->name = strdup(name);
    x->help = strdup(help);
    x->label1 = l1 ? strdup(l1) : NULL;
    x->label2 = l2 ? strdup(l2) : NULL;
    if (x->name == NULL || x->help == NULL || (l1 && !x->label1) || (l2 && !x->label2)) {
        metric_free(x);
        return -ENOMEM;
    }
    pthread_mutex_lock(&m->lock);
    for (struct svc_metric *o = m->first; o != NULL; o = o->next) {
        if (strcmp(o->name, name) == 0) {
            pthread_mutex_unlock(&m->lock);
            metric_free(x);
            return dkm_error_set(-EEXIST, "metric %s is registered twice", name);
        }
    }
    if (m->last != NULL)
        m->last->next = x;
    else
        m->first = x;
    m->last = x;
    pthread_mutex_unlock(&m->lock);
    *ret = x;
    return 0;
}

int svc_metrics_counter(struct svc_metrics *m, const char *name, const char *help,
                        const char *label1, const char *label2, struct svc_metric **ret)
{
    return metric_add(m, METRIC_COUNTER, name, help, label1, label2, ret);
}

int svc_metrics_histogram(struct svc_metrics *m, const char *name, const char *help,
                          const char *label, const double *bounds, size_t nbounds,
                          struct svc_metric **ret)
{
    struct svc_metric *x = NULL;
    int r;

    if (nbounds == 0 || nbounds > METRIC_BUCKETS_MAX)
        return dkm_error_set(-EINVAL, "metric %s: 1 to %d buckets", name,
                             METRIC_BUCKETS_MAX);
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return dkm_error_set(-EINVAL, "metric %s: buckets must increase", name);
    r = metric_add(m, METRIC_HISTOGRAM, name, help, label, NULL, &x);
    if (r < 0)
        return r;
    memcpy(x->bounds, bounds, nbounds * sizeof(double));
    x->nbounds = nbounds;
    *ret = x;
    return 0;
}

int svc_metrics_gauge(struct svc_metrics *m, const char *name, const char *help,
                      svc_gauge_fn *fn, void *arg)
{
    struct svc_metric *x = NULL;
    int r;

    if (fn == NULL)
        return -EINVAL;
    r = metric_add(m, METRIC_GAUGE, name, help, NULL, NULL, &x);
    if (r < 0)
        return r;
    x->fn = fn;
    x->arg = arg;
    return 0;
}

/* Caller holds the lock. NULL when the label space is exhausted. */
static struct metric_child *child_get(struct svc_metric *x, const char *v1,
                                      const char *v2)
{
    struct metric_child *c;

    v1 = v1 ? v1 : "";
    v2 = v2 ? v2 : "";
    for (c = x->children; c != NULL; c = c->next)
        if (strncmp(c->v1, v1, METRIC_LABEL_MAX - 1) == 0 &&
            strncmp(c->v2, v2, METRIC_LABEL_MAX - 1) == 0)
            return c;
    /* A bound on children keeps a label fed by outside input from growing forever. */
    if (x->nchildren >= METRIC_CHILDREN_MAX)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    snprintf(c->v1, sizeof(c->v1), "%s", v1);
    snprintf(c->v2, sizeof(c->v2), "%s", v2);
    c->next = x->children;
    x->children = c;
    x->nchildren++;
    return c;
}

void svc_metric_inc(struct svc_metric *x, const char *v1, const char *v2, uint64_t n)
{
    struct metric_child *c;

    if (x == NULL || x->kind != METRIC_COUNTER)
        return;
    pthread_mutex_lock(&x->owner->lock);
    c = child_get(x, v1, v2);
    if (c != NULL)
        c->count += n;
    pthread_mutex_unlock(&x->owner->lock);
}

void svc_metric_observe(struct svc_metric *x, const char *v, double value)
{
    struct metric_child *c;

    if (x == NULL || x->kind != METRIC_HISTOGRAM)
        return;
    pthread_mutex_lock(&x->owner->lock);
    c = child_get(x, v, NULL);
    if (c != NULL) {
        size_t i;
        for (i = 0; i < x->nbounds && value > x->bounds[i]; i++)
            ;
        if (i < x->nbounds)
            c->buckets[i]++;
        c->count++;
        c->sum += value;
    }
    pthread_mutex_unlock(&x->owner->lock);
}

/* A growing text buffer; on allocation failure it stays failed. */
struct strbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void sb_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        size_t avail = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, avail, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < avail) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* Label values are escaped as the text format requires: \\, \" and \n. */
static void sb_label(struct strbuf *b, const char *name, const char *value)
{
    sb_printf(b, "%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            sb_printf(b, "\\%c", *p);
        else if (*p == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

static void render_labels(struct strbuf *b, const struct svc_metric *x,
                          const struct metric_child *c, const char *le)
{
    bool any = x->label1 != NULL || le != NULL;

    if (!any)
        return;
    sb_printf(b, "{");
    if (x->label1 != NULL) {
        sb_label(b, x->label1, c->v1);
        if (x->label2 != NULL) {
            sb_printf(b, ",");
            sb_label(b, x->label2, c->v2);
        }
    }
    if (le != NULL) {
        if (x->label1 != NULL)
            sb_printf(b, ",");
        sb_label(b, "le", le);
    }
    sb_printf(b, "}");
}

static void render_histogram(struct strbuf *b, const struct svc_metric *x,
                             const struct metric_child *c)
{
    uint64_t cum = 0;
    char le[32];

    for (size_t i = 0; i < x->nbounds; i++) {
        cum += c->buckets[i];
        snprintf(le, sizeof(le), "%g", x->bounds[i]);
        sb_printf(b, "%s_bucket", x->name);
        render_labels(b, x, c, le);
        sb_printf(b, " %llu\n", (unsigned long long)cum);
    }
    sb_printf(b, "%s_bucket", x->name);
    render_labels(b, x, c, "+Inf");
    sb_printf(b, " %llu\n", (unsigned long long)c->count);
    sb_printf(b, "%s_sum", x->name);
    render_labels(b, x, c, NULL);
    sb_printf(b, " %.9g\n", c->sum);
    sb_printf(b, "%s_count", x->name);
    render_labels(b, x, c, NULL);
    sb_printf(b, " %llu\n", (unsigned long long)c->count);
}

char *svc_metrics_render(struct svc_metrics *m)
{
    static const char *const kinds[] = {"counter", "histogram", "gauge"};
    struct strbuf b = {0};

    pthread_mutex_lock(&m->lock);
    for (struct svc_metric *x = m->first; x != NULL; x = x->next) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                  kinds[x->kind]);
        if (x->kind == METRIC_GAUGE) {
            /* Gauge callbacks only read atomics; calling them under the lock is safe. */
            sb_printf(&b, "%s %.17g\n", x->name, x->fn(x->arg));
            continue;
        }
        if (x->children == NULL && x->label1 == NULL) {
            struct metric_child zero = {0};
            if (x->kind == METRIC_COUNTER)
                sb_printf(&b, "%s 0\n", x->name);
            else
                render_histogram(&b, x, &zero);
            continue;
        }
        for (struct metric_child *c = x->children; c != NULL; c = c->next) {
            if (x->kind == METRIC_COUNTER) {
                sb_printf(&b, "%s", x->name);
                render_labels(&b, x, c, NULL);
                sb_printf(&b, " %llu\n", (unsigned long long)c->count);
            } else {
                render_histogram(&b, x, c);
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (b.failed || b.p == NULL) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
