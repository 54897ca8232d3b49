/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The formatter that keeps secrets out of every message: it walks the
 * format string once, before formatting, and checks every %s and %p
 * argument against the registry of secure allocations (secreg.c): a
 * message that would format bytes of a secret is replaced by a notice
 * naming only its format string. The logger (log.c) and the error detail
 * (error.c) format through it; it uses neither.
 */
#include "dkm/base/safefmt.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#include "dkm/base/secreg.h"

enum arg_len { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_J, LEN_Z, LEN_T, LEN_BIGL };

/*
 * Consume the arguments of fmt from *ap and report whether any string or
 * pointer argument points into secure memory. Returns 0 when formatting
 * is safe, -EPERM when an argument is secret, -EINVAL for a conversion we
 * do not understand (%n included), which is refused the same way. *ap is
 * a pointer so that a caller formatting a format piece by piece can go on
 * with the arguments that follow (C11 7.16 allows passing it so).
 */
static int check_args(const char *fmt, va_list *ap)
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
            (void)va_arg(*ap, int);
            f++;
        } else {
            while (*f >= '0' && *f <= '9')
                f++;
        }
        if (*f == '.') {
            f++;
            if (*f == '*') {
                (void)va_arg(*ap, int);
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
                (void)va_arg(*ap, long);
            else if (len == LEN_LL)
                (void)va_arg(*ap, long long);
            else if (len == LEN_J)
                (void)va_arg(*ap, intmax_t);
            else if (len == LEN_Z)
                (void)va_arg(*ap, size_t);
            else if (len == LEN_T)
                (void)va_arg(*ap, ptrdiff_t);
            else
                (void)va_arg(*ap, int);
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
                (void)va_arg(*ap, long double);
            else
                (void)va_arg(*ap, double);
            break;
        case 's':
        case 'p':
            ptr = va_arg(*ap, const void *);
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
    r = check_args(fmt, &aq);
    va_end(aq);
    if (r < 0) {
        snprintf(buf, size, "[message withheld: %s argument in \"%s\"]",
                 r == -EPERM ? "secret" : "unsupported", fmt);
        return -EPERM;
    }
    vsnprintf(buf, size, fmt, ap);
    return 0;
}

int dkm_safe_vcheck(const char *fmt, va_list ap)
{
    va_list aq;
    int r;

    va_copy(aq, ap);
    r = check_args(fmt, &aq);
    va_end(aq);
    return r;
}

int dkm_safe_vformat_piece(char *buf, size_t size, const char *piece, va_list *ap)
{
    va_list aq;
    int r;

    if (size == 0)
        return -EINVAL;
    /* Check on a copy first: nothing is formatted unless every argument is safe. */
    va_copy(aq, *ap);
    r = check_args(piece, &aq);
    va_end(aq);
    if (r < 0) {
        buf[0] = '\0';
        return -EPERM;
    }
    va_copy(aq, *ap);
    vsnprintf(buf, size, piece, aq);
    va_end(aq);
    /* Step past this piece's arguments: the next piece's come after them. */
    (void)check_args(piece, ap);
    return 0;
}
