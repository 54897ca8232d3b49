/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue: records go to an in-memory queue from any thread; the
 * keeper writes them in batches, one multi-row INSERT each, on its own
 * connection, and drains the queue on shutdown. A record that cannot be
 * queued or written is logged, never dropped silently.
 */
#include "audit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/error.h"
#include "dkm/base/log.h"

#define AUDIT_QUEUE_MAX 100000
#define AUDIT_BATCH 200

struct audit_rec {
    char *f[5]; /* actor, action, target, outcome, detail */
    struct audit_rec *next;
};

static struct audit {
    atomic_bool on;
    pthread_mutex_t lock; /* the queue */
    struct audit_rec *head, *tail;
    size_t n;
    uint64_t dropped;
} A = {.lock = PTHREAD_MUTEX_INITIALIZER};

void ks_audit_enable(bool on)
{
    atomic_store(&A.on, on);
}

void ks_audit(const char *actor, const char *action, const char *target,
              const char *outcome, const char *detail)
{
    struct audit_rec *a;
    const char *v[5] = {actor, action, target, outcome, detail};

    if (!atomic_load(&A.on))
        return;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        goto fail;
    for (int i = 0; i < 5; i++) {
        if (v[i] == NULL)
            continue;
        a->f[i] = strndup(v[i], i == 4 ? 2000 : 200);
        if (a->f[i] == NULL)
            goto fail;
    }
    pthread_mutex_lock(&A.lock);
    if (A.n >= AUDIT_QUEUE_MAX) {
        A.dropped++;
        pthread_mutex_unlock(&A.lock);
        goto fail;
    }
    if (A.tail != NULL)
        A.tail->next = a;
    else
        A.head = a;
    A.tail = a;
    A.n++;
    pthread_mutex_unlock(&A.lock);
    return;
fail:
    log_event(DKM_LOG_ERR, "audit.lost action=%s target=%s outcome=%s", action,
              target ? target : "", outcome);
    if (a != NULL)
        for (int i = 0; i < 5; i++)
            free(a->f[i]);
    free(a);
}

static void audit_free_list(struct audit_rec *a)
{
    while (a != NULL) {
        struct audit_rec *next = a->next;

        for (int i = 0; i < 5; i++)
            free(a->f[i]);
        free(a);
        a = next;
    }
}

/*
 * Write up to AUDIT_BATCH queued records with one INSERT. On failure the
 * records stay queued; when the database refused the statement itself
 * (the connection is fine), the next tries go one record at a time, and a
 * single record the database refuses is dropped with a log line, so one
 * bad record cannot hold up the rest. Returns the number written or
 * dropped, 0 when the queue is empty, or a negative code.
 */
static int flush_once(PGconn *conn)
{
    static bool one_by_one;
    struct audit_rec *batch, *a;
    const char *values[AUDIT_BATCH * 5];
    char *sql = NULL;
    size_t n = 0, cap = 128 + AUDIT_BATCH * 40, len, limit = one_by_one ? 1 : AUDIT_BATCH;
    PGresult *res = NULL;
    bool written;
    int r = 0;

    pthread_mutex_lock(&A.lock);
    batch = A.head;
    for (a = batch; a != NULL && n < limit; a = a->next)
        n++;
    pthread_mutex_unlock(&A.lock);
    if (n == 0) {
        one_by_one = false;
        return 0;
    }
    sql = malloc(cap);
    if (sql == NULL)
        return -ENOMEM;
    len = (size_t)snprintf(sql, cap,
                           "INSERT INTO audit_log (actor, action, target, outcome, "
                           "detail) VALUES ");
    a = batch;
    for (size_t i = 0; i < n; i++, a = a->next) {
        len += (size_t)snprintf(sql + len, cap - len, "%s($%zu,$%zu,$%zu,$%zu,$%zu)",
                                i ? "," : "", 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4,
                                5 * i + 5);
        for (int j = 0; j < 5; j++)
            values[5 * i + (size_t)j] = a->f[j];
    }
    res = PQexecParams(conn, sql, (int)(5 * n), NULL, values, NULL, NULL, 0);
    written = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!written) {
        r = dkm_error_set(DKM_E_DB, "audit write failed: %s", PQresultErrorMessage(res));
        if (PQstatus(conn) != CONNECTION_OK)
            goto done;
        if (n > 1) {
            one_by_one = true;
            goto done;
        }
        log_event(DKM_LOG_ERR, "audit.dropped action=%s target=%s reason=%s", batch->f[1],
                  batch->f[2] ? batch->f[2] : "", dkm_error_detail());
        one_by_one = false;
    }
    /*
     * Only the writer removes from the head, so the n records from batch
     * are still ours; but what follows the last of them must be read under
     * the lock: a record queued while the INSERT ran hangs off its next.
     */
    {
        struct audit_rec *p = batch;

        pthread_mutex_lock(&A.lock);
        for (size_t i = 0; i + 1 < n; i++)
            p = p->next;
        A.head = p->next;
        if (A.head == NULL)
            A.tail = NULL;
        p->next = NULL;
        A.n -= n;
        pthread_mutex_unlock(&A.lock);
        audit_free_list(batch);
    }
    r = (int)n;
done:
    PQclear(res);
    free(sql);
    return r;
}

void ks_audit_flush(PGconn *conn, int rounds)
{
    int r;

    for (int i = 0; i < rounds; i++) {
        r = flush_once(conn);
        if (r == 0)
            return;
        if (r < 0 && (r == -ENOMEM || PQstatus(conn) != CONNECTION_OK)) {
            log_event(DKM_LOG_ERR, "audit.write_failed reason=%s", dkm_error_detail());
            return;
        }
    }
}

size_t ks_audit_pending(void)
{
    size_t n;

    pthread_mutex_lock(&A.lock);
    n = A.n;
    pthread_mutex_unlock(&A.lock);
    return n;
}

void ks_audit_discard(void)
{
    struct audit_rec *a;

    pthread_mutex_lock(&A.lock);
    a = A.head;
    A.head = A.tail = NULL;
    A.n = 0;
    pthread_mutex_unlock(&A.lock);
    audit_free_list(a);
}
