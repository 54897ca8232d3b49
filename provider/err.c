/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provider's own error reasons and the one place errors are raised.
 * Errors go through the core's error functions so that they carry the
 * provider's library and reason strings; with debugging on they are also
 * logged with the file, line and function that raised them. Details are
 * formatted by dkm_safe_vformat, which refuses arguments in secure memory.
 */
#include "provider.h"

#include <errno.h>
#include <stdio.h>

#include <openssl/err.h>

#include "dkm/base/error.h"
#include "dkm/base/log.h"
#include "dkm/base/safefmt.h"

static const OSSL_ITEM reason_strings[] = {
    {DKM_R_BAD_URI, "invalid dkm URI"},
    {DKM_R_NO_SUCH_KEY, "no such dkm group or key version"},
    {DKM_R_VERSION_EXPIRED, "dkm key version has expired"},
    {DKM_R_ACCESS_DENIED, "this node may not use the dkm group"},
    {DKM_R_KEYSOURCE_UNAVAILABLE, "dkm key source unavailable"},
    {DKM_R_NO_KEYSOURCE, "no dkm key source configured"},
    {DKM_R_BAD_CONFIG, "invalid dkm provider configuration"},
    {DKM_R_BAD_BLOB, "malformed dkm protect blob"},
    {DKM_R_WRONG_GROUP, "data belongs to another dkm group"},
    {DKM_R_VERSION_MISMATCH, "data was made with another key version"},
    {DKM_R_AUTH_FAILED, "dkm data failed authentication"},
    {DKM_R_OUTPUT_TOO_SMALL, "output buffer too small"},
    {DKM_R_INPUT_TOO_LARGE, "input too large"},
    {DKM_R_EXPORT_REFUSED, "dkm keys cannot be exported"},
    {DKM_R_BAD_CIPHER_KEY, "cipher key is not a dkm URI"},
    {DKM_R_BAD_STREAM, "malformed dkm stream"},
    {DKM_R_BAD_PARAM, "invalid parameter"},
    {DKM_R_BAD_STATE, "operation not initialised or already finished"},
    {DKM_R_CRYPTO, "cryptographic operation failed"},
    {DKM_R_MALLOC, "out of memory"},
    {DKM_R_INTERNAL, "internal error"},
    {0, NULL},
};

const OSSL_ITEM *dkm_prov_reason_strings(void)
{
    return reason_strings;
}

static void set_error(const struct dkm_prov_ctx *ctx, int reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctx->core_vset_error(ctx->handle, reason, fmt, ap);
    va_end(ap);
}

static void raise_text(const struct dkm_prov_ctx *ctx, const char *file, int line,
                       const char *func, int reason, const char *text)
{
    if (ctx == NULL || ctx->core_new_error == NULL || ctx->core_set_error_debug == NULL ||
        ctx->core_vset_error == NULL)
        return;
    ctx->core_new_error(ctx->handle);
    ctx->core_set_error_debug(ctx->handle, file, line, func);
    set_error(ctx, reason, "%s", text);
    if (ctx->cfg.debug)
        dkm_log_full(DKM_LOG_DEBUG, file, line, func, "dkm error %d: %s", reason, text);
}

void dkm_prov_raise(const struct dkm_prov_ctx *ctx, const char *file, int line,
                    const char *func, int reason, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    (void)dkm_safe_vformat(text, sizeof(text), fmt, ap);
    va_end(ap);
    raise_text(ctx, file, line, func, reason, text);
}

static int reason_of(int r)
{
    switch (r) {
    case DKM_E_URI:
        return DKM_R_BAD_URI;
    case -ENOENT:
        return DKM_R_NO_SUCH_KEY;
    case DKM_E_EXPIRED:
        return DKM_R_VERSION_EXPIRED;
    case DKM_E_DENIED:
        return DKM_R_ACCESS_DENIED;
    case DKM_E_UNAVAILABLE:
    case DKM_E_TPM:
    case DKM_E_TPM_POLICY:
    case DKM_E_TPM_NOT_MINE:
    case DKM_E_SIGNATURE:
    case DKM_E_PROTOCOL:
        return DKM_R_KEYSOURCE_UNAVAILABLE;
    case DKM_E_CONFIG:
        return DKM_R_BAD_CONFIG;
    case -ENOSYS:
        return DKM_R_NO_KEYSOURCE;
    case DKM_E_FORMAT:
        return DKM_R_BAD_BLOB;
    case DKM_E_INTEGRITY:
        return DKM_R_AUTH_FAILED;
    case -ENOSPC:
        return DKM_R_OUTPUT_TOO_SMALL;
    case -EFBIG:
    case -E2BIG:
        return DKM_R_INPUT_TOO_LARGE;
    case -ENOMEM:
    case DKM_E_MEMLOCK:
        return DKM_R_MALLOC;
    case DKM_E_CRYPTO:
        return DKM_R_CRYPTO;
    case -EINVAL:
        return DKM_R_BAD_PARAM;
    default:
        return DKM_R_INTERNAL;
    }
}

int dkm_prov_raise_code(const struct dkm_prov_ctx *ctx, const char *file, int line,
                        const char *func, int r)
{
    const char *detail = dkm_error_detail();

    raise_text(ctx, file, line, func, reason_of(r),
               detail[0] != '\0' ? detail : dkm_strerror(r));
    dkm_error_clear();
    return 0;
}
