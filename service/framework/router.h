/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The endpoint table's row and its matching (router.c): methods, path
 * patterns with {name} segments, flags, the body a route accepts and how
 * large it may be.
 */
#ifndef DKM_SVC_ROUTER_H
#define DKM_SVC_ROUTER_H

#include <stddef.h>

#include "dkm/base/error.h"
#include "json.h"

#define SVC_ROUTE_MAX_PARAMS 4
#define SVC_ROUTE_PARAM_MAX 128
#define SVC_PATH_MAX 512

enum svc_method {
    SVC_GET = 1 << 0,
    SVC_POST = 1 << 1,
    SVC_PUT = 1 << 2,
    SVC_DELETE = 1 << 3,
};

enum svc_route_flags {
    /* The admin socket, or TLS with the client certificate of an admin node. */
    SVC_ROUTE_ADMIN = 1 << 0,
    /* Answered 503 at once while no database connection is up. */
    SVC_ROUTE_NEEDS_DB = 1 << 1,
    /* Takes a query string; elsewhere a query string is a 400. */
    SVC_ROUTE_QUERY = 1 << 2,
};

/*
 * Room for insignificant white space (indentation, spaces after ':' and
 * ','), which a route's max_body leaves at least above its largest
 * compact body.
 */
#define SVC_ROUTE_BODY_MARGIN 256

struct svc_req;
typedef void svc_handler_fn(struct svc_req *r);

/*
 * One endpoint. pattern is a path whose segments are literal or "{name}",
 * which matches one non-empty segment of [A-Za-z0-9._-] (at most
 * SVC_ROUTE_PARAM_MAX-1 bytes) captured into svc_req.params in order.
 */
struct svc_route {
    unsigned methods; /* enum svc_method bits */
    const char *pattern;
    const char *name;                  /* metrics label; stable, no spaces */
    unsigned flags;                    /* enum svc_route_flags */
    const struct svc_json_field *body; /* NULL: the request must have no body */
    size_t nbody;
    /*
     * Largest request body in bytes, refused with 413 before it is parsed
     * (max_body_bytes of dkmd.conf still bounds what is read at all).
     * Required with a body (0 refuses every body): the longest compact
     * body that body's fields allow, every member present and at its
     * maximum, a text member counted at two bytes per byte (each one
     * escaped, as a PEM's line breaks are), plus at least
     * SVC_ROUTE_BODY_MARGIN.
     */
    size_t max_body;
    svc_handler_fn *handler;
};

struct svc_route_match {
    const struct svc_route *route;
    unsigned nparams;
    char params[SVC_ROUTE_MAX_PARAMS][SVC_ROUTE_PARAM_MAX];
    unsigned allowed; /* for -EOPNOTSUPP: methods the path accepts */
};

/*
 * Find the route for method and path (no query string). Returns 0 and
 * fills *ret, -ENOENT when no pattern matches the path (404), or
 * -EOPNOTSUPP when patterns match but none for this method (405; then
 * ret->allowed says which methods would do).
 */
DKM_MUSTCHECK int svc_router_match(const struct svc_route *routes, size_t n,
                                   unsigned method, const char *path,
                                   struct svc_route_match *ret);

/* "GET, POST" for an Allow header; buf of at least 32 bytes. */
void svc_methods_string(unsigned methods, char *buf, size_t size);

#endif
