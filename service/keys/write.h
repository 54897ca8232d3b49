/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service's writes (write.c): blocking transactions on the
 * keeper's connection that end with NOTIFY dkm_changes, and the lock
 * that orders every write sealing keys to the servers of a list.
 */
#ifndef DKM_KS_WRITE_H
#define DKM_KS_WRITE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "dkm/base/error.h"

/*
 * Run a write transaction on a blocking connection: BEGIN, each statement
 * (binary parameters where lengths[i] > 0, text otherwise), NOTIFY
 * dkm_changes, COMMIT. On any failure the transaction is rolled back and
 * DKM_E_DB (or -EEXIST for a unique violation) is returned with a detail.
 */
struct ks_stmt {
    const char *sql;
    int n;
    const char *values[8];
    int lengths[8]; /* > 0: binary parameter of that length */
};
DKM_MUSTCHECK int ks_db_write(PGconn *conn, const struct ks_stmt *stmts, size_t n);

/*
 * ks_db_write with a check run right after BEGIN (may be NULL): when it
 * returns < 0 the transaction is rolled back and that code is returned.
 */
DKM_MUSTCHECK int ks_db_write_checked(PGconn *conn, int (*check)(PGconn *conn, void *arg),
                                      void *arg, const struct ks_stmt *stmts, size_t n);

/*
 * Every write that seals keys to the servers of the snapshot's list, or
 * changes the list, runs these first (in its own transaction): the lock
 * orders it against the others, the check ($1: the snapshot's list
 * version) fails it when the list changed since the snapshot was loaded.
 */
#define KS_LIST_LOCK_KEY "7235997538693903476" /* "dkmlistt" */
#define KS_LIST_LOCK_SQL "SELECT pg_advisory_xact_lock(" KS_LIST_LOCK_KEY ")"
#define KS_LIST_CHECK_SQL                                                                \
    "SELECT CASE WHEN max(version) = $1::integer THEN 0 ELSE ('the authorized server "   \
    "list changed (v' || max(version) || ' in the database, v' || $1 || ' loaded); "     \
    "retry after the reload')::integer END FROM server_lists"

#endif
