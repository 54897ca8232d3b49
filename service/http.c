/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 + JSON server over TLS and its worker threads.
 *
 * Threads: each worker thread owns one event_base, one evhttp, one
 * database pool; nothing of a worker is touched by another thread except
 * through event_active() on its stop event. The main thread only handles
 * signals. All workers accept on the same listening socket (one evconnlistener
 * each on the shared fd) rather than on SO_REUSEPORT sockets: with
 * SO_REUSEPORT the kernel assigns each new connection to one socket by
 * hash, so a worker busy with a long request would still be handed new
 * connections while the other idles; on a shared socket whichever loop is
 * free accepts first. (The wake-up of both loops per connection costs
 * nothing at two workers.) A shared socket is also bound once, so a
 * configured address either works for all workers or fails at start.
 *
 * TLS: evhttp_set_bevcb gives every accepted connection a
 * bufferevent_openssl with BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS
 * (without deferred callbacks evhttp and bufferevent_openssl can free the
 * connection under each other's feet). Per-connection state hangs off the
 * SSL object as ex_data, whose free callback runs exactly when libevent
 * frees the connection: that is how connections are counted and how a
 * request whose client went away learns it.
 *
 * Limits: header and body sizes through evhttp; an idle timeout through
 * evhttp_set_timeout; and an absolute deadline per request (a sweep timer
 * shuts the socket down when a client has not completed its request in
 * request_timeout, however slowly it trickles bytes). Connections beyond
 * max_connections are answered 503 and closed.
 *
 * Shutdown (SIGTERM/SIGINT): every worker stops accepting, cuts idle
 * connections, answers requests already in flight (with Connection:
 * close), and leaves its loop once nothing is in flight and every answer
 * has been written, or after shutdown_timeout. Then the pools close.
 * SIGHUP reloads the TLS certificate and key and the log level.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "dkm/log.h"
#include "dkmd.h"

#define SWEEP_MS 200

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
    struct svc_metrics *metrics;
    struct svc_metric *m_requests;
    struct svc_metric *m_latency;
    struct svc_metric *m_db_latency;
    struct svc_metric *m_cut;
    struct event_base *main_base;
};

/* Index of our ex_data slot on SSL objects; set once before any thread runs. */
static int conn_ex_index = -1;

static void request_cb(struct evhttp_request *req, void *arg);
static void admin_request_cb(struct evhttp_request *req, void *arg);
static struct bufferevent *bev_cb(struct event_base *base, void *arg);
static void stop_cb(evutil_socket_t fd, short what, void *arg);
static void sweep_cb(evutil_socket_t fd, short what, void *arg);
static void signal_cb(evutil_socket_t sig, short what, void *arg);
static void conn_ex_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                            long argl, void *argp);
static void notify_cb(void *arg, const char *channel, const char *payload);
static void db_back_cb(void *arg);
static void db_retry_cb(evutil_socket_t fd, short what, void *arg);

static void now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    now_mono(&ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static void deadline_in(struct timespec *ts, unsigned seconds)
{
    now_mono(ts);
    ts->tv_sec += seconds;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_ex_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                            long argl, void *argp)
{
    struct svc_conn *conn = ptr;
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;

    if (conn == NULL)
        return;
    if (conn->cur != NULL)
        conn->cur->conn = NULL; /* the request outlives its connection */
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        conn->w->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    atomic_fetch_sub(&conn->w->svc->connections, 1);
    free(conn);
}

static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
    struct svc_worker *w = arg;
    struct svc *svc = w->svc;
    struct svc_conn *conn = NULL;
    struct bufferevent *bev = NULL;
    SSL_CTX *ctx;
    SSL *ssl = NULL;
    unsigned n;

    pthread_mutex_lock(&svc->tls_lock);
    ctx = svc->ssl_ctx;
    ssl = SSL_new(ctx); /* takes its own reference on ctx */
    pthread_mutex_unlock(&svc->tls_lock);
    conn = calloc(1, sizeof(*conn));
    if (ssl == NULL || conn == NULL)
        goto fail;
    conn->w = w;
    deadline_in(&conn->deadline, svc->cfg->request_timeout);
    if (!SSL_set_ex_data(ssl, conn_ex_index, conn))
        goto fail;
    n = atomic_fetch_add(&svc->connections, 1);
    conn->over_limit = n >= svc->cfg->max_connections;
    conn->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = conn;
    w->conns = conn;
    conn = NULL; /* owned by ssl now */
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL)
        goto fail;
    ((struct svc_conn *)SSL_get_ex_data(ssl, conn_ex_index))->bev = bev;
    return bev;
fail:
    /*
     * evhttp would fall back to a plain socket; request_cb refuses any
     * request on a connection without TLS, so that fallback serves nothing.
     */
    log_error("cannot set up TLS for a new connection");
    free(conn);
    SSL_free(ssl);
    return NULL;
}

/* The svc_conn of a request on the TLS port; NULL if it has no TLS. */
static struct svc_conn *request_conn(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev;
    SSL *ssl;

    if (evcon == NULL)
        return NULL;
    bev = evhttp_connection_get_bufferevent(evcon);
    ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    return ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
}

static void conn_cut(struct svc_conn *conn, const char *why)
{
    int fd;

    if (conn->cut || conn->bev == NULL)
        return;
    fd = bufferevent_getfd(conn->bev);
    if (fd < 0)
        return;
    /* The peer and libevent both see end of stream; evhttp then frees it. */
    shutdown(fd, SHUT_RDWR);
    conn->cut = true;
    log_debug("closed a connection: %s", why);
    svc_metric_inc(conn->w->svc->m_cut, why, NULL, 1);
}

static bool outputs_flushed(const struct svc_worker *w)
{
    for (const struct svc_conn *c = w->conns; c != NULL; c = c->next)
        if (!c->cut && c->bev != NULL &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            return false;
    return true;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_worker *w = arg;
    struct timespec now;
    (void)fd;
    (void)what;

    now_mono(&now);
    for (struct svc_conn *c = w->conns; c != NULL; c = c->next) {
        /* Busy, or an answer still being written: evhttp closes it when done. */
        if (c->cur != NULL ||
            (c->bev != NULL && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0))
            continue;
        if (w->draining)
            conn_cut(c, "shutdown");
        else if (after(&now, &c->deadline))
            conn_cut(c, "request_timeout");
    }
    if (w->draining) {
        if (w->inflight == 0 && outputs_flushed(w)) {
            event_base_loopexit(w->base, NULL);
        } else if (after(&now, &w->drain_deadline)) {
            log_warning("worker %u: %u request(s) still running after shutdown_timeout; "
                        "stopping anyway",
                        w->id, w->inflight);
            event_base_loopexit(w->base, NULL);
        }
    }
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_worker *w = arg;
    struct timeval tv = {0, 0};
    (void)fd;
    (void)what;

    if (w->draining)
        return;
    w->draining = true;
    deadline_in(&w->drain_deadline, w->svc->cfg->shutdown_timeout);
    if (w->bound != NULL)
        evconnlistener_disable(evhttp_bound_socket_get_listener(w->bound));
    if (w->admin_bound != NULL)
        evconnlistener_disable(evhttp_bound_socket_get_listener(w->admin_bound));
    log_debug("worker %u: draining, %u request(s) in flight", w->id, w->inflight);
    /* Sweep now rather than at the next tick. */
    event_del(w->sweep_ev);
    sweep_cb(-1, 0, w);
    tv.tv_usec = SWEEP_MS * 1000 / 10;
    event_add(w->sweep_ev, &tv);
}

/* ---- replies ---------------------------------------------------------------- */

static void req_finish(struct svc_req *r, int status)
{
    struct svc_worker *w = r->worker;
    const char *name = r->route ? r->route->name : "unmatched";
    char code[8];

    snprintf(code, sizeof(code), "%d", status);
    svc_metric_inc(w->svc->m_requests, name, code, 1);
    svc_metric_observe(w->svc->m_latency, name, (double)(mono_ns() - r->start_ns) / 1e9);
    if (r->conn != NULL) {
        r->conn->cur = NULL;
        deadline_in(&r->conn->deadline, w->svc->cfg->request_timeout);
    }
    w->inflight--;
    json_decref(r->body);
    free(r);
}

static void send_buffer(struct svc_req *r, int status, const char *type, const char *text,
                        size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf = evbuffer_new();

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (r->worker->draining || (r->conn != NULL && r->conn->over_limit))
        evhttp_add_header(h, "Connection", "close");
    if (buf == NULL || evbuffer_add(buf, text, len) < 0) {
        /* Out of memory: the status line still tells the client. */
        evhttp_send_reply(r->req, 500, NULL, NULL);
        status = 500;
    } else {
        evhttp_send_reply(r->req, status, NULL, buf);
    }
    evbuffer_free(buf);
    req_finish(r, status);
}

void svc_reply_text(struct svc_req *r, int status, const char *content_type,
                    const char *text, size_t len)
{
    send_buffer(r, status, content_type, text, len);
}

void svc_reply_json(struct svc_req *r, int status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (text == NULL) {
        svc_reply_error(r, 500, "internal error", "cannot encode the answer");
        return;
    }
    send_buffer(r, status, "application/json", text, strlen(text));
    free(text);
}

void svc_reply_error(struct svc_req *r, int status, const char *error, const char *fmt,
                     ...)
{
    char detail[512] = "";
    char *text;
    va_list ap;

    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    text = svc_json_error_body(error, detail);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"internal error\"}";
        send_buffer(r, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    send_buffer(r, status, "application/json", text, strlen(text));
    free(text);
}

/* ---- dispatch ------------------------------------------------------------- */

static unsigned method_bit(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return SVC_GET;
    case EVHTTP_REQ_POST:
        return SVC_POST;
    case EVHTTP_REQ_PUT:
        return SVC_PUT;
    case EVHTTP_REQ_DELETE:
        return SVC_DELETE;
    default:
        return 0;
    }
}

static bool is_json_type(const char *ct)
{
    size_t n = strlen("application/json");

    if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
        return false;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

void svc_dispatch(struct svc_worker *w, struct evhttp_request *req, bool admin_socket)
{
    struct svc_route_match m;
    struct evbuffer *in;
    struct svc_req *r;
    const char *path;
    unsigned method;
    size_t len;
    int rr;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        evhttp_send_reply(req, 503, NULL, NULL);
        return;
    }
    r->svc = w->svc;
    r->worker = w;
    r->req = req;
    r->start_ns = mono_ns();
    w->inflight++;
    if (!admin_socket) {
        r->conn = request_conn(req);
        if (r->conn == NULL) {
            svc_reply_error(r, 500, "internal error", "connection without TLS refused");
            evhttp_connection_free_on_completion(evhttp_request_get_connection(req));
            return;
        }
        r->conn->cur = r;
        if (r->conn->over_limit) {
            svc_reply_error(r, 503, "service unavailable",
                            "too many connections (max_connections is %u)",
                            w->svc->cfg->max_connections);
            return;
        }
    } else {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        int fd = bev ? bufferevent_getfd(bev) : -1;

        if (svc_admin_peer_allowed(fd, &r->peer_uid) != 0) {
            svc_reply_error(r, 403, "forbidden",
                            "the admin socket is for root and the dkmd user only");
            return;
        }
        r->admin = true;
    }
    if (w->draining) {
        svc_reply_error(r, 503, "service unavailable", "the service is shutting down");
        return;
    }

    path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    method = method_bit(evhttp_request_get_command(req));
    rr = svc_router_match(svc_routes, svc_nroutes, method ? method : ~0u, path, &m);
    if (rr == 0 && method == 0)
        rr = -EOPNOTSUPP, m.allowed = m.route->methods, m.route = NULL;
    if (rr == -ENOENT) {
        svc_reply_error(r, 404, "not found", "no endpoint at this path");
        return;
    }
    if (rr == -EOPNOTSUPP) {
        char allow[64];
        svc_methods_string(m.allowed, allow, sizeof(allow));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        svc_reply_error(r, 405, "method not allowed", "this endpoint accepts %s", allow);
        return;
    }
    r->route = m.route;
    r->nparams = m.nparams;
    memcpy(r->params, m.params, sizeof(r->params));
    if ((m.route->flags & SVC_ROUTE_ADMIN) && !r->admin) {
        svc_reply_error(r, 403, "forbidden",
                        "admin endpoints are served on the admin socket");
        return;
    }

    if (!(m.route->flags & SVC_ROUTE_QUERY) &&
        evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) != NULL) {
        svc_reply_error(r, 400, "bad request", "this endpoint takes no query parameters");
        return;
    }
    in = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(in);
    if (m.route->body == NULL) {
        if (len > 0) {
            svc_reply_error(r, 400, "bad request", "this endpoint takes no request body");
            return;
        }
    } else {
        char why[256];
        const char *ct =
            evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
        if (!is_json_type(ct)) {
            svc_reply_error(r, 415, "unsupported media type",
                            "the request body must be application/json");
            return;
        }
        if (svc_json_parse(evbuffer_pullup(in, -1), len, m.route->body, m.route->nbody,
                           &r->body, why, sizeof(why)) < 0) {
            svc_reply_error(r, 400, "bad request", "%s", why);
            return;
        }
    }
    if ((m.route->flags & SVC_ROUTE_NEEDS_DB) && !svc_db_up(w->db)) {
        svc_reply_error(r, 503, "service unavailable", "the database is unavailable");
        return;
    }
    m.route->handler(r);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    svc_dispatch(arg, req, false);
}

static void admin_request_cb(struct evhttp_request *req, void *arg)
{
    svc_dispatch(arg, req, true);
}

/* ---- accessors for handlers ------------------------------------------------ */

struct svc_db *svc_req_db(const struct svc_req *r)
{
    return r->worker->db;
}

void svc_get_status(const struct svc *svc, struct svc_status *ret)
{
    struct timespec now;

    now_mono(&now);
    ret->workers = svc->nworkers;
    ret->schema_version = svc->schema_version;
    ret->uptime_s = (uint64_t)(now.tv_sec - svc->started.tv_sec);
    ret->refused_rows = atomic_load(&((struct svc *)svc)->refused_rows);
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
    log_debug("change notification on %s: %s", channel, payload ? payload : "(resync)");
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
    return (double)atomic_load(&((struct svc *)arg)->refused_rows);
}

static double gauge_uptime(void *arg)
{
    struct timespec now;

    now_mono(&now);
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
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
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

static int worker_http(struct svc_worker *w, int fd, bool tls, struct evhttp **ret_http,
                       struct evhttp_bound_socket **ret_bound)
{
    const struct svc_config *cfg = w->svc->cfg;
    struct evconnlistener *l;
    struct evhttp *http;

    http = evhttp_new(w->base);
    if (http == NULL)
        return -ENOMEM;
    evhttp_set_max_headers_size(http, (ev_ssize_t)cfg->max_header_bytes);
    evhttp_set_max_body_size(http, (ev_ssize_t)cfg->max_body_bytes);
    evhttp_set_timeout(http, (int)cfg->request_timeout);
    /* Every method reaches the router, so that 405 comes with a JSON body. */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                         EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http, "application/json");
    if (tls) {
        evhttp_set_bevcb(http, bev_cb, w);
        evhttp_set_gencb(http, request_cb, w);
    } else {
        evhttp_set_gencb(http, admin_request_cb, w);
    }
    /* Not LEV_OPT_CLOSE_ON_FREE: the fd is shared by all workers and closed once. */
    l = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (l == NULL) {
        evhttp_free(http);
        return -ENOMEM;
    }
    *ret_bound = evhttp_bind_listener(http, l);
    if (*ret_bound == NULL) {
        evconnlistener_free(l);
        evhttp_free(http);
        return -ENOMEM;
    }
    *ret_http = http;
    return 0;
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
        .back_arg = w,
    };
    struct timeval tv = {.tv_sec = 0, .tv_usec = SWEEP_MS * 1000};
    int r;

    w->svc = svc;
    w->id = id;
    w->base = event_base_new();
    if (w->base == NULL)
        return dkm_error_set(-ENOMEM, "cannot create an event base");
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->sweep_ev = event_new(w->base, -1, EV_PERSIST, sweep_cb, w);
    w->db_retry_ev = event_new(w->base, -1, 0, db_retry_cb, w);
    if (w->stop_ev == NULL || w->sweep_ev == NULL || w->db_retry_ev == NULL ||
        event_add(w->sweep_ev, &tv) < 0)
        return dkm_error_set(-ENOMEM, "cannot create the worker's events");
    r = worker_http(w, svc->listen_fd, true, &w->http, &w->bound);
    if (r < 0)
        return dkm_error_set(r, "cannot set up the HTTP server");
    if (id == 0) {
        r = worker_http(w, svc->admin_fd, false, &w->admin_http, &w->admin_bound);
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
        log_error("worker %u: event loop failed", w->id);
    worker_teardown(w);
    return NULL;
}

static void reload(struct svc *svc)
{
    struct svc_config *cfg = NULL;
    SSL_CTX *ctx = NULL, *old;
    int r;

    r = svc_config_load(svc->config_path, &cfg);
    if (r < 0) {
        log_error("reload: %s; keeping the running configuration", dkm_error_detail());
        return;
    }
    r = svc_tls_server_ctx(cfg->tls_cert, cfg->tls_key, &ctx);
    if (r < 0) {
        log_error("reload: %s; keeping the running configuration", dkm_error_detail());
        svc_config_free(cfg);
        return;
    }
    pthread_mutex_lock(&svc->tls_lock);
    old = svc->ssl_ctx;
    svc->ssl_ctx = ctx;
    pthread_mutex_unlock(&svc->tls_lock);
    SSL_CTX_free(old); /* connections made with it keep their own reference */
    dkm_log_set_level(cfg->log_level);
    log_notice("reloaded the TLS certificate and key and the log level from %s; other "
               "settings take effect at restart",
               svc->config_path);
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
    log_notice("received %s; finishing requests in flight, then stopping",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
    for (unsigned i = 0; i < svc->nworkers; i++)
        event_active(svc->workers[i].stop_ev, EV_TIMEOUT, 0);
    event_base_loopexit(svc->main_base, NULL);
}

int svc_run(struct svc_config *cfg, const char *config_path, unsigned schema_version)
{
    static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
    struct event *sigev[3] = {NULL, NULL, NULL};
    struct svc svc = {0};
    bool lock_ok = false;
    int r;

    svc.cfg = cfg;
    svc.config_path = config_path;
    svc.listen_fd = -1;
    svc.admin_fd = -1;
    svc.schema_version = schema_version;
    now_mono(&svc.started);
    atomic_init(&svc.connections, 0);
    atomic_init(&svc.refused_rows, 0);
    atomic_init(&svc.notifications, 0);

    if (evthread_use_pthreads() < 0) {
        r = dkm_error_set(-ENOMEM, "libevent has no thread support");
        goto done;
    }
    if (conn_ex_index < 0)
        conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free_cb);
    if (conn_ex_index < 0 || pthread_mutex_init(&svc.tls_lock, NULL) != 0) {
        r = -ENOMEM;
        goto done;
    }
    lock_ok = true;
    r = svc_metrics_new(&svc.metrics);
    if (r < 0)
        goto done;
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
    log_notice("dkmd %s listening on %s:%u (TLS) and %s (admin), %u worker(s), schema "
               "version %u",
               DKM_VERSION, cfg->listen_host, cfg->listen_port, cfg->admin_socket,
               svc.nworkers, schema_version);
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
    for (unsigned i = 0; svc.workers != NULL && i < svc.nworkers; i++)
        worker_free(&svc.workers[i]);
    free(svc.workers);
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
    svc_metrics_free(svc.metrics);
    if (lock_ok)
        pthread_mutex_destroy(&svc.tls_lock);
    if (r == 0)
        log_notice("stopped");
    return r;
}
