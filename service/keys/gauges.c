/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gauges of what the key service holds, read from the current snapshot,
 * the audit queue and the readiness facts (health.c) at scrape time.
 */
#include <stdint.h>
#include <time.h>

#include "audit.h"
#include "blobcache.h"
#include "gauges.h"
#include "health.h"
#include "metrics.h"
#include "state.h"

enum gauge { G_GROUPS, G_NODES, G_KEYS, G_BLOBS, G_BLOB_BYTES, G_HEAD };
#define GAUGE(g) ((void *)(uintptr_t)(g))

static double snapshot_count(void *arg)
{
    struct ks_snapshot *s = ks_snapshot_get();
    size_t n = 0, bytes = 0;

    if (s == NULL)
        return 0;
    switch ((enum gauge)(uintptr_t)arg) {
    case G_GROUPS:
        n = s->ngroups;
        break;
    case G_NODES:
        n = s->nnodes;
        break;
    case G_KEYS:
        for (size_t i = 0; i < s->ngroups; i++)
            for (size_t j = 0; j < s->groups[i].nversions; j++)
                n += s->groups[i].versions[j].key != NULL;
        break;
    case G_BLOBS:
        ks_blobcache_size(s->blobs, &n, &bytes);
        break;
    case G_BLOB_BYTES:
        ks_blobcache_size(s->blobs, &bytes, &n);
        break;
    case G_HEAD:
        n = (size_t)s->head;
        break;
    }
    ks_snapshot_put(s);
    return (double)n;
}

enum fact { F_DELEG_LEFT, F_LOADED_AT, F_TPM_UP };

static double health_fact(void *arg)
{
    struct ks_health h;
    uint64_t now = (uint64_t)time(NULL);

    ks_health_get(&h);
    switch ((enum fact)(uintptr_t)arg) {
    case F_DELEG_LEFT:
        return h.deleg_not_after > now ? (double)(h.deleg_not_after - now) : 0;
    case F_LOADED_AT:
        return (double)h.loaded_at;
    case F_TPM_UP:
        return h.tpm_ok && h.tpm_checked_at + KS_TPM_PROBE_STALE_S >= now ? 1 : 0;
    }
    return 0;
}

static double audit_pending(void *arg)
{
    (void)arg;
    return (double)ks_audit_pending();
}

int ks_gauges_register(struct svc_metrics *m)
{
    int r;

    if ((r = svc_metrics_gauge(m, "dkmd_groups", "Groups in the loaded state",
                               snapshot_count, GAUGE(G_GROUPS))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_nodes",
                               "Authorized node entries in the loaded state",
                               snapshot_count, GAUGE(G_NODES))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_keys_held",
                               "Key versions this server holds unsealed in secure memory",
                               snapshot_count, GAUGE(G_KEYS))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_import_blob_cache_entries",
                               "Import blobs kept for reuse in the current state",
                               snapshot_count, GAUGE(G_BLOBS))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_import_blob_cache_bytes",
                               "Bytes of import blobs kept in the current state",
                               snapshot_count, GAUGE(G_BLOB_BYTES))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_state_head",
                               "Counter of the verified state head in the loaded state",
                               snapshot_count, GAUGE(G_HEAD))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_audit_queue",
                               "Audit records waiting to be written", audit_pending,
                               NULL)) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_delegation_remaining_seconds",
                               "Seconds until the response-signing delegation expires",
                               health_fact, GAUGE(F_DELEG_LEFT))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_state_last_reload_timestamp_seconds",
                               "Unix time of the last successful state load", health_fact,
                               GAUGE(F_LOADED_AT))) < 0 ||
        (r = svc_metrics_gauge(m, "dkmd_tpm_up",
                               "1 when the TPM answered the last probe (every 10 s)",
                               health_fact, GAUGE(F_TPM_UP))) < 0)
        return r;
    return 0;
}
