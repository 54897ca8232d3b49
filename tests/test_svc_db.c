/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's non-blocking database pool against a real PostgreSQL
 * (a throw-away cluster started by scripts/pg.sh in the test's temp dir
 * and stopped at the end): prepared queries, transactions that commit
 * all steps or none, the SQLSTATE of a failing statement, NOTIFY through
 * the LISTEN connection (sent only on commit), fail-fast when the
 * database is unreachable, the bounded queue, and that no callback runs
 * inside the call that queued it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "db.h"
#include "migrate.h"
#include "unit.h"

static char pgdir[4200];
static char conninfo[256];
static bool pg_started;
static struct event_base *base;
static struct event *tick;
static struct svc_db *db;

struct outcome {
    bool done;
    int r;
    size_t n;
    char sqlstate[8];
    char first[64];
};

static char notified[16][64];
static size_t nnotified, nresyncs;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void notify_cb(void *arg, const char *channel, const char *payload)
{
    (void)arg;
    (void)channel;
    if (payload == NULL) {
        nresyncs++;
        return;
    }
    if (nnotified < 16)
        snprintf(notified[nnotified++], sizeof(notified[0]), "%s", payload);
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static bool pool_up(void *arg)
{
    return svc_db_up(arg);
}

static bool listening(void *arg)
{
    (void)arg;
    return nresyncs > 0;
}

/* Run the loop until pred(arg) holds or seconds pass. */
static bool run_until(bool (*pred)(void *), void *arg, double seconds)
{
    struct timespec start, now;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!pred(arg)) {
        event_base_loop(base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >
            seconds)
            return false;
    }
    return true;
}

static void outcome_cb(void *arg, PGresult *const *res, size_t n, int r,
                       const char *sqlstate)
{
    struct outcome *o = arg;

    o->done = true;
    o->r = r;
    o->n = n;
    if (sqlstate != NULL)
        snprintf(o->sqlstate, sizeof(o->sqlstate), "%s", sqlstate);
    if (r == 0 && n > 0 && PQresultStatus(res[0]) == PGRES_TUPLES_OK &&
        PQntuples(res[0]) > 0)
        snprintf(o->first, sizeof(o->first), "%s", PQgetvalue(res[0], 0, 0));
}

static long count_actor(const char *actor)
{
    PGconn *c = NULL;
    PGresult *res;
    const char *params[1] = {actor};
    long n = -1;

    if (svc_db_connect_blocking(conninfo, &c) < 0)
        return -1;
    res = PQexecParams(c, "SELECT count(*) FROM audit_log WHERE actor = $1", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return n;
}

static struct svc_db_options options(const char *ci)
{
    struct svc_db_options o = {
        .conninfo = ci,
        .pool_size = 2,
        .connect_timeout = 5,
        .query_timeout = 10,
        .reconnect_max_ms = 500,
        .queue_max = 10,
        .notify = notify_cb,
    };
    return o;
}

static int suite_init(void)
{
    char cmd[8400], line[512];
    struct svc_migrations m = {0};
    struct svc_db_options o;
    const char *src = getenv("DKM_SOURCE_DIR");
    PGconn *c = NULL;
    unsigned version = 0;
    FILE *p;
    int port = 0;

    if (src == NULL)
        return 1;
    /* PostgreSQL runs as its own user when we are root: it must reach the dir. */
    if (chmod(dkm_test_tmpdir(), 0755) < 0)
        return 1;
    snprintf(pgdir, sizeof(pgdir), "%s/pg", dkm_test_tmpdir());
    snprintf(cmd, sizeof(cmd), "'%s/scripts/pg.sh' start '%s'", src, pgdir);
    p = popen(cmd, "r");
    if (p == NULL)
        return 1;
    while (fgets(line, sizeof(line), p) != NULL)
        if (strncmp(line, "PGPORT=", 7) == 0)
            port = atoi(line + 7);
    if (pclose(p) != 0 || port == 0)
        return 1;
    pg_started = true;
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres", port);
    snprintf(cmd, sizeof(cmd), "%s/sql", src);
    if (svc_migrations_load(cmd, &m) < 0 || svc_db_connect_blocking(conninfo, &c) < 0 ||
        svc_migrate(c, &m, &version) < 0)
        return 1;
    PQfinish(c);
    svc_migrations_clear(&m);
    base = event_base_new();
    tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    {
        struct timeval tv = {0, 20000};
        if (base == NULL || tick == NULL || event_add(tick, &tv) < 0)
            return 1;
    }
    o = options(conninfo);
    if (svc_db_new(base, &o, &db) < 0)
        return 1;
    /* Both the pool and the LISTEN connection (it reports a first resync). */
    return run_until(pool_up, db, 10) && run_until(listening, NULL, 10) ? 0 : 1;
}

static int suite_cleanup(void)
{
    char cmd[8400];
    const char *src = getenv("DKM_SOURCE_DIR");

    svc_db_free(db);
    if (tick != NULL)
        event_free(tick);
    if (base != NULL)
        event_base_free(base);
    if (pg_started && src != NULL) {
        snprintf(cmd, sizeof(cmd), "'%s/scripts/pg.sh' stop '%s'", src, pgdir);
        if (system(cmd) != 0)
            return 1;
    }
    return 0;
}

static void test_svc_db_query(void)
{
    struct outcome o = {0};

    CU_ASSERT_EQUAL_FATAL(
        svc_db_query(db, SVC_STMT_PING, 0, NULL, NULL, NULL, outcome_cb, &o), 0);
    /* Never from inside the call that queued it. */
    CU_ASSERT_FALSE(o.done);
    CU_ASSERT_FATAL(run_until(flag_set, &o.done, 5));
    CU_ASSERT_EQUAL(o.r, 0);
    CU_ASSERT_EQUAL(o.n, 1);
    CU_ASSERT_STRING_EQUAL(o.first, "1");
}

static void test_svc_db_wrong_parameter_count(void)
{
    struct outcome o = {0};
    const char *one[1] = {"x"};

    CU_ASSERT_EQUAL(svc_db_query(db, SVC_STMT_PING, 1, one, NULL, NULL, outcome_cb, &o),
                    -EINVAL);
    CU_ASSERT_EQUAL(svc_db_query(db, SVC_STMT_COUNT, 0, NULL, NULL, NULL, outcome_cb, &o),
                    -EINVAL);
    CU_ASSERT_EQUAL(svc_db_transaction(db, NULL, 0, outcome_cb, &o), -EINVAL);
    CU_ASSERT_FALSE(o.done);
}

static void test_svc_db_transaction_commits(void)
{
    const char *a1[5] = {"tx-commit", "test.one", "t", "ok", NULL};
    const char *a2[5] = {"tx-commit", "test.two", "t", "ok", "second"};
    const char *n1[1] = {"committed"};
    const struct svc_db_step steps[] = {
        {.stmt = SVC_STMT_AUDIT_INSERT, .nparams = 5, .values = a1},
        {.stmt = SVC_STMT_AUDIT_INSERT, .nparams = 5, .values = a2},
        {.stmt = SVC_STMT_NOTIFY_CHANGE, .nparams = 1, .values = n1},
    };
    struct outcome o = {0};
    size_t before = nnotified;

    CU_ASSERT_EQUAL_FATAL(svc_db_transaction(db, steps, 3, outcome_cb, &o), 0);
    CU_ASSERT_FATAL(run_until(flag_set, &o.done, 5));
    CU_ASSERT_EQUAL(o.r, 0);
    CU_ASSERT_EQUAL(o.n, 3);
    CU_ASSERT_EQUAL(count_actor("tx-commit"), 2);
    /* The notification arrives on the LISTEN connection once committed. */
    {
        bool got = false;
        for (int i = 0; i < 100 && !got; i++) {
            event_base_loop(base, EVLOOP_ONCE);
            got = nnotified > before;
        }
        CU_ASSERT_FATAL(got);
        CU_ASSERT_STRING_EQUAL(notified[before], "committed");
    }
}

static void test_svc_db_transaction_rolls_back(void)
{
    const char *good[5] = {"tx-rollback", "test.one", "t", "ok", NULL};
    const char *n1[1] = {"rolled-back"};
    const char *bad[5] = {"tx-rollback", "test.two", "t", "not-an-outcome", NULL};
    const struct svc_db_step steps[] = {
        {.stmt = SVC_STMT_AUDIT_INSERT, .nparams = 5, .values = good},
        {.stmt = SVC_STMT_NOTIFY_CHANGE, .nparams = 1, .values = n1},
        {.stmt = SVC_STMT_AUDIT_INSERT, .nparams = 5, .values = bad},
    };
    struct outcome o = {0}, after = {0};
    size_t before = nnotified;

    CU_ASSERT_EQUAL_FATAL(svc_db_transaction(db, steps, 3, outcome_cb, &o), 0);
    CU_ASSERT_FATAL(run_until(flag_set, &o.done, 5));
    CU_ASSERT_EQUAL(o.r, DKM_E_DB);
    CU_ASSERT_STRING_EQUAL(o.sqlstate, "23514"); /* check_violation */
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "audit_insert"));
    CU_ASSERT_EQUAL(count_actor("tx-rollback"), 0);
    /* The connection is usable again, and the rolled-back NOTIFY never came. */
    CU_ASSERT_EQUAL_FATAL(
        svc_db_query(db, SVC_STMT_PING, 0, NULL, NULL, NULL, outcome_cb, &after), 0);
    CU_ASSERT_FATAL(run_until(flag_set, &after.done, 5));
    CU_ASSERT_EQUAL(after.r, 0);
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CU_ASSERT_EQUAL(nnotified, before);
}

static void test_svc_db_statement_error_sqlstate(void)
{
    const char *bad[5] = {"single", "BAD ACTION", "t", "ok", NULL};
    struct outcome o = {0};

    CU_ASSERT_EQUAL_FATAL(
        svc_db_query(db, SVC_STMT_AUDIT_INSERT, 5, bad, NULL, NULL, outcome_cb, &o), 0);
    CU_ASSERT_FATAL(run_until(flag_set, &o.done, 5));
    CU_ASSERT_EQUAL(o.r, DKM_E_DB);
    CU_ASSERT_STRING_EQUAL(o.sqlstate, "23514");
}

static void test_svc_db_audit_is_append_only(void)
{
    PGconn *c = NULL;
    PGresult *res;

    CU_ASSERT_EQUAL_FATAL(svc_db_connect_blocking(conninfo, &c), 0);
    res = PQexec(c, "DELETE FROM audit_log WHERE actor = 'tx-commit'");
    CU_ASSERT_EQUAL(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    PQfinish(c);
    CU_ASSERT_EQUAL(count_actor("tx-commit"), 2);
}

struct many {
    unsigned done, ok;
};

static void many_cb(void *arg, PGresult *const *res, size_t n, int r,
                    const char *sqlstate)
{
    struct many *m = arg;

    (void)res;
    (void)n;
    (void)sqlstate;
    m->done++;
    if (r == 0)
        m->ok++;
}

struct many_wait {
    struct many *m;
    unsigned want;
};

static bool many_done(void *arg)
{
    struct many_wait *w = arg;
    return w->m->done >= w->want;
}

static void test_svc_db_queue_is_bounded(void)
{
    struct many m = {0};
    struct many_wait w = {&m, 0};
    unsigned accepted = 0, refused = 0;

    /* Two connections take two; the queue holds queue_max (10) more. */
    for (int i = 0; i < 30; i++) {
        int r = svc_db_query(db, SVC_STMT_PING, 0, NULL, NULL, NULL, many_cb, &m);
        if (r == 0)
            accepted++;
        else if (r == DKM_E_UNAVAILABLE)
            refused++;
    }
    CU_ASSERT_EQUAL(accepted, 12);
    CU_ASSERT_EQUAL(refused, 18);
    w.want = accepted;
    CU_ASSERT_FATAL(run_until(many_done, &w, 10));
    CU_ASSERT_EQUAL(m.ok, accepted);
}

static void test_svc_db_unreachable_fails_fast(void)
{
    struct svc_db_options o = options("host=127.0.0.1 port=1 connect_timeout=2");
    struct svc_db *down = NULL;
    struct outcome x = {0};

    o.notify = NULL;
    CU_ASSERT_EQUAL_FATAL(svc_db_new(base, &o, &down), 0);
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CU_ASSERT_FALSE(svc_db_up(down));
    CU_ASSERT_EQUAL(
        svc_db_query(down, SVC_STMT_PING, 0, NULL, NULL, NULL, outcome_cb, &x),
        DKM_E_UNAVAILABLE);
    CU_ASSERT_FALSE(x.done);
    svc_db_free(down);
}

static void test_svc_db_free_fails_pending(void)
{
    struct svc_db_options o = options(conninfo);
    struct svc_db *tmp = NULL;
    struct outcome x = {0};

    o.notify = NULL;
    CU_ASSERT_EQUAL_FATAL(svc_db_new(base, &o, &tmp), 0);
    CU_ASSERT_FATAL(run_until(pool_up, tmp, 10));
    CU_ASSERT_EQUAL_FATAL(
        svc_db_query(tmp, SVC_STMT_PING, 0, NULL, NULL, NULL, outcome_cb, &x), 0);
    svc_db_free(tmp);
    CU_ASSERT(x.done);
    CU_ASSERT_EQUAL(x.r, DKM_E_UNAVAILABLE);
}

/* The backend PID of the LISTEN connection, from pg_stat_activity. */
static long listen_backend(void)
{
    PGconn *c = NULL;
    PGresult *res;
    long pid = -1;

    if (svc_db_connect_blocking(conninfo, &c) < 0)
        return -1;
    res = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                    "'dkmd-listen' ORDER BY backend_start DESC LIMIT 1");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        pid = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return pid;
}

struct resync_wait {
    size_t from;
};

static bool resynced_again(void *arg)
{
    return nresyncs > ((struct resync_wait *)arg)->from;
}

static void test_svc_db_silent_listen_connection_is_replaced(void)
{
    struct svc_db_options o = options(conninfo);
    struct svc_db *probe = NULL;
    struct resync_wait w;
    long pid;

    /* A pool of its own whose idle connections are probed every 200 ms. */
    o.probe_ms = 200;
    o.query_timeout = 1;
    svc_db_free(db);
    db = NULL;
    CU_ASSERT_EQUAL_FATAL(svc_db_new(base, &o, &probe), 0);
    db = probe;
    w.from = nresyncs;
    CU_ASSERT_FATAL(run_until(resynced_again, &w, 10));
    pid = listen_backend();
    CU_ASSERT_FATAL(pid > 0);
    /* The server process stops answering without closing anything. */
    CU_ASSERT_EQUAL_FATAL(kill((pid_t)pid, SIGSTOP), 0);
    w.from = nresyncs;
    CU_ASSERT(run_until(resynced_again, &w, 10));
    kill((pid_t)pid, SIGCONT);
    CU_ASSERT(run_until(pool_up, db, 10));
}

static CU_TestInfo db_tests[] = {
    {"test_svc_db_query", test_svc_db_query},
    {"test_svc_db_wrong_parameter_count", test_svc_db_wrong_parameter_count},
    {"test_svc_db_transaction_commits", test_svc_db_transaction_commits},
    {"test_svc_db_transaction_rolls_back", test_svc_db_transaction_rolls_back},
    {"test_svc_db_statement_error_sqlstate", test_svc_db_statement_error_sqlstate},
    {"test_svc_db_audit_is_append_only", test_svc_db_audit_is_append_only},
    {"test_svc_db_queue_is_bounded", test_svc_db_queue_is_bounded},
    {"test_svc_db_unreachable_fails_fast", test_svc_db_unreachable_fails_fast},
    {"test_svc_db_free_fails_pending", test_svc_db_free_fails_pending},
    {"test_svc_db_silent_listen_connection_is_replaced",
     test_svc_db_silent_listen_connection_is_replaced},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_db", suite_init, suite_cleanup, NULL, NULL, db_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
