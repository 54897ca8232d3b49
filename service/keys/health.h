/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the key service knows about its own readiness (health.c): whether
 * it runs, when the state was last loaded, until when the delegation is
 * valid, and what the TPM answered when last asked. The keeper writes
 * these facts as they change; /v1/health and the gauges read them.
 */
#ifndef DKM_KS_HEALTH_H
#define DKM_KS_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

/* How often the keeper asks the TPM a question (a cheap GetCapability). */
#define KS_TPM_PROBE_S 10
/* An answer older than this no longer counts: the keeper stopped asking. */
#define KS_TPM_PROBE_STALE_S (3 * KS_TPM_PROBE_S)

struct ks_health {
    bool on;                   /* the key service runs (an identity was loaded) */
    bool listed;               /* this server is on the verified server list */
    uint64_t loaded_at;        /* Unix time of the last successful state load, or 0 */
    uint64_t reload_failed_at; /* of the last failed load since then, or 0 */
    uint64_t deleg_not_after;  /* the delegation's end (Unix time), or 0 */
    bool tpm_ok;               /* the last TPM probe succeeded */
    uint64_t tpm_checked_at;   /* Unix time of that probe, or 0 */
    bool keeper_db;            /* the keeper's own connection is up */
    char tpm_detail[160];      /* why the last probe failed */
};

/* A consistent copy of the facts. Thread-safe. */
void ks_health_get(struct ks_health *ret);

/* The keeper's updates. Thread-safe. */
void ks_health_set_on(bool on);
void ks_health_loaded(bool ok, bool listed, uint64_t now);
void ks_health_delegation(uint64_t not_after);
void ks_health_tpm(bool ok, const char *detail, uint64_t now);
void ks_health_keeper_db(bool up);

#endif
