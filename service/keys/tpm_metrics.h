/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The latency of the key service's TPM operations (tpm_metrics.c): the
 * keeper's unseals, signing-key signatures and delegations, the only TPM
 * work dkmd does.
 */
#ifndef DKM_KS_TPM_METRICS_H
#define DKM_KS_TPM_METRICS_H

#include <stdint.h>

#include "dkm/base/error.h"

struct svc_metrics;
struct timespec;

/* Register dkmd_tpm_operation_duration_seconds (ks_start does). */
DKM_MUSTCHECK int ks_tpm_metrics_register(struct svc_metrics *m);
/* Record a TPM operation that started at start (CLOCK_MONOTONIC). */
void ks_tpm_observe(const char *operation, const struct timespec *start);
/* Monotonic ms at which the last TPM operation ended (0: none yet): a
 * thread busy with many TPM operations in a row is making progress. */
uint64_t ks_tpm_last_op_ms(void);

#endif
