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
#include <string.h>

#include "db.h"

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
