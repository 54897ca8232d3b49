/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Progress of the keeper's long operations (progress.c): adding a server
 * (a sealed copy per live key version), unsealing many copies in a state
 * load, and a timer pass that rotates many groups. The operation logs
 * progress lines (event "progress": done and total, at most one a
 * second) and publishes its state, which GET /v1/progress answers from
 * any worker while the keeper is busy: dkmctl polls it to show how far a
 * long command is.
 */
#ifndef DKM_KS_PROGRESS_H
#define DKM_KS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct svc_req;

/* A progress line at most this often while an operation runs. */
#define KS_PROGRESS_INTERVAL_MS 1000
/* An operation of this many items or more also logs a line when it starts. */
#define KS_PROGRESS_ANNOUNCE 100

/* One running operation, on the keeper's (or start-up's) stack. */
struct ks_progress {
    const char *op;    /* "server.add", "state.load", "timer.rotate" */
    char target[80];   /* what it works on ("" if nothing in particular) */
    const char *phase; /* the step it is in ("seal", "store", "unseal", "rotate") */
    size_t done, total;
    uint64_t start_ms, last_ms; /* monotonic: the start, the last line logged */
    bool logged;                /* a line was logged: the end is logged too */
};

/*
 * Start op on target (may be NULL) with total items in its first phase,
 * and publish it (replacing any other). Logs a line at once when total is
 * KS_PROGRESS_ANNOUNCE or more.
 */
void ks_progress_begin(struct ks_progress *p, const char *op, const char *target,
                       const char *phase, size_t total);
/*
 * Enter a further phase of total items (done starts again from 0). When a
 * line was logged before, the phase that ends gets a last line; the new
 * one is logged then, or when total is KS_PROGRESS_ANNOUNCE or more.
 */
void ks_progress_phase(struct ks_progress *p, const char *phase, size_t total);
/* One more item done; logs a line when KS_PROGRESS_INTERVAL_MS passed. */
void ks_progress_step(struct ks_progress *p);
/* The end: a last line if any was logged, and nothing is published any more. */
void ks_progress_end(struct ks_progress *p);
/* Milliseconds since ks_progress_begin. */
uint64_t ks_progress_elapsed_ms(const struct ks_progress *p);

/* GET /v1/progress (admin): the operation running now, if any. */
void ks_progress_handler(struct svc_req *r);

#endif
