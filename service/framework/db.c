/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The database pool of one worker thread: a few non-blocking libpq
 * connections driven by the worker's event loop, a bounded queue of
 * prepared-statement queries, and optionally one LISTEN connection that
 * reports NOTIFY on the changes channel.
 *
 * Nothing here ever blocks the loop: connections are made with
 * PQconnectStart/PQconnectPoll, queries sent with PQsendQueryPrepared and
 * read with PQconsumeInput/PQisBusy/PQgetResult when PQsocket is readable.
 * When the database goes away, queries in flight fail, new queries fail
 * at once (the caller answers 503 without waiting), and each connection
 * reconnects on its own with exponential backoff and jitter. A query in
 * flight is never retried: it may have run, and only the caller knows
 * whether running it twice is harmless.
 *
 * Failure callbacks are delivered from a deferred event, never from inside
 * svc_db_query(), so a handler never sees its callback before the call
 * that queued it has returned.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "db.h"
#include "metrics.h"

#define BACKOFF_MIN_MS 100
/*
 * An idle connection is probed this often, so that one that died silently
 * (a network partition sends no reset) is noticed and replaced before a
 * request needs it, and the LISTEN connection never misses changes for
 * long without knowing.
 */
#define PROBE_MS 30000 /* default of svc_db_options.probe_ms */

struct stmt_def {
    const char *name;
    const char *sql;
    int nparams;
};

/*
 * Queries are transactions of one or more steps; a single query is one
 * step without BEGIN/COMMIT around it.
 */
enum tx_phase {
    PHASE_BEGIN,
    PHASE_STEP,
    PHASE_COMMIT,
    PHASE_ROLLBACK,
};

/* In the order of enum svc_stmt. */
static const struct stmt_def stmts[SVC_STMT_COUNT] = {
    [SVC_STMT_SCHEMA_VERSION] =
        {"schema_version", "SELECT coalesce(max(version), 0) FROM schema_migrations", 0},
    [SVC_STMT_PING] = {"ping", "SELECT 1", 0},
    [SVC_STMT_AUDIT_INSERT] =
        {"audit_insert",
         "INSERT INTO audit_log (actor, action, target, outcome, detail)"
         " VALUES ($1, $2, $3, $4, $5)",
         5},
    /* pg_notify inside a transaction is sent at COMMIT, and not at all on rollback. */
    [SVC_STMT_NOTIFY_CHANGE] = {"notify_change",
                                "SELECT pg_notify('" SVC_CHANGES_CHANNEL "', $1)", 1},
};

enum conn_state {
    CONN_DOWN,       /* waiting for the reconnect timer */
    CONN_CONNECTING, /* PQconnectPoll in progress */
    CONN_PREPARING,  /* sending PQsendPrepare for each statement */
    CONN_LISTENING,  /* LISTEN sent, waiting for its result */
    CONN_IDLE,
    CONN_BUSY,
    CONN_PROBING, /* idle, checking that the server still answers */
};

struct step {
    enum svc_stmt stmt;
    int nparams;
    char **values;
    int *lengths;
    int *formats;
};

struct pending {
    struct step *steps;
    size_t nsteps;
    bool tx;
    enum tx_phase phase;
    size_t cur;         /* step being run */
    PGresult **results; /* one per step */
    int err;            /* first failure, delivered after ROLLBACK */
    char sqlstate[6];
    svc_db_result_fn *cb;
    void *arg;
    struct timespec sent;
    struct pending *next;
};

struct db_conn {
    struct svc_db *db;
    unsigned index;
    bool listen;
    enum conn_state state;
    PGconn *pg;
    int fd;
    struct event *io;
    struct event *timer;
    unsigned backoff_ms;
    int prep_next;
    struct pending *cur;
    PGresult *result;
    bool ever_up;
};

struct svc_db {
    struct event_base *base;
    struct svc_db_options opt;
    char *conninfo;
    struct db_conn *conns;
    unsigned nconns;
    struct pending *head, *tail;
    unsigned queued;
    struct pending *failed; /* callbacks to run from kick_cb */
    struct event *kick;
    bool was_up; /* opt.up has been called */
};

static void io_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void kick_cb(evutil_socket_t fd, short what, void *arg);

static void pending_free(struct pending *p)
{
    if (p == NULL)
        return;
    for (size_t k = 0; p->steps != NULL && k < p->nsteps; k++) {
        struct step *st = &p->steps[k];
        for (int i = 0; st->values != NULL && i < st->nparams; i++)
            free(st->values[i]);
        free(st->values);
        free(st->lengths);
        free(st->formats);
    }
    for (size_t k = 0; p->results != NULL && k < p->nsteps; k++)
        PQclear(p->results[k]);
    free(p->results);
    free(p->steps);
    free(p);
}

/* Call back with a failure; the pending is freed by the caller. */
static void call_failed(struct pending *p, int r)
{
    p->cb(p->arg, NULL, 0, r, p->sqlstate[0] ? p->sqlstate : NULL);
}

static double elapsed_s(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) +
           (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void arm_timer(struct db_conn *c, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    evtimer_add(c->timer, &tv);
}

/* (Re)point the io event at the connection's socket for these events. */
static int watch(struct db_conn *c, short what)
{
    int fd = PQsocket(c->pg);

    if (fd < 0)
        return -EBADF;
    event_del(c->io);
    if (event_assign(c->io, c->db->base, fd, what | EV_PERSIST, io_cb, c) < 0)
        return -ENOMEM;
    c->fd = fd;
    return event_add(c->io, NULL) < 0 ? -ENOMEM : 0;
}

static void fail_later(struct svc_db *db, struct pending *p)
{
    p->next = db->failed;
    db->failed = p;
    event_active(db->kick, EV_TIMEOUT, 0);
}

bool svc_db_up(const struct svc_db *db)
{
    for (unsigned i = 0; i < db->nconns; i++)
        if (!db->conns[i].listen &&
            (db->conns[i].state == CONN_IDLE || db->conns[i].state == CONN_BUSY ||
             db->conns[i].state == CONN_PROBING))
            return true;
    return false;
}

static void conn_close(struct db_conn *c)
{
    event_del(c->io);
    evtimer_del(c->timer);
    PQclear(c->result);
    c->result = NULL;
    PQfinish(c->pg);
    c->pg = NULL;
    c->fd = -1;
}

static void schedule_reconnect(struct db_conn *c)
{
    unsigned ms = c->backoff_ms, jitter;

    c->state = CONN_DOWN;
    /* Jitter keeps several dkmd from reconnecting in lockstep after an outage. */
    jitter = ms / 4 ? (unsigned)random() % (ms / 4) : 0;
    arm_timer(c, ms + jitter);
    c->backoff_ms =
        ms * 2 > c->db->opt.reconnect_max_ms ? c->db->opt.reconnect_max_ms : ms * 2;
}

/* The connection is unusable: close it, fail what depended on it, retry later. */
static void conn_fail(struct db_conn *c, const char *why)
{
    struct svc_db *db = c->db;
    bool was_up =
        c->state == CONN_IDLE || c->state == CONN_BUSY || c->state == CONN_PROBING;

    /* Once per outage, not once per reconnect attempt. */
    if (was_up)
        log_event(DKM_LOG_WARNING, "db.connection_down conn=%u role=%s reason=%s",
                  c->index, c->listen ? "listen" : "pool", why);
    else
        log_event(DKM_LOG_DEBUG, "db.connect_failed conn=%u role=%s reason=%s", c->index,
                  c->listen ? "listen" : "pool", why);
    conn_close(c);
    if (c->cur != NULL) {
        fail_later(db, c->cur);
        c->cur = NULL;
    }
    schedule_reconnect(c);
    if (!svc_db_up(db)) {
        /* Nobody left to run the queue: fail it now rather than let it wait. */
        while (db->head != NULL) {
            struct pending *p = db->head;
            db->head = p->next;
            fail_later(db, p);
        }
        db->tail = NULL;
        db->queued = 0;
    }
}

static void conn_start(struct db_conn *c)
{
    /*
     * The conninfo may be key=value or a URI; expand_dbname accepts both.
     * The fallback name shows which connection is which in pg_stat_activity
     * unless the operator set application_name.
     */
    const char *const keys[] = {"dbname", "fallback_application_name", NULL};
    const char *const values[] = {c->db->conninfo, c->listen ? "dkmd-listen" : "dkmd",
                                  NULL};

    c->pg = PQconnectStartParams(keys, values, /* expand_dbname= */ 1);
    if (c->pg == NULL) {
        conn_fail(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_CONNECTING;
    if (watch(c, EV_WRITE) < 0) {
        conn_fail(c, "cannot watch the connection's socket");
        return;
    }
    arm_timer(c, c->db->opt.connect_timeout * 1000);
}

/* Send what libpq has buffered; watch for writability while some is left. */
static int flush(struct db_conn *c)
{
    int r = PQflush(c->pg);

    if (r < 0)
        return -EIO;
    return watch(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void send_next_prepare(struct db_conn *c)
{
    const struct stmt_def *s = &stmts[c->prep_next];

    if (!PQsendPrepare(c->pg, s->name, s->sql, s->nparams, NULL) || flush(c) < 0)
        conn_fail(c, PQerrorMessage(c->pg));
}

static void dispatch(struct svc_db *db);

static void connected(struct db_conn *c)
{
    evtimer_del(c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_fail(c, "cannot make the connection non-blocking");
        return;
    }
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->listen) {
        c->state = CONN_LISTENING;
        if (!PQsendQuery(c->pg, "LISTEN " SVC_CHANGES_CHANNEL) || flush(c) < 0)
            conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_PREPARING;
    c->prep_next = 0;
    send_next_prepare(c);
}

static int send_step(struct db_conn *c)
{
    struct pending *p = c->cur;
    const struct step *st;

    switch (p->phase) {
    case PHASE_BEGIN:
        return PQsendQuery(c->pg, "BEGIN") ? flush(c) : -EIO;
    case PHASE_COMMIT:
        return PQsendQuery(c->pg, "COMMIT") ? flush(c) : -EIO;
    case PHASE_ROLLBACK:
        return PQsendQuery(c->pg, "ROLLBACK") ? flush(c) : -EIO;
    case PHASE_STEP:
        break;
    }
    st = &p->steps[p->cur];
    if (!PQsendQueryPrepared(c->pg, stmts[st->stmt].name, st->nparams,
                             (const char *const *)st->values, st->lengths, st->formats,
                             /* resultFormat= */ 0))
        return -EIO;
    return flush(c);
}

/* The query or transaction is over: tell the caller, free it, go idle. */
static void finish(struct db_conn *c, int r)
{
    struct svc_db *db = c->db;
    struct pending *p = c->cur;

    c->cur = NULL;
    c->state = CONN_IDLE;
    arm_timer(c, c->db->opt.probe_ms);
    svc_metric_observe(db->opt.query_latency,
                       p->tx ? "transaction" : stmts[p->steps[0].stmt].name,
                       elapsed_s(&p->sent));
    if (r == 0)
        p->cb(p->arg, p->results, p->nsteps, 0, NULL);
    else
        call_failed(p, r);
    pending_free(p);
}

static void step_failed(struct db_conn *c, PGresult *res, const char *what)
{
    struct pending *p = c->cur;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state != NULL)
        snprintf(p->sqlstate, sizeof(p->sqlstate), "%s", state);
    p->err = dkm_error_set(DKM_E_DB, "%s failed: %s", what,
                           res ? PQresultErrorMessage(res) : "no result");
    log_event(DKM_LOG_WARNING, "db.query_failed conn=%u what=%s sqlstate=%s reason=%s",
              c->index, what, p->sqlstate, res ? PQresultErrorMessage(res) : "no result");
}

/* One command of the current query or transaction has all its results. */
static void advance(struct db_conn *c)
{
    struct pending *p = c->cur;
    PGresult *res = c->result;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;

    c->result = NULL;
    switch (p->phase) {
    case PHASE_BEGIN:
        if (!ok) {
            step_failed(c, res, "BEGIN");
            PQclear(res);
            finish(c, p->err);
            return;
        }
        PQclear(res);
        p->phase = PHASE_STEP;
        break;
    case PHASE_STEP:
        if (!ok) {
            step_failed(c, res, stmts[p->steps[p->cur].stmt].name);
            PQclear(res);
            if (!p->tx) {
                finish(c, p->err);
                return;
            }
            p->phase = PHASE_ROLLBACK;
            break;
        }
        p->results[p->cur++] = res;
        if (p->cur < p->nsteps)
            break;
        if (!p->tx) {
            finish(c, 0);
            return;
        }
        p->phase = PHASE_COMMIT;
        break;
    case PHASE_COMMIT:
        /* A failed COMMIT (deferred constraint, serialization) has rolled back. */
        if (!ok)
            step_failed(c, res, "COMMIT");
        PQclear(res);
        finish(c, ok ? 0 : p->err);
        return;
    case PHASE_ROLLBACK:
        PQclear(res);
        if (!ok) {
            /* A connection in an unknown transaction state is not reused. */
            conn_fail(c, "ROLLBACK failed");
            return;
        }
        finish(c, p->err);
        return;
    }
    if (send_step(c) < 0)
        conn_fail(c, PQerrorMessage(c->pg));
}

/* A command finished (its results were all read). */
static void complete(struct db_conn *c)
{
    ExecStatusType st = c->result ? PQresultStatus(c->result) : PGRES_FATAL_ERROR;

    switch (c->state) {
    case CONN_PREPARING:
        if (st != PGRES_COMMAND_OK) {
            char why[512];
            snprintf(why, sizeof(why), "preparing statement %s failed: %s",
                     stmts[c->prep_next].name,
                     c->result ? PQresultErrorMessage(c->result) : "no result");
            conn_fail(c, why);
            return;
        }
        PQclear(c->result);
        c->result = NULL;
        if (++c->prep_next < SVC_STMT_COUNT) {
            send_next_prepare(c);
            return;
        }
        c->state = CONN_IDLE;
        arm_timer(c, c->db->opt.probe_ms);
        if (!c->ever_up)
            log_event(DKM_LOG_DEBUG, "db.connection_ready conn=%u role=%s", c->index,
                      c->listen ? "listen" : "pool");
        else
            log_event(DKM_LOG_NOTICE, "db.connection_back conn=%u role=%s", c->index,
                      c->listen ? "listen" : "pool");
        if (c->ever_up && c->db->opt.back != NULL)
            c->db->opt.back(c->db->opt.back_arg);
        c->ever_up = true;
        if (!c->db->was_up) {
            c->db->was_up = true;
            if (c->db->opt.up != NULL)
                c->db->opt.up(c->db->opt.back_arg);
        }
        dispatch(c->db);
        return;
    case CONN_LISTENING:
        PQclear(c->result);
        c->result = NULL;
        if (st != PGRES_COMMAND_OK) {
            conn_fail(c, "LISTEN failed");
            return;
        }
        c->state = CONN_IDLE;
        arm_timer(c, c->db->opt.probe_ms);
        c->ever_up = true;
        /* Whatever was announced while we were away is lost: resync. */
        c->db->opt.notify(c->db->opt.notify_arg, SVC_CHANGES_CHANNEL, NULL);
        return;
    case CONN_BUSY:
        advance(c);
        if (c->state == CONN_IDLE)
            dispatch(c->db);
        return;
    case CONN_PROBING:
        PQclear(c->result);
        c->result = NULL;
        if (st != PGRES_TUPLES_OK) {
            conn_fail(c, "the keepalive query failed");
            return;
        }
        c->state = CONN_IDLE;
        arm_timer(c, c->db->opt.probe_ms);
        if (!c->listen)
            dispatch(c->db);
        return;
    default:
        PQclear(c->result);
        c->result = NULL;
        return;
    }
}

static void read_results(struct db_conn *c)
{
    for (;;) {
        PGresult *res;

        if (PQisBusy(c->pg))
            return;
        res = PQgetResult(c->pg);
        if (res == NULL) {
            complete(c);
            return;
        }
        /* One statement, one result: keep the first, drop any other. */
        if (c->result == NULL)
            c->result = res;
        else
            PQclear(res);
    }
}

static void drain_notifies(struct db_conn *c)
{
    PGnotify *n;

    while ((n = PQnotifies(c->pg)) != NULL) {
        if (c->listen && c->db->opt.notify != NULL)
            c->db->opt.notify(c->db->opt.notify_arg, n->relname, n->extra);
        PQfreemem(n);
    }
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    (void)fd;

    if (c->state == CONN_CONNECTING) {
        switch (PQconnectPoll(c->pg)) {
        case PGRES_POLLING_OK:
            connected(c);
            return;
        case PGRES_POLLING_READING:
            if (watch(c, EV_READ) < 0)
                conn_fail(c, "cannot watch the connection's socket");
            return;
        case PGRES_POLLING_WRITING:
            if (watch(c, EV_WRITE) < 0)
                conn_fail(c, "cannot watch the connection's socket");
            return;
        default:
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
    }
    if (c->pg == NULL)
        return;
    if ((what & EV_WRITE) && flush(c) < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    if (!(what & EV_READ))
        return;
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    drain_notifies(c);
    if (c->state == CONN_IDLE) {
        /* Nothing is expected: input here is the server saying goodbye. */
        if (PQstatus(c->pg) == CONNECTION_BAD)
            conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    read_results(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    (void)fd;
    (void)what;

    switch (c->state) {
    case CONN_DOWN:
        conn_start(c);
        return;
    case CONN_BUSY:
        conn_fail(c, "query timed out");
        return;
    case CONN_PROBING:
        conn_fail(c, "the keepalive query timed out");
        return;
    case CONN_IDLE:
        c->state = CONN_PROBING;
        if (!PQsendQuery(c->pg, "SELECT 1") || flush(c) < 0) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        arm_timer(c, c->db->opt.query_timeout * 1000);
        return;
    default:
        conn_fail(c, "connecting timed out");
        return;
    }
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_db *db = arg;
    struct pending *list = db->failed, *next;
    (void)fd;
    (void)what;

    db->failed = NULL;
    for (struct pending *p = list; p != NULL; p = next) {
        next = p->next;
        dkm_error_set(DKM_E_UNAVAILABLE, "the database is unavailable");
        p->sqlstate[0] = '\0';
        call_failed(p, DKM_E_UNAVAILABLE);
        pending_free(p);
    }
    dispatch(db);
}

void svc_db_retry_now(struct svc_db *db)
{
    for (unsigned i = 0; i < db->nconns; i++) {
        struct db_conn *c = &db->conns[i];
        if (c->state == CONN_DOWN) {
            c->backoff_ms = BACKOFF_MIN_MS;
            arm_timer(c, 0);
        }
    }
}

static struct db_conn *idle_conn(struct svc_db *db)
{
    for (unsigned i = 0; i < db->nconns; i++)
        if (!db->conns[i].listen && db->conns[i].state == CONN_IDLE)
            return &db->conns[i];
    return NULL;
}

static void dispatch(struct svc_db *db)
{
    struct db_conn *c;

    while (db->head != NULL && (c = idle_conn(db)) != NULL) {
        struct pending *p = db->head;

        db->head = p->next;
        if (db->head == NULL)
            db->tail = NULL;
        db->queued--;
        p->next = NULL;
        c->cur = p;
        c->state = CONN_BUSY;
        clock_gettime(CLOCK_MONOTONIC, &p->sent);
        if (send_step(c) < 0) {
            conn_fail(c, PQerrorMessage(c->pg));
            continue;
        }
        arm_timer(c, db->opt.query_timeout * 1000);
    }
}

static int copy_step(struct step *dst, const struct svc_db_step *src)
{
    int n = src->nparams;

    if ((unsigned)src->stmt >= SVC_STMT_COUNT || n < 0 || n != stmts[src->stmt].nparams ||
        (n > 0 && src->values == NULL))
        return dkm_error_set(-EINVAL, "bad parameters for statement %s",
                             (unsigned)src->stmt < SVC_STMT_COUNT ? stmts[src->stmt].name
                                                                  : "(unknown)");
    dst->stmt = src->stmt;
    dst->nparams = n;
    if (n <= 0)
        return 0;
    dst->values = calloc((size_t)n, sizeof(char *));
    dst->lengths = calloc((size_t)n, sizeof(int));
    dst->formats = calloc((size_t)n, sizeof(int));
    if (dst->values == NULL || dst->lengths == NULL || dst->formats == NULL)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        bool binary = src->formats != NULL && src->formats[i] == 1;
        size_t len;
        if (src->values[i] == NULL)
            continue;
        if (binary && (src->lengths == NULL || src->lengths[i] < 0))
            return dkm_error_set(-EINVAL, "binary parameter without a length");
        len = binary ? (size_t)src->lengths[i] : strlen(src->values[i]);
        dst->values[i] = malloc(len + 1);
        if (dst->values[i] == NULL)
            return -ENOMEM;
        memcpy(dst->values[i], src->values[i], len);
        dst->values[i][len] = '\0';
        dst->lengths[i] = (int)len;
        dst->formats[i] = binary ? 1 : 0;
    }
    return 0;
}

static int enqueue(struct svc_db *db, const struct svc_db_step *steps, size_t nsteps,
                   bool tx, svc_db_result_fn *cb, void *arg)
{
    struct pending *p = NULL;
    int r = -ENOMEM;

    if (cb == NULL || nsteps == 0 || nsteps > SVC_DB_TX_MAX_STEPS)
        return dkm_error_set(-EINVAL, "bad query parameters");
    if (!svc_db_up(db))
        return dkm_error_set(DKM_E_UNAVAILABLE, "the database is unavailable");
    if (db->queued >= db->opt.queue_max)
        return dkm_error_set(DKM_E_UNAVAILABLE, "the database queue is full");
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto done;
    p->steps = calloc(nsteps, sizeof(*p->steps));
    p->results = calloc(nsteps, sizeof(*p->results));
    if (p->steps == NULL || p->results == NULL)
        goto done;
    p->nsteps = nsteps;
    for (size_t k = 0; k < nsteps; k++) {
        r = copy_step(&p->steps[k], &steps[k]);
        if (r < 0)
            goto done;
    }
    p->tx = tx;
    p->phase = tx ? PHASE_BEGIN : PHASE_STEP;
    p->cb = cb;
    p->arg = arg;
    if (db->tail != NULL)
        db->tail->next = p;
    else
        db->head = p;
    db->tail = p;
    db->queued++;
    p = NULL;
    dispatch(db);
    r = 0;
done:
    pending_free(p);
    return r;
}

int svc_db_query(struct svc_db *db, enum svc_stmt stmt, int nparams,
                 const char *const *values, const int *lengths, const int *formats,
                 svc_db_result_fn *cb, void *arg)
{
    const struct svc_db_step step = {.stmt = stmt,
                                     .nparams = nparams,
                                     .values = values,
                                     .lengths = lengths,
                                     .formats = formats};

    return enqueue(db, &step, 1, false, cb, arg);
}

int svc_db_transaction(struct svc_db *db, const struct svc_db_step *steps, size_t nsteps,
                       svc_db_result_fn *cb, void *arg)
{
    return enqueue(db, steps, nsteps, true, cb, arg);
}

int svc_db_new(struct event_base *base, const struct svc_db_options *opt,
               struct svc_db **ret)
{
    struct svc_db *db;
    int r = -ENOMEM;

    db = calloc(1, sizeof(*db));
    if (db == NULL)
        return -ENOMEM;
    db->base = base;
    db->opt = *opt;
    db->opt.conninfo = NULL;
    if (db->opt.probe_ms == 0)
        db->opt.probe_ms = PROBE_MS;
    if (db->opt.reconnect_max_ms < BACKOFF_MIN_MS)
        db->opt.reconnect_max_ms = BACKOFF_MIN_MS;
    db->conninfo = strdup(opt->conninfo);
    db->nconns = opt->pool_size + (opt->notify != NULL ? 1 : 0);
    db->conns = calloc(db->nconns, sizeof(*db->conns));
    db->kick = event_new(base, -1, 0, kick_cb, db);
    if (db->conninfo == NULL || db->conns == NULL || db->kick == NULL)
        goto done;
    for (unsigned i = 0; i < db->nconns; i++) {
        struct db_conn *c = &db->conns[i];
        c->db = db;
        c->index = i;
        c->fd = -1;
        c->listen = opt->notify != NULL && i == db->nconns - 1;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->io = event_new(base, -1, 0, io_cb, c);
        c->timer = evtimer_new(base, timer_cb, c);
        if (c->io == NULL || c->timer == NULL)
            goto done;
    }
    for (unsigned i = 0; i < db->nconns; i++)
        conn_start(&db->conns[i]);
    *ret = db;
    db = NULL;
    r = 0;
done:
    svc_db_free(db);
    return r;
}

void svc_db_free(struct svc_db *db)
{
    struct pending *p, *next;

    if (db == NULL)
        return;
    for (unsigned i = 0; db->conns != NULL && i < db->nconns; i++) {
        struct db_conn *c = &db->conns[i];
        if (c->cur != NULL) {
            c->cur->next = db->failed;
            db->failed = c->cur;
            c->cur = NULL;
        }
        if (c->io != NULL)
            conn_close(c);
        if (c->io != NULL)
            event_free(c->io);
        if (c->timer != NULL)
            event_free(c->timer);
    }
    /* Whoever waits is told, so that nothing it holds leaks. */
    for (p = db->head; p != NULL; p = next) {
        next = p->next;
        p->next = db->failed;
        db->failed = p;
    }
    for (p = db->failed; p != NULL; p = next) {
        next = p->next;
        call_failed(p, DKM_E_UNAVAILABLE);
        pending_free(p);
    }
    if (db->kick != NULL)
        event_free(db->kick);
    free(db->conns);
    if (db->conninfo != NULL) {
        dkm_memzero(db->conninfo, strlen(db->conninfo));
        free(db->conninfo);
    }
    free(db);
}
