/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr or syslog: the level filter, the program name, the
 * line format, and the write. What a line says is logline.c's, which
 * formats every message and field value through safefmt.c, so a line
 * that would format bytes of a secret keeps only the name of its format
 * string: "no secret in a log" is a property of the logger, not only of
 * its callers' care. Each line goes out in one write(2), so lines of
 * several threads never interleave.
 */
#include "dkm/base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "logline.h"

struct log_state {
    char ident[32];
    enum dkm_log_target target;
    atomic_int max_level;
    atomic_int format;
    bool configured;
};

static struct log_state state = {
    .ident = "dkm",
    .target = DKM_LOG_STDERR,
    .max_level = DKM_LOG_INFO,
    .format = DKM_LOG_PLAIN,
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
        atomic_store(&state.max_level, DKM_LOG_DEBUG);
}

void dkm_log_setup(const char *ident, enum dkm_log_target target, int max_level)
{
    snprintf(state.ident, sizeof(state.ident), "%s", ident != NULL ? ident : "dkm");
    state.target = target;
    atomic_store(&state.max_level, env_debug() ? DKM_LOG_DEBUG : max_level);
    state.configured = true;
    if (target == DKM_LOG_SYSLOG)
        openlog(state.ident, LOG_PID, LOG_DAEMON);
}

void dkm_log_set_level(int max_level)
{
    atomic_store(&state.max_level, max_level);
}

void dkm_log_set_format(enum dkm_log_format format)
{
    atomic_store(&state.format, (int)format);
}

int dkm_log_format_parse(const char *name, enum dkm_log_format *ret)
{
    if (strcmp(name, "text") == 0)
        *ret = DKM_LOG_TEXT;
    else if (strcmp(name, "json") == 0)
        *ret = DKM_LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

bool dkm_log_enabled(int level)
{
    pthread_once(&env_once, read_env);
    return level <= atomic_load(&state.max_level);
}

static unsigned long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000 +
           (unsigned long long)ts.tv_nsec / 1000000;
}

/* The whole line in one write: a short write is finished, EINTR retried. */
static void write_line(char *line, size_t len)
{
    size_t off = 0;

    line[len++] = '\n';
    while (off < len) {
        ssize_t n = write(STDERR_FILENO, line + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

static void vlog(int level, const char *file, int line, const char *func, bool is_event,
                 const char *fmt, va_list ap)
{
    char buf[DKM_LOG_LINE_MAX];
    struct dkm_log_line l = {
        .format = (enum dkm_log_format)atomic_load(&state.format),
        .level = level,
        .is_event = is_event,
        .with_ts = state.target == DKM_LOG_STDERR, /* syslog stamps its own */
        .now_ms = now_ms(),
        .ident = state.ident,
        .pid = (int)getpid(),
    };
    size_t len;

    if (atomic_load(&state.max_level) >= DKM_LOG_DEBUG) {
        l.src_file = file;
        l.src_line = line;
        l.func = func;
    }
    /* One byte stays free for the newline. */
    len = dkm_log_line_vrender(buf, sizeof(buf) - 1, &l, fmt, ap);
    if (state.target == DKM_LOG_SYSLOG)
        syslog(level, "%s", buf);
    else
        write_line(buf, len);
}

void dkm_log_full(int level, const char *file, int line, const char *func,
                  const char *fmt, ...)
{
    va_list ap;
    int saved_errno = errno;

    if (!dkm_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, file, line, func, false, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}

void dkm_log_event_full(int level, const char *file, int line, const char *func,
                        const char *fmt, ...)
{
    va_list ap;
    int saved_errno = errno;

    if (!dkm_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, file, line, func, true, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}

size_t dkm_log_render(char *buf, size_t size, enum dkm_log_format format, int level,
                      bool is_event, unsigned long long ms, const char *fmt, ...)
{
    struct dkm_log_line l = {
        .format = format,
        .level = level,
        .is_event = is_event,
        .with_ts = true,
        .now_ms = ms,
        .ident = state.ident,
    };
    va_list ap;
    size_t len;

    va_start(ap, fmt);
    len = dkm_log_line_vrender(buf, size, &l, fmt, ap);
    va_end(ap);
    return len;
}
