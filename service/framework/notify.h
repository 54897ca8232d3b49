/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service manager's notifications (notify.c): readiness, reload,
 * stop, a status line and the watchdog, as sd_notify(3) messages. Every
 * function is a no-op when dkmd was not started by a manager that asked
 * for them (NOTIFY_SOCKET unset), so tests and hand-started servers run
 * unchanged.
 */
#ifndef DKM_SVC_NOTIFY_H
#define DKM_SVC_NOTIFY_H

#include <stdint.h>

/* READY=1 with a STATUS= line: the state is loaded and the workers run. */
void svc_notify_ready(const char *status);
/* RELOADING=1 before a SIGHUP reload; svc_notify_ready again after it. */
void svc_notify_reloading(void);
/* STOPPING=1 when a stop begins. */
void svc_notify_stopping(void);
/* A STATUS= line alone (shown by `systemctl status`). */
void svc_notify_status(const char *status);

/*
 * The watchdog period the manager asked for (WATCHDOG_USEC, for this
 * process when WATCHDOG_PID is set), in microseconds; 0 when none.
 */
uint64_t svc_notify_watchdog_usec(void);
/* WATCHDOG=1: every loop the caller checked has turned. */
void svc_notify_watchdog(void);

#endif
