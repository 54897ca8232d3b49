/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker, its connections and the server object: data the HTTP layer
 * (http.c: connections, limits, dispatch, replies) and the server around
 * it (server.c: worker threads, signals, start and stop) share. Handlers
 * never need this header: they see struct svc_req and the accessors of
 * http.h and server.h.
 */
#ifndef DKM_SVC_WORKER_H
#define DKM_SVC_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>

#include <openssl/ssl.h>

#include "clock.h"

struct svc_config;
struct svc_db;
struct svc_metric;
struct svc_metrics;
struct svc_req;
struct svc_route;

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
    /* Monotonic ms of the loop's last sweep: the watchdog's proof that it turns. */
    atomic_uint_fast64_t last_turn_ms;
    atomic_bool db_ready; /* the pool has had a connection up (READY waits for it) */
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
    struct event *ready_ev; /* activated by a worker whose pool came up */
    char ready_status[160]; /* STATUS= of READY=1 */
    bool ready_sent;
};

#endif
