/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's router: exact paths, "{name}" captures limited to the
 * group-name charset, 404 versus 405 with the allowed methods, and the
 * endpoint table itself (no two routes for the same method and path;
 * every route with a body has a size cap that its largest valid body,
 * built from its field table, fits with SVC_ROUTE_BODY_MARGIN to spare).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/codec.h"
#include "routes.h"
#include "router.h"
#include "unit.h"

static void dummy(struct svc_req *r)
{
    (void)r;
}

static const struct svc_route routes[] = {
    {.methods = SVC_GET, .pattern = "/v1/health", .name = "health", .handler = dummy},
    {.methods = SVC_GET | SVC_POST,
     .pattern = "/v1/groups",
     .name = "groups",
     .handler = dummy},
    {.methods = SVC_GET,
     .pattern = "/v1/groups/{name}",
     .name = "group",
     .handler = dummy},
    {.methods = SVC_DELETE,
     .pattern = "/v1/groups/{name}/nodes/{node}",
     .name = "ungrant",
     .handler = dummy},
    {.methods = SVC_POST,
     .pattern = "/v1/groups/{name}/rotate",
     .name = "rotate",
     .handler = dummy},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static void test_svc_router_exact_match(void)
{
    struct svc_route_match m;

    CU_ASSERT_EQUAL_FATAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/health", &m),
                          0);
    CU_ASSERT_STRING_EQUAL(m.route->name, "health");
    CU_ASSERT_EQUAL(m.nparams, 0);
    CU_ASSERT_EQUAL_FATAL(svc_router_match(routes, NROUTES, SVC_POST, "/v1/groups", &m),
                          0);
    CU_ASSERT_STRING_EQUAL(m.route->name, "groups");
}

static void test_svc_router_captures(void)
{
    struct svc_route_match m;

    CU_ASSERT_EQUAL_FATAL(
        svc_router_match(routes, NROUTES, SVC_GET, "/v1/groups/web-1.prod_x", &m), 0);
    CU_ASSERT_STRING_EQUAL(m.route->name, "group");
    CU_ASSERT_EQUAL(m.nparams, 1);
    CU_ASSERT_STRING_EQUAL(m.params[0], "web-1.prod_x");
    CU_ASSERT_EQUAL_FATAL(svc_router_match(routes, NROUTES, SVC_DELETE,
                                           "/v1/groups/web/nodes/000b12ab", &m),
                          0);
    CU_ASSERT_STRING_EQUAL(m.route->name, "ungrant");
    CU_ASSERT_EQUAL(m.nparams, 2);
    CU_ASSERT_STRING_EQUAL(m.params[0], "web");
    CU_ASSERT_STRING_EQUAL(m.params[1], "000b12ab");
    CU_ASSERT_EQUAL_FATAL(
        svc_router_match(routes, NROUTES, SVC_POST, "/v1/groups/web/rotate", &m), 0);
    CU_ASSERT_STRING_EQUAL(m.route->name, "rotate");
}

static void test_svc_router_not_found(void)
{
    struct svc_route_match m;
    char longseg[200];

    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/nope", &m), -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/health/", &m),
                    -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/healthz", &m),
                    -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1", &m), -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "", &m), -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, NULL, &m), -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "v1/health", &m), -ENOENT);
    /* Captures refuse empty segments, odd characters and over-long values. */
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/groups/", &m),
                    -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/groups/a%2f", &m),
                    -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/groups/a b", &m),
                    -ENOENT);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, "/v1/groups/..x/y", &m),
                    -ENOENT);
    memset(longseg, 'a', sizeof(longseg));
    memcpy(longseg, "/v1/groups/", 11);
    longseg[sizeof(longseg) - 1] = '\0';
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_GET, longseg, &m), -ENOENT);
}

static void test_svc_router_wrong_method(void)
{
    struct svc_route_match m;
    char allow[64];

    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_POST, "/v1/health", &m),
                    -EOPNOTSUPP);
    CU_ASSERT_EQUAL(m.allowed, SVC_GET);
    CU_ASSERT_EQUAL(svc_router_match(routes, NROUTES, SVC_DELETE, "/v1/groups", &m),
                    -EOPNOTSUPP);
    svc_methods_string(m.allowed, allow, sizeof(allow));
    CU_ASSERT_STRING_EQUAL(allow, "GET, POST");
}

static void test_svc_router_table_is_consistent(void)
{
    /* Every real route has a handler and a name, and no two overlap. */
    for (size_t i = 0; i < ks_nroutes; i++) {
        CU_ASSERT_PTR_NOT_NULL(ks_routes[i].handler);
        CU_ASSERT_PTR_NOT_NULL(ks_routes[i].name);
        CU_ASSERT(ks_routes[i].methods != 0);
        CU_ASSERT((ks_routes[i].body == NULL) == (ks_routes[i].nbody == 0));
        for (size_t j = i + 1; j < ks_nroutes; j++)
            CU_ASSERT(strcmp(ks_routes[i].pattern, ks_routes[j].pattern) != 0 ||
                      (ks_routes[i].methods & ks_routes[j].methods) == 0);
    }
}

/*
 * The longest compact body that fields allow: every member present, each
 * at its longest. A text member holds max bytes that each need an escape
 * ("\n", two characters); base64url is max bytes encoded; an integer is
 * the longer of max and, when 0 is allowed, "-0". malloc'd, NUL-terminated.
 */
static char *maximal_body(const struct svc_json_field *fields, size_t n)
{
    size_t cap = 64, len = 0;
    char *out;

    for (size_t i = 0; i < n; i++)
        cap += strlen(fields[i].name) + 8 + 2 * fields[i].max +
               dkm_b64url_encoded_len(fields[i].max) + 24;
    out = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    out[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        const struct svc_json_field *f = &fields[i];

        len += (size_t)snprintf(out + len, cap - len, "%s\"%s\":", i ? "," : "", f->name);
        switch (f->type) {
        case SVC_JSON_STRING:
            out[len++] = '"';
            for (uint64_t k = 0; k < f->max; k++) {
                out[len++] = '\\';
                out[len++] = 'n';
            }
            out[len++] = '"';
            break;
        case SVC_JSON_B64URL:
            out[len++] = '"';
            memset(out + len, 'A', dkm_b64url_encoded_len(f->max));
            len += dkm_b64url_encoded_len(f->max);
            out[len++] = '"';
            break;
        case SVC_JSON_UINT: {
            char digits[24];

            snprintf(digits, sizeof(digits), "%" PRIu64, f->max);
            if (f->min == 0 && strlen(digits) < 2)
                strcpy(digits, "-0");
            len += (size_t)snprintf(out + len, cap - len, "%s", digits);
            break;
        }
        case SVC_JSON_BOOL:
            len += (size_t)snprintf(out + len, cap - len, "false");
            break;
        }
    }
    out[len++] = '}';
    out[len] = '\0';
    CU_ASSERT_FATAL(len < cap);
    return out;
}

static void test_svc_router_body_caps(void)
{
    for (size_t i = 0; i < ks_nroutes; i++) {
        const struct svc_route *rt = &ks_routes[i];
        char why[256] = "";
        json_t *obj = NULL;
        size_t len;
        char *body;

        if (rt->body == NULL) {
            CU_ASSERT_EQUAL(rt->max_body, 0);
            continue;
        }
        body = maximal_body(rt->body, rt->nbody);
        len = strlen(body);
        /* It is a body the route accepts... */
        CU_ASSERT_EQUAL(
            svc_json_parse(body, len, rt->body, rt->nbody, &obj, why, sizeof(why)), 0);
        if (why[0] != '\0')
            fprintf(stderr, "%s: maximal body refused: %s\n", rt->name, why);
        json_decref(obj);
        /* ...that fits its cap with room for white space, and the cap is
         * no more than a rounding above that. */
        if (rt->max_body < len + SVC_ROUTE_BODY_MARGIN ||
            rt->max_body > len + SVC_ROUTE_BODY_MARGIN + 1024)
            fprintf(stderr, "%s: max_body %zu, largest compact body %zu\n", rt->name,
                    rt->max_body, len);
        CU_ASSERT(rt->max_body >= len + SVC_ROUTE_BODY_MARGIN);
        CU_ASSERT(rt->max_body <= len + SVC_ROUTE_BODY_MARGIN + 1024);
        free(body);
    }
}

static void test_svc_router_real_table(void)
{
    struct svc_route_match m;

    CU_ASSERT_EQUAL_FATAL(
        svc_router_match(ks_routes, ks_nroutes, SVC_GET, "/v1/admin/ping", &m), 0);
    CU_ASSERT(m.route->flags & SVC_ROUTE_ADMIN);
    CU_ASSERT_EQUAL_FATAL(
        svc_router_match(ks_routes, ks_nroutes, SVC_GET, "/metrics", &m), 0);
    CU_ASSERT_FALSE(m.route->flags & SVC_ROUTE_ADMIN);
}

static CU_TestInfo router_tests[] = {
    {"test_svc_router_exact_match", test_svc_router_exact_match},
    {"test_svc_router_captures", test_svc_router_captures},
    {"test_svc_router_not_found", test_svc_router_not_found},
    {"test_svc_router_wrong_method", test_svc_router_wrong_method},
    {"test_svc_router_table_is_consistent", test_svc_router_table_is_consistent},
    {"test_svc_router_real_table", test_svc_router_real_table},
    {"test_svc_router_body_caps", test_svc_router_body_caps},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_router", NULL, NULL, NULL, NULL, router_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
