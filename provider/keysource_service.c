/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "service" key source: the place where the key service client goes
 * (fetch from dkmd, verify the signed answer against the pinned trust,
 * import and unseal with the local TPM, disk cache for restarts). Until
 * that client is built in, every lookup fails with a clear "no key
 * source" error, so the installed module loads and describes itself but
 * starts no key operation.
 */
#include "keysource.h"

#include <errno.h>

static int service_open(const struct dkm_prov_config *cfg, OSSL_LIB_CTX *libctx,
                        void **ret_state)
{
    (void)libctx;
    /* The state is the configuration, which outlives the key source. */
    *ret_state = (void *)cfg;
    return 0;
}

static void service_close(void *state)
{
    (void)state;
}

static int not_available(const struct dkm_prov_config *cfg)
{
    if (cfg->service == NULL)
        return dkm_error_set(-ENOSYS, "no key service configured: set `service` in the "
                                      "provider's section or DKM_SERVICE");
    /* SERVICE CLIENT: the fetch + TPM unseal + disk cache client plugs in here. */
    return dkm_error_set(-ENOSYS,
                         "the key service client is not part of this build: "
                         "no key source for %s",
                         cfg->service);
}

static int service_resolve(void *state, const char *group, uint32_t version, uint8_t *key,
                           struct dkm_key_info *ret_info)
{
    (void)group;
    (void)version;
    (void)key;
    (void)ret_info;
    return not_available(state);
}

static int service_list(void *state, int (*fn)(void *arg, const char *group), void *arg)
{
    (void)fn;
    (void)arg;
    return not_available(state);
}

const struct dkm_keysource_ops dkm_keysource_service = {
    .name = DKM_KEYSOURCE_SERVICE,
    .open = service_open,
    .close = service_close,
    .resolve = service_resolve,
    .list_groups = service_list,
};
