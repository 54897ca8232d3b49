/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sd_notify(3) for dkmd: the messages a Type=notify unit expects
 * (READY=1, RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1), sent through
 * libsystemd to the datagram socket named by NOTIFY_SOCKET. libsystemd
 * does nothing when that variable is unset, and a failed send is only
 * logged at debug level: a service must never stop serving because its
 * manager went away. When and why each message is sent is decided by
 * server.c; this file only speaks the protocol.
 */
#include <string.h>

#include <systemd/sd-daemon.h>

#include "dkm/base/log.h"
#include "notify.h"

static void send_msg(const char *what, const char *msg)
{
    int r = sd_notify(/* unset_environment= */ 0, msg);

    if (r < 0)
        log_event(DKM_LOG_DEBUG, "notify.failed what=%s reason=%s", what, strerror(-r));
}

/* STATUS= is one line of text; anything after a newline is dropped. */
static void send_with_status(const char *what, const char *head, const char *status)
{
    size_t n = status != NULL ? strcspn(status, "\n") : 0;
    int r;

    if (n == 0) {
        send_msg(what, head);
        return;
    }
    r = sd_notifyf(0, "%s%sSTATUS=%.*s", head, head[0] != '\0' ? "\n" : "", (int)n,
                   status);
    if (r < 0)
        log_event(DKM_LOG_DEBUG, "notify.failed what=%s reason=%s", what, strerror(-r));
}

void svc_notify_ready(const char *status)
{
    send_with_status("READY", "READY=1", status);
}

void svc_notify_reloading(void)
{
    send_msg("RELOADING", "RELOADING=1");
}

void svc_notify_stopping(void)
{
    send_msg("STOPPING", "STOPPING=1");
}

void svc_notify_status(const char *status)
{
    send_with_status("STATUS", "", status);
}

uint64_t svc_notify_watchdog_usec(void)
{
    uint64_t usec = 0;

    /* > 0: enabled for this process (WATCHDOG_PID, when set, is ours). */
    if (sd_watchdog_enabled(/* unset_environment= */ 0, &usec) <= 0)
        return 0;
    return usec;
}

void svc_notify_watchdog(void)
{
    send_msg("WATCHDOG", "WATCHDOG=1");
}
