/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blocking write helper the keeper thread uses: every write is one
 * transaction that ends with NOTIFY dkm_changes, so other dkmd processes
 * reload exactly when the write becomes visible.
 *
 * Storage of signed records: a record is body || signature (64 bytes),
 * and body ends with the signer's node id. The tables keep body and
 * signature in their own columns (and the signer where the table has a
 * column for it), so the whole record is body || signature, byte-exact.
 */
#include "write.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "job.h"
#include "seen.h"
#include "state.h"

int ks_db_write(PGconn *conn, const struct ks_stmt *stmts, size_t n)
{
    return ks_db_write_checked(conn, NULL, NULL, stmts, n);
}

int ks_db_write_checked(PGconn *conn, int (*check)(PGconn *conn, void *arg), void *arg,
                        const struct ks_stmt *stmts, size_t n)
{
    PGresult *res = NULL;
    bool begun = false;
    int r = DKM_E_DB;

    res = PQexec(conn, "BEGIN");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = dkm_error_set(DKM_E_DB, "BEGIN failed: %s", PQerrorMessage(conn));
        goto done;
    }
    begun = true;
    if (check != NULL) {
        r = check(conn, arg);
        if (r < 0)
            goto done;
        r = DKM_E_DB;
    }
    for (size_t i = 0; i < n; i++) {
        int formats[8];

        for (int j = 0; j < stmts[i].n; j++)
            formats[j] = stmts[i].lengths[j] > 0;
        PQclear(res);
        res = PQexecParams(conn, stmts[i].sql, stmts[i].n, NULL, stmts[i].values,
                           stmts[i].lengths, formats, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK &&
            PQresultStatus(res) != PGRES_TUPLES_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            if (state != NULL && strcmp(state, "23505") == 0)
                r = dkm_error_set(-EEXIST, "already exists");
            else if (state != NULL && strcmp(state, "40001") == 0)
                r = dkm_error_set(-ESTALE, "%s",
                                  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
            else
                r = dkm_error_set(DKM_E_DB, "statement %zu failed: %s", i,
                                  PQresultErrorMessage(res));
            goto done;
        }
    }
    PQclear(res);
    res = PQexec(conn, "NOTIFY " SVC_CHANGES_CHANNEL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = dkm_error_set(DKM_E_DB, "NOTIFY failed: %s", PQerrorMessage(conn));
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = dkm_error_set(DKM_E_DB, "COMMIT failed: %s", PQerrorMessage(conn));
        goto done;
    }
    begun = false;
    r = 0;
done:
    PQclear(res);
    if (begun) {
        char detail[512];

        /* Keep the first error's detail: ROLLBACK must not overwrite it. */
        snprintf(detail, sizeof(detail), "%s", dkm_error_detail());
        PQclear(PQexec(conn, "ROLLBACK"));
        dkm_error_set(r, "%s", detail);
    }
    return r;
}

int ks_head_write(struct ks_ctx *ctx, struct ks_head_write *hw,
                  struct ks_stmt ret[KS_HEAD_STMTS])
{
    const struct ks_snapshot *s = ctx->snap;
    struct dkm_state_head h = {.issued_at = (uint64_t)time(NULL)};
    uint64_t top = s->head;
    int r;

    memset(hw, 0, sizeof(*hw));
    if (ctx->seen != NULL && ctx->seen->head > top)
        top = ctx->seen->head;
    if (s->head_raw > 0 && (uint64_t)s->head_raw > top)
        top = (uint64_t)s->head_raw;
    h.counter = top + 1;
    r = dkm_state_head_sign(&h, &ctx->signer, &hw->rec, &hw->len);
    if (r < 0)
        return r;
    snprintf(hw->counter, sizeof(hw->counter), "%llu", (unsigned long long)h.counter);
    snprintf(hw->expect, sizeof(hw->expect), "%lld",
             (long long)(s->head_raw < 0 ? 0 : s->head_raw));
    ret[0] = (struct ks_stmt){.sql = KS_LIST_LOCK_SQL};
    ret[1] = (struct ks_stmt){
        .sql = "SELECT dkm_expect(coalesce((SELECT counter FROM state_head), 0) = "
               "$1::bigint, 'the state changed meanwhile (a write by another server); "
               "try again')",
        .n = 1,
        .values = {hw->expect},
    };
    ret[2] = (struct ks_stmt){
        .sql = "INSERT INTO state_head (id, counter, body, signature, signer) VALUES "
               "(true, $1::bigint, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET counter = "
               "EXCLUDED.counter, body = EXCLUDED.body, signature = EXCLUDED.signature, "
               "signer = EXCLUDED.signer, updated_at = now()",
        .n = 4,
        .values = {hw->counter, (const char *)hw->rec,
                   (const char *)hw->rec + hw->len - DKM_SIG_SIZE,
                   (const char *)ctx->signer.id.bytes},
        .lengths = {0, (int)(hw->len - DKM_SIG_SIZE), DKM_SIG_SIZE, DKM_NODE_ID_SIZE},
    };
    return 0;
}

void ks_head_write_clear(struct ks_head_write *hw)
{
    free(hw->rec);
    memset(hw, 0, sizeof(*hw));
}

uint64_t ks_next_serial(const struct ks_ctx *ctx, uint8_t kind, const uint8_t *key,
                        uint64_t cur)
{
    uint64_t seen = ks_seen_get(ctx->seen, kind, key);

    return (seen > cur ? seen : cur) + 1;
}

int ks_batch_add(struct ks_batch *b, struct ks_stmt st)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        struct ks_stmt *v = realloc(b->stmts, cap * sizeof(*v));

        if (v == NULL)
            return -ENOMEM;
        b->stmts = v;
        b->cap = cap;
    }
    b->stmts[b->n++] = st;
    return 0;
}

int ks_batch_keep(struct ks_batch *b, void *p)
{
    if (b->nowned == b->owned_cap) {
        size_t cap = b->owned_cap ? 2 * b->owned_cap : 16;
        void **v = realloc(b->owned, cap * sizeof(*v));

        if (v == NULL) {
            free(p);
            return -ENOMEM;
        }
        b->owned = v;
        b->owned_cap = cap;
    }
    b->owned[b->nowned++] = p;
    return 0;
}

void ks_batch_clear(struct ks_batch *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->stmts);
    memset(b, 0, sizeof(*b));
}
