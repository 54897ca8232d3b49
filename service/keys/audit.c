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
/* Records per COPY; a single record goes by INSERT. */
#define AUDIT_BATCH 5000

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
    log_error("audit record lost: %s %s %s", action, target ? target : "", outcome);
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

/* Append s to the COPY text buffer, escaped; NULL is \N. */
static bool copy_field(char **buf, size_t *len, size_t *cap, const char *s, bool last)
{
    size_t need = (s != NULL ? 2 * strlen(s) : 2) + 2;

    if (*len + need > *cap) {
        size_t ncap = (*cap + need) * 2;
        char *n = realloc(*buf, ncap);

        if (n == NULL)
            return false;
        *buf = n;
        *cap = ncap;
    }
    if (s == NULL) {
        memcpy(*buf + *len, "\\N", 2);
        *len += 2;
    } else {
        for (; *s != '\0'; s++) {
            char e = *s == '\\'   ? '\\'
                     : *s == '\t' ? 't'
                     : *s == '\n' ? 'n'
                     : *s == '\r' ? 'r'
                                  : 0;

            if (e != 0) {
                (*buf)[(*len)++] = '\\';
                (*buf)[(*len)++] = e;
            } else {
                (*buf)[(*len)++] = *s;
            }
        }
    }
    (*buf)[(*len)++] = last ? '\n' : '\t';
    return true;
}

/*
 * n records from a in one COPY (the text format, fields escaped): a batch
 * costs one round trip and no statement parsing, so the writer keeps up
 * with thousands of fetches a second. Returns the result (the caller
 * clears it), or NULL when out of memory.
 */
static PGresult *copy_batch(PGconn *conn, struct audit_rec *a, size_t n)
{
    char *buf = NULL, *end_error = NULL;
    size_t len = 0, cap = 0;
    PGresult *res, *last = NULL;

    res = PQexec(conn,
                 "COPY audit_log (actor, action, target, outcome, detail) FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN)
        return res;
    PQclear(res);
    for (size_t i = 0; i < n && end_error == NULL; i++, a = a->next)
        for (int j = 0; j < 5; j++)
            if (!copy_field(&buf, &len, &cap, a->f[j], j == 4)) {
                end_error = "out of memory";
                break;
            }
    if (end_error == NULL && len > 0 && PQputCopyData(conn, buf, (int)len) != 1)
        end_error = "sending the audit batch failed";
    free(buf);
    (void)PQputCopyEnd(conn, end_error);
    /* The COPY's result, then the end of the command. */
    while ((res = PQgetResult(conn)) != NULL) {
        PQclear(last);
        last = res;
    }
    return last;
}

/*
 * Write up to AUDIT_BATCH queued records with one COPY (one record: an
 * INSERT). On failure the records stay queued; when the database refused
 * the batch itself (the connection is fine), the next tries go one record
 * at a time, and a single record the database refuses is dropped with a
 * log line, so one bad record cannot hold up the rest. Returns the number
 * written or dropped, 0 when the queue is empty, or a negative code.
 */
static int flush_once(PGconn *conn)
{
    static bool one_by_one;
    static const char insert[] = "INSERT INTO audit_log (actor, action, target, outcome, "
                                 "detail) VALUES ($1, $2, $3, $4, $5)";
    struct audit_rec *batch, *a;
    size_t n = 0, limit = one_by_one ? 1 : AUDIT_BATCH;
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
    if (n == 1)
        res = PQexecParams(conn, insert, 5, NULL, (const char *const *)batch->f, NULL,
                           NULL, 0);
    else
        res = copy_batch(conn, batch, n);
    if (res == NULL)
        return -ENOMEM;
    written = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!written) {
        r = dkm_error_set(DKM_E_DB, "audit write failed: %s", PQresultErrorMessage(res));
        if (PQstatus(conn) != CONNECTION_OK)
            goto done;
        if (n > 1) {
            one_by_one = true;
            goto done;
        }
        log_error("audit record dropped (%s %s): %s", batch->f[1],
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
            log_error("%s", dkm_error_detail());
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
