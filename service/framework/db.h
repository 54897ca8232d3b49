/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The non-blocking PostgreSQL pool of a worker (db.c): prepared
 * statements, transactions, LISTEN for changes, reconnects with backoff.
 */
#ifndef DKM_SVC_DB_H
#define DKM_SVC_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "dkm/base/error.h"

struct event_base;
struct svc_metric;

/* The channel on which writers announce changes (NOTIFY dkm_changes). */
#define SVC_CHANGES_CHANNEL "dkm_changes"

/*
 * Prepared statements, by name. Each connection prepares all of them
 * after it connects. To add one: a new enum value and a row in db.c's
 * table, in the same order.
 */
enum svc_stmt {
    SVC_STMT_SCHEMA_VERSION, /* () -> max applied migration */
    SVC_STMT_PING,           /* () -> 1 */
    SVC_STMT_AUDIT_INSERT,   /* (actor, action, target, outcome, detail) */
    SVC_STMT_NOTIFY_CHANGE,  /* (payload): NOTIFY dkm_changes, delivered on commit */
    SVC_STMT_COUNT,
};

struct svc_db;

/* At most this many statements in one transaction. */
#define SVC_DB_TX_MAX_STEPS 16

/* One statement of a transaction, with text parameters unless formats says 1. */
struct svc_db_step {
    enum svc_stmt stmt;
    int nparams;
    const char *const *values; /* NULL value = SQL NULL */
    const int *lengths;        /* binary parameters only; may be NULL */
    const int *formats;        /* NULL: all text */
};

/*
 * Called exactly once per query or transaction, on the loop thread. On
 * success r == 0 and results[i] is step i's result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; bytea columns come back as text, "\x..." hex), owned
 * by the pool and valid during the call; n is the number of steps. On
 * failure results is NULL, n is 0 and r is DKM_E_UNAVAILABLE (no
 * connection, connection lost, queue full, timeout, shutting down) or
 * DKM_E_DB (a statement failed; dkm_error_detail() says which and why,
 * sqlstate is its SQLSTATE such as "23505" for a unique violation).
 */
typedef void svc_db_result_fn(void *arg, PGresult *const *results, size_t n, int r,
                              const char *sqlstate);

/*
 * Invoked for each NOTIFY on the changes channel; payload NULL after a
 * (re)connect of the LISTEN connection: anything may have changed.
 */
typedef void svc_db_notify_fn(void *arg, const char *channel, const char *payload);

struct svc_db_options {
    const char *conninfo;
    unsigned pool_size;
    unsigned connect_timeout;
    unsigned query_timeout;
    unsigned reconnect_max_ms;
    unsigned queue_max;
    unsigned probe_ms;                /* keepalive query on idle connections; 0: 30 s */
    struct svc_metric *query_latency; /* may be NULL */
    svc_db_notify_fn *notify;         /* non-NULL: also keep a LISTEN connection */
    void *notify_arg;
    /* Called when a connection is back after a failure (may be NULL). */
    void (*back)(void *arg);
    /* Called once, when the pool's first connection is ready (may be NULL). */
    void (*up)(void *arg);
    void *back_arg; /* the argument of back and up */
};

DKM_MUSTCHECK int svc_db_new(struct event_base *base, const struct svc_db_options *opt,
                             struct svc_db **ret);
/* Fails every pending query with DKM_E_UNAVAILABLE and closes the pool. */
void svc_db_free(struct svc_db *db);
/* Whether at least one pool connection is connected and prepared. */
bool svc_db_up(const struct svc_db *db);

/*
 * Reconnect every connection that is waiting for its backoff now: the
 * database is known to be back (another pool got through), so waiting
 * further would only prolong 503s.
 */
void svc_db_retry_now(struct svc_db *db);

/*
 * Queue one prepared statement (autocommit). Returns 0 (cb will be called
 * exactly once, never from inside this call) or DKM_E_UNAVAILABLE at once
 * when no connection is up or the queue is full (cb not called), or
 * -EINVAL for a parameter count that does not match the statement.
 */
DKM_MUSTCHECK int svc_db_query(struct svc_db *db, enum svc_stmt stmt, int nparams,
                               const char *const *values, const int *lengths,
                               const int *formats, svc_db_result_fn *cb, void *arg);

/*
 * Queue a transaction: BEGIN, the steps in order on one connection,
 * COMMIT. Either all steps take effect or none: a failing step rolls the
 * transaction back, and a connection lost midway leaves nothing behind
 * (the server rolls back). Same return and callback rules as
 * svc_db_query. Every write of the service goes through here or through a
 * single statement.
 */
DKM_MUSTCHECK int svc_db_transaction(struct svc_db *db, const struct svc_db_step *steps,
                                     size_t nsteps, svc_db_result_fn *cb, void *arg);

#endif
