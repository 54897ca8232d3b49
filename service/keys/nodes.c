/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin endpoints for the authorized node list: authorize a node from its
 * card (the server signs a node entry for its EK, and optionally binds the
 * node's TLS client key, which is how an admin node is recognised on the
 * TLS port), list, bind a new TLS key, and revoke (the entry is signed
 * again with revoked_at; a revoked node stays revoked).
 * Writes run on the keeper thread, each in one transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/trust/nodecard.h"
#include "audit.h"
#include "http.h"
#include "job.h"
#include "json.h"
#include "keeper.h"
#include "nodes.h"
#include "seen.h"
#include "state.h"
#include "tls.h"
#include "write.h"

const struct svc_json_field ks_nodes_authorize_body[] = {
    {.name = "card",
     .type = SVC_JSON_B64URL,
     .required = true,
     .min = 8,
     .max = DKM_NODECARD_MAX},
    {.name = "role", .type = SVC_JSON_STRING, .required = false, .min = 1, .max = 16},
    {.name = "tls_cert",
     .type = SVC_JSON_STRING,
     .required = false,
     .min = 1,
     .max = KS_TLS_CERT_MAX},
};
const size_t ks_nodes_authorize_nbody =
    sizeof(ks_nodes_authorize_body) / sizeof(ks_nodes_authorize_body[0]);

const struct svc_json_field ks_nodes_tls_body[] = {
    {.name = "tls_cert",
     .type = SVC_JSON_STRING,
     .required = true,
     .min = 1,
     .max = KS_TLS_CERT_MAX},
};
const size_t ks_nodes_tls_nbody =
    sizeof(ks_nodes_tls_body) / sizeof(ks_nodes_tls_body[0]);

_Static_assert(SVC_TLS_KEY_ID_SIZE == DKM_TLS_KEY_ID_SIZE, "one TLS key id size");

/* The key id of the request's "tls_cert" into e; false (job failed) if bad. */
static bool tls_key_from_body(struct ks_job *job, struct dkm_node_entry *e)
{
    json_t *v = json_object_get(job->req->body, "tls_cert");

    if (v == NULL)
        return true;
    if (svc_tls_key_id_pem(json_string_value(v), json_string_length(v), e->tls_key) < 0) {
        ks_job_fail(job, 400, "bad request", "tls_cert: %s", dkm_error_detail());
        return false;
    }
    e->has_tls_key = true;
    return true;
}

/* Another node already bound to this TLS key: one key, one node. */
static const struct ks_node *tls_key_owner(const struct ks_snapshot *s,
                                           const struct dkm_node_entry *e)
{
    const struct ks_node *o =
        e->has_tls_key ? ks_snapshot_node_by_tls(s, e->tls_key) : NULL;

    return o != NULL && !dkm_node_id_equal(&o->entry.node_id, &e->node_id) ? o : NULL;
}

/* The TLS key id as hex, or JSON null. */
static json_t *tls_key_json(const struct dkm_node_entry *e)
{
    char hex[2 * DKM_TLS_KEY_ID_SIZE + 1];

    if (!e->has_tls_key ||
        dkm_hex_encode(e->tls_key, DKM_TLS_KEY_ID_SIZE, hex, sizeof(hex)) < 0)
        return json_null();
    return json_string(hex);
}

/*
 * Sign e with the next serial and store it with the next state head:
 * INSERT for a new node, UPDATE for a change. -ESTALE when another
 * server wrote meanwhile (try again after the reload).
 */
static int store_entry(struct ks_ctx *ctx, struct dkm_node_entry *e, bool insert)
{
    uint8_t *rec = NULL, ek[sizeof(TPM2B_PUBLIC)], key[KS_SEEN_KEY_SIZE];
    size_t len = 0, ek_len = 0;
    struct ks_head_write hw = {0};
    struct ks_stmt st[KS_HEAD_STMTS + 1];
    char at[32], revoked[32];
    int r;

    ks_seen_key(e->node_id.bytes, DKM_NODE_ID_SIZE, NULL, 0, key);
    e->serial = ks_next_serial(ctx, KS_SEEN_NODE, key, insert ? 0 : e->serial);
    r = dkm_node_entry_sign(e, &ctx->signer, &rec, &len);
    if (r < 0)
        goto done;
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&e->ek, ek, sizeof(ek), &ek_len) !=
        TSS2_RC_SUCCESS) {
        r = dkm_error_set(DKM_E_FORMAT, "cannot marshal the EK public area");
        goto done;
    }
    r = ks_head_write(ctx, &hw, st);
    if (r < 0)
        goto done;
    snprintf(at, sizeof(at), "%llu", (unsigned long long)e->authorized_at);
    snprintf(revoked, sizeof(revoked), "%llu", (unsigned long long)e->revoked_at);
    if (insert)
        st[KS_HEAD_STMTS] = (struct ks_stmt){
            .sql = "INSERT INTO nodes (node_id, ek_public, role, authorized_by, "
                   "signature, entry, hostname, created_at) VALUES ($1, $2, $3, $4, $5, "
                   "$6, NULLIF($7, ''), to_timestamp($8::bigint))",
            .n = 8,
            .values = {(const char *)e->node_id.bytes, (const char *)ek,
                       dkm_role_name(e->role), (const char *)ctx->signer.id.bytes,
                       (const char *)rec + len - DKM_SIG_SIZE, (const char *)rec,
                       e->hostname, at},
            .lengths = {DKM_NODE_ID_SIZE, (int)ek_len, 0, DKM_NODE_ID_SIZE, DKM_SIG_SIZE,
                        (int)(len - DKM_SIG_SIZE), 0, 0},
        };
    else
        st[KS_HEAD_STMTS] = (struct ks_stmt){
            .sql = "UPDATE nodes SET authorized_by = $2, signature = $3, entry = $4, "
                   "revoked_at = CASE WHEN $5::bigint = 0 THEN NULL "
                   "ELSE to_timestamp($5::bigint) END, hostname = NULLIF($6, '') "
                   "WHERE node_id = $1",
            .n = 6,
            .values = {(const char *)e->node_id.bytes, (const char *)ctx->signer.id.bytes,
                       (const char *)rec + len - DKM_SIG_SIZE, (const char *)rec, revoked,
                       e->hostname},
            .lengths = {DKM_NODE_ID_SIZE, DKM_NODE_ID_SIZE, DKM_SIG_SIZE,
                        (int)(len - DKM_SIG_SIZE), 0, 0},
        };
    r = ks_db_write(ctx->conn, st, KS_HEAD_STMTS + 1);
done:
    ks_head_write_clear(&hw);
    free(rec);
    return r;
}

static void authorize_job(struct ks_ctx *ctx, struct ks_job *job)
{
    struct svc_req *r = job->req;
    const char *role_text = json_string_value(json_object_get(r->body, "role"));
    struct dkm_nodecard *card = NULL;
    struct dkm_node_entry e = {.authorized_at = (uint64_t)time(NULL)};
    uint8_t *buf = NULL;
    size_t len = 0;
    char actor[KS_ACTOR_MAX], hex[DKM_NODE_ID_HEX_SIZE];
    int rc;

    ks_actor(r, actor, sizeof(actor));
    buf = malloc(DKM_NODECARD_MAX);
    if (buf == NULL) {
        ks_job_fail(job, 500, "internal error", "out of memory");
        goto done;
    }
    if (svc_json_get_b64url(r->body, "card", buf, DKM_NODECARD_MAX, &len) < 0 ||
        dkm_nodecard_decode(buf, len, &card) < 0) {
        ks_job_fail(job, 400, "bad request", "card: %s", dkm_error_detail());
        goto done;
    }
    if (dkm_role_parse(role_text != NULL ? role_text : "client", &e.role) < 0) {
        ks_job_fail(job, 400, "bad request", "role: client, server or admin");
        goto done;
    }
    e.node_id = card->id;
    e.ek = card->ek_public;
    snprintf(e.hostname, sizeof(e.hostname), "%s", card->hostname);
    if (!tls_key_from_body(job, &e))
        goto done;
    dkm_node_id_hex(&e.node_id, hex);
    if (ks_snapshot_node(ctx->snap, &e.node_id) != NULL) {
        ks_job_fail(job, 409, "conflict", "node %s is authorized already", hex);
        ks_audit(actor, "node.authorize", hex, "denied", "already authorized");
        goto done;
    }
    if (tls_key_owner(ctx->snap, &e) != NULL) {
        ks_job_fail(job, 409, "conflict", "tls_cert: that key is bound to another node");
        ks_audit(actor, "node.authorize", hex, "denied", "TLS key of another node");
        goto done;
    }
    rc = store_entry(ctx, &e, true);
    if (rc == -ESTALE) {
        ks_job_fail(job, 409, "conflict", "%s", dkm_error_detail());
        job->wrote = true; /* the snapshot is behind: reload */
        goto done;
    }
    if (rc == -EEXIST) {
        ks_job_fail(job, 409, "conflict", "node %s is authorized already", hex);
        ks_audit(actor, "node.authorize", hex, "denied", "already authorized");
        goto done;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=node.authorize target=%s reason=%s",
                  hex, dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot store the node entry");
        ks_audit(actor, "node.authorize", hex, "error", dkm_error_detail());
        goto done;
    }
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:s, s:o}", "node_id", hex, "tls_key", tls_key_json(&e));
    ks_audit(actor, "node.authorize", hex, "ok", dkm_role_name(e.role));
done:
    dkm_nodecard_free(card);
    free(buf);
}

void ks_nodes_authorize_handler(struct svc_req *r)
{
    ks_submit(r, authorize_job);
}

/* The node named in the path of job's request; NULL (job failed: 404) if none. */
static const struct ks_node *path_node(struct ks_ctx *ctx, struct ks_job *job)
{
    struct dkm_node_id id;
    const struct ks_node *n = NULL;

    if (dkm_node_id_parse(job->req->params[0], &id) == 0)
        n = ks_snapshot_node(ctx->snap, &id);
    if (n == NULL)
        ks_job_fail(job, 404, "not found", "no such node");
    return n;
}

/* Store a changed entry of n as action (audited either way); true if stored. */
static bool store_change(struct ks_ctx *ctx, struct ks_job *job, const struct ks_node *n,
                         struct dkm_node_entry *e, const char *action, const char *actor)
{
    const char *hex = job->req->params[0];
    int rc;

    (void)n;
    rc = store_entry(ctx, e, false);
    if (rc == -ESTALE) {
        ks_job_fail(job, 409, "conflict", "%s", dkm_error_detail());
        job->wrote = true;
        return false;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=%s target=%s reason=%s", action, hex,
                  dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot store the node entry");
        ks_audit(actor, action, hex, "error", dkm_error_detail());
        return false;
    }
    job->wrote = true;
    job->status = 200;
    ks_audit(actor, action, hex, "ok", NULL);
    return true;
}

static void revoke_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *hex = job->req->params[0];
    const struct ks_node *n;
    struct dkm_node_entry e;
    char actor[KS_ACTOR_MAX];

    ks_actor(job->req, actor, sizeof(actor));
    n = path_node(ctx, job);
    if (n == NULL)
        return;
    if (n->entry.revoked_at == 0) {
        e = n->entry;
        e.revoked_at = (uint64_t)time(NULL);
        if (e.revoked_at < e.authorized_at)
            e.revoked_at = e.authorized_at;
        if (!store_change(ctx, job, n, &e, "node.revoke", actor))
            return;
    }
    /* Revoking a revoked node is a no-op. */
    job->status = 200;
    job->reply = json_pack("{s:s, s:b}", "node_id", hex, "revoked", 1);
}

void ks_nodes_revoke_handler(struct svc_req *r)
{
    ks_submit(r, revoke_job);
}

/* Bind a (new) TLS client key to a node: its entry is signed again. */
static void tls_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *hex = job->req->params[0];
    const struct ks_node *n;
    struct dkm_node_entry e;
    char actor[KS_ACTOR_MAX];

    ks_actor(job->req, actor, sizeof(actor));
    n = path_node(ctx, job);
    if (n == NULL)
        return;
    if (n->entry.revoked_at != 0) {
        ks_job_fail(job, 409, "conflict", "node %s is revoked", hex);
        return;
    }
    e = n->entry;
    if (!tls_key_from_body(job, &e))
        return;
    if (tls_key_owner(ctx->snap, &e) != NULL) {
        ks_job_fail(job, 409, "conflict", "tls_cert: that key is bound to another node");
        ks_audit(actor, "node.tls", hex, "denied", "TLS key of another node");
        return;
    }
    if (store_change(ctx, job, n, &e, "node.tls", actor))
        job->reply = json_pack("{s:s, s:o}", "node_id", hex, "tls_key", tls_key_json(&e));
}

void ks_nodes_tls_handler(struct svc_req *r)
{
    ks_submit(r, tls_job);
}

void ks_nodes_list_handler(struct svc_req *r)
{
    struct ks_snapshot *s = ks_snapshot_get();
    json_t *arr;

    if (s == NULL) {
        svc_reply_error(r, 503, "service unavailable", "the key state is not loaded");
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < s->nnodes; i++) {
        const struct ks_node *n = &s->nodes[i];
        char hex[DKM_NODE_ID_HEX_SIZE];
        json_t *o;

        dkm_node_id_hex(&n->entry.node_id, hex);
        o = json_pack("{s:s, s:s, s:s, s:I}", "node_id", hex, "role",
                      dkm_role_name(n->entry.role), "ek_type",
                      n->entry.ek.publicArea.type == TPM2_ALG_ECC ? "ecc" : "rsa",
                      "authorized_at", (json_int_t)n->entry.authorized_at);
        if (o != NULL && n->hostname[0])
            json_object_set_new(o, "hostname", json_string(n->hostname));
        if (o != NULL)
            json_object_set_new(o, "tls_key", tls_key_json(&n->entry));
        if (o != NULL)
            json_object_set_new(o, "serial", json_integer((json_int_t)n->entry.serial));
        if (o != NULL && n->entry.revoked_at != 0)
            json_object_set_new(o, "revoked_at",
                                json_integer((json_int_t)n->entry.revoked_at));
        json_array_append_new(arr, o);
    }
    ks_snapshot_put(s);
    svc_reply_json(r, 200, arr != NULL ? json_pack("{s:o}", "nodes", arr) : NULL);
}
