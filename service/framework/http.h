/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP layer (http.c): one request as handlers see it and the
 * replies that end it, and what the server (server.c) calls to put HTTP
 * on a worker's loop. Handlers need only this header and the ones of
 * what they use (json.h, db.h, ...).
 */
#ifndef DKM_SVC_HTTP_H
#define DKM_SVC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/util.h>
#include <jansson.h>

#include "dkm/base/error.h"
#include "router.h"
#include "tls.h"

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct svc;
struct svc_conn;
struct svc_db;
struct svc_worker;

/*
 * One request being answered. Handlers get it, may keep it across
 * asynchronous work, and must end it with exactly one svc_reply_*();
 * that frees it.
 */
struct svc_req {
    struct svc *svc;
    struct svc_worker *worker;
    struct evhttp_request *req;
    struct svc_conn *conn; /* NULL on the admin socket */
    const struct svc_route *route;
    unsigned nparams;
    char params[SVC_ROUTE_MAX_PARAMS][SVC_ROUTE_PARAM_MAX];
    json_t *body; /* the validated request body, or NULL */
    bool admin;   /* admin socket from an allowed peer, or an admin node over TLS */
    uid_t peer_uid;
    char actor[96]; /* who, for audit: "node:<id>" over TLS; "" on the socket */
    uint64_t start_ns;
};

/* Send obj (reference stolen) with status; frees r. */
void svc_reply_json(struct svc_req *r, int status, json_t *obj);
/* Send {"error": error, "detail": detail} with status (4xx/5xx); frees r. */
void svc_reply_error(struct svc_req *r, int status, const char *error, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
/* Send text with a content type; frees r. */
void svc_reply_text(struct svc_req *r, int status, const char *content_type,
                    const char *text, size_t len);

/* The key id of the TLS client certificate of r; -ENOENT without one. */
DKM_MUSTCHECK int svc_req_tls_key_id(const struct svc_req *r,
                                     uint8_t ret[SVC_TLS_KEY_ID_SIZE]);

/* The worker's database pool (for handlers). */
struct svc_db *svc_req_db(const struct svc_req *r);
/* The event base of the request's worker: where an answer made on another
 * thread is posted back to (event_base_once). */
struct event_base *svc_req_base(const struct svc_req *r);

/*
 * Who may use admin routes on the TLS port: fn gets the key id of the
 * client certificate (svc_tls_key_id) and answers true, with the actor
 * for audit in actor, when that key belongs to an admin. Without a hook,
 * or without a client certificate, admin routes answer 403 over TLS.
 */
typedef bool svc_tls_admin_fn(const uint8_t key_id[SVC_TLS_KEY_ID_SIZE], char *actor,
                              size_t actor_size);
void svc_set_tls_admin_hook(svc_tls_admin_fn *fn);

/* ---- for server.c -------------------------------------------------------- */

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

/* Worker events: stop accepting and drain; periodic deadline sweep. */
void svc_stop_cb(evutil_socket_t fd, short what, void *arg);
void svc_sweep_cb(evutil_socket_t fd, short what, void *arg);

#endif
