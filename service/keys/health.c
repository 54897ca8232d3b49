/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service's readiness facts, kept under one mutex: the keeper
 * (its own thread) records them when they change, request handlers and
 * metric scrapes on the worker threads copy them out. Nothing here asks
 * the TPM or the database itself, so reading them costs a lock and a copy.
 */
#include "health.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ks_health facts;

void ks_health_get(struct ks_health *ret)
{
    pthread_mutex_lock(&lock);
    *ret = facts;
    pthread_mutex_unlock(&lock);
}

void ks_health_set_on(bool on)
{
    pthread_mutex_lock(&lock);
    if (on)
        facts.on = true;
    else
        memset(&facts, 0, sizeof(facts));
    pthread_mutex_unlock(&lock);
}

void ks_health_loaded(bool ok, bool listed, uint64_t now)
{
    pthread_mutex_lock(&lock);
    if (ok) {
        facts.loaded_at = now;
        facts.reload_failed_at = 0;
        facts.listed = listed;
    } else {
        facts.reload_failed_at = now;
    }
    pthread_mutex_unlock(&lock);
}

void ks_health_delegation(uint64_t not_after)
{
    pthread_mutex_lock(&lock);
    facts.deleg_not_after = not_after;
    pthread_mutex_unlock(&lock);
}

void ks_health_tpm(bool ok, const char *detail, uint64_t now)
{
    pthread_mutex_lock(&lock);
    facts.tpm_ok = ok;
    facts.tpm_checked_at = now;
    snprintf(facts.tpm_detail, sizeof(facts.tpm_detail), "%s",
             ok || detail == NULL ? "" : detail);
    pthread_mutex_unlock(&lock);
}

void ks_health_keeper_db(bool up)
{
    pthread_mutex_lock(&lock);
    facts.keeper_db = up;
    pthread_mutex_unlock(&lock);
}
