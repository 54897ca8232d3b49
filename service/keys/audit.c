/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue: records go to an in-memory queue from any thread; a
 * writer thread of its own, on a database connection of its own, writes
 * them in batches (one COPY each) and drains the queue on shutdown, so a
 * slow database never holds up the keeper's rotations and renewals. An
 * admin write's records go to the database on the keeper's connection
 * before its answer (ks_audit_hold). A record that cannot be queued or
 * written is logged, never dropped silently.
 */
#include "audit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkm/base/error.h"
#include "dkm/base/log.h"
#include "clock.h"
#include "migrate.h"

#define AUDIT_QUEUE_MAX 100000
/* Records per COPY; a single record goes by INSERT. */
#define AUDIT_BATCH 5000
/* After a batch, with few records left, the writer waits this long for
 * more, so that a steady trickle of fetches still goes in batches... */
#define AUDIT_GATHER_MS 100
/* ... unless this many are waiting already. */
#define AUDIT_GATHER_MIN 500
/* A lost connection is tried again this often. */
#define AUDIT_RECONNECT_MS 1000

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
    uint64_t queued, done; /* ever queued; ever written or dropped by the database */
    pthread_cond_t more;   /* a record queued, or stop */
    pthread_cond_t wrote;  /* done moved */
    /* The writer thread. */
    pthread_t thread;
    bool started, stop;
    char *conninfo;
} A = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .more = PTHREAD_COND_INITIALIZER,
       .wrote = PTHREAD_COND_INITIALIZER};

/* The records of the admin write this thread runs (ks_audit_hold). */
static _Thread_local struct {
    bool on;
    struct audit_rec *head, *tail;
} H;

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
    if (H.on) {
        if (H.tail != NULL)
            H.tail->next = a;
        else
            H.head = a;
        H.tail = a;
        return;
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
    A.queued++;
    pthread_cond_signal(&A.more);
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

/* One record, for a batch of one and an admin write's own records. */
static PGresult *insert_one(PGconn *conn, const struct audit_rec *a)
{
    return PQexecParams(conn,
                        "INSERT INTO audit_log (actor, action, target, outcome, detail) "
                        "VALUES ($1, $2, $3, $4, $5)",
                        5, NULL, (const char *const *)a->f, NULL, NULL, 0);
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
        res = insert_one(conn, batch);
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
        A.done += n;
        pthread_cond_broadcast(&A.wrote);
        pthread_mutex_unlock(&A.lock);
        audit_free_list(batch);
    }
    r = (int)n;
done:
    PQclear(res);
    return r;
}

/* Wait on cond for at most ms (A.lock held). */
static void timed_wait(pthread_cond_t *cond, unsigned ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(cond, &A.lock, &ts);
}

/* Sleep ms, or until stop is asked for. Records queued meanwhile do not
 * cut it short (they signal the same condition): that is the point of
 * gathering, and of waiting between connection attempts. */
static void pause_unless_stop(unsigned ms)
{
    uint64_t end = svc_mono_ms() + ms, now;

    pthread_mutex_lock(&A.lock);
    while (!A.stop && (now = svc_mono_ms()) < end)
        timed_wait(&A.more, (unsigned)(end - now));
    pthread_mutex_unlock(&A.lock);
}

static void *writer_main(void *arg)
{
    PGconn *conn = NULL;
    bool stopping = false, down = false;
    int tries_at_stop = 0;

    (void)arg;
    for (;;) {
        size_t n;
        int r;

        pthread_mutex_lock(&A.lock);
        while (A.n == 0 && !A.stop)
            timed_wait(&A.more, 1000);
        n = A.n;
        stopping = A.stop;
        pthread_mutex_unlock(&A.lock);
        if (n == 0)
            break; /* stopping, and nothing left */
        if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
            if (stopping && tries_at_stop++ > 0)
                break; /* one more try at stop, then what is left is counted */
            if (svc_db_connect_blocking(A.conninfo, &conn) < 0) {
                if (!down)
                    log_event(DKM_LOG_ERR, "audit.write_failed reason=%s",
                              dkm_error_detail());
                down = true;
                PQfinish(conn);
                conn = NULL;
                if (!stopping)
                    pause_unless_stop(AUDIT_RECONNECT_MS);
                continue;
            }
            down = false;
        }
        r = flush_once(conn);
        if (r < 0 && (r == -ENOMEM || PQstatus(conn) != CONNECTION_OK)) {
            log_event(DKM_LOG_ERR, "audit.write_failed reason=%s", dkm_error_detail());
            down = true;
            if (!stopping)
                pause_unless_stop(AUDIT_RECONNECT_MS);
            continue;
        }
        /* Gather only when the queue is short: behind, write on. */
        if (r >= 0 && !stopping && ks_audit_pending() < AUDIT_GATHER_MIN)
            pause_unless_stop(AUDIT_GATHER_MS);
    }
    if (ks_audit_pending() > 0)
        log_event(DKM_LOG_ERR, "audit.unwritten records=%zu", ks_audit_pending());
    PQfinish(conn);
    return NULL;
}

int ks_audit_start(const char *conninfo)
{
    sigset_t all, old;
    int r;

    A.conninfo = strdup(conninfo);
    if (A.conninfo == NULL)
        return dkm_error_set(-ENOMEM, "out of memory");
    A.stop = false;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = pthread_create(&A.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        free(A.conninfo);
        A.conninfo = NULL;
        return dkm_error_set(-r, "cannot start the audit writer thread");
    }
    A.started = true;
    return 0;
}

void ks_audit_stop(void)
{
    if (!A.started)
        return;
    pthread_mutex_lock(&A.lock);
    A.stop = true;
    pthread_cond_broadcast(&A.more);
    pthread_mutex_unlock(&A.lock);
    pthread_join(A.thread, NULL);
    A.started = false;
    free(A.conninfo);
    A.conninfo = NULL;
}

bool ks_audit_sync(unsigned timeout_ms)
{
    uint64_t end = svc_mono_ms() + timeout_ms, now, target;
    bool ok;

    pthread_mutex_lock(&A.lock);
    target = A.queued;
    while (A.done < target && A.started && (now = svc_mono_ms()) < end)
        timed_wait(&A.wrote, (unsigned)(end - now));
    ok = A.done >= target;
    pthread_mutex_unlock(&A.lock);
    return ok;
}

void ks_audit_hold(void)
{
    H.on = true;
}

void ks_audit_write_held(PGconn *conn)
{
    struct audit_rec *a;

    H.on = false;
    while ((a = H.head) != NULL) {
        PGresult *res = insert_one(conn, a);
        bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

        if (!ok && PQstatus(conn) == CONNECTION_OK) {
            /* Refused by the database itself: retrying cannot help. */
            log_event(DKM_LOG_ERR, "audit.dropped action=%s target=%s reason=%s", a->f[1],
                      a->f[2] ? a->f[2] : "",
                      res ? PQresultErrorMessage(res) : "no memory");
            ok = true;
        }
        PQclear(res);
        if (!ok)
            break;
        H.head = a->next;
        a->next = NULL;
        audit_free_list(a);
    }
    if (H.head == NULL) {
        H.tail = NULL;
        return;
    }
    /* The connection is gone: the rest waits in the queue. */
    log_event(DKM_LOG_WARNING, "audit.deferred action=%s target=%s", H.head->f[1],
              H.head->f[2] ? H.head->f[2] : "");
    pthread_mutex_lock(&A.lock);
    for (a = H.head; a != NULL; a = a->next) {
        A.n++;
        A.queued++;
    }
    pthread_cond_signal(&A.more);
    if (A.tail != NULL)
        A.tail->next = H.head;
    else
        A.head = H.head;
    A.tail = H.tail;
    pthread_mutex_unlock(&A.lock);
    H.head = H.tail = NULL;
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
    A.done = A.queued;
    pthread_mutex_unlock(&A.lock);
    audit_free_list(a);
}
