/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging with levels to stderr or syslog.
 *
 * Secrets are never formatted: before a message is formatted, every
 * string (%s) and pointer (%p) argument is checked against the secure
 * memory arena (secmem.h); if one points into it, the message is replaced
 * by a notice that names only the format string. Debug messages are
 * switched on by configuration or the DKM_DEBUG environment variable,
 * never by NDEBUG.
 */
#ifndef DKM_LOG_H
#define DKM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum dkm_log_level {
    DKM_LOG_ERR = 3,
    DKM_LOG_WARNING = 4,
    DKM_LOG_NOTICE = 5,
    DKM_LOG_INFO = 6,
    DKM_LOG_DEBUG = 7,
};

enum dkm_log_target {
    DKM_LOG_STDERR,
    DKM_LOG_SYSLOG,
};

/*
 * Set the program name, target and maximum level. Until called, messages
 * go to stderr at level INFO (DEBUG when DKM_DEBUG is set to a non-empty
 * value other than "0").
 */
void dkm_log_setup(const char *ident, enum dkm_log_target target, int max_level);

/* Change only the maximum level. */
void dkm_log_set_level(int max_level);

/* Whether a message at this level would be written. */
bool dkm_log_enabled(int level);

/* Log a message; a trailing newline is added. */
void dkm_log_full(int level, const char *file, int line, const char *func,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define dkm_log(level, ...)                                                              \
    dkm_log_full((level), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_error(...) dkm_log(DKM_LOG_ERR, __VA_ARGS__)
#define log_warning(...) dkm_log(DKM_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) dkm_log(DKM_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) dkm_log(DKM_LOG_INFO, __VA_ARGS__)
#define log_debug(...) dkm_log(DKM_LOG_DEBUG, __VA_ARGS__)

/*
 * Format into buf like vsnprintf, but refuse arguments that point into
 * secure memory: returns 0 and writes the message, or -EPERM and writes a
 * notice naming the format string. Used by the logger and by
 * dkm_error_set(); exposed for the provider's error reporting.
 */
int dkm_safe_vformat(char *buf, size_t size, const char *fmt, va_list ap);

#endif
