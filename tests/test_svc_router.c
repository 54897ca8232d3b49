/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's router: exact paths, "{name}" captures limited to the
 * group-name charset, 404 versus 405 with the allowed methods, and the
 * endpoint table itself (no two routes for the same method and path).
 */
#include <errno.h>
#include <string.h>

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
