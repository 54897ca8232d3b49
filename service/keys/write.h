/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service's writes (write.c): blocking transactions on the
 * keeper's connection that end with NOTIFY dkm_changes, the lock that
 * orders every write sealing keys to the servers of a list or changing
 * an access-deciding record, and the state head that such writes move on.
 */
#ifndef DKM_KS_WRITE_H
#define DKM_KS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "dkm/base/error.h"

struct ks_ctx;

/*
 * Run a write transaction on a blocking connection: BEGIN, each statement
 * (binary parameters where lengths[i] > 0, text otherwise), NOTIFY
 * dkm_changes, COMMIT. On any failure the transaction is rolled back and
 * DKM_E_DB (or -EEXIST for a unique violation, -ESTALE for a failed
 * dkm_expect() check: the state changed meanwhile) is returned with a
 * detail.
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

/*
 * A write of many statements built at run time: the statements, and the
 * buffers they point into, freed together by ks_batch_clear.
 */
struct ks_batch {
    struct ks_stmt *stmts;
    size_t n, cap;
    void **owned;
    size_t nowned, owned_cap;
};
DKM_MUSTCHECK int ks_batch_add(struct ks_batch *b, struct ks_stmt st);
/* Keep p (malloc'd) until ks_batch_clear; on failure p is freed. */
DKM_MUSTCHECK int ks_batch_keep(struct ks_batch *b, void *p);
void ks_batch_clear(struct ks_batch *b);

/*
 * The next state head for a write of an access-deciding record (node
 * entry, grant, policy, server list): signed with ctx's key, its counter
 * one above the highest this server knows, and the statements that store
 * it (the list lock, the check that the database's head is still the one
 * ctx's snapshot loaded, the upsert). Put them before the write's own
 * statements; free with ks_head_write_clear.
 */
#define KS_HEAD_STMTS 3
struct ks_head_write {
    uint8_t *rec;
    size_t len;
    char counter[24];
    char expect[24];
};
DKM_MUSTCHECK int ks_head_write(struct ks_ctx *ctx, struct ks_head_write *hw,
                                struct ks_stmt ret[KS_HEAD_STMTS]);
void ks_head_write_clear(struct ks_head_write *hw);

/*
 * The serial for the next record of a key (seen.h kind and key) whose
 * current accepted record has serial cur (0: none): one above both cur
 * and the highest serial this server has seen for the key, so that no
 * server that saw an earlier record takes the new one for a rollback.
 */
uint64_t ks_next_serial(const struct ks_ctx *ctx, uint8_t kind, const uint8_t *key,
                        uint64_t cur);

#endif
