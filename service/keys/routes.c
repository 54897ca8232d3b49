/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The endpoint table and the endpoints that need no TPM: health (readiness
 * and liveness), metrics, ping, and the admin socket's ping.
 *
 * Readiness (/v1/health, also /v1/health/ready) is the conjunction of four
 * checks, each reported with its facts: the database answers a query now
 * (a real round trip on this worker's pool), the state is loaded and this
 * server is on the verified server list, the response-signing delegation
 * has not expired, and the TPM answered the keeper's last probe recently.
 * 200 when all hold, else 503 naming the first that fails. Liveness
 * (/v1/health/live) only says that this worker's loop answers and the
 * keeper's loop turns, so a supervisor restarts a stuck dkmd but not one
 * whose database is down.
 *
 * To add an endpoint: write a handler `static void x_handler(struct
 * svc_req *r)` that ends every path with one svc_reply_*(), declare its
 * request body as a svc_json_field array (or NULL for none) with its
 * size limit (max_body, router.h says how to compute it; test_svc_router
 * checks it), and add a row to ks_routes below. The router answers
 * 404/405, refuses a body over max_body (413) before parsing it, checks
 * the body strictly (400/415), refuses admin routes off the admin socket
 * (403) and, for SVC_ROUTE_NEEDS_DB, answers 503 at once while the
 * database is down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkm/base/log.h"
#include "db.h"
#include "fetch.h"
#include "groups.h"
#include "health.h"
#include "http.h"
#include "keeper.h"
#include "metrics.h"
#include "nodes.h"
#include "progress.h"
#include "routes.h"
#include "server.h"
#include "servers.h"
#include "state.h"

static svc_handler_fn health_handler;
static svc_handler_fn health_live_handler;
static svc_handler_fn metrics_handler;
static svc_handler_fn ping_handler;
static svc_handler_fn admin_ping_handler;
static svc_db_result_fn health_db_cb;

/* How long the keeper may be silent before /v1/health/live says it is stuck. */
#define KEEPER_STALL_MS 30000

/* One check's object: {"ok": ok} and, when it failed, "detail". */
static json_t *check_new(bool ok, const char *detail)
{
    json_t *o = json_pack("{s:b}", "ok", ok);

    if (o != NULL && !ok)
        json_object_set_new(o, "detail", json_string(detail));
    return o;
}

static void check_int(json_t *o, const char *key, uint64_t v)
{
    if (o != NULL)
        json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* The state, delegation and TPM checks, from the keeper's facts. */
static void key_checks(const struct ks_health *h, uint64_t now, json_t *checks,
                       const char **ret_why)
{
    const char *why = NULL, *d;
    json_t *state, *deleg, *tpm;
    bool ok;

    /* state */
    if (!h->on)
        d = "this server has no key-service identity (dkmd init with a TPM)";
    else if (h->loaded_at == 0)
        d = "the state is not loaded";
    else if (!h->listed)
        d = "this server is not on the verified authorized server list";
    else
        d = NULL;
    state = check_new(d == NULL, d);
    why = d;
    if (h->loaded_at != 0) {
        check_int(state, "loaded_at", h->loaded_at);
        check_int(state, "age_s", now > h->loaded_at ? now - h->loaded_at : 0);
    }
    if (state != NULL)
        json_object_set_new(state, "reload_failing",
                            json_boolean(h->reload_failed_at != 0));
    json_object_set_new(checks, "state", state);

    /* delegation */
    ok = h->on && h->deleg_not_after > now;
    d = !h->on ? "no key service" : "the response-signing delegation has expired";
    deleg = check_new(ok, d);
    if (h->deleg_not_after != 0) {
        check_int(deleg, "not_after", h->deleg_not_after);
        check_int(deleg, "remaining_s", ok ? h->deleg_not_after - now : 0);
    }
    json_object_set_new(checks, "delegation", deleg);
    if (why == NULL && !ok)
        why = d;

    /* tpm */
    ok = h->on && h->tpm_ok && h->tpm_checked_at + KS_TPM_PROBE_STALE_S >= now;
    if (!h->on)
        d = "no key service";
    else if (!h->tpm_ok)
        d = h->tpm_detail[0] != '\0' ? h->tpm_detail : "the TPM does not answer";
    else
        d = "the TPM has not been asked recently (the keeper is stuck)";
    tpm = check_new(ok, d);
    if (h->tpm_checked_at != 0) {
        check_int(tpm, "checked_at", h->tpm_checked_at);
        check_int(tpm, "age_s", now > h->tpm_checked_at ? now - h->tpm_checked_at : 0);
    }
    json_object_set_new(checks, "tpm", tpm);
    if (why == NULL && !ok)
        why = "the TPM does not answer";
    *ret_why = why;
}

/* The current snapshot's refused rows by kind (their sum is in refused_rows). */
static json_t *refused_json(void)
{
    uint64_t by[KS_REF_KINDS], rollbacks = 0;
    json_t *o = json_object();

    ks_refused_by(by, &rollbacks);
    for (int i = 0; o != NULL && i < KS_REF_KINDS; i++)
        json_object_set_new(o, ks_refusal_names[i], json_integer((json_int_t)by[i]));
    if (o != NULL)
        json_object_set_new(o, "rollbacks", json_integer((json_int_t)rollbacks));
    return o;
}

static void health_reply(struct svc_req *r, bool db_ok, long db_version,
                         const char *db_why)
{
    struct svc_status st;
    struct ks_health h;
    uint64_t now = (uint64_t)time(NULL);
    const char *why = NULL;
    json_t *o, *checks, *db;
    bool ready;

    svc_get_status(r->svc, &st);
    ks_health_get(&h);
    checks = json_object();
    db = check_new(db_ok, db_why);
    if (db != NULL && h.on)
        json_object_set_new(db, "keeper_connected", json_boolean(h.keeper_db));
    if (checks != NULL) {
        json_object_set_new(checks, "database", db);
        key_checks(&h, now, checks, &why);
    } else {
        json_decref(db);
    }
    if (!db_ok)
        why = db_why;
    ready = why == NULL && checks != NULL;
    o = json_pack("{s:s, s:b, s:b, s:o*, s:b, s:I, s:I, s:I, s:I, s:I, s:s}", "status",
                  ready ? "ok" : "unavailable", "live", 1, "ready", ready, "checks",
                  checks, "database", db_ok, "schema_version",
                  (json_int_t)(db_ok ? db_version : (long)st.schema_version), "workers",
                  (json_int_t)st.workers, "refused_rows", (json_int_t)st.refused_rows,
                  "uptime_s", (json_int_t)st.uptime_s, "connections",
                  (json_int_t)st.connections, "version", DKM_VERSION);
    if (o != NULL)
        json_object_set_new(o, "refused", refused_json());
    if (o != NULL && !ready) {
        /* Same shape as every error, so clients need one error parser. */
        json_object_set_new(o, "error", json_string("service unavailable"));
        json_object_set_new(o, "detail",
                            json_string(why != NULL ? why : "out of memory"));
    }
    svc_reply_json(r, ready ? 200 : 503, o);
}

static void health_db_cb(void *arg, PGresult *const *res, size_t n, int r,
                         const char *sqlstate)
{
    struct svc_req *req = arg;
    long version = 0;

    (void)sqlstate;
    if (r == 0 && n == 1 && PQntuples(res[0]) == 1)
        version = strtol(PQgetvalue(res[0], 0, 0), NULL, 10);
    else if (r == 0)
        r = DKM_E_DB;
    health_reply(req, r == 0, version,
                 r == DKM_E_UNAVAILABLE ? "the database is unavailable"
                                        : "the database query failed");
}

/* Reports the database as reachable only after a real round trip. */
static void health_handler(struct svc_req *r)
{
    if (svc_db_query(svc_req_db(r), SVC_STMT_SCHEMA_VERSION, 0, NULL, NULL, NULL,
                     health_db_cb, r) < 0)
        health_reply(r, false, 0, "the database is unavailable");
}

/* Answered by this worker's loop: 200 unless the keeper's loop is stuck. */
static void health_live_handler(struct svc_req *r)
{
    struct svc_status st;
    char why[160] = "";
    bool alive = ks_keeper_alive(KEEPER_STALL_MS, why, sizeof(why));
    json_t *o;

    svc_get_status(r->svc, &st);
    o = json_pack("{s:s, s:b, s:I, s:s}", "status", alive ? "ok" : "unavailable", "live",
                  alive, "uptime_s", (json_int_t)st.uptime_s, "version", DKM_VERSION);
    if (o != NULL && !alive) {
        json_object_set_new(o, "error", json_string("service unavailable"));
        json_object_set_new(o, "detail", json_string(why));
    }
    svc_reply_json(r, alive ? 200 : 503, o);
}

static void metrics_handler(struct svc_req *r)
{
    char *text = svc_metrics_render(svc_get_metrics(r->svc));

    if (text == NULL) {
        svc_reply_error(r, 500, "internal error", "cannot render the metrics");
        return;
    }
    svc_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                   strlen(text));
    free(text);
}

static const struct svc_json_field ping_body[] = {
    {.name = "nonce", .type = SVC_JSON_B64URL, .required = true, .min = 1, .max = 64},
};

/* Echoes the client's nonce: a liveness check through TLS, router and JSON. */
static void ping_handler(struct svc_req *r)
{
    json_t *o = json_pack("{s:O, s:I}", "nonce", json_object_get(r->body, "nonce"),
                          "time", (json_int_t)time(NULL));

    svc_reply_json(r, 200, o);
}

static void admin_ping_handler(struct svc_req *r)
{
    json_t *o = json_pack("{s:b, s:I, s:s}", "pong", 1, "peer_uid",
                          (json_int_t)r->peer_uid, "version", DKM_VERSION);

    svc_reply_json(r, 200, o);
}

/*
 * The endpoint table. Registration points for the endpoints that come with
 * the TPM layer (keep the paths of DESIGN.md's "Service interface"):
 *   GET  /v1/trust                      authorized server list
 *   POST /v1/keys/fetch                 key fetch (hot path, no database round trip)
 *   GET|POST /v1/groups, GET /v1/groups/{name}, POST /v1/groups/{name}/rotate,
 *   PUT /v1/groups/{name}/policy, POST|DELETE /v1/groups/{name}/nodes/{node}
 *   GET|POST /v1/nodes, DELETE /v1/nodes/{node}
 *   GET  /v1/audit
 */
const struct svc_route ks_routes[] = {
    {.methods = SVC_GET,
     .pattern = "/v1/health",
     .name = "health",
     .handler = health_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/health/ready",
     .name = "health",
     .handler = health_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/health/live",
     .name = "health_live",
     .handler = health_live_handler},
    {.methods = SVC_GET,
     .pattern = "/metrics",
     .name = "metrics",
     .handler = metrics_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/ping",
     .name = "ping",
     .body = ping_body,
     .nbody = sizeof(ping_body) / sizeof(ping_body[0]),
     .max_body = 512, /* largest compact body 98 */
     .handler = ping_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/admin/ping",
     .name = "admin_ping",
     .flags = SVC_ROUTE_ADMIN,
     .handler = admin_ping_handler},
    /* ---- the key service ---- */
    {.methods = SVC_GET,
     .pattern = "/v1/trust",
     .name = "trust",
     .handler = ks_trust_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/keys/fetch",
     .name = "fetch",
     .body = ks_fetch_body,
     .nbody = 4,
     .max_body = 1024, /* largest compact body 419 */
     .handler = ks_fetch_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/keys/groups",
     .name = "my_groups",
     .handler = ks_my_groups_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/nodes",
     .name = "nodes_list",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_nodes_list_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/nodes",
     .name = "nodes_authorize",
     .flags = SVC_ROUTE_ADMIN,
     .body = ks_nodes_authorize_body,
     .nbody = 3,
     .max_body = 44032, /* largest compact body 43758 */
     .handler = ks_nodes_authorize_handler},
    {.methods = SVC_PUT,
     .pattern = "/v1/nodes/{node}/tls",
     .name = "nodes_tls",
     .flags = SVC_ROUTE_ADMIN,
     .body = ks_nodes_tls_body,
     .nbody = 1,
     .max_body = 33280, /* largest compact body 32783 */
     .handler = ks_nodes_tls_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/nodes/{node}/revoke",
     .name = "nodes_revoke",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_nodes_revoke_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/groups",
     .name = "groups_list",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_groups_list_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/groups",
     .name = "groups_create",
     .flags = SVC_ROUTE_ADMIN,
     .body = ks_groups_create_body,
     .nbody = 6,
     .max_body = 1536, /* largest compact body 1279 */
     .handler = ks_groups_create_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/groups/{name}",
     .name = "groups_show",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_groups_show_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/groups/{name}/rotate",
     .name = "groups_rotate",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_groups_rotate_handler},
    {.methods = SVC_PUT,
     .pattern = "/v1/groups/{name}/policy",
     .name = "groups_policy",
     .flags = SVC_ROUTE_ADMIN,
     .body = ks_groups_policy_body,
     .nbody = 5,
     .max_body = 1536, /* largest compact body 1141 */
     .handler = ks_groups_policy_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/groups/{name}/grant",
     .name = "groups_grant",
     .flags = SVC_ROUTE_ADMIN,
     .body = ks_node_id_body,
     .nbody = 1,
     .max_body = 512, /* largest compact body 150 */
     .handler = ks_groups_grant_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/groups/{name}/revoke",
     .name = "groups_revoke",
     .flags = SVC_ROUTE_ADMIN,
     .body = ks_node_id_body,
     .nbody = 1,
     .max_body = 512, /* largest compact body 150 */
     .handler = ks_groups_revoke_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/servers",
     .name = "servers_list",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_servers_list_handler},
    {.methods = SVC_POST,
     .pattern = "/v1/servers",
     .name = "servers_add",
     .flags = SVC_ROUTE_ADMIN | SVC_ROUTE_NEEDS_DB,
     .body = ks_servers_add_body,
     .nbody = 1,
     .max_body = 8704, /* largest compact body 8203 */
     .handler = ks_servers_add_handler},
    {.methods = SVC_DELETE,
     .pattern = "/v1/servers/{node}",
     .name = "servers_remove",
     .flags = SVC_ROUTE_ADMIN | SVC_ROUTE_NEEDS_DB,
     .handler = ks_servers_remove_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/progress",
     .name = "progress",
     .flags = SVC_ROUTE_ADMIN,
     .handler = ks_progress_handler},
    {.methods = SVC_GET,
     .pattern = "/v1/audit",
     .name = "audit",
     .flags = SVC_ROUTE_ADMIN | SVC_ROUTE_QUERY,
     .handler = ks_audit_handler},
};
const size_t ks_nroutes = sizeof(ks_routes) / sizeof(ks_routes[0]);
