/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 + JSON layer over TLS: per-connection TLS and state,
 * limits, dispatch through the router, and replies. The worker threads
 * and their start and stop live in server.c.
 *
 * TLS: evhttp_set_bevcb gives every accepted connection a
 * bufferevent_openssl with BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS
 * (without deferred callbacks evhttp and bufferevent_openssl can free the
 * connection under each other's feet). Per-connection state hangs off the
 * SSL object as ex_data, whose free callback runs exactly when libevent
 * frees the connection: that is how connections are counted and how a
 * request whose client went away learns it.
 *
 * Limits: header and body sizes through evhttp (max_body_bytes, the
 * outer bound); then each route's own max_body, checked once the route is
 * matched and before the body is parsed (413 with a JSON reason); an
 * idle timeout through evhttp_set_timeout; and an absolute deadline per
 * request (a sweep timer shuts the socket down when a client has not
 * completed its request in request_timeout, however slowly it trickles
 * bytes). Connections beyond max_connections are answered 503 and closed.
 *
 * Draining (on SIGTERM, from server.c): stop accepting, cut idle
 * connections, answer requests in flight with Connection: close, and leave
 * the loop once nothing is in flight and every answer has been written, or
 * after shutdown_timeout.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "dkm/base/log.h"
#include "admin.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "metrics.h"
#include "worker.h"

/* Index of our ex_data slot on SSL objects; set once before any thread runs. */
static int conn_ex_index = -1;

static void request_cb(struct evhttp_request *req, void *arg);
static void admin_request_cb(struct evhttp_request *req, void *arg);
static struct bufferevent *bev_cb(struct event_base *base, void *arg);
static void conn_ex_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                            long argl, void *argp);

int svc_http_global_init(void)
{
    if (conn_ex_index < 0)
        conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free_cb);
    return conn_ex_index < 0 ? -ENOMEM : 0;
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
    svc_deadline_in(&conn->deadline, svc->cfg->request_timeout);
    if (!SSL_set_ex_data(ssl, conn_ex_index, conn))
        goto fail;
    n = atomic_fetch_add(&svc->connections, 1);
    conn->over_limit = n >= svc->cfg->max_connections;
    conn->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = conn;
    w->conns = conn;
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    /* With BEV_OPT_CLOSE_ON_FREE libevent frees ssl (and so conn) even on failure. */
    ssl = NULL;
    if (bev == NULL) {
        conn = NULL;
        goto fail;
    }
    conn->bev = bev;
    return bev;
fail:
    /*
     * evhttp would fall back to a plain socket; request_cb refuses any
     * request on a connection without TLS, so that fallback serves nothing.
     */
    log_event(DKM_LOG_ERR, "http.tls_setup_failed");
    if (ssl != NULL && conn != NULL && SSL_get_ex_data(ssl, conn_ex_index) == conn)
        conn = NULL; /* SSL_free below frees it through the ex_data callback */
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
    log_event(DKM_LOG_DEBUG, "http.connection_cut reason=%s", why);
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

void svc_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_worker *w = arg;
    struct timespec now;
    (void)fd;
    (void)what;

    svc_now_mono(&now);
    atomic_store(&w->last_turn_ms, svc_mono_ms());
    for (struct svc_conn *c = w->conns; c != NULL; c = c->next) {
        /* Busy, or an answer still being written: evhttp closes it when done. */
        if (c->cur != NULL ||
            (c->bev != NULL && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0))
            continue;
        if (w->draining)
            conn_cut(c, "shutdown");
        else if (svc_after(&now, &c->deadline))
            conn_cut(c, "request_timeout");
    }
    if (w->draining) {
        if (w->inflight == 0 && outputs_flushed(w)) {
            event_base_loopexit(w->base, NULL);
        } else if (svc_after(&now, &w->drain_deadline)) {
            /* Stopping anyway: those requests get no answer. */
            log_event(DKM_LOG_WARNING, "service.drain_timeout worker=%u inflight=%u",
                      w->id, w->inflight);
            event_base_loopexit(w->base, NULL);
        }
    }
}

void svc_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_worker *w = arg;
    struct timeval tv = {0, 0};
    (void)fd;
    (void)what;

    if (w->draining)
        return;
    w->draining = true;
    svc_deadline_in(&w->drain_deadline, w->svc->cfg->shutdown_timeout);
    if (w->bound != NULL)
        evconnlistener_disable(evhttp_bound_socket_get_listener(w->bound));
    if (w->admin_bound != NULL)
        evconnlistener_disable(evhttp_bound_socket_get_listener(w->admin_bound));
    log_event(DKM_LOG_DEBUG, "worker.draining worker=%u inflight=%u", w->id, w->inflight);
    /* Sweep now rather than at the next tick. */
    event_del(w->sweep_ev);
    svc_sweep_cb(-1, 0, w);
    tv.tv_usec = SVC_SWEEP_MS * 1000 / 10;
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
    svc_metric_observe(w->svc->m_latency, name,
                       (double)(svc_mono_ns() - r->start_ns) / 1e9);
    if (r->conn != NULL) {
        r->conn->cur = NULL;
        svc_deadline_in(&r->conn->deadline, w->svc->cfg->request_timeout);
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

static svc_tls_admin_fn *tls_admin_hook;

void svc_set_tls_admin_hook(svc_tls_admin_fn *fn)
{
    tls_admin_hook = fn;
}

int svc_req_tls_key_id(const struct svc_req *r, uint8_t ret[SVC_TLS_KEY_ID_SIZE])
{
    SSL *ssl;
    X509 *peer;

    if (r->conn == NULL || (ssl = bufferevent_openssl_get_ssl(r->conn->bev)) == NULL ||
        (peer = SSL_get0_peer_certificate(ssl)) == NULL)
        return -ENOENT;
    return svc_tls_key_id(peer, ret);
}

/* Whether the TLS client of r is an admin node; sets r->admin and r->actor. */
static bool tls_admin(struct svc_req *r)
{
    uint8_t id[SVC_TLS_KEY_ID_SIZE];
    int rc;

    if (tls_admin_hook == NULL)
        return false;
    rc = svc_req_tls_key_id(r, id);
    if (rc < 0) {
        if (rc != -ENOENT)
            log_event(DKM_LOG_WARNING, "admin.tls_key_unreadable reason=%s",
                      dkm_error_detail());
        return false;
    }
    if (!tls_admin_hook(id, r->actor, sizeof(r->actor)))
        return false;
    r->admin = true;
    return true;
}

/* Route a request (TLS port or admin socket) and run its handler. */
static void dispatch(struct svc_worker *w, struct evhttp_request *req, bool admin_socket)
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
    r->start_ns = svc_mono_ns();
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
    rr = svc_router_match(w->svc->routes, w->svc->nroutes, method ? method : ~0u, path,
                          &m);
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
    if ((m.route->flags & SVC_ROUTE_ADMIN) && !r->admin && !tls_admin(r)) {
        svc_reply_error(
            r, 403, "forbidden",
            "admin endpoints need the admin socket, or a TLS client certificate "
            "bound to a node with the admin role");
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
        /* Before jansson sees it: max_body_bytes may be far larger. */
        if (len > m.route->max_body) {
            svc_reply_error(r, 413, "payload too large",
                            "this endpoint takes at most %zu bytes of request body",
                            m.route->max_body);
            return;
        }
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
    dispatch(arg, req, false);
}

static void admin_request_cb(struct evhttp_request *req, void *arg)
{
    dispatch(arg, req, true);
}

/* ---- accessors for handlers ------------------------------------------------ */

struct svc_db *svc_req_db(const struct svc_req *r)
{
    return r->worker->db;
}

struct event_base *svc_req_base(const struct svc_req *r)
{
    return r->worker->base;
}

int svc_http_attach(struct svc_worker *w, int fd, bool tls, struct evhttp **ret_http,
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
