/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The router: maps a method and a path to an entry of the endpoint table
 * (routes.c), capturing "{name}" segments. It knows nothing of HTTP
 * libraries so that it can be tested on its own; http.c turns its answers
 * into 404 and 405.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "router.h"

static bool segment_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/*
 * Match one pattern against path. Both start with '/'. Captures go to
 * params; returns whether it matched.
 */
static bool match_one(const char *pattern, const char *path, struct svc_route_match *m)
{
    unsigned np = 0;
    const char *p = pattern, *s = path;

    while (*p != '\0' && *s != '\0') {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            size_t len = 0;
            if (pend == NULL || np >= SVC_ROUTE_MAX_PARAMS)
                return false;
            while (s[len] != '\0' && s[len] != '/') {
                if (!segment_char(s[len]))
                    return false;
                len++;
            }
            if (len == 0 || len >= SVC_ROUTE_PARAM_MAX)
                return false;
            memcpy(m->params[np], s, len);
            m->params[np][len] = '\0';
            np++;
            s += len;
            p = pend + 1;
        } else {
            size_t len = strcspn(p, "/");
            if (strncmp(p, s, len) != 0 || (s[len] != '\0' && s[len] != '/'))
                return false;
            p += len;
            s += len;
        }
    }
    if (*p != '\0' || *s != '\0')
        return false;
    m->nparams = np;
    return true;
}

int svc_router_match(const struct svc_route *routes, size_t n, unsigned method,
                     const char *path, struct svc_route_match *ret)
{
    struct svc_route_match m;
    unsigned allowed = 0;

    if (path == NULL || path[0] != '/' || strlen(path) >= SVC_PATH_MAX)
        return -ENOENT;
    for (size_t i = 0; i < n; i++) {
        memset(&m, 0, sizeof(m));
        if (!match_one(routes[i].pattern, path, &m))
            continue;
        if ((routes[i].methods & method) == 0) {
            allowed |= routes[i].methods;
            continue;
        }
        m.route = &routes[i];
        *ret = m;
        return 0;
    }
    if (allowed != 0) {
        memset(ret, 0, sizeof(*ret));
        ret->allowed = allowed;
        return -EOPNOTSUPP;
    }
    return -ENOENT;
}

void svc_methods_string(unsigned methods, char *buf, size_t size)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {SVC_GET, "GET"}, {SVC_POST, "POST"}, {SVC_PUT, "PUT"}, {SVC_DELETE, "DELETE"}};
    size_t used = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int w;
        if ((methods & names[i].bit) == 0)
            continue;
        w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", names[i].name);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
}
