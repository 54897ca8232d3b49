/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server: worker threads, signals, start and stop.
 *
 * Threads: each worker thread owns one event_base, one evhttp (worker 0
 * also the admin socket's), one database pool; nothing of a worker is
 * touched by another thread except through event_active() on its stop and
 * database-retry events. The main thread only handles signals. All
 * workers accept on the same listening socket (one evconnlistener each on
 * the shared fd) rather than on SO_REUSEPORT sockets: with SO_REUSEPORT
 * the kernel assigns each new connection to one socket by hash, so a
 * worker busy with a long request would still be handed new connections
 * while the other idles; on a shared socket whichever loop is free
 * accepts first. (The wake-up of both loops per connection costs nothing
 * at two workers.) A shared socket is also bound once, so a configured
 * address either works for all workers or fails at start.
 *
 * Signals: SIGTERM/SIGINT make every worker drain (http.c) and the main
 * loop exit; the pools close after their worker's loop has ended. SIGHUP
 * reloads the TLS certificate and key and the log level.
 *
 * The service manager (notify.c) hears READY=1 once every worker thread
 * runs, and, with a watchdog, WATCHDOG=1 from a timer on the main loop
 * that first checks that each worker's loop has swept its connections
 * recently (http.c stamps every sweep) and that the liveness hook's loop
 * (the keeper) has turned: a stuck loop withholds the ping, and the
 * manager restarts dkmd after its WatchdogSec.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "dkm/base/log.h"
#include "admin.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "metrics.h"
#include "notify.h"
#include "server.h"
#include "tls.h"
#include "worker.h"

static void signal_cb(evutil_socket_t sig, short what, void *arg);
static void notify_cb(void *arg, const char *channel, const char *payload);
static void db_back_cb(void *arg);
static void db_retry_cb(evutil_socket_t fd, short what, void *arg);
static void watchdog_cb(evutil_socket_t fd, short what, void *arg);
static void db_up_cb(void *arg);
static void ready_cb(evutil_socket_t fd, short what, void *arg);

static bool (*liveness_hook)(uint64_t max_ms, char *why, size_t why_size);
static uint64_t (*refused_hook)(void);

void svc_set_refused_hook(uint64_t (*fn)(void))
{
    refused_hook = fn;
}

static uint64_t refused_total(const struct svc *svc)
{
    return atomic_load(&((struct svc *)svc)->refused_rows) +
           (refused_hook != NULL ? refused_hook() : 0);
}

void svc_set_liveness_hook(bool (*fn)(uint64_t max_ms, char *why, size_t why_size))
{
    liveness_hook = fn;
}

/* The watchdog: the state svc_run keeps for watchdog_cb. */
struct watchdog {
    struct svc *svc;
    uint64_t stall_ms; /* a loop quiet for longer than this is stuck */
    bool withheld;     /* the last tick sent no ping (logged once) */
};

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct watchdog *wd = arg;
    struct svc *svc = wd->svc;
    uint64_t now = svc_mono_ms();
    char why[160] = "";
    bool ok = true;

    (void)fd;
    (void)what;
    for (unsigned i = 0; ok && i < svc->nworkers; i++) {
        uint64_t last = atomic_load(&svc->workers[i].last_turn_ms);

        if (now > last && now - last > wd->stall_ms) {
            snprintf(why, sizeof(why),
                     "worker %u's event loop has not turned for %llu ms", i,
                     (unsigned long long)(now - last));
            ok = false;
        }
    }
    if (ok && liveness_hook != NULL)
        ok = liveness_hook(wd->stall_ms, why, sizeof(why));
    if (ok) {
        svc_notify_watchdog();
        if (wd->withheld)
            log_event(DKM_LOG_NOTICE, "watchdog.resumed");
        wd->withheld = false;
    } else if (!wd->withheld) {
        /* WATCHDOG=1 is withheld from the service manager until every loop turns. */
        log_event(DKM_LOG_ERR, "watchdog.withheld reason=%s", why);
        wd->withheld = true;
    }
}

void svc_get_status(const struct svc *svc, struct svc_status *ret)
{
    struct timespec now;

    svc_now_mono(&now);
    ret->workers = svc->nworkers;
    ret->schema_version = svc->schema_version;
    ret->uptime_s = (uint64_t)(now.tv_sec - svc->started.tv_sec);
    ret->refused_rows = refused_total(svc);
    ret->connections = atomic_load(&((struct svc *)svc)->connections);
}

struct svc_metrics *svc_get_metrics(const struct svc *svc)
{
    return svc->metrics;
}

void svc_refused_rows_add(struct svc *svc, uint64_t n)
{
    atomic_fetch_add(&svc->refused_rows, n);
}

static void notify_cb(void *arg, const char *channel, const char *payload)
{
    struct svc *svc = arg;

    /*
     * Registration point: the in-memory state (lists, groups, ACLs, sealed
     * keys) is invalidated from here once it exists. payload NULL means
     * notifications may have been missed: reload everything.
     */
    atomic_fetch_add(&svc->notifications, 1);
    if (payload != NULL)
        log_event(DKM_LOG_DEBUG, "db.notify channel=%s payload=%s", channel, payload);
    else
        log_event(DKM_LOG_DEBUG, "db.notify channel=%s resync=true", channel);
}

/*
 * One pool reached the database again: the others need not sit out their
 * backoff, which would keep answering 503 on their share of requests.
 */
static void db_back_cb(void *arg)
{
    struct svc_worker *self = arg;
    struct svc *svc = self->svc;

    for (unsigned i = 0; i < svc->nworkers; i++)
        if (&svc->workers[i] != self && svc->workers[i].db_retry_ev != NULL)
            event_active(svc->workers[i].db_retry_ev, EV_TIMEOUT, 0);
}

/*
 * In a worker's thread: its pool has a connection. The main loop sends
 * READY=1 once every pool has, so that nothing arriving after READY
 * finds a worker that cannot reach the database yet.
 */
static void db_up_cb(void *arg)
{
    struct svc_worker *w = arg;

    atomic_store(&w->db_ready, true);
    event_active(w->svc->ready_ev, EV_TIMEOUT, 0);
}

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc *svc = arg;
    (void)fd;
    (void)what;

    if (svc->ready_sent)
        return;
    for (unsigned i = 0; i < svc->nworkers; i++)
        if (!atomic_load(&svc->workers[i].db_ready))
            return;
    svc->ready_sent = true;
    log_event(DKM_LOG_INFO, "service.ready workers=%u", svc->nworkers);
    svc_notify_ready(svc->ready_status);
}

static void db_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_worker *w = arg;
    (void)fd;
    (void)what;

    if (w->db != NULL)
        svc_db_retry_now(w->db);
}

static double gauge_connections(void *arg)
{
    return (double)atomic_load(&((struct svc *)arg)->connections);
}

static double gauge_notifications(void *arg)
{
    return (double)atomic_load(&((struct svc *)arg)->notifications);
}

static double gauge_refused(void *arg)
{
    return (double)refused_total(arg);
}

static double gauge_uptime(void *arg)
{
    struct timespec now;

    svc_now_mono(&now);
    return (double)(now.tv_sec - ((struct svc *)arg)->started.tv_sec);
}

static int metrics_setup(struct svc *svc)
{
    struct svc_metrics *m = svc->metrics;
    int r;

    if ((r = svc_metrics_counter(m, "dkmd_http_requests_total",
                                 "HTTP requests answered, by endpoint and status code",
                                 "endpoint", "status", &svc->m_requests)) < 0 ||
        (r = svc_metrics_histogram(m, "dkmd_http_request_duration_seconds",
                                   "Time from request dispatch to answer, by endpoint",
                                   "endpoint", svc_latency_buckets, svc_latency_nbuckets,
                                   &svc->m_latency)) < 0 ||
        (r = svc_metrics_histogram(m, "dkmd_db_query_duration_seconds",
                                   "Database query latency, by prepared statement",
                                   "statement", svc_latency_buckets, svc_latency_nbuckets,
                                   &svc->m_db_latency)) < 0 ||
        (r = svc_metrics_counter(m, "dkmd_connections_closed_total",
                                 "Connections closed by the service, by reason", "reason",
                                 NULL, &svc->m_cut)) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_connections", "Open client connections (TLS)",
                               gauge_connections, svc)) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_db_notifications",
                               "Change notifications received since start",
                               gauge_notifications, svc)) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_refused_rows",
                               "Database rows refused by validation since start",
                               gauge_refused, svc)) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_uptime_seconds", "Seconds since start",
                               gauge_uptime, svc)) < 0)
        return r;
    return 0;
}

/* ---- set-up and teardown ------------------------------------------------------ */

static int listen_tcp(const struct svc_config *cfg, int *ret_fd)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    int fd = -1, one = 1, r, gai;

    snprintf(port, sizeof(port), "%u", cfg->listen_port);
    gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai != 0)
        return dkm_error_set(DKM_E_CONFIG, "%s: [service] listen: cannot resolve %s: %s",
                             cfg->path, cfg->listen_host, gai_strerror(gai));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = dkm_error_set(-errno, "cannot create a socket: %s", strerror(errno));
        goto done;
    }
    /*
     * TCP_NODELAY is inherited by accepted sockets: an answer leaves as
     * several TLS records, and Nagle would hold the last one back until
     * the client's delayed ACK (40 ms per request).
     */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
        r = dkm_error_set(-errno, "cannot listen on %s:%u: %s", cfg->listen_host,
                          cfg->listen_port, strerror(errno));
        goto done;
    }
    *ret_fd = fd;
    fd = -1;
    r = 0;
done:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return r;
}

static int worker_setup(struct svc *svc, struct svc_worker *w, unsigned id)
{
    const struct svc_config *cfg = svc->cfg;
    struct svc_db_options opt = {
        .conninfo = cfg->db_conninfo,
        .pool_size = cfg->db_pool_size,
        .connect_timeout = cfg->db_connect_timeout,
        .query_timeout = cfg->db_query_timeout,
        .reconnect_max_ms = cfg->db_reconnect_max_ms,
        .queue_max = cfg->db_queue_max,
        .query_latency = svc->m_db_latency,
        /* One LISTEN connection per process is enough: worker 0 keeps it. */
        .notify = id == 0 ? notify_cb : NULL,
        .notify_arg = svc,
        .back = db_back_cb,
        .up = db_up_cb,
        .back_arg = w,
    };
    struct timeval tv = {.tv_sec = 0, .tv_usec = SVC_SWEEP_MS * 1000};
    int r;

    w->svc = svc;
    w->id = id;
    atomic_init(&w->last_turn_ms, svc_mono_ms());
    atomic_init(&w->db_ready, false);
    w->base = event_base_new();
    if (w->base == NULL)
        return dkm_error_set(-ENOMEM, "cannot create an event base");
    w->stop_ev = event_new(w->base, -1, 0, svc_stop_cb, w);
    w->sweep_ev = event_new(w->base, -1, EV_PERSIST, svc_sweep_cb, w);
    w->db_retry_ev = event_new(w->base, -1, 0, db_retry_cb, w);
    if (w->stop_ev == NULL || w->sweep_ev == NULL || w->db_retry_ev == NULL ||
        event_add(w->sweep_ev, &tv) < 0)
        return dkm_error_set(-ENOMEM, "cannot create the worker's events");
    r = svc_http_attach(w, svc->listen_fd, true, &w->http, &w->bound);
    if (r < 0)
        return dkm_error_set(r, "cannot set up the HTTP server");
    if (id == 0) {
        r = svc_http_attach(w, svc->admin_fd, false, &w->admin_http, &w->admin_bound);
        if (r < 0)
            return dkm_error_set(r, "cannot set up the admin socket server");
    }
    r = svc_db_new(w->base, &opt, &w->db);
    if (r < 0)
        return dkm_error_set(r, "cannot create the database pool");
    return 0;
}

/* In the worker's own thread, after its loop: connections, pool, servers. */
static void worker_teardown(struct svc_worker *w)
{
    /* Pool first: its last callbacks may still answer through evhttp. */
    svc_db_free(w->db);
    w->db = NULL;
    if (w->admin_http != NULL)
        evhttp_free(w->admin_http);
    if (w->http != NULL)
        evhttp_free(w->http);
    w->admin_http = NULL;
    w->http = NULL;
    if (w->sweep_ev != NULL)
        event_free(w->sweep_ev);
    w->sweep_ev = NULL;
    /* Run deferred bufferevent finalizers while the loop's thread is ours. */
    if (w->base != NULL)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
}

/*
 * In the main thread once every worker has been joined: the events other
 * threads may activate (stop, database retry) and the base live until
 * nobody can touch them.
 */
static void worker_free(struct svc_worker *w)
{
    if (w->db_retry_ev != NULL)
        event_free(w->db_retry_ev);
    if (w->stop_ev != NULL)
        event_free(w->stop_ev);
    w->db_retry_ev = w->stop_ev = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
    w->base = NULL;
}

static void *worker_main(void *arg)
{
    struct svc_worker *w = arg;
    sigset_t all;

    /* Signals belong to the main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (event_base_dispatch(w->base) < 0)
        log_event(DKM_LOG_ERR, "worker.loop_failed worker=%u", w->id);
    worker_teardown(w);
    return NULL;
}

static void reload(struct svc *svc)
{
    struct svc_config *cfg = NULL;
    SSL_CTX *ctx = NULL, *old;
    int r;

    if (svc->ready_sent)
        svc_notify_reloading();
    r = svc_config_load(svc->config_path, &cfg);
    if (r < 0) {
        log_event(DKM_LOG_ERR, "config.reload_refused file=%s reason=%s",
                  svc->config_path, dkm_error_detail());
        if (svc->ready_sent)
            svc_notify_ready("reload refused: the configuration file has an error");
        return;
    }
    r = svc_tls_server_ctx(cfg->tls_cert, cfg->tls_key, &ctx);
    if (r < 0) {
        log_event(DKM_LOG_ERR, "config.reload_refused file=%s reason=%s",
                  svc->config_path, dkm_error_detail());
        if (svc->ready_sent)
            svc_notify_ready("reload refused: the TLS certificate or key has an error");
        svc_config_free(cfg);
        return;
    }
    pthread_mutex_lock(&svc->tls_lock);
    old = svc->ssl_ctx;
    svc->ssl_ctx = ctx;
    pthread_mutex_unlock(&svc->tls_lock);
    SSL_CTX_free(old); /* connections made with it keep their own reference */
    if (getenv("DKM_DEBUG") == NULL || strcmp(getenv("DKM_DEBUG"), "0") == 0)
        dkm_log_set_level(cfg->log_level);
    dkm_log_set_format(cfg->log_format);
    /* Other settings take effect at the next start. */
    log_event(DKM_LOG_NOTICE,
              "config.reloaded file=%s applied=tls_cert,tls_key,log_level,log_format",
              svc->config_path);
    if (svc->ready_sent)
        svc_notify_ready("serving; reloaded the TLS certificate and key and the log "
                         "level and format");
    svc_config_free(cfg);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct svc *svc = arg;
    (void)what;

    if (sig == SIGHUP) {
        reload(svc);
        return;
    }
    /* Requests in flight are finished first. */
    log_event(DKM_LOG_NOTICE, "service.stopping signal=%s",
              sig == SIGTERM ? "SIGTERM" : "SIGINT");
    svc_notify_stopping();
    for (unsigned i = 0; i < svc->nworkers; i++)
        event_active(svc->workers[i].stop_ev, EV_TIMEOUT, 0);
    event_base_loopexit(svc->main_base, NULL);
}

static void (*workers_stopped_hook)(void);

void svc_set_workers_stopped_hook(void (*fn)(void))
{
    workers_stopped_hook = fn;
}

int svc_run(struct svc_config *cfg, const char *config_path, unsigned schema_version,
            struct svc_metrics *metrics, const struct svc_route *routes, size_t nroutes)
{
    static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
    struct event *sigev[3] = {NULL, NULL, NULL};
    struct event *wd_ev = NULL;
    struct svc svc = {0};
    struct watchdog wd = {.svc = &svc};
    uint64_t wd_usec;
    bool lock_ok = false;
    int r;

    svc.cfg = cfg;
    svc.config_path = config_path;
    svc.listen_fd = -1;
    svc.admin_fd = -1;
    svc.schema_version = schema_version;
    svc.routes = routes;
    svc.nroutes = nroutes;
    svc_now_mono(&svc.started);
    atomic_init(&svc.connections, 0);
    atomic_init(&svc.refused_rows, 0);
    atomic_init(&svc.notifications, 0);

    if (evthread_use_pthreads() < 0) {
        r = dkm_error_set(-ENOMEM, "libevent has no thread support");
        goto done;
    }
    if (svc_http_global_init() < 0 || pthread_mutex_init(&svc.tls_lock, NULL) != 0) {
        r = -ENOMEM;
        goto done;
    }
    lock_ok = true;
    svc.metrics = metrics;
    r = metrics_setup(&svc);
    if (r < 0)
        goto done;
    r = svc_tls_server_ctx(cfg->tls_cert, cfg->tls_key, &svc.ssl_ctx);
    if (r < 0)
        goto done;
    r = listen_tcp(cfg, &svc.listen_fd);
    if (r < 0)
        goto done;
    r = svc_admin_listen(cfg, &svc.admin_fd);
    if (r < 0)
        goto done;

    svc.main_base = event_base_new();
    if (svc.main_base == NULL) {
        r = dkm_error_set(-ENOMEM, "cannot create the main event base");
        goto done;
    }
    svc.ready_ev = event_new(svc.main_base, -1, 0, ready_cb, &svc);
    if (svc.ready_ev == NULL) {
        r = dkm_error_set(-ENOMEM, "cannot create the readiness event");
        goto done;
    }
    for (size_t i = 0; i < 3; i++) {
        sigev[i] = evsignal_new(svc.main_base, signals[i], signal_cb, &svc);
        if (sigev[i] == NULL || event_add(sigev[i], NULL) < 0) {
            r = dkm_error_set(-ENOMEM, "cannot watch signals");
            goto done;
        }
    }
    svc.nworkers = cfg->workers;
    svc.workers = calloc(svc.nworkers, sizeof(*svc.workers));
    if (svc.workers == NULL) {
        r = -ENOMEM;
        goto done;
    }
    for (unsigned i = 0; i < svc.nworkers; i++) {
        r = worker_setup(&svc, &svc.workers[i], i);
        if (r < 0)
            goto done;
    }
    for (unsigned i = 0; i < svc.nworkers; i++) {
        if (pthread_create(&svc.workers[i].thread, NULL, worker_main, &svc.workers[i]) !=
            0) {
            r = dkm_error_set(-EAGAIN, "cannot start worker thread %u", i);
            /* Stop the ones already running. */
            for (unsigned j = 0; j < i; j++)
                event_active(svc.workers[j].stop_ev, EV_TIMEOUT, 0);
            goto done;
        }
        svc.workers[i].started = true;
    }
    log_event(DKM_LOG_NOTICE,
              "service.listening version=%s host=%s port=%u admin_socket=%s workers=%u "
              "schema_version=%u",
              DKM_VERSION, cfg->listen_host, cfg->listen_port, cfg->admin_socket,
              svc.nworkers, schema_version);
    /*
     * Pings every half period; a loop silent for that long (but never
     * less than four sweeps) is stuck, and the manager kills dkmd about
     * one period after it stuck.
     */
    wd_usec = svc_notify_watchdog_usec();
    if (wd_usec > 0) {
        struct timeval tv = {.tv_sec = (time_t)(wd_usec / 2 / 1000000),
                             .tv_usec = (suseconds_t)(wd_usec / 2 % 1000000)};

        wd.stall_ms =
            wd_usec / 2000 > 4 * SVC_SWEEP_MS ? wd_usec / 2000 : 4 * SVC_SWEEP_MS;
        wd_ev = event_new(svc.main_base, -1, EV_PERSIST, watchdog_cb, &wd);
        if (wd_ev == NULL || event_add(wd_ev, &tv) < 0) {
            r = dkm_error_set(-ENOMEM, "cannot start the watchdog timer");
            for (unsigned i = 0; i < svc.nworkers; i++)
                event_active(svc.workers[i].stop_ev, EV_TIMEOUT, 0);
            goto done;
        }
        log_event(DKM_LOG_INFO, "watchdog.on interval_ms=%llu",
                  (unsigned long long)(wd_usec / 2000));
    }
    snprintf(svc.ready_status, sizeof(svc.ready_status),
             "serving on %s:%u, %u worker(s), schema version %u", cfg->listen_host,
             cfg->listen_port, svc.nworkers, schema_version);
    /* READY=1 comes from ready_cb once every pool is up (maybe already). */
    event_active(svc.ready_ev, EV_TIMEOUT, 0);
    if (event_base_dispatch(svc.main_base) < 0) {
        r = dkm_error_set(-EIO, "the main event loop failed");
        for (unsigned i = 0; i < svc.nworkers; i++)
            event_active(svc.workers[i].stop_ev, EV_TIMEOUT, 0);
    } else {
        r = 0;
    }
done : {
    /*
         * Freeing the signal events below restores the default actions; a
         * second SIGTERM during teardown must not turn a clean stop into a
         * death by signal. Blocked, it stays pending until exit.
         */
    sigset_t stop;
    sigemptyset(&stop);
    for (size_t i = 0; i < 3; i++)
        sigaddset(&stop, signals[i]);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
}
    for (unsigned i = 0; svc.workers != NULL && i < svc.nworkers; i++) {
        if (svc.workers[i].started)
            pthread_join(svc.workers[i].thread, NULL);
        else
            worker_teardown(&svc.workers[i]);
    }
    /* Nothing may post to a worker's base from here on. */
    if (workers_stopped_hook != NULL)
        workers_stopped_hook();
    for (unsigned i = 0; svc.workers != NULL && i < svc.nworkers; i++)
        worker_free(&svc.workers[i]);
    free(svc.workers);
    if (wd_ev != NULL)
        event_free(wd_ev);
    if (svc.ready_ev != NULL)
        event_free(svc.ready_ev);
    for (size_t i = 0; i < 3; i++)
        if (sigev[i] != NULL)
            event_free(sigev[i]);
    if (svc.main_base != NULL)
        event_base_free(svc.main_base);
    if (svc.admin_fd >= 0) {
        close(svc.admin_fd);
        unlink(cfg->admin_socket);
    }
    if (svc.listen_fd >= 0)
        close(svc.listen_fd);
    SSL_CTX_free(svc.ssl_ctx);
    if (lock_ok)
        pthread_mutex_destroy(&svc.tls_lock);
    if (r == 0)
        log_event(DKM_LOG_NOTICE, "service.stopped");
    return r;
}
