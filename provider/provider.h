/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private interface of the dkm provider: the provider context every
 * operation receives, names and properties of what it registers, and the
 * provider's error reasons.
 */
#ifndef DKM_PROVIDER_H
#define DKM_PROVIDER_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#define DKM_PROV_NAME "dkm"
#define DKM_PROV_PROPERTIES "provider=dkm"

struct dkm_prov_ctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx; /* private library context for delegated algorithms */
};

#endif
