/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Progress of long keeper operations: log lines for the operator, and one
 * published slot for GET /v1/progress. The operation itself runs on the
 * keeper thread (or on the main thread before the keeper starts) and
 * updates its struct ks_progress on its own stack; every change is also
 * copied into the published slot under a mutex, so that a worker thread
 * answering GET /v1/progress never waits for the keeper, which is busy
 * with exactly the operation asked about. One slot is enough: the keeper
 * runs one operation at a time.
 */
#include "progress.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "dkm/base/log.h"
#include "clock.h"
#include "http.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool running;
    char op[32];
    char target[80];
    char phase[16];
    size_t done, total;
    uint64_t started_at; /* Unix seconds */
    uint64_t start_ms;   /* monotonic */
} slot;

static void publish(const struct ks_progress *p, bool running)
{
    pthread_mutex_lock(&lock);
    slot.running = running;
    if (running) {
        snprintf(slot.op, sizeof(slot.op), "%s", p->op);
        snprintf(slot.target, sizeof(slot.target), "%s", p->target);
        snprintf(slot.phase, sizeof(slot.phase), "%s", p->phase);
        slot.done = p->done;
        slot.total = p->total;
        slot.start_ms = p->start_ms;
    }
    pthread_mutex_unlock(&lock);
}

uint64_t ks_progress_elapsed_ms(const struct ks_progress *p)
{
    return svc_mono_ms() - p->start_ms;
}

/* A "progress" line, or the "progress.end" line when end. */
static void log_line(struct ks_progress *p, bool end)
{
    unsigned long long ms = (unsigned long long)ks_progress_elapsed_ms(p);

    p->last_ms = svc_mono_ms();
    p->logged = true;
    if (p->target[0] != '\0' && end)
        log_event(
            DKM_LOG_INFO,
            "progress.end op=%s target=%s phase=%s done=%zu total=%zu elapsed_ms=%llu",
            p->op, p->target, p->phase, p->done, p->total, ms);
    else if (p->target[0] != '\0')
        log_event(DKM_LOG_INFO,
                  "progress op=%s target=%s phase=%s done=%zu total=%zu elapsed_ms=%llu",
                  p->op, p->target, p->phase, p->done, p->total, ms);
    else if (end)
        log_event(DKM_LOG_INFO,
                  "progress.end op=%s phase=%s done=%zu total=%zu elapsed_ms=%llu", p->op,
                  p->phase, p->done, p->total, ms);
    else
        log_event(DKM_LOG_INFO,
                  "progress op=%s phase=%s done=%zu total=%zu elapsed_ms=%llu", p->op,
                  p->phase, p->done, p->total, ms);
}

void ks_progress_begin(struct ks_progress *p, const char *op, const char *target,
                       const char *phase, size_t total)
{
    *p = (struct ks_progress){.op = op, .phase = phase, .total = total};
    snprintf(p->target, sizeof(p->target), "%s", target != NULL ? target : "");
    p->start_ms = p->last_ms = svc_mono_ms();
    pthread_mutex_lock(&lock);
    slot.started_at = (uint64_t)time(NULL);
    pthread_mutex_unlock(&lock);
    publish(p, true);
    if (total >= KS_PROGRESS_ANNOUNCE)
        log_line(p, false);
}

void ks_progress_phase(struct ks_progress *p, const char *phase, size_t total)
{
    /* Once lines are logged, every phase's last count is logged too. */
    if (p->logged)
        log_line(p, false);
    p->phase = phase;
    p->done = 0;
    p->total = total;
    publish(p, true);
    if (p->logged || total >= KS_PROGRESS_ANNOUNCE)
        log_line(p, false);
}

void ks_progress_step(struct ks_progress *p)
{
    p->done++;
    publish(p, true);
    if (svc_mono_ms() - p->last_ms >= KS_PROGRESS_INTERVAL_MS)
        log_line(p, false);
}

void ks_progress_end(struct ks_progress *p)
{
    publish(p, false);
    if (p->logged)
        log_line(p, true);
}

void ks_progress_handler(struct svc_req *r)
{
    json_t *o;

    pthread_mutex_lock(&lock);
    if (!slot.running)
        o = json_pack("{s:b}", "running", 0);
    else
        o = json_pack("{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "running", 1,
                      "operation", slot.op, "target", slot.target, "phase", slot.phase,
                      "done", (json_int_t)slot.done, "total", (json_int_t)slot.total,
                      "started_at", (json_int_t)slot.started_at, "elapsed_ms",
                      (json_int_t)(svc_mono_ms() - slot.start_ms));
    pthread_mutex_unlock(&lock);
    svc_reply_json(r, 200, o);
}
