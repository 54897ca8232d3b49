/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gauges of what the key service holds (gauges.c), read from the current
 * snapshot and the audit queue at scrape time.
 */
#ifndef DKM_KS_GAUGES_H
#define DKM_KS_GAUGES_H

#include "dkm/base/error.h"

struct svc_metrics;

/* Register the gauges (ks_start does). */
DKM_MUSTCHECK int ks_gauges_register(struct svc_metrics *m);

#endif
