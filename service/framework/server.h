/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server (server.c): worker threads, signals, start and stop, and
 * the process-wide state handlers may read.
 */
#ifndef DKM_SVC_SERVER_H
#define DKM_SVC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"
#include "router.h"

struct svc;
struct svc_config;
struct svc_metrics;

/* Process-wide state handlers may read. */
struct svc_status {
    unsigned workers;
    unsigned schema_version;
    uint64_t uptime_s;
    uint64_t refused_rows;
    unsigned connections;
};
void svc_get_status(const struct svc *svc, struct svc_status *ret);
struct svc_metrics *svc_get_metrics(const struct svc *svc);

/*
 * Count database rows refused by validation (bad signature, bad length):
 * shown in /v1/health. Thread-safe.
 */
void svc_refused_rows_add(struct svc *svc, uint64_t n);

/*
 * A function svc_run calls once every worker thread has stopped and
 * before their event bases are freed: the place for other threads that
 * post events to workers (the key service's keeper) to stop doing so.
 */
void svc_set_workers_stopped_hook(void (*fn)(void));

/*
 * Run the service until SIGTERM/SIGINT; returns 0 after a clean drain.
 * metrics is the registry /metrics renders (owned by the caller, who may
 * have registered the key service's metrics in it already); routes is the
 * endpoint table (nroutes rows, in matching order), which must outlive
 * the call.
 */
DKM_MUSTCHECK int svc_run(struct svc_config *cfg, const char *config_path,
                          unsigned schema_version, struct svc_metrics *metrics,
                          const struct svc_route *routes, size_t nroutes);

#endif
