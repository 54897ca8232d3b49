/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The upgrade to schema version 2: rows written by a dkmd of schema
 * version 1 (node entries without a serial or a signed hostname, grants
 * without a record) are signed once, by the first server of the new
 * version that starts. Only rows that verify as version 1 allowed are
 * signed (a node entry signed by a server on the list, a grant of a
 * verified node and group); the rest stay unsigned and are refused from
 * then on. It runs only while this server has no seen file and the
 * database has no state head and no row of schema version 2: once any of
 * these exists, a row without a record is one written past the servers
 * and is refused, never signed.
 *
 * Idempotent: the whole upgrade is one transaction that checks, under the
 * list lock, that no state head exists yet; a crash leaves nothing, a
 * second server starting at the same time finds the head and does
 * nothing.
 */
#include "upgrade.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkm/base/log.h"
#include "write.h"

struct signed_rows {
    struct ks_stmt *stmts;
    size_t n, cap;
    uint8_t **recs;
    size_t nrecs;
};

static int add_stmt(struct signed_rows *w, struct ks_stmt st)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct ks_stmt *v = realloc(w->stmts, cap * sizeof(*v));
        uint8_t **recs = realloc(w->recs, cap * sizeof(*recs));

        if (v != NULL)
            w->stmts = v;
        if (recs != NULL)
            w->recs = recs;
        if (v == NULL || recs == NULL)
            return -ENOMEM;
        w->cap = cap;
    }
    w->stmts[w->n++] = st;
    return 0;
}

static void rows_clear(struct signed_rows *w)
{
    for (size_t i = 0; i < w->nrecs; i++)
        free(w->recs[i]);
    free(w->recs);
    free(w->stmts);
}

/*
 * Whether the database is past the upgrade: it has a state head, or any
 * row of schema version 2 (a node entry of format 2, a grant with a
 * record). The head alone is not enough: a database writer can delete
 * it, and a server without a seen file (one that just joined, or lost
 * its state directory) would then sign the unsigned rows put in since.
 * To make a start sign again, the writer would have to turn every node
 * entry back into one signed before the upgrade.
 */
static bool upgraded(PGconn *conn, int *ret)
{
    PGresult *res = PQexec(conn, "SELECT EXISTS (SELECT 1 FROM state_head) OR "
                                 "EXISTS (SELECT 1 FROM nodes WHERE entry IS NOT NULL "
                                 "AND substring(entry FROM 5 FOR 2) <> '\\x0001') OR "
                                 "EXISTS (SELECT 1 FROM group_access WHERE record IS "
                                 "NOT NULL)");
    bool yes = false;

    *ret = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        *ret = dkm_error_set(DKM_E_DB, "looking for rows of schema version 2: %s",
                             PQresultErrorMessage(res));
    else
        yes = strcmp(PQgetvalue(res, 0, 0), "f") != 0;
    PQclear(res);
    return yes;
}

int ks_upgrade(struct ks_ctx *ctx, struct ks_loader *l, bool have_seen,
               struct ks_snapshot **ret_snap)
{
    struct ks_snapshot *s = NULL;
    struct signed_rows w = {0};
    struct dkm_state_head head = {.counter = 1, .issued_at = (uint64_t)time(NULL)};
    uint8_t *rec = NULL;
    size_t len = 0, nodes = 0, grants = 0;
    int r;

    *ret_snap = NULL;
    if (have_seen || upgraded(ctx->conn, &r))
        return 0;
    if (r < 0)
        return r;
    l->legacy = true;
    r = ks_snapshot_load(l, NULL, &s);
    l->legacy = false;
    if (r < 0)
        return r;
    r = add_stmt(&w, (struct ks_stmt){.sql = KS_LIST_LOCK_SQL});
    if (r == 0)
        r = add_stmt(&w, (struct ks_stmt){
                             .sql = "SELECT dkm_expect(NOT EXISTS (SELECT 1 FROM "
                                    "state_head), 'another server did the upgrade')",
                         });
    if (r == 0)
        r = dkm_state_head_sign(&head, &ctx->signer, &rec, &len);
    if (r == 0) {
        w.recs[w.nrecs++] = rec;
        r = add_stmt(
            &w,
            (struct ks_stmt){
                .sql = "INSERT INTO state_head (counter, body, signature, "
                       "signer) VALUES (1, $1, $2, $3)",
                .n = 3,
                .values = {(const char *)rec, (const char *)rec + len - DKM_SIG_SIZE,
                           (const char *)ctx->signer.id.bytes},
                .lengths = {(int)(len - DKM_SIG_SIZE), DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
            });
    }
    for (size_t i = 0; r == 0 && i < s->nnodes; i++) {
        struct dkm_node_entry e = s->nodes[i].entry;

        if (e.format >= DKM_NODE_ENTRY_VERSION)
            continue;
        e.serial = 1;
        snprintf(e.hostname, sizeof(e.hostname), "%.*s", DKM_NODE_HOSTNAME_MAX,
                 s->nodes[i].hostname);
        /* The row's revoked_at counts even where the entry said otherwise. */
        r = dkm_node_entry_sign(&e, &ctx->signer, &rec, &len);
        if (r < 0)
            break;
        w.recs[w.nrecs++] = rec;
        r = add_stmt(
            &w, (struct ks_stmt){
                    .sql = "UPDATE nodes SET entry = $2, signature = $3, "
                           "authorized_by = $4, hostname = NULLIF($5, '') WHERE "
                           "node_id = $1",
                    .n = 5,
                    .values = {(const char *)s->nodes[i].entry.node_id.bytes,
                               (const char *)rec, (const char *)rec + len - DKM_SIG_SIZE,
                               (const char *)ctx->signer.id.bytes, s->nodes[i].hostname},
                    .lengths = {DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE), DKM_SIG_SIZE,
                                DKM_NODE_ID_SIZE, 0},
                });
        nodes++;
    }
    for (size_t i = 0; r == 0 && i < s->ngroups; i++) {
        const struct ks_group *g = &s->groups[i];

        for (size_t j = 0; r == 0 && j < g->ngrants; j++) {
            struct dkm_grant gr = {.node_id = g->grants[j].node_id,
                                   .state = DKM_GRANT_GRANTED,
                                   .serial = 1,
                                   .at = head.issued_at};

            if (!g->grants[j].legacy || ks_snapshot_node(s, &gr.node_id) == NULL)
                continue;
            strcpy(gr.group, g->name);
            r = dkm_grant_sign(&gr, &ctx->signer, &rec, &len);
            if (r < 0)
                break;
            w.recs[w.nrecs++] = rec;
            r = add_stmt(
                &w,
                (struct ks_stmt){
                    .sql = "UPDATE group_access SET record = $3, signature = "
                           "$4, granted_by = $5 WHERE group_name = $1 AND "
                           "node_id = $2 AND record IS NULL",
                    .n = 5,
                    .values = {g->name, (const char *)g->grants[j].node_id.bytes,
                               (const char *)rec, (const char *)rec + len - DKM_SIG_SIZE,
                               (const char *)ctx->signer.id.bytes},
                    .lengths = {0, DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE),
                                DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
                });
            grants++;
        }
    }
    if (r == 0)
        r = ks_db_write(ctx->conn, w.stmts, w.n);
    if (r == -ESTALE) {
        log_event(DKM_LOG_INFO, "upgrade.skipped schema_version=2 reason=%s",
                  "another server did it");
        r = 0;
    } else if (r == 0) {
        log_event(DKM_LOG_NOTICE,
                  "upgrade.signed schema_version=2 nodes=%zu grants=%zu head=1", nodes,
                  grants);
    }
    rows_clear(&w);
    if (r < 0) {
        ks_snapshot_unref(s);
        return r;
    }
    *ret_snap = s;
    return 0;
}
