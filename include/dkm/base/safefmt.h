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

#endif
