/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper (keeper.c): the one thread that owns the TPM, the signing
 * key, a database connection of its own and the timers; start and stop
 * of the key service, and the hand-over of admin jobs to it.
 */
#ifndef DKM_KS_KEEPER_H
#define DKM_KS_KEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"
#include "job.h"

struct svc_config;
struct svc_metrics;
struct svc_req;

/*
 * Start the key service: load the identity from the state directory, make
 * a delegation, load the first snapshot, start the keeper thread. When
 * this server has no identity (initialised without a TPM) the key
 * endpoints stay off (503) and 0 is returned.
 */
DKM_MUSTCHECK int ks_start(const struct svc_config *cfg, struct svc_metrics *metrics);
/*
 * Stop the keeper thread (it finishes the job at hand, drains the audit
 * queue, and posts nothing afterwards). Idempotent; ks_stop calls it.
 * dkmd calls it as soon as the workers have stopped, before their event
 * bases are freed (svc_set_workers_stopped_hook).
 */
void ks_quiesce(void);
/* Quiesce, then free everything (the queue was flushed by the keeper). */
void ks_stop(void);

/*
 * Whether the keeper's loop turned (or finished a TPM operation) within
 * the last max_ms; if not, false with the reason in why. True when the
 * keeper does not run. Thread-safe: the watchdog and /v1/health/live ask.
 */
bool ks_keeper_alive(uint64_t max_ms, char *why, size_t why_size);

/* Run job->fn on the keeper; 503 at once when the key service is off. */
void ks_submit(struct svc_req *r, ks_job_fn *fn);

#endif
