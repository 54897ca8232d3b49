/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The authorized server list as an admin resource: GET /v1/servers shows
 * the current verified list, POST /v1/servers adds a server from the
 * signed card `dkmd init --join` wrote on it, DELETE /v1/servers/{node}
 * removes one.
 *
 * Removing a server is one transaction too: list v(N+1) without it,
 * signed by this server (a remaining one: a server does not remove
 * itself, and the last server cannot be removed), the next state head,
 * and the deletion of every sealed copy made for it. The removed server
 * sees the list at its next reload and answers key fetches 503; a node
 * that has followed the chain to v(N+1) refuses anything the removed
 * server signs, because its signer is on no list the node trusts.
 *
 * Adding a server is one transaction on the keeper thread: server list
 * v(N+1) (the current list plus the new entry, signed by this server, so
 * that clients following the chain from their pinned v1 accept it), the
 * new server's node entry (role server; sealed copies reference it), and,
 * for every key version still in use, the key this server holds unsealed
 * sealed again to the new server's EK as a signed sealed copy, exactly
 * as a new version is sealed (rotate.c). Keys never leave secure memory
 * in clear; the copies are TPM import blobs only the new server's TPM can
 * open. The transaction takes the list lock (write.h) and checks, under
 * it, that the list and the live key versions are still the ones the
 * copies were made from, so a rotation racing with the addition cannot
 * leave the new server without a copy.
 *
 * Sealing takes a TPM signature per copy, so adding a server to a
 * deployment with many key versions takes a while: the addition reports
 * its progress (progress.h) as it seals and stores, for the log and for
 * GET /v1/progress, which dkmctl polls while it waits for the answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/trust/servercard.h"
#include "audit.h"
#include "http.h"
#include "job.h"
#include "json.h"
#include "keeper.h"
#include "progress.h"
#include "rotate.h"
#include "seen.h"
#include "servers.h"
#include "state.h"
#include "write.h"

const struct svc_json_field ks_servers_add_body[] = {
    {.name = "card",
     .type = SVC_JSON_STRING,
     .required = true,
     .min = 1,
     .max = DKM_SERVERCARD_ARMOR_MAX},
};
const size_t ks_servers_add_nbody =
    sizeof(ks_servers_add_body) / sizeof(ks_servers_add_body[0]);

/* One sealed copy for the new server, with what its INSERT points at. */
struct copy {
    const char *group;
    uint32_t version;
    char version_text[16];
    uint8_t *rec;
    size_t len;
};

struct add {
    struct ks_ctx *ctx;
    uint32_t list_version; /* the snapshot's, which v(N+1) follows */
    struct copy *copies;
    size_t ncopies;
};

/*
 * Under the list lock, inside the transaction: the list must still be
 * v(N), and every key version in use of a loaded group must be one the
 * copies cover (else one was made after the snapshot: -ESTALE, retry
 * after the reload its NOTIFY causes).
 */
static int add_check(PGconn *conn, void *arg)
{
    const struct add *a = arg;
    PGresult *res;
    int r = 0;

    res = PQexec(conn, KS_LIST_LOCK_SQL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dkm_error_set(DKM_E_DB, "list lock: %s", PQresultErrorMessage(res));
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT max(version) FROM server_lists");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        r = dkm_error_set(DKM_E_DB, "reading the list version: %s",
                          PQresultErrorMessage(res));
        goto done;
    }
    if (strtoul(PQgetvalue(res, 0, 0), NULL, 10) != a->list_version) {
        r = dkm_error_set(-ESTALE,
                          "the server list in the database is v%s, not v%u as loaded "
                          "(changed meanwhile, or a later list was refused: see "
                          "/v1/health)",
                          PQgetvalue(res, 0, 0), a->list_version);
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT group_name, version FROM key_versions "
                       "WHERE state IN ('active', 'decrypt-only')");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dkm_error_set(DKM_E_DB, "reading the key versions: %s",
                          PQresultErrorMessage(res));
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *group = PQgetvalue(res, i, 0);
        uint32_t version = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
        const struct ks_group *g = ks_snapshot_group(a->ctx->snap, group);

        if (g != NULL && ks_group_version(g, version) == NULL) {
            r = dkm_error_set(-ESTALE, "key version %s/%u was made meanwhile", group,
                              version);
            goto done;
        }
    }
done:
    PQclear(res);
    return r;
}

static void copies_free(struct copy *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(c[i].rec);
    free(c);
}

/* Whether a version is still in use: the new server needs a copy of it. */
static bool live(const struct ks_version *v, uint64_t now)
{
    return (v->state == KS_ACTIVE || v->state == KS_DECRYPT_ONLY) &&
           (v->expires_at == 0 || v->expires_at > now);
}

/*
 * Seal every live key this server holds to entry's EK, one progress step
 * per live version. Versions this server holds no valid copy of are
 * named in skipped (a JSON array).
 */
static int seal_all(struct ks_ctx *ctx, const struct dkm_server_entry *entry,
                    struct add *a, json_t *skipped, struct ks_progress *prog)
{
    const struct ks_snapshot *s = ctx->snap;
    uint64_t now = (uint64_t)time(NULL);
    size_t cap = 0, nlive = 0;
    int r;

    for (size_t i = 0; i < s->ngroups; i++) {
        cap += s->groups[i].nversions;
        for (size_t j = 0; j < s->groups[i].nversions; j++)
            nlive += live(&s->groups[i].versions[j], now);
    }
    a->copies = calloc(cap + 1, sizeof(*a->copies));
    if (a->copies == NULL)
        return -ENOMEM;
    ks_progress_phase(prog, "seal", nlive);
    for (size_t i = 0; i < s->ngroups; i++) {
        const struct ks_group *g = &s->groups[i];

        for (size_t j = 0; j < g->nversions; j++) {
            const struct ks_version *v = &g->versions[j];
            struct copy *c = &a->copies[a->ncopies];
            char which[DKM_GROUP_MAX + 16];

            if (!live(v, now))
                continue;
            if (v->key == NULL) {
                snprintf(which, sizeof(which), "%s/%u", g->name, v->version);
                /* This server holds no valid copy: the new server gets none. */
                log_event(DKM_LOG_WARNING, "server.add_skipped group=%s version=%u",
                          g->name, v->version);
                json_array_append_new(skipped, json_string(which));
                ks_progress_step(prog);
                continue;
            }
            r = ks_seal_copy(ctx, g->name, v->version, v->created_at, v->expires_at,
                             v->key->secret, v->key->len, entry, &c->rec, &c->len);
            if (r < 0)
                return r;
            c->group = g->name;
            c->version = v->version;
            snprintf(c->version_text, sizeof(c->version_text), "%u", v->version);
            a->ncopies++;
            ks_progress_step(prog);
        }
    }
    return 0;
}

static void add_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *text = json_string_value(json_object_get(job->req->body, "card"));
    const struct dkm_server_list *cur = &ctx->snap->list;
    struct dkm_servercard card;
    struct dkm_server_list next;
    struct dkm_node_entry ne = {.role = DKM_ROLE_SERVER};
    const struct ks_node *known;
    struct add a = {.ctx = ctx, .list_version = cur->list_version};
    struct ks_stmt *stmts = NULL;
    struct ks_head_write hw = {0};
    json_t *skipped = json_array();
    uint8_t *list_rec = NULL, *entry_rec = NULL, ek[sizeof(TPM2B_PUBLIC)];
    size_t list_len = 0, entry_len = 0, ek_len = 0, n = 0;
    char actor[KS_ACTOR_MAX], hex[DKM_NODE_ID_HEX_SIZE], ver[16], now_text[32],
        detail[96];
    uint64_t now = (uint64_t)time(NULL);
    struct ks_progress prog;
    int rc;

    ks_actor(job->req, actor, sizeof(actor));
    /* Checks first; the target is named once the card decodes. */
    ks_progress_begin(&prog, "server.add", NULL, "check", 1);
    if (skipped == NULL) {
        ks_job_fail(job, 500, "internal error", "out of memory");
        goto done;
    }
    if (dkm_servercard_from_text(text, strlen(text), &card) < 0) {
        ks_job_fail(job, 400, "bad request", "card: %s", dkm_error_detail());
        ks_audit(actor, "server.add", NULL, "denied", dkm_error_detail());
        goto done;
    }
    dkm_node_id_hex(&card.id, hex);
    snprintf(prog.target, sizeof(prog.target), "%s", hex);
    if (dkm_server_list_find(cur, &ctx->signer.id) == NULL) {
        ks_job_fail(job, 503, "service unavailable",
                    "this server is not on the current verified server list v%u",
                    cur->list_version);
        goto done;
    }
    if (ctx->reload_failed) {
        ks_job_fail(job, 409, "conflict",
                    "the last reload of the state failed (see /v1/health): the server "
                    "list is not changed on a state that may be behind");
        ks_audit(actor, "server.add", hex, "denied", "reload failing");
        goto done;
    }
    if (dkm_server_list_find(cur, &card.id) != NULL) {
        ks_job_fail(job, 409, "conflict", "server %s is on the server list v%u already",
                    hex, cur->list_version);
        ks_audit(actor, "server.add", hex, "denied", "on the list already");
        goto done;
    }
    for (unsigned i = 0; i < cur->count; i++) {
        if (memcmp(cur->entries[i].sk.point, card.sk.point, DKM_P256_PUBLIC_SIZE) == 0) {
            ks_job_fail(job, 409, "conflict",
                        "the card's signing key belongs to a server on the list");
            ks_audit(actor, "server.add", hex, "denied", "signing key on the list");
            goto done;
        }
    }
    if (cur->count >= DKM_SERVER_LIST_MAX) {
        ks_job_fail(job, 409, "conflict", "the server list is full (%d servers)",
                    DKM_SERVER_LIST_MAX);
        ks_audit(actor, "server.add", hex, "denied", "the list is full");
        goto done;
    }
    known = ks_snapshot_node(ctx->snap, &card.id);
    if (known != NULL && known->entry.revoked_at != 0) {
        ks_job_fail(job, 409, "conflict", "node %s is revoked; a revoked node stays out",
                    hex);
        ks_audit(actor, "server.add", hex, "denied", "revoked node");
        goto done;
    }

    next = *cur;
    next.list_version = cur->list_version + 1;
    next.issued_at = now;
    next.entries[next.count].node_id = card.id;
    next.entries[next.count].ek = card.ek;
    next.entries[next.count].sk = card.sk;
    next.count++;
    rc = dkm_server_list_sign(&next, &ctx->signer, &list_rec, &list_len);
    if (rc == 0)
        rc = seal_all(ctx, &next.entries[next.count - 1], &a, skipped, &prog);
    if (rc == 0 && known == NULL) {
        uint8_t key[KS_SEEN_KEY_SIZE];

        ne.node_id = card.id;
        ne.ek = card.ek;
        ne.authorized_at = now;
        snprintf(ne.hostname, sizeof(ne.hostname), "%s", card.hostname);
        ks_seen_key(card.id.bytes, DKM_NODE_ID_SIZE, NULL, 0, key);
        ne.serial = ks_next_serial(ctx, KS_SEEN_NODE, key, 0);
        rc = dkm_node_entry_sign(&ne, &ctx->signer, &entry_rec, &entry_len);
        if (rc == 0 && Tss2_MU_TPM2B_PUBLIC_Marshal(&card.ek, ek, sizeof(ek), &ek_len) !=
                           TSS2_RC_SUCCESS)
            rc = dkm_error_set(DKM_E_FORMAT, "cannot marshal the EK public area");
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=server.add target=%s reason=%s", hex,
                  dkm_error_detail());
        ks_job_fail(job, 500, "internal error", "cannot prepare the new server list");
        ks_audit(actor, "server.add", hex, "error", dkm_error_detail());
        goto done;
    }

    stmts = calloc(a.ncopies + 2 + KS_HEAD_STMTS, sizeof(*stmts));
    if (stmts == NULL) {
        ks_job_fail(job, 500, "internal error", "out of memory");
        goto done;
    }
    if (ks_head_write(ctx, &hw, stmts) < 0) {
        ks_job_fail(job, 500, "internal error", "cannot sign the state head");
        goto done;
    }
    n = KS_HEAD_STMTS;
    snprintf(ver, sizeof(ver), "%u", next.list_version);
    snprintf(now_text, sizeof(now_text), "%llu", (unsigned long long)now);
    stmts[n++] = (struct ks_stmt){
        .sql = "INSERT INTO server_lists (version, body, signature, signer) "
               "VALUES ($1::integer, $2, $3, $4)",
        .n = 4,
        .values = {ver, (const char *)list_rec,
                   (const char *)list_rec + list_len - DKM_SIG_SIZE,
                   (const char *)ctx->signer.id.bytes},
        .lengths = {0, (int)(list_len - DKM_SIG_SIZE), DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
    };
    if (known == NULL)
        stmts[n++] = (struct ks_stmt){
            .sql = "INSERT INTO nodes (node_id, ek_public, role, authorized_by, "
                   "signature, entry, hostname, created_at) VALUES ($1, $2, 'server', "
                   "$3, $4, $5, $6, to_timestamp($7::bigint))",
            .n = 7,
            .values = {(const char *)card.id.bytes, (const char *)ek,
                       (const char *)ctx->signer.id.bytes,
                       (const char *)entry_rec + entry_len - DKM_SIG_SIZE,
                       (const char *)entry_rec, card.hostname, now_text},
            .lengths = {DKM_NODE_ID_SIZE, (int)ek_len, DKM_NODE_ID_SIZE, DKM_SIG_SIZE,
                        (int)(entry_len - DKM_SIG_SIZE), 0, 0},
        };
    for (size_t i = 0; i < a.ncopies; i++)
        stmts[n++] = ks_copy_stmt(a.copies[i].group, a.copies[i].version_text, &card.id,
                                  a.copies[i].rec, a.copies[i].len, now_text);
    /* One transaction of n statements: one step, done when it commits. */
    ks_progress_phase(&prog, "store", 1);
    rc = ks_db_write_checked(ctx->conn, add_check, &a, stmts, n);
    if (rc == 0)
        ks_progress_step(&prog);
    if (rc == -ESTALE || rc == -EEXIST) {
        ks_job_fail(job, 409, "conflict", "%s; try again",
                    rc == -EEXIST ? "the server list changed meanwhile"
                                  : dkm_error_detail());
        ks_audit(actor, "server.add", hex, "denied", dkm_error_detail());
        job->wrote = true; /* the snapshot is behind: reload */
        goto done;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=server.add target=%s reason=%s", hex,
                  dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot store the new server list");
        ks_audit(actor, "server.add", hex, "error", dkm_error_detail());
        goto done;
    }
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:s, s:s, s:I, s:I, s:O}", "node_id", hex, "hostname",
                           card.hostname, "list_version", (json_int_t)next.list_version,
                           "copies", (json_int_t)a.ncopies, "skipped", skipped);
    snprintf(detail, sizeof(detail), "server list v%u, %zu sealed copies, %zu skipped",
             next.list_version, a.ncopies, json_array_size(skipped));
    ks_audit(actor, "server.add", hex, "ok", detail);
    log_event(DKM_LOG_NOTICE,
              "server.added node=%s hostname=%s list_version=%u copies=%zu skipped=%zu "
              "elapsed_ms=%llu",
              hex, card.hostname, next.list_version, a.ncopies, json_array_size(skipped),
              (unsigned long long)ks_progress_elapsed_ms(&prog));
done:
    ks_progress_end(&prog);
    json_decref(skipped);
    free(stmts);
    ks_head_write_clear(&hw);
    copies_free(a.copies, a.ncopies);
    free(list_rec);
    free(entry_rec);
}

void ks_servers_add_handler(struct svc_req *r)
{
    ks_submit(r, add_job);
}

/* Keep a record just signed until the batch is written. */
static int keep_signed(struct ks_batch *b, uint8_t *rec)
{
    return ks_batch_keep(b, rec);
}

/*
 * Every record the removed server signed stops verifying with it: sign
 * each again with this server's key (node entries, policies and grants
 * with the next serial, sealed copies as they are), in the removal's
 * transaction. *ret_count counts them.
 */
static int resign_removed(struct ks_ctx *ctx, const struct dkm_node_id *gone,
                          struct ks_batch *b, size_t *ret_count)
{
    const struct ks_snapshot *s = ctx->snap;
    uint8_t *rec = NULL, key[KS_SEEN_KEY_SIZE];
    size_t len = 0, count = 0;
    PGresult *res = NULL;
    const char *values[1] = {(const char *)gone->bytes};
    int r = 0;

    for (size_t i = 0; r == 0 && i < s->nnodes; i++) {
        struct dkm_node_entry e = s->nodes[i].entry;

        if (!dkm_node_id_equal(&e.signer, gone))
            continue;
        if (e.revoked_at != 0 && e.revoked_at < e.authorized_at)
            e.revoked_at = e.authorized_at;
        ks_seen_key(e.node_id.bytes, DKM_NODE_ID_SIZE, NULL, 0, key);
        e.serial = ks_next_serial(ctx, KS_SEEN_NODE, key, e.serial);
        r = dkm_node_entry_sign(&e, &ctx->signer, &rec, &len);
        if (r == 0)
            r = keep_signed(b, rec);
        if (r == 0)
            r = ks_batch_add(
                b,
                (struct ks_stmt){
                    .sql = "UPDATE nodes SET entry = $2, signature = $3, "
                           "authorized_by = $4 WHERE node_id = $1",
                    .n = 4,
                    .values = {(const char *)s->nodes[i].entry.node_id.bytes,
                               (const char *)rec, (const char *)rec + len - DKM_SIG_SIZE,
                               (const char *)ctx->signer.id.bytes},
                    .lengths = {DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE), DKM_SIG_SIZE,
                                DKM_NODE_ID_SIZE},
                });
        count++;
    }
    for (size_t i = 0; r == 0 && i < s->ngroups; i++) {
        const struct ks_group *g = &s->groups[i];

        if (dkm_node_id_equal(&g->policy.signer, gone)) {
            struct dkm_group_policy p = g->policy;

            ks_seen_key(p.group, strlen(p.group), NULL, 0, key);
            p.serial = (uint32_t)ks_next_serial(ctx, KS_SEEN_POLICY, key, p.serial);
            r = dkm_group_policy_sign(&p, &ctx->signer, &rec, &len);
            if (r == 0)
                r = keep_signed(b, rec);
            if (r == 0)
                r = ks_batch_add(b,
                                 (struct ks_stmt){
                                     .sql = "UPDATE groups SET policy = $2, signature = "
                                            "$3, signer = $4, updated_at = now() WHERE "
                                            "name = $1",
                                     .n = 4,
                                     .values = {g->name, (const char *)rec,
                                                (const char *)rec + len - DKM_SIG_SIZE,
                                                (const char *)ctx->signer.id.bytes},
                                     .lengths = {0, (int)(len - DKM_SIG_SIZE),
                                                 DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
                                 });
            count++;
        }
        for (size_t j = 0; r == 0 && j < g->ngrants; j++) {
            const struct ks_grant *cur = &g->grants[j];
            struct dkm_grant gr = {
                .node_id = cur->node_id, .state = cur->state, .at = (uint64_t)time(NULL)};

            if (cur->legacy || !dkm_node_id_equal(&cur->signer, gone))
                continue;
            strcpy(gr.group, g->name);
            ks_seen_key(gr.group, strlen(gr.group), gr.node_id.bytes, DKM_NODE_ID_SIZE,
                        key);
            gr.serial = ks_next_serial(ctx, KS_SEEN_GRANT, key, cur->serial);
            r = dkm_grant_sign(&gr, &ctx->signer, &rec, &len);
            if (r == 0)
                r = keep_signed(b, rec);
            if (r == 0)
                r = ks_batch_add(
                    b, (struct ks_stmt){
                           .sql = "UPDATE group_access SET record = $3, "
                                  "signature = $4, granted_by = $5 WHERE "
                                  "group_name = $1 AND node_id = $2",
                           .n = 5,
                           .values = {g->name, (const char *)cur->node_id.bytes,
                                      (const char *)rec,
                                      (const char *)rec + len - DKM_SIG_SIZE,
                                      (const char *)ctx->signer.id.bytes},
                           .lengths = {0, DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE),
                                       DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
                       });
            count++;
        }
    }
    if (r < 0)
        return r;
    /* Sealed copies of every other server: this server loads only its own. */
    res = PQexecParams(ctx->conn,
                       "SELECT group_name, version, server_id, sealed, signature FROM "
                       "key_copies WHERE server_id <> $1",
                       1, NULL, values, (int[]){DKM_NODE_ID_SIZE}, (int[]){1}, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dkm_error_set(DKM_E_DB, "reading the sealed copies: %s",
                          PQresultErrorMessage(res));
        goto done;
    }
    for (int i = 0; r == 0 && i < PQntuples(res); i++) {
        size_t blen = (size_t)PQgetlength(res, i, 3),
               slen = (size_t)PQgetlength(res, i, 4);
        struct dkm_sealed_copy c;
        uint8_t *old, *id;
        char *vtext, *group;

        if (slen != DKM_SIG_SIZE || blen > DKM_RECORD_MAX ||
            PQgetlength(res, i, 2) != DKM_NODE_ID_SIZE)
            continue;
        old = malloc(blen + slen);
        if (old == NULL) {
            r = -ENOMEM;
            break;
        }
        memcpy(old, PQgetvalue(res, i, 3), blen);
        memcpy(old + blen, PQgetvalue(res, i, 4), slen);
        if (dkm_sealed_copy_decode(old, blen + slen, &c) < 0 ||
            !dkm_node_id_equal(&c.signer, gone) ||
            dkm_record_verify(&s->list, DKM_SIGCTX_SEALED_COPY, old, blen + slen) < 0) {
            free(old);
            dkm_error_clear();
            continue;
        }
        r = ks_batch_keep(b, old); /* c.blob points into it */
        if (r == 0)
            r = dkm_sealed_copy_sign(&c, &ctx->signer, &rec, &len);
        if (r == 0)
            r = keep_signed(b, rec);
        vtext = r == 0 ? malloc(16) : NULL;
        group = r == 0 ? strdup(c.group) : NULL;
        id = r == 0 ? malloc(DKM_NODE_ID_SIZE) : NULL;
        if (r == 0 && (vtext == NULL || group == NULL || id == NULL))
            r = -ENOMEM;
        if (r == 0) {
            snprintf(vtext, 16, "%u", c.version);
            memcpy(id, PQgetvalue(res, i, 2), DKM_NODE_ID_SIZE);
        }
        /* Each is kept (and freed with the batch) or freed here. */
        if (r == 0)
            r = ks_batch_keep(b, vtext);
        else
            free(vtext);
        if (r == 0)
            r = ks_batch_keep(b, group);
        else
            free(group);
        if (r == 0)
            r = ks_batch_keep(b, id);
        else
            free(id);
        if (r == 0)
            r = ks_batch_add(
                b, (struct ks_stmt){
                       .sql = "UPDATE key_copies SET sealed = $4, signature = "
                              "$5 WHERE group_name = $1 AND version = "
                              "$2::integer AND server_id = $3",
                       .n = 5,
                       .values = {group, vtext, (const char *)id, (const char *)rec,
                                  (const char *)rec + len - DKM_SIG_SIZE},
                       .lengths = {0, 0, DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE),
                                   DKM_SIG_SIZE},
                   });
        count++;
    }
done:
    PQclear(res);
    if (r == 0)
        *ret_count = count;
    return r;
}

static void remove_job(struct ks_ctx *ctx, struct ks_job *job)
{
    const char *hex = job->req->params[0];
    const struct dkm_server_list *cur = &ctx->snap->list;
    struct dkm_server_list next;
    struct dkm_node_id id;
    struct ks_head_write hw = {0};
    struct ks_stmt head[KS_HEAD_STMTS];
    struct ks_batch b = {0};
    uint8_t *list_rec = NULL;
    size_t list_len = 0, resigned = 0;
    char actor[KS_ACTOR_MAX], ver[16], cur_ver[16], detail[128];
    const char *values[1];
    long long copies = 0;
    PGresult *res;
    int rc;

    ks_actor(job->req, actor, sizeof(actor));
    if (dkm_node_id_parse(hex, &id) < 0 || dkm_server_list_find(cur, &id) == NULL) {
        ks_job_fail(job, 404, "not found", "no server %s on the server list v%u", hex,
                    cur->list_version);
        return;
    }
    if (dkm_server_list_find(cur, &ctx->signer.id) == NULL) {
        ks_job_fail(job, 503, "service unavailable",
                    "this server is not on the current verified server list v%u",
                    cur->list_version);
        return;
    }
    if (ctx->reload_failed) {
        ks_job_fail(job, 409, "conflict",
                    "the last reload of the state failed (see /v1/health): the server "
                    "list is not changed on a state that may be behind");
        return;
    }
    if (cur->count == 1) {
        ks_job_fail(job, 409, "conflict",
                    "server %s is the last one on the list: it cannot be removed", hex);
        ks_audit(actor, "server.remove", hex, "denied", "the last server");
        return;
    }
    if (dkm_node_id_equal(&id, &ctx->signer.id)) {
        ks_job_fail(job, 409, "conflict",
                    "a server does not remove itself: run this on another server of "
                    "the list");
        ks_audit(actor, "server.remove", hex, "denied", "itself");
        return;
    }
    next = *cur;
    next.count = 0;
    for (unsigned i = 0; i < cur->count; i++)
        if (!dkm_node_id_equal(&cur->entries[i].node_id, &id))
            next.entries[next.count++] = cur->entries[i];
    next.list_version = cur->list_version + 1;
    next.issued_at = (uint64_t)time(NULL);
    snprintf(ver, sizeof(ver), "%u", next.list_version);
    snprintf(cur_ver, sizeof(cur_ver), "%u", cur->list_version);
    rc = dkm_server_list_sign(&next, &ctx->signer, &list_rec, &list_len);
    if (rc == 0)
        rc = ks_head_write(ctx, &hw, head);
    for (size_t i = 0; rc == 0 && i < KS_HEAD_STMTS; i++)
        rc = ks_batch_add(&b, head[i]);
    if (rc == 0)
        rc =
            ks_batch_add(&b, (struct ks_stmt){
                                 .sql = "SELECT dkm_expect(max(version) = $1::integer, "
                                        "'the server list changed meanwhile; try again') "
                                        "FROM server_lists",
                                 .n = 1,
                                 .values = {cur_ver},
                             });
    if (rc == 0)
        rc = ks_batch_add(
            &b, (struct ks_stmt){
                    .sql = "INSERT INTO server_lists (version, body, signature, signer) "
                           "VALUES ($1::integer, $2, $3, $4)",
                    .n = 4,
                    .values = {ver, (const char *)list_rec,
                               (const char *)list_rec + list_len - DKM_SIG_SIZE,
                               (const char *)ctx->signer.id.bytes},
                    .lengths = {0, (int)(list_len - DKM_SIG_SIZE), DKM_SIG_SIZE,
                                DKM_NODE_ID_SIZE},
                });
    /* Its copies go in the same transaction: no key stays sealed to a TPM
     * that is no longer trusted. (A rotation racing with this waits for
     * the list lock and then fails its list check.) */
    if (rc == 0)
        rc = ks_batch_add(&b, (struct ks_stmt){
                                  .sql = "DELETE FROM key_copies WHERE server_id = $1",
                                  .n = 1,
                                  .values = {(const char *)id.bytes},
                                  .lengths = {DKM_NODE_ID_SIZE},
                              });
    if (rc == 0)
        rc = resign_removed(ctx, &id, &b, &resigned);
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=server.remove target=%s reason=%s",
                  hex, dkm_error_detail());
        ks_job_fail(job, 500, "internal error", "cannot prepare the new server list");
        goto done;
    }
    values[0] = (const char *)id.bytes;
    res = PQexecParams(ctx->conn, "SELECT count(*) FROM key_copies WHERE server_id = $1",
                       1, NULL, values, (int[]){DKM_NODE_ID_SIZE}, (int[]){1}, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        copies = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    rc = ks_db_write(ctx->conn, b.stmts, b.n);
    if (rc == -ESTALE) {
        ks_job_fail(job, 409, "conflict", "%s", dkm_error_detail());
        ks_audit(actor, "server.remove", hex, "denied", dkm_error_detail());
        job->wrote = true;
        goto done;
    }
    if (rc < 0) {
        log_event(DKM_LOG_ERR, "admin.failed action=server.remove target=%s reason=%s",
                  hex, dkm_error_detail());
        ks_job_fail(job, 503, "service unavailable", "cannot store the new server list");
        ks_audit(actor, "server.remove", hex, "error", dkm_error_detail());
        goto done;
    }
    job->wrote = true;
    job->status = 200;
    job->reply = json_pack("{s:s, s:I, s:I, s:I}", "node_id", hex, "list_version",
                           (json_int_t)next.list_version, "copies_deleted",
                           (json_int_t)copies, "resigned", (json_int_t)resigned);
    snprintf(detail, sizeof(detail),
             "server list v%u, %lld sealed copies deleted, %zu records signed again",
             next.list_version, copies, resigned);
    ks_audit(actor, "server.remove", hex, "ok", detail);
    log_event(DKM_LOG_NOTICE,
              "server.removed node=%s list_version=%u copies=%lld resigned=%zu", hex,
              next.list_version, copies, resigned);
done:
    ks_batch_clear(&b);
    ks_head_write_clear(&hw);
    free(list_rec);
}

void ks_servers_remove_handler(struct svc_req *r)
{
    ks_submit(r, remove_job);
}

void ks_servers_list_handler(struct svc_req *r)
{
    struct ks_snapshot *s = ks_snapshot_get();
    const struct dkm_node_id *self;
    char hex[DKM_NODE_ID_HEX_SIZE];
    json_t *arr, *o = NULL;

    if (s == NULL) {
        svc_reply_error(r, 503, "service unavailable",
                        "the key state is not loaded (no key-service identity)");
        return;
    }
    self = &dkm_delegated_key_info(s->deleg->dk)->server_id;
    arr = json_array();
    for (unsigned i = 0; arr != NULL && i < s->list.count; i++) {
        const struct dkm_server_entry *e = &s->list.entries[i];
        const struct ks_node *n = ks_snapshot_node(s, &e->node_id);
        json_t *x;

        dkm_node_id_hex(&e->node_id, hex);
        x = json_pack("{s:s, s:b}", "node_id", hex, "self",
                      dkm_node_id_equal(&e->node_id, self));
        if (x != NULL && n != NULL && n->hostname[0])
            json_object_set_new(x, "hostname", json_string(n->hostname));
        json_array_append_new(arr, x);
    }
    dkm_node_id_hex(&s->list.signer, hex);
    if (arr != NULL)
        o = json_pack("{s:I, s:I, s:s, s:o}", "list_version",
                      (json_int_t)s->list.list_version, "issued_at",
                      (json_int_t)s->list.issued_at, "signer", hex, "servers", arr);
    ks_snapshot_put(s);
    svc_reply_json(r, 200, o);
}
