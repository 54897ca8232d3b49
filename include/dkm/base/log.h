/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging with levels to stderr or syslog, as plain lines for a human or
 * as one structured line per event (key=value text or JSON) for dkmd.
 *
 * Secrets are never formatted: messages and every field value go through
 * the formatter of safefmt.h, which refuses a %s or %p argument in secure
 * memory; such a line keeps its level and event and says only which
 * format string was withheld. Debug messages are switched on by
 * configuration or the DKM_DEBUG environment variable, never by NDEBUG.
 *
 * Events: log_event(level, "EVENT KEY=VALUE ...", args) with a printf
 * format whose first word is the event name and whose other words are
 * fields, each KEY=VALUE with VALUE a piece of printf format (no spaces
 * outside a conversion), so -Wformat checks every argument:
 *
 *     log_event(DKM_LOG_INFO, "group.rotate group=%s version=%u", name, v);
 *
 * gives, by format,
 *
 *     text:  ts=2025-05-01T12:00:00.123Z level=info event=group.rotate
 *            group=payments version=3                      (one line)
 *     json:  {"ts":"2025-05-01T12:00:00.123Z","level":"info",
 *             "event":"group.rotate","group":"payments","version":3}
 *     plain: dkmd: info: group.rotate group=payments version=3
 *
 * Text values are quoted ("...") when empty or when they hold a space,
 * '"', '=', '\', a control character or bytes that are not UTF-8, and
 * escaped inside the quotes (\" \\ \n \r \t, \u00XX for other control
 * characters, \ufffd for bytes that are not UTF-8); JSON strings are
 * escaped the same way. A value that is a single integer or floating
 * conversion is a JSON number. The fields ts, level and event come first,
 * then the call's fields in order; at debug level src (file:line) and
 * func follow. A call's field named ts, level, event, src or func is
 * written with the prefix "f_". Plain messages (log_info(...)) are the
 * event "message" with the field msg in text and JSON. A line holds at
 * most DKM_LOG_LINE_MAX bytes: fields that do not fit are left out and
 * truncated=true says so; a value is cut at DKM_LOG_VALUE_MAX bytes.
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

enum dkm_log_format {
    DKM_LOG_PLAIN, /* "ident: level: message", for a human at a terminal */
    DKM_LOG_TEXT,  /* ts=... level=... event=... key=value ... */
    DKM_LOG_JSON,  /* one JSON object per line */
};

/* The longest line written (newline included) and the longest value. */
#define DKM_LOG_LINE_MAX 4096
#define DKM_LOG_VALUE_MAX 1024

/*
 * Set the program name, target and maximum level. Until called, messages
 * go to stderr at level INFO (DEBUG when DKM_DEBUG is set to a non-empty
 * value other than "0") in the plain format.
 */
void dkm_log_setup(const char *ident, enum dkm_log_target target, int max_level);

/* Change only the maximum level. */
void dkm_log_set_level(int max_level);

/* Change only the line format. */
void dkm_log_set_format(enum dkm_log_format format);

/* "text" or "json" (as dkmd.conf's log_format) to a format: 0 or -EINVAL. */
int dkm_log_format_parse(const char *name, enum dkm_log_format *ret);

/* Whether a message at this level would be written. */
bool dkm_log_enabled(int level);

/* Log a message; a trailing newline is added. */
void dkm_log_full(int level, const char *file, int line, const char *func,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Log an event: fmt is "EVENT KEY=VALUE ..." as described above. Words are
 * separated by spaces; a word without '=' is a field named "_".
 */
void dkm_log_event_full(int level, const char *file, int line, const char *func,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Render one line as dkm_log_event_full would write it, without the
 * newline, into buf (at least 256 bytes; a line is cut to size), with now_ms (Unix
 * milliseconds) as its time and no src/func: for tests. is_event false
 * renders fmt as a plain message. Returns the line's length.
 */
size_t dkm_log_render(char *buf, size_t size, enum dkm_log_format format, int level,
                      bool is_event, unsigned long long now_ms, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#define dkm_log(level, ...)                                                              \
    dkm_log_full((level), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_error(...) dkm_log(DKM_LOG_ERR, __VA_ARGS__)
#define log_warning(...) dkm_log(DKM_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) dkm_log(DKM_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) dkm_log(DKM_LOG_INFO, __VA_ARGS__)
#define log_debug(...) dkm_log(DKM_LOG_DEBUG, __VA_ARGS__)

#define log_event(level, ...)                                                            \
    dkm_log_event_full((level), __FILE__, __LINE__, __func__, __VA_ARGS__)

#endif
