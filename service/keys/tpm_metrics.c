/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The latency of the key service's TPM operations: the keeper's unseals,
 * signing-key signatures and delegations, the only TPM work dkmd does.
 * Registered in the registry dkmd.c creates before the key service
 * starts, so the first snapshot's unseals are measured too.
 */
#include "tpm_metrics.h"

#include <stdatomic.h>
#include <time.h>

#include "clock.h"
#include "metrics.h"

/* TPM commands take 0.1 ms (a signature on a fast TPM) to seconds (a
 * slow TPM under load); the HTTP buckets span that. */
static _Atomic(struct svc_metric *) tpm_latency;
static atomic_uint_fast64_t last_op_ms;

int ks_tpm_metrics_register(struct svc_metrics *m)
{
    struct svc_metric *h = NULL;
    int r;

    r = svc_metrics_histogram(m, "dkmd_tpm_operation_duration_seconds",
                              "TPM operations of the key service, by operation "
                              "(unseal, sign, delegate)",
                              "operation", svc_latency_buckets, svc_latency_nbuckets, &h);
    if (r < 0)
        return r;
    atomic_store(&tpm_latency, h);
    return 0;
}

void ks_tpm_observe(const char *operation, const struct timespec *start)
{
    struct svc_metric *h = atomic_load(&tpm_latency);
    struct timespec now;

    svc_now_mono(&now);
    atomic_store(&last_op_ms,
                 (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u);
    if (h == NULL)
        return;
    svc_metric_observe(h, operation,
                       (double)(now.tv_sec - start->tv_sec) +
                           (double)(now.tv_nsec - start->tv_nsec) / 1e9);
}

uint64_t ks_tpm_last_op_ms(void)
{
    return atomic_load(&last_op_ms);
}
