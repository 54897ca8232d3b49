/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr or syslog. Every message is formatted by
 * dkm_safe_vformat (safefmt.c), so a message that would format bytes of a
 * secret is replaced by a notice naming only its format string: "no
 * secret in a log" is a property of the logger, not only of its callers'
 * care.
 */
#include "dkm/base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <wchar.h>

#include "dkm/base/safefmt.h"

#define DKM_LOG_LINE_MAX 2048

struct log_state {
    char ident[32];
    enum dkm_log_target target;
    int max_level;
    bool configured;
};

static struct log_state state = {
    .ident = "dkm",
    .target = DKM_LOG_STDERR,
    .max_level = DKM_LOG_INFO,
};
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static bool env_debug(void)
{
    const char *e = getenv("DKM_DEBUG");

    return e != NULL && e[0] != '\0' && strcmp(e, "0") != 0;
}

static void read_env(void)
{
    if (!state.configured && env_debug())
        state.max_level = DKM_LOG_DEBUG;
}

void dkm_log_setup(const char *ident, enum dkm_log_target target, int max_level)
{
    snprintf(state.ident, sizeof(state.ident), "%s", ident != NULL ? ident : "dkm");
    state.target = target;
    state.max_level = env_debug() ? DKM_LOG_DEBUG : max_level;
    state.configured = true;
    if (target == DKM_LOG_SYSLOG)
        openlog(state.ident, LOG_PID, LOG_DAEMON);
}

void dkm_log_set_level(int max_level)
{
    state.max_level = max_level;
}

bool dkm_log_enabled(int level)
{
    pthread_once(&env_once, read_env);
    return level <= state.max_level;
}

static const char *level_name(int level)
{
    switch (level) {
    case DKM_LOG_ERR:
        return "error";
    case DKM_LOG_WARNING:
        return "warning";
    case DKM_LOG_NOTICE:
        return "notice";
    case DKM_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void dkm_log_full(int level, const char *file, int line, const char *func,
                  const char *fmt, ...)
{
    char msg[DKM_LOG_LINE_MAX];
    va_list ap;
    int saved_errno = errno;

    if (!dkm_log_enabled(level))
        return;
    va_start(ap, fmt);
    (void)dkm_safe_vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (state.target == DKM_LOG_SYSLOG) {
        syslog(level, "%s", msg);
    } else if (state.max_level >= DKM_LOG_DEBUG) {
        fprintf(stderr, "%s[%d]: %s: %s (%s:%d %s)\n", state.ident, (int)getpid(),
                level_name(level), msg, file, line, func);
    } else {
        fprintf(stderr, "%s: %s: %s\n", state.ident, level_name(level), msg);
    }
    errno = saved_errno;
}
