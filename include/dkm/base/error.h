/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error codes shared by every dkm component, and the per-thread error
 * detail that goes with them.
 *
 * Functions return 0 on success or a negative code: either a negative
 * errno (-ENOMEM, -EINVAL, ...) or one of the DKM_E_* codes below, which
 * sit above the errno range. A function that fails may also record a
 * human-readable detail with dkm_error_set(); callers read it with
 * dkm_error_detail() and show it to users next to dkm_strerror().
 */
#ifndef DKM_ERROR_H
#define DKM_ERROR_H

#include <stddef.h>

#define DKM_MUSTCHECK __attribute__((warn_unused_result))

enum dkm_error {
    DKM_E_BASE = 4096,
    DKM_E_FORMAT = -(DKM_E_BASE + 1),       /* malformed input (blob, wire data) */
    DKM_E_URI = -(DKM_E_BASE + 2),          /* not a valid dkm: URI */
    DKM_E_CONFIG = -(DKM_E_BASE + 3),       /* missing or invalid configuration */
    DKM_E_TPM = -(DKM_E_BASE + 4),          /* a TPM command failed */
    DKM_E_TPM_POLICY = -(DKM_E_BASE + 5),   /* platform state (PCRs) does not match */
    DKM_E_TPM_NOT_MINE = -(DKM_E_BASE + 6), /* blob was made for another TPM */
    DKM_E_CRYPTO = -(DKM_E_BASE + 7),       /* a cryptographic library call failed */
    DKM_E_INTEGRITY = -(DKM_E_BASE + 8),    /* authentication tag or HMAC mismatch */
    DKM_E_SIGNATURE = -(DKM_E_BASE + 9),    /* signature or trust chain invalid */
    DKM_E_EXPIRED = -(DKM_E_BASE + 10),     /* key version or delegation expired */
    DKM_E_DENIED = -(DKM_E_BASE + 11),      /* not authorized */
    DKM_E_UNAVAILABLE = -(DKM_E_BASE + 12), /* service or database unreachable */
    DKM_E_MEMLOCK = -(DKM_E_BASE + 13),     /* secure memory could not be locked */
    DKM_E_PROTOCOL = -(DKM_E_BASE + 14),    /* peer spoke the protocol wrongly */
    DKM_E_DB = -(DKM_E_BASE + 15),          /* database error */
    DKM_E_LAST = -(DKM_E_BASE + 16),
};

/*
 * Short description of a return code: DKM_E_* or negative errno. Never
 * NULL; the string is static.
 */
const char *dkm_strerror(int r);

/*
 * Record a detail message for the calling thread, formatted like printf,
 * and return r unchanged so that callers can write
 *     return dkm_error_set(-EINVAL, "bad %s", what);
 * Arguments that point into secure memory are never formatted (see log.h).
 * The current detail may itself be an argument, to add context to it.
 */
int dkm_error_set(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last detail message, or "" if none. */
const char *dkm_error_detail(void);

/* Forget the calling thread's detail message. */
void dkm_error_clear(void);

#endif
