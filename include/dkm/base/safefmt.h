/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Formatting that refuses secrets: the one formatter behind log messages,
 * error details and the provider's error records.
 */
#ifndef DKM_SAFEFMT_H
#define DKM_SAFEFMT_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Format into buf like vsnprintf, but refuse arguments that point into
 * secure memory: returns 0 and writes the message, or -EPERM and writes a
 * notice naming the format string. Used by the logger, by
 * dkm_error_set() and by the provider's error reporting.
 */
int dkm_safe_vformat(char *buf, size_t size, const char *fmt, va_list ap);

/*
 * Check fmt's arguments as dkm_safe_vformat does, formatting nothing: 0
 * when every %s and %p argument is outside secure memory and every
 * conversion is understood, -EPERM for a secret argument, -EINVAL for a
 * conversion not understood (%n included). ap is not consumed.
 */
int dkm_safe_vcheck(const char *fmt, va_list ap);

/*
 * Format piece, a part of a longer format string holding whole
 * conversions, with the arguments *ap points at, and advance *ap past
 * them, so that the next piece takes the arguments after them (the
 * structured logger formats each field value this way). Returns 0, or
 * -EPERM with buf empty when an argument is secret or a conversion is not
 * understood; *ap is then not advanced. *ap must be a va_list of the
 * caller's own (va_copy a va_list parameter first).
 */
int dkm_safe_vformat_piece(char *buf, size_t size, const char *piece, va_list *ap);

#endif
