/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "config": the two configurations an administrator writes.
 *
 * Input "D" (or any first byte but "P") + text: dkmd.conf, through
 * svc_config_load_string (dkmd's loader on the file's text). An accepted
 * configuration holds values within the bounds config.c promises.
 *
 * Input "P" + lines "name=value": the values of the provider's section of
 * openssl.cnf, handed to dkm_prov_config_load (provider/config.c) by a
 * stand-in for the core's get_params that answers the names the provider
 * asks for, later lines winning as in OpenSSL; then dkm_client_new with
 * them, as the service key source does at load (keysource_service.c). The
 * environment overrides (DKM_SERVICE, ...) are cleared first, so only the
 * input decides.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/params.h>

#include "config.h"
#include "dkm/client/client.h"
#include "provider.h"
#include "fuzz.h"

#define MAX_LINES 64

struct values {
    char *name[MAX_LINES];
    char *value[MAX_LINES];
    size_t n;
};

static int get_params(const OSSL_CORE_HANDLE *handle, OSSL_PARAM params[])
{
    const struct values *v = (const struct values *)handle;

    for (size_t i = 0; i < v->n; i++) {
        OSSL_PARAM *p = OSSL_PARAM_locate(params, v->name[i]);

        if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, v->value[i]))
            return 0;
    }
    return 1;
}

/* Split "name=value" lines (text is NUL-terminated and modified). */
static void split(char *text, struct values *v)
{
    char *line = text;

    while (line != NULL && *line != '\0' && v->n < MAX_LINES) {
        char *nl = strchr(line, '\n'), *eq;

        if (nl != NULL)
            *nl = '\0';
        eq = strchr(line, '=');
        if (eq != NULL) {
            *eq = '\0';
            v->name[v->n] = line;
            v->value[v->n] = eq + 1;
            v->n++;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
}

static bool provider_values(char *text)
{
    static const char *const env[] = {"DKM_SERVICE",   "DKM_TCTI",      "DKM_CACHE_DIR",
                                      "DKM_TRUST",     "DKM_KEYSOURCE", "DKM_TEST_KEYS",
                                      "DKM_TEST_SEED", "DKM_DEBUG",     "DKM_TEST_TTL"};
    struct values v = {.n = 0};
    OSSL_DISPATCH in[] = {
        {OSSL_FUNC_CORE_GET_PARAMS, (void (*)(void))get_params},
        {0, NULL},
    };
    struct dkm_prov_ctx ctx;
    struct dkm_client *client = NULL;
    bool ok = false;

    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        unsetenv(env[i]);
    split(text, &v);
    memset(&ctx, 0, sizeof(ctx));
    ctx.handle = (const OSSL_CORE_HANDLE *)&v;
    if (dkm_prov_config_load(&ctx, in) == 0) {
        const struct dkm_prov_config *cfg = &ctx.cfg;
        struct dkm_client_config cc = {
            .service = cfg->service,
            .trust = cfg->trust,
            .tcti = cfg->tcti,
            .cache_dir = cfg->cache_dir,
            .tls_key = cfg->tls_key,
            .tls_cert = cfg->tls_cert,
        };

        FUZZ_CHECK((cfg->tls_key == NULL) == (cfg->tls_cert == NULL));
        FUZZ_CHECK(cfg->cache_dir == NULL || cfg->cache_dir[0] == '/');
        FUZZ_CHECK(cfg->test_ttl <= 7u * 24u * 3600u);
        if (dkm_client_new(&cc, NULL, /* tpm= */ NULL, &client) == 0)
            ok = true;
        dkm_client_free(client);
    }
    dkm_prov_config_clear(&ctx.cfg);
    return ok;
}

static bool dkmd_conf(const char *text)
{
    struct svc_config *cfg = NULL;

    if (svc_config_load_string("dkmd.conf", text, &cfg) < 0)
        return false;
    FUZZ_CHECK(cfg->listen_host != NULL && cfg->listen_host[0] != '\0' &&
               cfg->listen_port >= 1);
    FUZZ_CHECK(cfg->workers >= 1 && cfg->workers <= 64);
    FUZZ_CHECK(cfg->state_dir[0] == '/');
    FUZZ_CHECK(cfg->admin_socket[0] == '/' && strlen(cfg->admin_socket) < 108);
    FUZZ_CHECK((cfg->admin_socket_mode & 0600) == 0600 && cfg->admin_socket_mode <= 0777);
    FUZZ_CHECK(cfg->db_conninfo != NULL);
    FUZZ_CHECK(cfg->db_pool_size >= 1 && cfg->db_pool_size <= 64);
    FUZZ_CHECK(cfg->max_header_bytes >= 1024 && cfg->max_body_bytes >= 1024);
    svc_config_free(cfg);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    bool ok;

    if (size < 1)
        return 0;
    /* Both are text read up to a NUL, as from a file or a C string. */
    text = malloc(size);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    ok = data[0] == 'P' ? provider_values(text) : dkmd_conf(text);
    free(text);
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
