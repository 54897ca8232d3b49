/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The line renderer of the logger (logline.c), private to the base
 * layer: log.c decides whether and where a line goes, logline.c what it
 * says, in the plain, text or JSON format of log.h.
 */
#ifndef DKM_BASE_LOGLINE_H
#define DKM_BASE_LOGLINE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "dkm/base/log.h"

struct dkm_log_line {
    enum dkm_log_format format;
    int level;
    bool is_event;             /* fmt is "EVENT KEY=VALUE ...", else a message */
    bool with_ts;              /* text and JSON: a ts field first */
    unsigned long long now_ms; /* Unix milliseconds, for ts */
    const char *ident;         /* plain: the program name */
    int pid;                   /* plain, with src: the process id */
    const char *src_file;      /* NULL: no src and func fields */
    int src_line;
    const char *func;
};

/*
 * Render one line (without a newline) into buf, NUL-terminated, at most
 * size - 1 bytes; returns its length. size must be at least 256. Every
 * argument is formatted through safefmt.h: a line whose arguments would
 * format a secret says only which format string was withheld.
 */
size_t dkm_log_line_vrender(char *buf, size_t size, const struct dkm_log_line *l,
                            const char *fmt, va_list ap);

#endif
