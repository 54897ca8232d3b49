/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr or syslog, and the formatter that keeps secrets out
 * of every message.
 *
 * The formatter walks the format string once, before formatting, and
 * checks every %s and %p argument against the secure-memory arena: a
 * message that would format bytes of a secret is replaced by a notice
 * naming only its format string. This makes "no secret in a log" a
 * property of the logger, not only of its callers' care.
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

#include "dkm/base/secmem.h"

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

enum arg_len { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_J, LEN_Z, LEN_T, LEN_BIGL };

/*
 * Consume the arguments of fmt from ap and report whether any string or
 * pointer argument points into secure memory. Returns 0 when formatting
 * is safe, -EPERM when an argument is secret, -EINVAL for a conversion we
 * do not understand (%n included), which is refused the same way.
 */
static int check_args(const char *fmt, va_list ap)
{
    const char *f = fmt;

    while ((f = strchr(f, '%')) != NULL) {
        enum arg_len len = LEN_NONE;
        const void *ptr;

        f++;
        if (*f == '%') {
            f++;
            continue;
        }
        while (*f != '\0' && strchr("-+ #0'", *f) != NULL)
            f++;
        if (*f == '*') {
            (void)va_arg(ap, int);
            f++;
        } else {
            while (*f >= '0' && *f <= '9')
                f++;
        }
        if (*f == '.') {
            f++;
            if (*f == '*') {
                (void)va_arg(ap, int);
                f++;
            } else {
                while (*f >= '0' && *f <= '9')
                    f++;
            }
        }
        switch (*f) {
        case 'h':
            len = f[1] == 'h' ? LEN_HH : LEN_H;
            f += len == LEN_HH ? 2 : 1;
            break;
        case 'l':
            len = f[1] == 'l' ? LEN_LL : LEN_L;
            f += len == LEN_LL ? 2 : 1;
            break;
        case 'j':
            len = LEN_J;
            f++;
            break;
        case 'z':
            len = LEN_Z;
            f++;
            break;
        case 't':
            len = LEN_T;
            f++;
            break;
        case 'L':
            len = LEN_BIGL;
            f++;
            break;
        default:
            break;
        }
        switch (*f) {
        case 'd':
        case 'i':
        case 'u':
        case 'o':
        case 'x':
        case 'X':
        case 'c':
            if (len == LEN_L)
                (void)va_arg(ap, long);
            else if (len == LEN_LL)
                (void)va_arg(ap, long long);
            else if (len == LEN_J)
                (void)va_arg(ap, intmax_t);
            else if (len == LEN_Z)
                (void)va_arg(ap, size_t);
            else if (len == LEN_T)
                (void)va_arg(ap, ptrdiff_t);
            else
                (void)va_arg(ap, int);
            break;
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
        case 'a':
        case 'A':
            if (len == LEN_BIGL)
                (void)va_arg(ap, long double);
            else
                (void)va_arg(ap, double);
            break;
        case 's':
        case 'p':
            ptr = va_arg(ap, const void *);
            if (ptr != NULL && dkm_secmem_contains(ptr))
                return -EPERM;
            break;
        default:
            return -EINVAL;
        }
        f++;
    }
    return 0;
}

int dkm_safe_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    va_list aq;
    int r;

    if (size == 0)
        return -EINVAL;
    va_copy(aq, ap);
    r = check_args(fmt, aq);
    va_end(aq);
    if (r < 0) {
        snprintf(buf, size, "[message withheld: %s argument in \"%s\"]",
                 r == -EPERM ? "secret" : "unsupported", fmt);
        return -EPERM;
    }
    vsnprintf(buf, size, fmt, ap);
    return 0;
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
