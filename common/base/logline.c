/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a log line says: the plain line for a human, or one structured
 * line per event, key=value text or a JSON object (the formats of log.h).
 * An event's format is split into words, the first the event name, the
 * others KEY=VALUE, and each value is formatted on its own through
 * safefmt.c after the whole format was checked, so a field can never
 * carry a secret and every value is escaped by itself: no raw newline,
 * quote or invalid UTF-8 reaches the line, and a line that would overflow
 * ends cleanly with truncated=true instead of a broken quote or brace.
 */
#include "logline.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dkm/base/safefmt.h"

/* The longest word of an event's format, and the longest key or event name. */
#define PIECE_MAX 256
#define NAME_MAX_LEN 64
/* Room kept at the end for ,"truncated":true} (text: truncated=true). */
#define TAIL_RESERVE 24

struct out {
    char *buf;
    size_t len;
    size_t limit; /* len never passes it; the tail goes after it */
    bool truncated;
};

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

/* Append n bytes, all or none; after the first refusal, nothing more. */
static bool put(struct out *o, const char *s, size_t n)
{
    if (o->truncated || n > o->limit - o->len) {
        o->truncated = true;
        return false;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return true;
}

static bool put_str(struct out *o, const char *s)
{
    return put(o, s, strlen(s));
}

/* The length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        if (s[0] == 0xe0)
            lo = 0xa0; /* overlong */
        else if (s[0] == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        if (s[0] == 0xf0)
            lo = 0x90; /* overlong */
        else if (s[0] == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/*
 * Append s escaped: quotes, backslashes and control characters as JSON
 * escapes, bytes that are not UTF-8 as \ufffd, the rest as is. Stops
 * (truncated) at the first unit that does not fit.
 */
static void put_escaped(struct out *o, const char *s, size_t n, bool escape_quote)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n && !o->truncated) {
        char esc[8];
        const char *e = esc;
        size_t elen, step = 1;

        switch (u[i]) {
        case '"':
            e = escape_quote ? "\\\"" : "\"";
            break;
        case '\\':
            e = escape_quote ? "\\\\" : "\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            if (u[i] < 0x20 || u[i] == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            } else if (u[i] >= 0x80) {
                step = utf8_seq(u + i, n - i);
                if (step == 0) {
                    e = "\\ufffd";
                    step = 1;
                } else {
                    e = s + i;
                }
            } else {
                e = s + i;
            }
            break;
        }
        elen = e == s + i ? step : strlen(e);
        put(o, e, elen);
        i += step;
    }
}

/* Append s as a quoted string, cut where it stops fitting. */
static bool put_quoted(struct out *o, const char *s, size_t n)
{
    if (o->truncated || o->limit - o->len < 2) {
        o->truncated = true;
        return false;
    }
    o->buf[o->len++] = '"';
    o->limit--; /* the closing quote always fits */
    put_escaped(o, s, n, true);
    o->limit++;
    o->buf[o->len++] = '"';
    return true;
}

/* Whether a text value must be quoted to read back as one value. */
static bool text_needs_quotes(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;

    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        size_t k;

        if (u[i] <= 0x20 || u[i] == '"' || u[i] == '=' || u[i] == '\\' || u[i] == 0x7f)
            return true;
        if (u[i] >= 0x80) {
            k = utf8_seq(u + i, n - i);
            if (k == 0)
                return true;
            i += k - 1;
        }
    }
    return false;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and nothing else. */
static bool json_number(const char *s)
{
    const char *p = s;

    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Past the conversion that starts at p (*p == '%'). */
static const char *conv_end(const char *p)
{
    p++;
    if (*p == '%')
        return p + 1;
    while (*p != '\0' && strchr("-+ #0'", *p) != NULL)
        p++;
    if (*p == '*')
        p++;
    else
        while (*p >= '0' && *p <= '9')
            p++;
    if (*p == '.') {
        p++;
        if (*p == '*')
            p++;
        else
            while (*p >= '0' && *p <= '9')
                p++;
    }
    if ((p[0] == 'h' && p[1] == 'h') || (p[0] == 'l' && p[1] == 'l'))
        p += 2;
    else if (*p != '\0' && strchr("hljztL", *p) != NULL)
        p++;
    if (*p != '\0')
        p++;
    return p;
}

/*
 * The next word of an event format at or after p: its start, its end and
 * the '=' that ends its key (NULL when it has none before a conversion).
 * Spaces inside a conversion ("% d") do not end a word. False at the end.
 */
static bool next_word(const char **p, const char **ret_start, const char **ret_end,
                      const char **ret_eq)
{
    const char *s = *p, *eq = NULL;
    bool conv = false;

    while (*s == ' ')
        s++;
    if (*s == '\0')
        return false;
    *ret_start = s;
    while (*s != '\0' && *s != ' ') {
        if (*s == '%') {
            s = conv_end(s);
            conv = true;
            continue;
        }
        if (*s == '=' && eq == NULL && !conv)
            eq = s;
        s++;
    }
    *ret_end = s;
    *ret_eq = eq;
    *p = s;
    return true;
}

/* Whether a whole piece is one numeric conversion (a JSON number if it prints as one). */
static bool numeric_piece(const char *piece, size_t len)
{
    return len >= 2 && piece[0] == '%' && piece[1] != '%' &&
           conv_end(piece) == piece + len && strchr("diufFeEgG", piece[len - 1]) != NULL;
}

/* A key or event name: [A-Za-z0-9_.-], at most NAME_MAX_LEN - 1 bytes. */
static void name_of(const char *s, size_t n, char out[NAME_MAX_LEN])
{
    size_t k = 0;

    for (size_t i = 0; i < n && k < NAME_MAX_LEN - 1; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

        out[k++] = ok ? c : '_';
    }
    if (k == 0)
        out[k++] = '_';
    out[k] = '\0';
}

static bool reserved(const char *key)
{
    static const char *const names[] = {"ts", "level", "event", "src", "func"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return false;
}

/* Without trailing newlines (libpq's messages end with one). */
static size_t trimmed(const char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return n;
}

static void put_ts(struct out *o, unsigned long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char b[48];

    memset(&tm, 0, sizeof(tm));
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    snprintf(b, sizeof(b), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(ms % 1000));
    put_str(o, b);
}

/* The start of a line, up to and including the event name. */
static void put_head(struct out *o, const struct dkm_log_line *l, const char *event)
{
    char b[64];

    switch (l->format) {
    case DKM_LOG_PLAIN:
        put_str(o, l->ident != NULL ? l->ident : "dkm");
        if (l->src_file != NULL) {
            snprintf(b, sizeof(b), "[%d]", l->pid);
            put_str(o, b);
        }
        put_str(o, ": ");
        put_str(o, level_name(l->level));
        put_str(o, ": ");
        if (event != NULL)
            put_str(o, event);
        break;
    case DKM_LOG_TEXT:
        if (l->with_ts) {
            put_str(o, "ts=");
            put_ts(o, l->now_ms);
            put_str(o, " ");
        }
        put_str(o, "level=");
        put_str(o, level_name(l->level));
        put_str(o, " event=");
        put_str(o, event);
        break;
    case DKM_LOG_JSON:
        put_str(o, "{");
        if (l->with_ts) {
            put_str(o, "\"ts\":\"");
            put_ts(o, l->now_ms);
            put_str(o, "\",");
        }
        put_str(o, "\"level\":\"");
        put_str(o, level_name(l->level));
        put_str(o, "\",\"event\":\"");
        put_str(o, event);
        put_str(o, "\"");
        break;
    }
}

/*
 * One field. A field whose value cannot even start is left out whole, so
 * a cut line never ends in a dangling key; a string is cut where it
 * stops fitting, a number is all or nothing.
 */
static void put_field(struct out *o, const struct dkm_log_line *l, const char *key,
                      const char *v, size_t n, bool number)
{
    size_t mark = o->len, before;
    bool ok;

    if (l->format == DKM_LOG_JSON)
        ok = put_str(o, ",\"") && put_str(o, key) && put_str(o, "\":");
    else
        ok = put_str(o, " ") && put_str(o, key) && put_str(o, "=");
    before = o->len;
    if (ok) {
        if (number && l->format == DKM_LOG_JSON)
            put(o, v, n);
        else if (l->format == DKM_LOG_JSON || text_needs_quotes(v, n))
            put_quoted(o, v, n);
        else
            put(o, v, n);
    }
    if (!ok || o->len == before)
        o->len = mark;
}

static void put_src(struct out *o, const struct dkm_log_line *l)
{
    char b[PIECE_MAX + 16];

    if (l->src_file == NULL)
        return;
    /* __FILE__ is relative to the source tree (-fmacro-prefix-map). */
    if (l->format == DKM_LOG_PLAIN) {
        snprintf(b, sizeof(b), " (%.*s:%d ", PIECE_MAX, l->src_file, l->src_line);
        if (put_str(o, b) && put_str(o, l->func != NULL ? l->func : "?"))
            put_str(o, ")");
        return;
    }
    snprintf(b, sizeof(b), "%.*s:%d", PIECE_MAX, l->src_file, l->src_line);
    put_field(o, l, "src", b, strlen(b), false);
    if (l->func != NULL)
        put_field(o, l, "func", l->func, strlen(l->func), false);
}

static void render_message(struct out *o, const struct dkm_log_line *l, const char *fmt,
                           va_list *ap)
{
    char msg[DKM_LOG_LINE_MAX];

    /* On refusal msg holds the notice naming the format string. */
    (void)dkm_safe_vformat(msg, sizeof(msg), fmt, *ap);
    if (l->format == DKM_LOG_PLAIN) {
        put_head(o, l, NULL);
        put_escaped(o, msg, trimmed(msg), false);
    } else {
        put_head(o, l, "message");
        put_field(o, l, "msg", msg, trimmed(msg), false);
    }
}

static int render_event(struct out *o, const struct dkm_log_line *l, const char *fmt,
                        va_list *ap)
{
    const char *p = fmt, *start, *end, *eq;
    char piece[PIECE_MAX], val[DKM_LOG_VALUE_MAX + 1], key[NAME_MAX_LEN + 2];
    bool first = true;
    int r;

    r = dkm_safe_vcheck(fmt, *ap);
    if (r < 0)
        return r;
    while (next_word(&p, &start, &end, &eq)) {
        const char *v = first || eq == NULL ? start : eq + 1;
        size_t plen = (size_t)(end - v);

        if (plen >= sizeof(piece))
            return -EINVAL;
        memcpy(piece, v, plen);
        piece[plen] = '\0';
        r = dkm_safe_vformat_piece(val, sizeof(val), piece, ap);
        if (r < 0)
            return r;
        if (first) {
            name_of(val, strlen(val), key);
            put_head(o, l, key);
            first = false;
            continue;
        }
        if (eq == NULL) {
            strcpy(key, "_");
        } else {
            name_of(start, (size_t)(eq - start), key + 2);
            if (reserved(key + 2))
                memcpy(key, "f_", 2);
            else
                memmove(key, key + 2, strlen(key + 2) + 1);
        }
        put_field(o, l, key, val, trimmed(val),
                  numeric_piece(piece, plen) && json_number(val));
    }
    if (first)
        put_head(o, l, "_");
    return 0;
}

/* An event whose arguments were refused: its level and name, and why. */
static void render_withheld(struct out *o, const struct dkm_log_line *l, const char *fmt,
                            int r)
{
    char event[NAME_MAX_LEN], why[PIECE_MAX + 48];
    size_t n = strcspn(fmt, " ");

    if (memchr(fmt, '%', n) != NULL)
        n = 0;
    name_of(fmt, n, event);
    snprintf(why, sizeof(why), "%s argument in \"%.*s\"",
             r == -EPERM ? "secret" : "unsupported", PIECE_MAX, fmt);
    put_head(o, l, event);
    put_field(o, l, "withheld", why, strlen(why), false);
}

size_t dkm_log_line_vrender(char *buf, size_t size, const struct dkm_log_line *l,
                            const char *fmt, va_list ap)
{
    struct out o = {.buf = buf, .limit = size - 1 - TAIL_RESERVE};
    va_list aq;
    int r = 0;

    /* Too small for a line's start and its tail: nothing rather than a broken line. */
    if (size < 256) {
        if (size > 0)
            buf[0] = '\0';
        return 0;
    }
    va_copy(aq, ap);
    if (l->is_event)
        r = render_event(&o, l, fmt, &aq);
    else
        render_message(&o, l, fmt, &aq);
    va_end(aq);
    if (r < 0) {
        o.len = 0;
        o.truncated = false;
        render_withheld(&o, l, fmt, r);
    }
    put_src(&o, l);
    if (o.truncated) {
        o.limit += TAIL_RESERVE;
        o.truncated = false;
        if (l->format == DKM_LOG_JSON)
            put_str(&o, ",\"truncated\":true");
        else
            put_str(&o, l->format == DKM_LOG_PLAIN ? " [truncated]" : " truncated=true");
    } else {
        o.limit += TAIL_RESERVE;
    }
    if (l->format == DKM_LOG_JSON)
        put_str(&o, "}");
    buf[o.len] = '\0';
    return o.len;
}
