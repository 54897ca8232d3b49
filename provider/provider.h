/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private interface of the dkm provider: the provider context every
 * operation receives, its configuration, the error reporting macro and
 * the dispatch tables each operation file exports to provider.c.
 */
#ifndef DKM_PROVIDER_H
#define DKM_PROVIDER_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "names.h"

struct dkm_keycache;
struct dkm_keysource_ops;

/* The provider's configuration, after environment overrides; strings owned. */
struct dkm_prov_config {
    char *service;
    char *tcti;
    char *cache_dir;
    char *trust;
    char *tls_key;
    char *tls_cert;
    char *key_cache; /* "keyring" (NULL: the default) or "process" */
    bool debug;
    char *keysource;
    char *test_keys;
    char *test_seed;
    uint64_t test_ttl;
};

struct dkm_prov_ctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx; /* private library context for delegated algorithms */
    OSSL_FUNC_core_new_error_fn *core_new_error;
    OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
    OSSL_FUNC_core_vset_error_fn *core_vset_error;
    struct dkm_prov_config cfg;
    const struct dkm_keysource_ops *keysource;
    struct dkm_keycache *cache;
    pthread_mutex_t gcm_lock;
    EVP_CIPHER *gcm; /* AES-256-GCM of the private context, fetched on first use */
};

/*
 * AES-256-GCM from the private library context, fetched once (the child
 * context only sees the parent's providers once they are loaded, so not
 * at init). NULL if it is not available yet: callers then fetch per call.
 */
EVP_CIPHER *dkm_prov_gcm(struct dkm_prov_ctx *ctx);

/* Provider reason codes; strings in err.c. */
enum dkm_prov_reason {
    DKM_R_BAD_URI = 1,
    DKM_R_NO_SUCH_KEY,
    DKM_R_VERSION_EXPIRED,
    DKM_R_ACCESS_DENIED,
    DKM_R_KEYSOURCE_UNAVAILABLE,
    DKM_R_NO_KEYSOURCE,
    DKM_R_BAD_CONFIG,
    DKM_R_BAD_BLOB,
    DKM_R_WRONG_GROUP,
    DKM_R_VERSION_MISMATCH,
    DKM_R_AUTH_FAILED,
    DKM_R_OUTPUT_TOO_SMALL,
    DKM_R_INPUT_TOO_LARGE,
    DKM_R_EXPORT_REFUSED,
    DKM_R_BAD_CIPHER_KEY,
    DKM_R_BAD_STREAM,
    DKM_R_BAD_PARAM,
    DKM_R_BAD_STATE,
    DKM_R_CRYPTO,
    DKM_R_MALLOC,
    DKM_R_INTERNAL,
    DKM_R_MAX,
};

/* The reason table for OSSL_FUNC_PROVIDER_GET_REASON_STRINGS. */
const OSSL_ITEM *dkm_prov_reason_strings(void);

/*
 * Raise an OpenSSL error in the provider's library with reason and a
 * formatted detail; with debugging on, also log it with where it came
 * from. Use through DKM_RAISE.
 */
void dkm_prov_raise(const struct dkm_prov_ctx *ctx, const char *file, int line,
                    const char *func, int reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/*
 * Raise the error of a failed dkm function (its negative code r and the
 * thread's dkm_error_detail()), mapped to a provider reason. Returns 0 so
 * that provider functions can `return DKM_RAISE_CODE(ctx, r);`.
 */
int dkm_prov_raise_code(const struct dkm_prov_ctx *ctx, const char *file, int line,
                        const char *func, int r);

#define DKM_RAISE(ctx, reason, ...)                                                      \
    do {                                                                                 \
        dkm_prov_raise((ctx), __FILE__, __LINE__, __func__, (reason), __VA_ARGS__);      \
    } while (0)
#define DKM_RAISE_CODE(ctx, r)                                                           \
    dkm_prov_raise_code((ctx), __FILE__, __LINE__, __func__, (r))

/* Configuration: read at init from the core and the environment (config.c). */
int dkm_prov_config_load(struct dkm_prov_ctx *ctx, const OSSL_DISPATCH *in);
void dkm_prov_config_clear(struct dkm_prov_config *cfg);

/* Dispatch tables of each operation. */
extern const OSSL_DISPATCH dkm_store_functions[];
extern const OSSL_DISPATCH dkm_keymgmt_functions[];
extern const OSSL_DISPATCH dkm_asym_cipher_functions[];
extern const OSSL_DISPATCH dkm_stream_cipher_functions[];
extern const OSSL_DISPATCH dkm_text_encoder_functions[];

#if OPENSSL_VERSION_NUMBER >= 0x30500000L
/* OpenSSL 3.5+: symmetric key manager DKM whose keys are URIs (skey.c). */
extern const OSSL_DISPATCH dkm_skeymgmt_functions[];
struct dkm_uri;
/* The URI of a DKM EVP_SKEY's key data, or NULL if it is not one. */
const struct dkm_uri *dkm_skey_uri(const void *skeydata);
#endif

#endif
