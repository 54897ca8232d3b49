/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging with levels to stderr or syslog.
 *
 * Secrets are never formatted: messages go through dkm_safe_vformat
 * (safefmt.h), which replaces a message with a %s or %p argument in
 * secure memory by a notice that names only the format string. Debug messages are
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

#endif
