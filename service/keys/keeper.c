/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper: one thread that owns what must never run on a request path,
 * the TPM (signing key, unseals), a database connection of its own
 * (LISTEN dkm_changes, state loads, admin writes, audit batches) and the
 * timers (delegation renewal, rotation and expiry).
 *
 * Handlers read the published snapshot (ks_snapshot_get, state.c) and
 * hand admin work to the keeper as jobs; the keeper runs a job, reloads
 * and publishes the snapshot after a write so the answer and every later
 * request see it, and posts the reply back to the request's own worker
 * loop (event_base_once, which libevent makes thread-safe once
 * evthread_use_pthreads has run). It writes the audit queue (audit.c)
 * between jobs and drains it on shutdown.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "dkm/trust/sign.h"
#include "dkm/tpm/tpm.h"
#include "audit.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "gauges.h"
#include "health.h"
#include "http.h"
#include "identity.h"
#include "keeper.h"
#include "migrate.h"
#include "rotate.h"
#include "seen.h"
#include "server.h"
#include "state.h"
#include "tpm_metrics.h"
#include "upgrade.h"

#define TIMER_PERIOD_MS 1000
#define RECONNECT_MS 1000
#define RENEWAL_RETRY_MS 10000

struct job_node {
    struct ks_job job;
    struct job_node *next;
};

static struct keeper {
    bool on;
    const struct svc_config *cfg;
    pthread_t thread;
    bool thread_started;
    int wake_fd;
    pthread_mutex_t lock; /* jobs, stop */
    struct job_node *jobs, *jobs_tail;
    bool stop;
    atomic_uint_fast64_t last_turn_ms; /* monotonic; read by ks_keeper_alive */
    /* Keeper-thread only. */
    struct ks_loader loader;
    struct ks_ctx ctx;
    struct ks_seen seen;
    char seen_path[4096];
    char conninfo[1024];
} K = {.wake_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void wake(void)
{
    uint64_t one = 1;

    if (K.wake_fd >= 0 && write(K.wake_fd, &one, sizeof(one)) < 0)
        log_event(DKM_LOG_DEBUG, "keeper.wake_failed reason=%s", strerror(errno));
}

/* ---- jobs -------------------------------------------------------------- */

/*
 * A TLS client is an admin when its key id is bound in the signed entry
 * of a node with the admin role that is not revoked (in the current
 * snapshot: a revocation takes effect with the reload that follows it).
 */
static bool tls_admin(const uint8_t key_id[SVC_TLS_KEY_ID_SIZE], char *actor,
                      size_t actor_size)
{
    struct ks_snapshot *s = ks_snapshot_get();
    const struct ks_node *n = s != NULL ? ks_snapshot_node_by_tls(s, key_id) : NULL;
    char hex[DKM_NODE_ID_HEX_SIZE];
    bool ok = false;

    if (n != NULL) {
        dkm_node_id_hex(&n->entry.node_id, hex);
        ok = n->entry.role == DKM_ROLE_ADMIN && n->entry.revoked_at == 0;
        if (ok)
            snprintf(actor, actor_size, "node:%s", hex);
        else
            log_event(DKM_LOG_NOTICE, "admin.tls_refused node=%s reason=%s", hex,
                      n->entry.revoked_at != 0 ? "revoked" : "not_admin");
    }
    ks_snapshot_put(s);
    return ok;
}

static void reply_cb(evutil_socket_t fd, short what, void *arg)
{
    struct job_node *jn = arg;
    struct ks_job *job = &jn->job;

    (void)fd;
    (void)what;
    if (job->reply != NULL)
        svc_reply_json(job->req, job->status ? job->status : 200, job->reply);
    else
        svc_reply_error(job->req, job->status ? job->status : 500,
                        job->error[0] ? job->error : "internal error", "%s", job->detail);
    free(jn);
}

static void post_reply(struct job_node *jn)
{
    struct timeval now = {0, 0};

    if (event_base_once(svc_req_base(jn->job.req), -1, EV_TIMEOUT, reply_cb, jn, &now) <
        0)
        log_event(DKM_LOG_ERR, "admin.reply_lost");
}

void ks_submit(struct svc_req *r, ks_job_fn *fn)
{
    struct job_node *jn;

    if (!K.on) {
        svc_reply_error(r, 503, "service unavailable",
                        "this server has no key-service identity (dkmd init with a TPM)");
        return;
    }
    jn = calloc(1, sizeof(*jn));
    if (jn == NULL) {
        svc_reply_error(r, 500, "internal error", "out of memory");
        return;
    }
    jn->job.req = r;
    jn->job.fn = fn;
    pthread_mutex_lock(&K.lock);
    if (K.jobs_tail != NULL)
        K.jobs_tail->next = jn;
    else
        K.jobs = jn;
    K.jobs_tail = jn;
    pthread_mutex_unlock(&K.lock);
    wake();
}

/* ---- the thread -------------------------------------------------------- */

static int reload(void)
{
    struct ks_snapshot *s = NULL;
    int r;

    r = ks_snapshot_load(&K.loader, K.ctx.snap, &s);
    K.ctx.reload_failed = r < 0;
    if (r < 0) {
        log_event(DKM_LOG_ERR, "state.reload_failed reason=%s", dkm_error_detail());
        ks_health_loaded(false, false, (uint64_t)time(NULL));
        return r;
    }
    if (K.ctx.snap != NULL)
        ks_snapshot_unref(K.ctx.snap);
    K.ctx.snap = s;
    atomic_fetch_add(&s->refs, 1);
    ks_snapshot_publish(s);
    ks_health_loaded(true, s->listed, (uint64_t)time(NULL));
    /* Off the verified list, key fetches answer 503 until it is on one again. */
    if (!s->listed)
        log_event(DKM_LOG_ERR, "state.not_listed list_version=%u", s->list.list_version);
    log_event(DKM_LOG_DEBUG, "state.loaded lists=%zu nodes=%zu groups=%zu refused=%llu",
              s->nlists, s->nnodes, s->ngroups, (unsigned long long)s->refused);
    return 0;
}

static int db_connect(void)
{
    PGresult *res;
    int r;

    PQfinish(K.ctx.conn);
    K.ctx.conn = NULL;
    K.loader.conn = NULL;
    r = svc_db_connect_blocking(K.conninfo, &K.ctx.conn);
    if (r < 0)
        return r;
    K.loader.conn = K.ctx.conn;
    res = PQexec(K.ctx.conn, "LISTEN " SVC_CHANGES_CHANNEL);
    r = PQresultStatus(res) == PGRES_COMMAND_OK
            ? 0
            : dkm_error_set(DKM_E_DB, "LISTEN failed: %s", PQerrorMessage(K.ctx.conn));
    PQclear(res);
    return r;
}

static int new_delegation(void)
{
    struct ks_deleg *d;
    struct timespec start;
    uint64_t now = (uint64_t)time(NULL);
    int r;

    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    atomic_init(&d->refs, 1);
    svc_now_mono(&start);
    r = dkm_delegation_create(K.ctx.sk, &K.loader.self, now - KS_DELEGATION_BACK,
                              now + K.cfg->delegation_lifetime, &d->dk);
    ks_tpm_observe("delegate", &start);
    if (r < 0) {
        free(d);
        return r;
    }
    ks_deleg_unref(K.loader.deleg);
    K.loader.deleg = d;
    ks_health_delegation(now + K.cfg->delegation_lifetime);
    log_event(DKM_LOG_INFO, "delegation.new not_after=%llu",
              (unsigned long long)(now + K.cfg->delegation_lifetime));
    return 0;
}

static struct job_node *pop_job(void)
{
    struct job_node *jn;

    pthread_mutex_lock(&K.lock);
    jn = K.jobs;
    if (jn != NULL) {
        K.jobs = jn->next;
        if (K.jobs == NULL)
            K.jobs_tail = NULL;
    }
    pthread_mutex_unlock(&K.lock);
    return jn;
}

static void run_jobs(void)
{
    struct job_node *jn;

    while ((jn = pop_job()) != NULL) {
        if (K.ctx.conn == NULL || PQstatus(K.ctx.conn) != CONNECTION_OK) {
            ks_job_fail(&jn->job, 503, "service unavailable",
                        "the database is unavailable");
        } else {
            ks_audit_hold();
            jn->job.fn(&K.ctx, &jn->job);
            ks_audit_write_held(K.ctx.conn);
            if (jn->job.wrote && reload() < 0 && jn->job.reply != NULL)
                /* Retried on the next change. */
                log_event(DKM_LOG_WARNING, "state.reload_after_write_failed");
        }
        post_reply(jn);
    }
}

/*
 * Consume the notifications received so far; true when one came from
 * another session. Ours (same backend) follow writes this thread has
 * reloaded after already.
 */
static bool foreign_changes(void)
{
    int self = PQbackendPID(K.ctx.conn);
    bool foreign = false;
    PGnotify *nt;

    while ((nt = PQnotifies(K.ctx.conn)) != NULL) {
        if (nt->be_pid != self)
            foreign = true;
        PQfreemem(nt);
    }
    return foreign;
}

/* How long before the delegation's end it is renewed. */
static uint64_t renew_before(void)
{
    uint64_t quarter = K.cfg->delegation_lifetime / 4;

    return quarter < KS_DELEGATION_RENEW ? quarter : KS_DELEGATION_RENEW;
}

/*
 * Ask the TPM a cheap question (no key operation): /v1/health reports
 * whether it answers. When it does not, the connection is opened again
 * first (a TPM, or swtpm, that restarted leaves the old one dead). A
 * change is logged once, not every probe.
 */
static void tpm_probe(void)
{
    static int was = -1;
    uint32_t slots = 0;
    int r = dkm_tpm_transient_avail(K.ctx.tpm, &slots);

    if (r < 0 && dkm_tpm_reopen(K.ctx.tpm) == 0)
        r = dkm_tpm_transient_avail(K.ctx.tpm, &slots);

    ks_health_tpm(r == 0, r < 0 ? dkm_error_detail() : NULL, (uint64_t)time(NULL));
    if (r < 0 && was != 0)
        log_event(DKM_LOG_ERR, "tpm.down reason=%s", dkm_error_detail());
    else if (r == 0 && was == 0)
        log_event(DKM_LOG_NOTICE, "tpm.up");
    was = r == 0;
}

bool ks_keeper_alive(uint64_t max_ms, char *why, size_t why_size)
{
    uint64_t now = svc_mono_ms(), last = atomic_load(&K.last_turn_ms);
    uint64_t tpm = ks_tpm_last_op_ms();

    if (!K.on || last == 0)
        return true;
    if (tpm > last)
        last = tpm;
    if (now > last && now - last > max_ms) {
        snprintf(why, why_size, "the keeper thread has not turned for %llu ms",
                 (unsigned long long)(now - last));
        return false;
    }
    return true;
}

static void *keeper_main(void *arg)
{
    uint64_t last_timer = 0, last_connect = 0, last_probe = 0, next_renewal = 0;
    bool need_reload = false;

    (void)arg;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = K.wake_fd, .events = POLLIN},
                                {.fd = -1, .events = POLLIN}};
        uint64_t now_ms;
        bool stop;
        struct timespec ts;

        if (K.ctx.conn != NULL && PQstatus(K.ctx.conn) == CONNECTION_OK)
            pfd[1].fd = PQsocket(K.ctx.conn);
        if (poll(pfd, 2, 200) > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;

            if (read(K.wake_fd, &v, sizeof(v)) < 0)
                log_event(DKM_LOG_DEBUG, "keeper.wake_failed reason=%s", strerror(errno));
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        atomic_store(&K.last_turn_ms, now_ms);
        if (now_ms - last_probe >= KS_TPM_PROBE_S * 1000) {
            last_probe = now_ms;
            tpm_probe();
        }

        if (K.ctx.conn == NULL || PQstatus(K.ctx.conn) != CONNECTION_OK) {
            if (now_ms - last_connect >= RECONNECT_MS) {
                last_connect = now_ms;
                if (db_connect() == 0) {
                    log_event(DKM_LOG_INFO, "keeper.db_back reload=true");
                    need_reload = true;
                } else {
                    log_event(DKM_LOG_WARNING, "keeper.db_connect_failed reason=%s",
                              dkm_error_detail());
                }
            }
        } else if (pfd[1].revents != 0) {
            if (PQconsumeInput(K.ctx.conn) == 0) {
                log_event(DKM_LOG_WARNING, "keeper.db_lost reason=%s",
                          PQerrorMessage(K.ctx.conn));
            }
            if (foreign_changes())
                need_reload = true;
        }
        run_jobs();
        if (need_reload && K.ctx.conn != NULL && PQstatus(K.ctx.conn) == CONNECTION_OK)
            need_reload = reload() < 0;
        if (K.ctx.conn != NULL && PQstatus(K.ctx.conn) == CONNECTION_OK &&
            foreign_changes())
            need_reload = true;
        if (now_ms - last_timer >= TIMER_PERIOD_MS && K.ctx.conn != NULL &&
            PQstatus(K.ctx.conn) == CONNECTION_OK) {
            const struct dkm_delegation *info =
                dkm_delegated_key_info(K.loader.deleg->dk);

            last_timer = now_ms;
            if ((uint64_t)time(NULL) + renew_before() >= info->not_after &&
                now_ms >= next_renewal) {
                /* A failed renewal (the TPM away) is tried again every
                 * 10 s, not on every pass, so the log is not flooded. */
                if (new_delegation() < 0) {
                    log_event(DKM_LOG_ERR, "delegation.renew_failed retry_s=%d reason=%s",
                              RENEWAL_RETRY_MS / 1000, dkm_error_detail());
                    next_renewal = now_ms + RENEWAL_RETRY_MS;
                } else if (reload() < 0) {
                    need_reload = true;
                }
            }
            if (ks_timer_pass(&K.ctx) && reload() < 0)
                need_reload = true;
        }
        ks_health_keeper_db(K.ctx.conn != NULL && PQstatus(K.ctx.conn) == CONNECTION_OK);
        pthread_mutex_lock(&K.lock);
        stop = K.stop && K.jobs == NULL;
        pthread_mutex_unlock(&K.lock);
        if (stop)
            break;
    }
    return NULL;
}

/* The TPM signing key, timed for /metrics. */
static int timed_sign(void *ctx, const char *context, const void *msg, size_t len,
                      uint8_t ret_sig[DKM_SIG_SIZE])
{
    const struct dkm_signer *inner = ctx;
    struct timespec start;
    int r;

    svc_now_mono(&start);
    r = inner->sign(inner->ctx, context, msg, len, ret_sig);
    ks_tpm_observe("sign", &start);
    return r;
}

int ks_start(const struct svc_config *cfg, struct svc_metrics *metrics)
{
    static struct dkm_signer tpm_signer;
    char path[4096], hex[2 * DKM_FINGERPRINT_SIZE + 8];
    size_t len = 0;
    FILE *f = NULL;
    sigset_t all, old;
    bool have_seen;
    int r;

    K.cfg = cfg;
    r = ks_tpm_metrics_register(metrics);
    if (r < 0)
        return r;
    r = ks_gauges_register(metrics);
    if (r < 0)
        return r;
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, KS_SIGNKEY_FILE);
    if (access(path, F_OK) != 0) {
        /* No key-service identity: the key endpoints answer 503. */
        log_event(DKM_LOG_WARNING, "keys.off missing=%s", path);
        return 0;
    }
    snprintf(K.conninfo, sizeof(K.conninfo), "%s", cfg->db_conninfo);
    r = dkm_sign_secure_heap_init();
    if (r < 0)
        goto done;
    r = dkm_tpm_open(cfg->tcti, &K.ctx.tpm);
    if (r < 0)
        goto done;
    K.loader.tpm = K.ctx.tpm;
    r = dkm_node_read_ek(K.ctx.tpm, DKM_EK_ECCP256, NULL, &K.loader.self);
    if (r < 0)
        goto done;
    r = dkm_signkey_load(K.ctx.tpm, path, &K.ctx.sk);
    if (r < 0)
        goto done;
    tpm_signer = dkm_signer_signkey(K.ctx.sk, &K.loader.self);
    K.ctx.signer =
        (struct dkm_signer){.sign = timed_sign, .ctx = &tpm_signer, .id = tpm_signer.id};
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, KS_TRUST_FILE);
    f = fopen(path, "re");
    if (f == NULL || fgets(hex, sizeof(hex), f) == NULL ||
        dkm_hex_decode(hex, 2 * DKM_FINGERPRINT_SIZE, K.loader.pin, sizeof(K.loader.pin),
                       &len) < 0 ||
        len != DKM_FINGERPRINT_SIZE) {
        r = dkm_error_set(DKM_E_CONFIG, "cannot read the pinned trust fingerprint in %s",
                          path);
        goto done;
    }
    r = new_delegation();
    if (r < 0)
        goto done;
    snprintf(K.seen_path, sizeof(K.seen_path), "%s/%s", cfg->state_dir, KS_SEEN_FILE);
    r = ks_seen_load(K.seen_path, &K.seen);
    if (r < 0 && r != -ENOENT) {
        r = dkm_error_set(r,
                          "%s (remove it only after checking the database, see "
                          "docs/operations.md)",
                          dkm_error_detail());
        goto done;
    }
    have_seen = r == 0;
    K.loader.seen = &K.seen;
    K.loader.seen_path = K.seen_path;
    K.ctx.seen = &K.seen;
    r = db_connect();
    if (r < 0)
        goto done;
    r = ks_upgrade(&K.ctx, &K.loader, have_seen, &K.ctx.snap);
    if (r < 0)
        goto done;
    r = reload();
    if (r < 0)
        goto done;
    if (dkm_server_list_find(&K.ctx.snap->list, &K.loader.self) == NULL) {
        r = dkm_error_set(DKM_E_DENIED,
                          "this server is not on the authorized server list");
        goto done;
    }
    /* Readiness is true from the first answer: the TPM was just used. */
    tpm_probe();
    atomic_store(&K.last_turn_ms, svc_mono_ms());
    K.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (K.wake_fd < 0) {
        r = dkm_error_set(-errno, "eventfd: %s", strerror(errno));
        goto done;
    }
    /* Signals belong to the main loop: the keeper must not take them. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = pthread_create(&K.thread, NULL, keeper_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        r = dkm_error_set(-r, "cannot start the keeper thread");
        goto done;
    }
    K.thread_started = true;
    r = ks_audit_start(K.conninfo);
    if (r < 0)
        goto done;
    K.on = true;
    ks_health_set_on(true);
    ks_health_keeper_db(true);
    ks_audit_enable(true);
    svc_set_tls_admin_hook(tls_admin);
    svc_set_liveness_hook(ks_keeper_alive);
    svc_set_refused_hook(ks_refused_rows);
    log_event(DKM_LOG_NOTICE, "keys.on groups=%zu nodes=%zu refused=%llu",
              K.ctx.snap->ngroups, K.ctx.snap->nnodes,
              (unsigned long long)K.ctx.snap->refused);
    r = 0;
done:
    if (f != NULL)
        fclose(f);
    return r;
}

void ks_quiesce(void)
{
    if (K.thread_started) {
        pthread_mutex_lock(&K.lock);
        K.stop = true;
        pthread_mutex_unlock(&K.lock);
        wake();
        pthread_join(K.thread, NULL);
        K.thread_started = false;
    }
    /* After the keeper: its last jobs may have queued records. */
    ks_audit_stop();
}

void ks_stop(void)
{
    ks_quiesce();
    K.on = false;
    ks_health_set_on(false);
    ks_audit_enable(false);
    ks_snapshot_publish(NULL);
    ks_snapshot_unref(K.ctx.snap);
    K.ctx.snap = NULL;
    ks_audit_discard();
    ks_deleg_unref(K.loader.deleg);
    K.loader.deleg = NULL;
    PQfinish(K.ctx.conn);
    K.ctx.conn = NULL;
    dkm_signkey_free(K.ctx.sk);
    K.ctx.sk = NULL;
    dkm_tpm_close(K.ctx.tpm);
    K.ctx.tpm = NULL;
    ks_seen_clear(&K.seen);
    if (K.wake_fd >= 0)
        close(K.wake_fd);
    K.wake_fd = -1;
}
