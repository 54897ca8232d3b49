/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server (server.c): worker threads, signals, start and stop, and
 * the process-wide state handlers may read.
 */
#ifndef DKM_SVC_SERVER_H
#define DKM_SVC_SERVER_H

#include <stdbool.h>
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
 * A check the watchdog makes before each WATCHDOG=1 to the service
 * manager, for a thread of the caller's that runs a loop of its own (the
 * key service's keeper): it returns false, with the reason in why, when
 * that loop has not turned within max_ms. The workers' event loops are
 * checked by the server itself.
 */
void svc_set_liveness_hook(bool (*fn)(uint64_t max_ms, char *why, size_t why_size));

/*
 * Rows refused by a layer above the framework (the key service's state
 * snapshot), added to the framework's own count in svc_get_status and in
 * the dkmd_refused_rows gauge, so that both say the same total.
 */
void svc_set_refused_hook(uint64_t (*fn)(void));

/*
 * Run the service until SIGTERM/SIGINT; returns 0 after a clean drain.
 * Under a service manager (NOTIFY_SOCKET) it sends READY=1 once the
 * workers run (the caller has loaded its state by then), STOPPING=1 at a
 * stop, RELOADING=1 and READY=1 around a SIGHUP reload, and, when the
 * manager asked for a watchdog, WATCHDOG=1 every half period while every
 * worker's loop and the liveness hook's loop turn.
 * metrics is the registry /metrics renders (owned by the caller, who may
 * have registered the key service's metrics in it already); routes is the
 * endpoint table (nroutes rows, in matching order), which must outlive
 * the call.
 */
DKM_MUSTCHECK int svc_run(struct svc_config *cfg, const char *config_path,
                          unsigned schema_version, struct svc_metrics *metrics,
                          const struct svc_route *routes, size_t nroutes);

#endif
