/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error strings for dkm return codes, and the per-thread detail message
 * that a failing function leaves for its caller to show.
 */
#include "dkm/base/error.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "dkm/base/safefmt.h"

#define DKM_ERROR_DETAIL_MAX 512

static __thread char detail[DKM_ERROR_DETAIL_MAX];

static const char *const dkm_messages[] = {
    [0] = "unknown dkm error",
    [1] = "malformed input",
    [2] = "invalid dkm URI",
    [3] = "configuration error",
    [4] = "TPM command failed",
    [5] = "platform state does not match the key's policy",
    [6] = "key was sealed to another TPM",
    [7] = "cryptographic operation failed",
    [8] = "integrity check failed",
    [9] = "signature or trust chain invalid",
    [10] = "expired",
    [11] = "not authorized",
    [12] = "service unavailable",
    [13] = "secure memory could not be locked",
    [14] = "protocol error",
    [15] = "database error",
};

const char *dkm_strerror(int r)
{
    static __thread char buf[64];

    if (r == 0)
        return "success";
    if (r <= -DKM_E_BASE - 1 && r > DKM_E_LAST)
        return dkm_messages[-r - DKM_E_BASE];
    if (r < 0 && r > -DKM_E_BASE) {
        /* strerror_r (GNU) may return a static string instead of buf. */
        return strerror_r(-r, buf, sizeof(buf));
    }
    return dkm_messages[0];
}

int dkm_error_set(int r, const char *fmt, ...)
{
    char msg[DKM_ERROR_DETAIL_MAX];
    va_list ap;

    /* Format aside first: callers may pass the current detail itself
     * (dkm_error_set(r, "context: %s", dkm_error_detail())). */
    va_start(ap, fmt);
    (void)dkm_safe_vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(detail, msg, sizeof(detail));
    return r;
}

const char *dkm_error_detail(void)
{
    return detail;
}

void dkm_error_clear(void)
{
    detail[0] = '\0';
}
