/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the HTTP layer (http.c: connections, limits,
 * dispatch, replies) and the server around it (server.c: worker threads,
 * signals, start and stop). Handlers never need this header: they see
 * struct svc_req and the accessors of dkmd.h.
 */
#ifndef DKM_SERVICE_SERVER_H
#define DKM_SERVICE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>

#include "svc.h"

/* How often each worker looks for connections past their deadline. */
#define SVC_SWEEP_MS 200

struct svc_conn {
    struct svc_worker *w;
    struct bufferevent *bev;
    struct timespec deadline; /* the current request must be complete by then */
    struct svc_req *cur;      /* the request being answered, if any */
    bool over_limit;
    bool cut;
    struct svc_conn *prev, *next;
};

struct svc_worker {
    struct svc *svc;
    unsigned id;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct evhttp *admin_http;
    struct evhttp_bound_socket *admin_bound;
    struct event *stop_ev;
    struct event *sweep_ev;
    struct event *db_retry_ev; /* activated by another worker whose pool got through */
    struct svc_db *db;
    struct svc_conn *conns;
    unsigned inflight;
    bool draining;
    struct timespec drain_deadline;
};

struct svc {
    struct svc_config *cfg;
    const char *config_path;
    struct svc_worker *workers;
    unsigned nworkers;
    int listen_fd;
    int admin_fd;
    pthread_mutex_t tls_lock;
    SSL_CTX *ssl_ctx;
    atomic_uint connections;
    atomic_uint_fast64_t refused_rows;
    atomic_uint_fast64_t notifications;
    struct timespec started;
    unsigned schema_version;
    const struct svc_route *routes; /* the endpoint table, in matching order */
    size_t nroutes;
    struct svc_metrics *metrics;
    struct svc_metric *m_requests;
    struct svc_metric *m_latency;
    struct svc_metric *m_db_latency;
    struct svc_metric *m_cut;
    struct event_base *main_base;
};

static inline void svc_now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

static inline uint64_t svc_mono_ns(void)
{
    struct timespec ts;

    svc_now_mono(&ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline bool svc_after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static inline void svc_deadline_in(struct timespec *ts, unsigned seconds)
{
    svc_now_mono(ts);
    ts->tv_sec += seconds;
}

/* Create the SSL ex_data slot for connection state; once, before any worker runs. */
DKM_MUSTCHECK int svc_http_global_init(void);

/*
 * An evhttp on w's base serving the listening socket fd (shared by all
 * workers, never closed by evhttp): TLS through bufferevent_openssl when
 * tls, else plain (the admin socket). Limits come from the configuration.
 */
DKM_MUSTCHECK int svc_http_attach(struct svc_worker *w, int fd, bool tls,
                                  struct evhttp **ret_http,
                                  struct evhttp_bound_socket **ret_bound);

/* Worker events (http.c): stop accepting and drain; periodic deadline sweep. */
void svc_stop_cb(evutil_socket_t fd, short what, void *arg);
void svc_sweep_cb(evutil_socket_t fd, short what, void *arg);

#endif
