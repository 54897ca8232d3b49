/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provider's configuration: the keys of its openssl.cnf section, read
 * through the core's get_params at init, then the environment overrides.
 * Everything is validated here, so that a wrong setting stops the provider
 * from loading with a message that names the setting; the values are used
 * by the key sources.
 */
#include "provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/params.h>

#include "dkm/base/error.h"

#define TEST_TTL_DEFAULT 300
#define TEST_TTL_MAX (7u * 24u * 3600u)

struct setting {
    const char *key;
    const char *env;
    size_t offset; /* of the char * in struct dkm_prov_config */
};

#define STR_SETTING(k, e, field)                                                         \
    {                                                                                    \
        (k), (e), offsetof(struct dkm_prov_config, field)                                \
    }

static const struct setting string_settings[] = {
    STR_SETTING(DKM_CONF_SERVICE, "DKM_SERVICE", service),
    STR_SETTING(DKM_CONF_TCTI, "DKM_TCTI", tcti),
    STR_SETTING(DKM_CONF_CACHE_DIR, "DKM_CACHE_DIR", cache_dir),
    STR_SETTING(DKM_CONF_TRUST, "DKM_TRUST", trust),
    STR_SETTING(DKM_CONF_TLS_KEY, NULL, tls_key),
    STR_SETTING(DKM_CONF_TLS_CERT, NULL, tls_cert),
    STR_SETTING(DKM_CONF_KEYSOURCE, "DKM_KEYSOURCE", keysource),
    STR_SETTING(DKM_CONF_KEY_CACHE, "DKM_KEY_CACHE", key_cache),
    STR_SETTING(DKM_CONF_TEST_KEYS, "DKM_TEST_KEYS", test_keys),
    STR_SETTING(DKM_CONF_TEST_SEED, "DKM_TEST_SEED", test_seed),
};

#define N_STRINGS (sizeof(string_settings) / sizeof(string_settings[0]))

static char **field(struct dkm_prov_config *cfg, const struct setting *s)
{
    return (char **)((char *)cfg + s->offset);
}

void dkm_prov_config_clear(struct dkm_prov_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_STRINGS; i++) {
        char **f = field(cfg, &string_settings[i]);

        OPENSSL_free(*f);
        *f = NULL;
    }
}

static int parse_bool(const char *name, const char *v, bool *ret)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off", ""};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (strcasecmp(v, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return dkm_error_set(DKM_E_CONFIG,
                         "%s: expected yes/no, true/false, on/off or 1/0, "
                         "got \"%.64s\"",
                         name, v);
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    }
    return true;
}

static int validate(const struct dkm_prov_config *cfg)
{
    if (cfg->service != NULL) {
        const char *host = cfg->service + strlen("https://");

        if (strncmp(cfg->service, "https://", 8) != 0 || *host == '\0' || *host == '/' ||
            *host == ':' || strlen(cfg->service) > 512 ||
            strpbrk(cfg->service, " \t\r\n"))
            return dkm_error_set(DKM_E_CONFIG,
                                 "service: expected https://HOST[:PORT], "
                                 "got \"%.64s\"",
                                 cfg->service);
    }
    if (cfg->tcti != NULL &&
        (cfg->tcti[0] == '\0' || cfg->tcti[0] == ':' || strlen(cfg->tcti) > 512))
        return dkm_error_set(DKM_E_CONFIG,
                             "tcti: expected NAME[:CONFIG] such as "
                             "device:/dev/tpmrm0, got \"%.64s\"",
                             cfg->tcti);
    if (cfg->cache_dir != NULL && cfg->cache_dir[0] != '/')
        return dkm_error_set(DKM_E_CONFIG,
                             "cache_dir: expected an absolute path, got "
                             "\"%.64s\"",
                             cfg->cache_dir);
    if (cfg->trust != NULL) {
        const char *hex = cfg->trust;

        if (strncmp(hex, "sha256:", 7) == 0)
            hex += 7;
        if (strlen(hex) != 64 || !is_hex(hex, 64))
            return dkm_error_set(DKM_E_CONFIG,
                                 "trust: expected a SHA-256 fingerprint "
                                 "(64 hex digits, optionally after "
                                 "\"sha256:\"), got \"%.80s\"",
                                 cfg->trust);
    }
    if ((cfg->tls_key == NULL) != (cfg->tls_cert == NULL))
        return dkm_error_set(DKM_E_CONFIG, "%s: tls_key and tls_cert go together",
                             cfg->tls_key == NULL ? "tls_key" : "tls_cert");
    if ((cfg->tls_key != NULL && cfg->tls_key[0] == '\0') ||
        (cfg->tls_cert != NULL && cfg->tls_cert[0] == '\0'))
        return dkm_error_set(DKM_E_CONFIG, "%s: must not be empty",
                             cfg->tls_key[0] == '\0' ? "tls_key" : "tls_cert");
    if (cfg->key_cache != NULL && strcmp(cfg->key_cache, "keyring") != 0 &&
        strcmp(cfg->key_cache, "process") != 0)
        return dkm_error_set(DKM_E_CONFIG,
                             "key_cache: expected keyring or process, got \"%.64s\"",
                             cfg->key_cache);
    if (cfg->keysource != NULL && strcmp(cfg->keysource, DKM_KEYSOURCE_SERVICE) != 0 &&
        strcmp(cfg->keysource, DKM_KEYSOURCE_TEST) != 0)
        return dkm_error_set(DKM_E_CONFIG,
                             "keysource: expected \"service\"%s, got "
                             "\"%.64s\"",
#ifdef DKM_TEST_KEYSOURCE
                             " or \"test\"",
#else
                             "",
#endif
                             cfg->keysource);
    return 0;
}

static int parse_ttl(const char *v, uint64_t *ret)
{
    char *end = NULL;
    unsigned long long n;

    if (v[0] < '0' || v[0] > '9')
        goto bad;
    n = strtoull(v, &end, 10);
    if (*end != '\0' || n > TEST_TTL_MAX)
        goto bad;
    *ret = n;
    return 0;
bad:
    return dkm_error_set(DKM_E_CONFIG,
                         "test_ttl: expected seconds from 0 to %u, got "
                         "\"%.32s\"",
                         TEST_TTL_MAX, v);
}

int dkm_prov_config_load(struct dkm_prov_ctx *ctx, const OSSL_DISPATCH *in)
{
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    struct dkm_prov_config *cfg = &ctx->cfg;
    char *values[N_STRINGS + 2] = {0};
    OSSL_PARAM params[N_STRINGS + 3];
    const char *debug, *ttl;
    size_t i;
    int r;

    for (; in != NULL && in->function_id != 0; in++) {
        if (in->function_id == OSSL_FUNC_CORE_GET_PARAMS)
            get_params = OSSL_FUNC_core_get_params(in);
    }
    for (i = 0; i < N_STRINGS; i++)
        params[i] = OSSL_PARAM_construct_utf8_ptr(string_settings[i].key, &values[i], 0);
    params[i++] = OSSL_PARAM_construct_utf8_ptr(DKM_CONF_DEBUG, &values[N_STRINGS], 0);
    params[i++] =
        OSSL_PARAM_construct_utf8_ptr(DKM_CONF_TEST_TTL, &values[N_STRINGS + 1], 0);
    params[i] = OSSL_PARAM_construct_end();
    if (get_params != NULL && !get_params(ctx->handle, params))
        return dkm_error_set(DKM_E_CONFIG, "cannot read the provider's configuration");

    for (i = 0; i < N_STRINGS; i++) {
        const struct setting *s = &string_settings[i];
        const char *v = s->env != NULL ? getenv(s->env) : NULL;
        char **f = field(cfg, s);

        if (v == NULL || v[0] == '\0')
            v = values[i];
        if (v == NULL)
            continue;
        *f = OPENSSL_strdup(v);
        if (*f == NULL)
            return dkm_error_set(-ENOMEM, "out of memory for the configuration");
    }
    debug = getenv("DKM_DEBUG");
    if (debug == NULL || debug[0] == '\0')
        debug = values[N_STRINGS];
    if (debug != NULL) {
        r = parse_bool(getenv("DKM_DEBUG") != NULL && getenv("DKM_DEBUG")[0] != '\0'
                           ? "DKM_DEBUG"
                           : DKM_CONF_DEBUG,
                       debug, &cfg->debug);
        if (r < 0)
            return r;
    }
    cfg->test_ttl = TEST_TTL_DEFAULT;
    ttl = getenv("DKM_TEST_TTL");
    if (ttl == NULL || ttl[0] == '\0')
        ttl = values[N_STRINGS + 1];
    if (ttl != NULL) {
        r = parse_ttl(ttl, &cfg->test_ttl);
        if (r < 0)
            return r;
    }
    return validate(cfg);
}
