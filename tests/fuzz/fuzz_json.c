/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "json": the request body of every dkmd route that takes one,
 * through svc_json_parse with the route's own field table, as the router
 * checks a body before any handler sees it (service/framework/http.c).
 * The routes come from the endpoint table itself (ks_routes), so a route
 * added later is fuzzed without a change here.
 *
 * Input: a route name (the table's .name), a newline, then the body. An
 * input without a known route name is parsed as a body against every
 * route that takes one. An accepted body is an object whose members are
 * each declared by the route, no more than allowed, with every required
 * one present; a refused one comes with a reason for the client.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "router.h"
#include "routes.h"
#include "fuzz.h"

static const struct svc_json_field *find_field(const struct svc_route *route,
                                               const char *name)
{
    for (size_t i = 0; i < route->nbody; i++)
        if (strcmp(route->body[i].name, name) == 0)
            return &route->body[i];
    return NULL;
}

/* Parse body for route; true when accepted. */
static bool parse(const struct svc_route *route, const uint8_t *body, size_t len)
{
    char why[256];
    json_t *obj = NULL;
    const char *key;
    json_t *value;

    memset(why, 0, sizeof(why));
    if (svc_json_parse(body, len, route->body, route->nbody, &obj, why, sizeof(why)) <
        0) {
        FUZZ_CHECK(obj == NULL);
        FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)) != NULL);
        return false;
    }
    FUZZ_CHECK(json_is_object(obj) && json_object_size(obj) <= SVC_JSON_MAX_FIELDS);
    json_object_foreach(obj, key, value)
    {
        FUZZ_CHECK(find_field(route, key) != NULL);
    }
    for (size_t i = 0; i < route->nbody; i++)
        FUZZ_CHECK(!route->body[i].required ||
                   json_object_get(obj, route->body[i].name) != NULL);
    json_decref(obj);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 64 ? size : 64);
    const struct svc_route *named = NULL;
    bool ok = false;

    if (nl != NULL) {
        size_t n = (size_t)(nl - data);

        for (size_t i = 0; i < ks_nroutes; i++) {
            if (ks_routes[i].body != NULL && strlen(ks_routes[i].name) == n &&
                memcmp(ks_routes[i].name, data, n) == 0)
                named = &ks_routes[i];
        }
    }
    if (named != NULL) {
        ok = parse(named, nl + 1, size - (size_t)(nl + 1 - data));
    } else {
        for (size_t i = 0; i < ks_nroutes; i++) {
            if (ks_routes[i].body != NULL && parse(&ks_routes[i], data, size))
                ok = true;
        }
    }
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
