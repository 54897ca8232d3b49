/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin endpoints for groups: create (signed policy and version 1), list,
 * show, rotate, policy update (a new serial, signed again), grant and
 * revoke a node's access (a signed grant record either way: a revocation
 * is the next record of the same grant, kept in its place), and the audit
 * query. Writes of policies and grants move the state head on (write.h). Reads come from the
 * snapshot; writes and the audit query run on the keeper thread, every
 * write in one transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "dkm/base/log.h"
#include "dkm/base/uri.h"
#include "audit.h"
#include "groups.h"
#include "http.h"
#include "job.h"
#include "json.h"
#include "keeper.h"
#include "rotate.h"
#include "seen.h"
#include "state.h"
#include "write.h"

#define TEN_YEARS (10ull * 366 * 24 * 3600)

#define POLICY_FIELDS(req)                                                               \
    {.name = "rotation_period",                                                          \
     .type = SVC_JSON_UINT,                                                              \
     .required = req,                                                                    \
     .min = 1,                                                                           \
     .max = TEN_YEARS},                                                                  \
        {.name = "version_lifetime",                                                     \
         .type = SVC_JSON_UINT,                                                          \
         .required = req,                                                                \
         .min = 1,                                                                       \
         .max = TEN_YEARS},                                                              \
        {.name = "cache_ttl",                                                            \
         .type = SVC_JSON_UINT,                                                          \
         .required = req,                                                                \
         .min = 1,                                                                       \
         .max = UINT32_MAX},                                                             \
        {.name = "pcr_mask",                                                             \
         .type = SVC_JSON_UINT,                                                          \
         .required = false,                                                              \
         .min = 0,                                                                       \
         .max = 0xffffff},                                                               \
    {                                                                                    \
        .name = "pcr_values", .type = SVC_JSON_B64URL, .required = false, .min = 0,      \
        .max = 24 * 32                                                                   \
    }

const struct svc_json_field ks_groups_create_body[] = {
    {.name = "name", .type = SVC_JSON_STRING, .required = true, .min = 1, .max = 64},
    POLICY_FIELDS(true),
};
const size_t ks_groups_create_nbody =
    sizeof(ks_groups_create_body) / sizeof(ks_groups_create_body[0]);
const struct svc_json_field ks_groups_policy_body[] = {POLICY_FIELDS(false)};
const size_t ks_groups_policy_nbody =
    sizeof(ks_groups_policy_body) / sizeof(ks_groups_policy_body[0]);
const struct svc_json_field ks_node_id_body[] = {
    {.name = "node_id", .type = SVC_JSON_STRING, .required = true, .min = 68, .max = 68},
};
const size_t ks_node_id_nbody = sizeof(ks_node_id_body) / sizeof(ks_node_id_body[0]);

static const char *state_name(enum ks_vstate s)
{
    switch (s) {
    case KS_ACTIVE:
        return "active";
    case KS_DECRYPT_ONLY:
        return "decrypt-only";
    case KS_EXPIRED:
        return "expired";
    default:
        return "destroyed";
    }
}

static json_t *policy_json(const struct dkm_group_policy *p)
{
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I}", "serial", (json_int_t)p->serial,
        "rotation_period", (json_int_t)p->rotation_period, "version_lifetime",
        (json_int_t)p->version_lifetime, "cache_ttl", (json_int_t)p->cache_ttl,
        "pcr_mask", (json_int_t)p->pcr_mask, "created_at", (json_int_t)p->created_at);
    return o;
}

/* Apply the policy fields of a request body to p; false (job failed) on bad input. */
static bool apply_policy(struct ks_job *job, struct dkm_group_policy *p)
{
    const json_t *body = job->req->body;
    json_t *v;
    uint8_t values[24 * 32];
    size_t len = 0, nbits = 0;

    if ((v = json_object_get(body, "rotation_period")) != NULL)
        p->rotation_period = (uint64_t)json_integer_value(v);
    if ((v = json_object_get(body, "version_lifetime")) != NULL)
        p->version_lifetime = (uint64_t)json_integer_value(v);
    if ((v = json_object_get(body, "cache_ttl")) != NULL)
        p->cache_ttl = (uint32_t)json_integer_value(v);
    if ((v = json_object_get(body, "pcr_mask")) != NULL)
        p->pcr_mask = (uint32_t)json_integer_value(v);
    if (json_object_get(body, "pcr_values") != NULL &&
        svc_json_get_b64url(body, "pcr_values", values, sizeof(values), &len) < 0) {
        ks_job_fail(job, 400, "bad request", "pcr_values: bad base64url");
        return false;
    }
    for (unsigned b = 0; b < 24; b++)
        nbits += (p->pcr_mask >> b) & 1u;
    if (json_object_get(body, "pcr_mask") != NULL || len != 0) {
        if (len != 32 * nbits) {
            ks_job_fail(job, 400, "bad request",
                        "pcr_values: 32 bytes for each PCR selected by pcr_mask");
            return false;
        }
        memset(p->pcr_values, 0, sizeof(p->pcr_values));
        memcpy(p->pcr_values, values, len);
    }
    p->algorithm = DKM_ALG_AES_256_GCM;
    p->created_at = (uint64_t)time(NULL);
    if (dkm_group_policy_check(p) < 0) {
        ks_job_fail(job, 400, "bad request", "%s", dkm_error_detail());
        return false;
    }
    return true;
}

/* The groups row statement for a signed policy record. */
static struct ks_stmt policy_stmt(bool insert, const char *name, const uint8_t *rec,
                                  size_t len, const struct dkm_node_id *signer)
{
    struct ks_stmt st = {
        .sql = insert
                   ? "INSERT INTO groups (name, policy, signature, signer) VALUES ($1, "
                     "$2, $3, $4)"
                   : "UPDATE groups SET policy = $2, signature = $3, signer = $4, "
                     "updated_at = now() WHERE name = $1",
        .n = 4,
        .values = {name, (const char *)rec, (const char *)rec + len - DKM_SIG_SIZE,
                   (const char *)signer->bytes},
        .lengths = {0, (int)(len - DKM_SIG_SIZE), DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
    };
    return st;
}

static void create_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *name = json_string_value(json_object_get(job->req->body, "name"));
    struct dkm_group_policy p = {.serial = 1};
    struct ks_version_write w = {0};
    struct ks_head_write hw = {0};
    uint8_t *rec = NULL, key[KS_SEEN_KEY_SIZE];
    size_t len = 0;
    char actor[KS_ACTOR_MAX], target[SVC_ROUTE_PARAM_MAX + 8];
    int rc;

    ks_actor(job->req, actor, sizeof(actor));
    snprintf(target, sizeof(target), "group:%s", name);
    if (!dkm_group_valid(name, strlen(name))) {
        ks_job_fail(job, 400, "bad request", "name: 1-64 of [A-Za-z0-9._-]");
        goto done;
    }
    strcpy(p.group, name);
    if (!apply_policy(job, &p))
        goto done;
    if (ks_snapshot_group(ctx->snap, name) != NULL) {
        ks_job_fail(job, 409, "conflict", "group %s exists", name);
        ks_audit(actor, "group.create", target, "denied", "exists");
        goto done;
    }
    /* A group of this name whose policy row was refused still has a serial
     * seen by this server: the new policy must be above it. */
    ks_seen_key(p.group, strlen(p.group), NULL, 0, key);
    p.serial = (uint32_t)ks_next_serial(ctx, KS_SEEN_POLICY, key, 0);
    rc = dkm_group_policy_sign(&p, &ctx->signer, &rec, &len);
    if (rc == 0)
        rc = ks_head_write(ctx, &hw, w.stmts);
    if (rc == 0) {
        w.n = KS_HEAD_STMTS;
        w.stmts[w.n++] = policy_stmt(true, p.group, rec, len, &ctx->signer.id);
        rc = ks_new_version(ctx, &p, 1, &w);
    }
    if (rc == 0)
        rc = ks_db_write(ctx->conn, w.stmts, w.n);
    if (rc == -ESTALE) {
        ks_job_fail(job, 409, "conflict", "%s", dkm_error_detail());
        job->wrote = true;
        goto done;
    }
    if (rc == -EEXIST) {
        ks_job_fail(job, 409, "conflict", "group %s exists", name);
        ks_audit(actor, "group.create", target, "denied", "exists");
        goto done;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=group.create target=%s reason=%s",
                  target, dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot create the group");
        ks_audit(actor, "group.create", target, "error", dkm_error_detail());
        goto done;
    }
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:s, s:i}", "group", name, "version", 1);
    ks_audit(actor, "group.create", target, "ok", "version 1");
done:
    ks_version_write_clear(&w);
    ks_head_write_clear(&hw);
    free(rec);
}

void ks_groups_create_handler(struct svc_req *r)
{
    ks_submit(r, create_job);
}

static void rotate_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *name = job->req->params[0];
    char actor[KS_ACTOR_MAX], target[SVC_ROUTE_PARAM_MAX + 8], detail[32];
    uint32_t v = 0;
    int rc;

    ks_actor(job->req, actor, sizeof(actor));
    snprintf(target, sizeof(target), "group:%s", name);
    rc = ks_rotate_group(ctx, name, &v);
    if (rc == -ENOENT) {
        ks_job_fail(job, 404, "not found", "no such group");
        return;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=group.rotate target=%s reason=%s",
                  target, dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot rotate the group: %s",
                    dkm_error_detail());
        ks_audit(actor, "group.rotate", target, "error", dkm_error_detail());
        return;
    }
    snprintf(detail, sizeof(detail), "version %u", v);
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:I}", "version", (json_int_t)v);
    ks_audit(actor, "group.rotate", target, "ok", detail);
}

void ks_groups_rotate_handler(struct svc_req *r)
{
    ks_submit(r, rotate_job);
}

/*
 * Whether name is a group in the database that the snapshot left out (its
 * policy row was refused) and the request sets every policy field; else
 * the job failed (404, or 400 naming what is missing).
 */
static bool refused_group(struct ks_ctx *ctx, struct ks_job *job, const char *name)
{
    const char *values[1] = {name};
    PGresult *res;
    bool exists;

    res = PQexecParams(ctx->conn, "SELECT 1 FROM groups WHERE name = $1", 1, NULL, values,
                       NULL, NULL, 0);
    exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    if (!exists || !dkm_group_valid(name, strlen(name))) {
        ks_job_fail(job, 404, "not found", "no such group");
        return false;
    }
    if (json_object_get(job->req->body, "rotation_period") == NULL ||
        json_object_get(job->req->body, "version_lifetime") == NULL ||
        json_object_get(job->req->body, "cache_ttl") == NULL) {
        ks_job_fail(job, 400, "bad request",
                    "the policy of group %s was refused (see /v1/health): a new one "
                    "needs rotation_period, version_lifetime and cache_ttl",
                    name);
        return false;
    }
    return true;
}

static void policy_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *name = job->req->params[0];
    const struct ks_group *g = ks_snapshot_group(ctx->snap, name);
    struct dkm_group_policy p;
    struct ks_head_write hw = {0};
    uint8_t *rec = NULL, key[KS_SEEN_KEY_SIZE];
    size_t len = 0;
    char actor[KS_ACTOR_MAX], target[SVC_ROUTE_PARAM_MAX + 8];
    struct ks_stmt st[KS_HEAD_STMTS + 1];
    int rc;

    ks_actor(job->req, actor, sizeof(actor));
    snprintf(target, sizeof(target), "group:%s", name);
    if (g != NULL) {
        p = g->policy;
    } else if (refused_group(ctx, job, name)) {
        /* A group whose policy row was refused (altered, or an older one put
         * back) gets a whole new policy: every field must be given. */
        memset(&p, 0, sizeof(p));
        /* refused_group checked the name: at most DKM_GROUP_MAX bytes. */
        memcpy(p.group, name, strnlen(name, DKM_GROUP_MAX));
    } else {
        return;
    }
    ks_seen_key(p.group, strlen(p.group), NULL, 0, key);
    p.serial = (uint32_t)ks_next_serial(ctx, KS_SEEN_POLICY, key, p.serial);
    if (!apply_policy(job, &p))
        return;
    if (dkm_group_policy_sign(&p, &ctx->signer, &rec, &len) < 0 ||
        ks_head_write(ctx, &hw, st) < 0) {
        ks_job_fail(job, 503, "service unavailable", "cannot sign the policy");
        goto done;
    }
    st[KS_HEAD_STMTS] = policy_stmt(false, p.group, rec, len, &ctx->signer.id);
    rc = ks_db_write(ctx->conn, st, KS_HEAD_STMTS + 1);
    if (rc == -ESTALE) {
        ks_job_fail(job, 409, "conflict", "%s", dkm_error_detail());
        job->wrote = true;
        goto done;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=group.policy target=%s reason=%s",
                  target, dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot store the policy");
        ks_audit(actor, "group.policy", target, "error", dkm_error_detail());
        goto done;
    }
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:I}", "serial", (json_int_t)p.serial);
    {
        char detail[48];

        snprintf(detail, sizeof(detail), "serial %u", p.serial);
        ks_audit(actor, "group.policy", target, "ok", detail);
    }
done:
    ks_head_write_clear(&hw);
    free(rec);
}

void ks_groups_policy_handler(struct svc_req *r)
{
    ks_submit(r, policy_job);
}

static void access_job(struct ks_ctx *ctx, struct ks_job *job, bool grant)
{
    const char *name = job->req->params[0];
    const char *hex = json_string_value(json_object_get(job->req->body, "node_id"));
    const struct ks_group *g = ks_snapshot_group(ctx->snap, name);
    const struct ks_grant *cur;
    const struct ks_node *n;
    struct dkm_grant rec = {.state = grant ? DKM_GRANT_GRANTED : DKM_GRANT_REVOKED,
                            .at = (uint64_t)time(NULL)};
    struct ks_head_write hw = {0};
    struct ks_stmt st[KS_HEAD_STMTS + 1];
    uint8_t *buf = NULL, key[KS_SEEN_KEY_SIZE];
    size_t len = 0;
    char actor[KS_ACTOR_MAX], target[SVC_ROUTE_PARAM_MAX + 8];
    const char *action = grant ? "group.grant" : "group.revoke";
    int rc;

    ks_actor(job->req, actor, sizeof(actor));
    snprintf(target, sizeof(target), "group:%s", name);
    if (g == NULL) {
        ks_job_fail(job, 404, "not found", "no such group");
        return;
    }
    if (dkm_node_id_parse(hex, &rec.node_id) < 0) {
        ks_job_fail(job, 400, "bad request", "node_id: 68 hex characters");
        return;
    }
    n = ks_snapshot_node(ctx->snap, &rec.node_id);
    if (grant && (n == NULL || n->entry.revoked_at != 0)) {
        ks_job_fail(job, 404, "not found", "no such authorized node");
        return;
    }
    if (grant == ks_group_member(g, &rec.node_id)) {
        ks_job_fail(job, grant ? 409 : 404, grant ? "conflict" : "not found",
                    grant ? "the node is granted already" : "the node is not granted");
        return;
    }
    strcpy(rec.group, g->name);
    cur = ks_group_grant(g, &rec.node_id);
    ks_seen_key(rec.group, strlen(rec.group), rec.node_id.bytes, DKM_NODE_ID_SIZE, key);
    rec.serial = ks_next_serial(ctx, KS_SEEN_GRANT, key, cur != NULL ? cur->serial : 0);
    rc = dkm_grant_sign(&rec, &ctx->signer, &buf, &len);
    if (rc == 0)
        rc = ks_head_write(ctx, &hw, st);
    if (rc == 0) {
        /* One row per group and node: the latest record, granted or revoked,
         * replaces whatever the row held (also a row that was refused). */
        st[KS_HEAD_STMTS] = (struct ks_stmt){
            .sql = "INSERT INTO group_access (group_name, node_id, granted_by, record, "
                   "signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_name, "
                   "node_id) DO UPDATE SET granted_by = EXCLUDED.granted_by, record = "
                   "EXCLUDED.record, signature = EXCLUDED.signature, granted_at = now()",
            .n = 5,
            .values = {rec.group, (const char *)rec.node_id.bytes,
                       (const char *)ctx->signer.id.bytes, (const char *)buf,
                       (const char *)buf + len - DKM_SIG_SIZE},
            .lengths = {0, DKM_NODE_ID_SIZE, DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE),
                        DKM_SIG_SIZE},
        };
        rc = ks_db_write(ctx->conn, st, KS_HEAD_STMTS + 1);
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=%s target=group:%s reason=%s", action,
                  name, dkm_error_detail());
        ks_job_fail(job, rc == -ESTALE ? 409 : 503,
                    rc == -ESTALE ? "conflict" : "service unavailable", "%s",
                    rc == -ESTALE ? dkm_error_detail() : "cannot store the change");
        ks_audit(actor, action, target, "error", dkm_error_detail());
        job->wrote = rc == -ESTALE;
        goto done;
    }
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:s, s:s, s:I}", "group", name, "node_id", hex, "serial",
                           (json_int_t)rec.serial);
    ks_audit(actor, action, target, "ok", hex);
done:
    ks_head_write_clear(&hw);
    free(buf);
}

static void grant_job(struct ks_ctx *ctx, struct ks_job *job)
{
    access_job(ctx, job, true);
}

static void ungrant_job(struct ks_ctx *ctx, struct ks_job *job)
{
    access_job(ctx, job, false);
}

void ks_groups_grant_handler(struct svc_req *r)
{
    ks_submit(r, grant_job);
}

void ks_groups_revoke_handler(struct svc_req *r)
{
    ks_submit(r, ungrant_job);
}

static json_t *group_json(const struct ks_group *g, bool full)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:o}", "name", g->name, "current_version",
                          (json_int_t)g->current, "versions", (json_int_t)g->nversions,
                          "policy", policy_json(&g->policy));
    json_t *vs, *ms;

    if (o == NULL || !full)
        return o;
    vs = json_array();
    ms = json_array();
    for (size_t i = 0; vs != NULL && i < g->nversions; i++) {
        const struct ks_version *v = &g->versions[i];

        json_array_append_new(vs, json_pack("{s:I, s:s, s:I, s:I}", "version",
                                            (json_int_t)v->version, "state",
                                            state_name(v->state), "created_at",
                                            (json_int_t)v->created_at, "expires_at",
                                            (json_int_t)v->expires_at));
    }
    for (size_t i = 0; ms != NULL && i < g->nmembers; i++) {
        char hex[DKM_NODE_ID_HEX_SIZE];

        dkm_node_id_hex(&g->members[i], hex);
        json_array_append_new(ms, json_string(hex));
    }
    json_object_set_new(o, "versions", vs);
    json_object_set_new(o, "members", ms);
    return o;
}

void ks_groups_list_handler(struct svc_req *r)
{
    struct ks_snapshot *s = ks_snapshot_get();
    json_t *arr;

    if (s == NULL) {
        svc_reply_error(r, 503, "service unavailable", "the key state is not loaded");
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < s->ngroups; i++)
        json_array_append_new(arr, group_json(&s->groups[i], false));
    ks_snapshot_put(s);
    svc_reply_json(r, 200, arr != NULL ? json_pack("{s:o}", "groups", arr) : NULL);
}

void ks_groups_show_handler(struct svc_req *r)
{
    struct ks_snapshot *s = ks_snapshot_get();
    const struct ks_group *g;

    if (s == NULL) {
        svc_reply_error(r, 503, "service unavailable", "the key state is not loaded");
        return;
    }
    g = ks_snapshot_group(s, r->params[0]);
    if (g == NULL) {
        ks_snapshot_put(s);
        svc_reply_error(r, 404, "not found", "no such group");
        return;
    }
    svc_reply_json(r, 200, group_json(g, true));
    ks_snapshot_put(s);
}

/* ---- audit query -------------------------------------------------------- */

static bool query_uint(struct evkeyvalq *q, const char *name, unsigned long long max,
                       unsigned long long *v)
{
    const char *s = evhttp_find_header(q, name);
    char *end;

    if (s == NULL)
        return true;
    if (*s < '0' || *s > '9')
        return false;
    *v = strtoull(s, &end, 10);
    return *end == '\0' && *v <= max;
}

static void audit_job(struct ks_ctx *ctx, struct ks_job *job)
{
    struct evkeyvalq q;
    const char *uri = evhttp_request_get_uri(job->req->req);
    const char *qs = strchr(uri, '?');
    unsigned long long limit = 100, after = 0;
    char lim[24], aft[24];
    const char *values[2] = {lim, aft};
    PGresult *res = NULL;
    json_t *arr;

    /* The answer shows every record queued before the request. */
    if (!ks_audit_sync(5000))
        log_event(DKM_LOG_WARNING, "audit.behind pending=%zu", ks_audit_pending());
    TAILQ_INIT(&q);
    if (qs != NULL && evhttp_parse_query_str(qs + 1, &q) < 0) {
        ks_job_fail(job, 400, "bad request", "bad query string");
        return;
    }
    if (!query_uint(&q, "limit", 1000, &limit) ||
        !query_uint(&q, "after", INT64_MAX, &after) || limit == 0) {
        evhttp_clear_headers(&q);
        ks_job_fail(job, 400, "bad request", "limit: 1..1000, after: a record id");
        return;
    }
    evhttp_clear_headers(&q);
    snprintf(lim, sizeof(lim), "%llu", limit);
    snprintf(aft, sizeof(aft), "%llu", after);
    res =
        PQexecParams(ctx->conn,
                     "SELECT id, extract(epoch FROM at)::bigint, actor, action, "
                     "coalesce(target, ''), outcome, coalesce(detail, '') FROM audit_log "
                     "WHERE id > $2::bigint ORDER BY id LIMIT $1::integer",
                     2, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_event(DKM_LOG_ERR, "audit.query_failed reason=%s", PQresultErrorMessage(res));
        PQclear(res);
        ks_job_fail(job, 503, "service unavailable", "the audit query failed");
        return;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < PQntuples(res); i++)
        json_array_append_new(
            arr, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "id",
                           (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "at",
                           (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10), "actor",
                           PQgetvalue(res, i, 2), "action", PQgetvalue(res, i, 3),
                           "target", PQgetvalue(res, i, 4), "outcome",
                           PQgetvalue(res, i, 5), "detail", PQgetvalue(res, i, 6)));
    PQclear(res);
    job->status = 200;
    job->reply = arr != NULL ? json_pack("{s:o}", "records", arr) : NULL;
}

void ks_audit_handler(struct svc_req *r)
{
    ks_submit(r, audit_job);
}
