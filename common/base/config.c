/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration loading through OpenSSL's NCONF, and typed getters whose
 * errors name the file, section and key.
 */
#include "dkm/base/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/conf.h>
#include <openssl/err.h>

#define DKM_CONFIG_VALUE_MAX 4096

struct dkm_config {
    CONF *conf;
    char *name;
};

static int config_new(const char *name, struct dkm_config **ret)
{
    struct dkm_config *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return -ENOMEM;
    cfg->name = strdup(name);
    cfg->conf = NCONF_new(NULL);
    if (cfg->name == NULL || cfg->conf == NULL) {
        dkm_config_free(cfg);
        return -ENOMEM;
    }
    *ret = cfg;
    return 0;
}

/* Turn NCONF's error (with its line number) into our detail. */
static int load_error(const char *name, long line)
{
    unsigned long e = ERR_peek_last_error();
    char reason[256];

    ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    if (line > 0)
        return dkm_error_set(DKM_E_CONFIG, "%s: line %ld: syntax error (%s)", name, line,
                             reason);
    return dkm_error_set(DKM_E_CONFIG, "%s: cannot parse (%s)", name, reason);
}

int dkm_config_load(const char *path, struct dkm_config **ret)
{
    struct dkm_config *cfg = NULL;
    long line = -1;
    FILE *f;
    int r;

    /* Open it ourselves first: NCONF's messages do not say which errno. */
    f = fopen(path, "r");
    if (f == NULL)
        return dkm_error_set(-errno, "%s: cannot open configuration file: %s", path,
                             strerror(errno));
    fclose(f);
    r = config_new(path, &cfg);
    if (r < 0)
        return r;
    if (NCONF_load(cfg->conf, path, &line) <= 0) {
        r = load_error(path, line);
        dkm_config_free(cfg);
        return r;
    }
    *ret = cfg;
    return 0;
}

int dkm_config_load_string(const char *name, const char *text, struct dkm_config **ret)
{
    struct dkm_config *cfg = NULL;
    long line = -1;
    BIO *bio;
    int r;

    r = config_new(name, &cfg);
    if (r < 0)
        return r;
    bio = BIO_new_mem_buf(text, -1);
    if (bio == NULL) {
        dkm_config_free(cfg);
        return -ENOMEM;
    }
    if (NCONF_load_bio(cfg->conf, bio, &line) <= 0) {
        r = load_error(name, line);
        BIO_free(bio);
        dkm_config_free(cfg);
        return r;
    }
    BIO_free(bio);
    *ret = cfg;
    return 0;
}

void dkm_config_free(struct dkm_config *cfg)
{
    if (cfg == NULL)
        return;
    NCONF_free(cfg->conf);
    free(cfg->name);
    free(cfg);
}

const char *dkm_config_name(const struct dkm_config *cfg)
{
    return cfg->name;
}

bool dkm_config_has_section(const struct dkm_config *cfg, const char *section)
{
    return NCONF_get_section(cfg->conf, section) != NULL;
}

/* Look a key up: 0 and *ret, or -ENOENT when absent. */
static int lookup(const struct dkm_config *cfg, const char *section, const char *key,
                  const char **ret)
{
    const char *v;

    /* NCONF_get_string falls back to the default section; we want none. */
    if (!dkm_config_has_section(cfg, section))
        return -ENOENT;
    ERR_set_mark();
    v = NCONF_get_string(cfg->conf, section, key);
    ERR_pop_to_mark();
    if (v == NULL)
        return -ENOENT;
    *ret = v;
    return 0;
}

static int missing(const struct dkm_config *cfg, const char *section, const char *key)
{
    return dkm_error_set(DKM_E_CONFIG, "%s: [%s] %s: required setting is missing",
                         cfg->name, section, key);
}

int dkm_config_string(const struct dkm_config *cfg, const char *section, const char *key,
                      const char *def, const char **ret)
{
    const char *v;

    if (lookup(cfg, section, key, &v) < 0) {
        if (def == NULL)
            return missing(cfg, section, key);
        v = def;
    }
    if (strlen(v) > DKM_CONFIG_VALUE_MAX)
        return dkm_error_set(DKM_E_CONFIG, "%s: [%s] %s: value is longer than %d bytes",
                             cfg->name, section, key, DKM_CONFIG_VALUE_MAX);
    *ret = v;
    return 0;
}

/* Show at most 40 characters of a bad value; it came from the user's file. */
#define SHOWN "%.40s"

static int parse_u64(const char *s, uint64_t *ret, const char **ret_end)
{
    uint64_t v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *ret = v;
    *ret_end = p;
    return 0;
}

int dkm_config_uint(const struct dkm_config *cfg, const char *section, const char *key,
                    const uint64_t *def, uint64_t min, uint64_t max, uint64_t *ret)
{
    const char *v, *end;
    uint64_t n;

    if (lookup(cfg, section, key, &v) < 0) {
        if (def == NULL)
            return missing(cfg, section, key);
        *ret = *def;
        return 0;
    }
    if (parse_u64(v, &n, &end) < 0 || *end != '\0' || n < min || n > max)
        return dkm_error_set(
            DKM_E_CONFIG,
            "%s: [%s] %s: expected an integer from %llu to %llu, got \"" SHOWN "\"",
            cfg->name, section, key, (unsigned long long)min, (unsigned long long)max, v);
    *ret = n;
    return 0;
}

int dkm_config_bool(const struct dkm_config *cfg, const char *section, const char *key,
                    const bool *def, bool *ret)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    const char *v;

    if (lookup(cfg, section, key, &v) < 0) {
        if (def == NULL)
            return missing(cfg, section, key);
        *ret = *def;
        return 0;
    }
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return dkm_error_set(DKM_E_CONFIG,
                         "%s: [%s] %s: expected yes or no, got \"" SHOWN "\"", cfg->name,
                         section, key, v);
}

int dkm_config_duration(const struct dkm_config *cfg, const char *section,
                        const char *key, const uint64_t *def, uint64_t min, uint64_t max,
                        uint64_t *ret)
{
    const char *v, *end;
    uint64_t n, unit = 1;

    if (lookup(cfg, section, key, &v) < 0) {
        if (def == NULL)
            return missing(cfg, section, key);
        *ret = *def;
        return 0;
    }
    if (parse_u64(v, &n, &end) < 0)
        goto bad;
    if (end[0] != '\0') {
        if (end[1] != '\0')
            goto bad;
        switch (end[0]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            goto bad;
        }
    }
    if (n > UINT64_MAX / unit || n * unit < min || n * unit > max)
        goto bad;
    *ret = n * unit;
    return 0;
bad:
    return dkm_error_set(DKM_E_CONFIG,
                         "%s: [%s] %s: expected a duration from %llus to %llus (a number "
                         "with an optional unit s, m, h or d), got \"" SHOWN "\"",
                         cfg->name, section, key, (unsigned long long)min,
                         (unsigned long long)max, v);
}

int dkm_config_check_keys(const struct dkm_config *cfg, const char *section,
                          const char *const *known)
{
    STACK_OF(CONF_VALUE) *values = NCONF_get_section(cfg->conf, section);

    if (values == NULL)
        return 0;
    for (int i = 0; i < sk_CONF_VALUE_num(values); i++) {
        const CONF_VALUE *cv = sk_CONF_VALUE_value(values, i);
        bool ok = false;

        for (const char *const *k = known; *k != NULL; k++) {
            if (strcmp(cv->name, *k) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok)
            return dkm_error_set(DKM_E_CONFIG, "%s: [%s] %s: unknown setting", cfg->name,
                                 section, cv->name);
    }
    return 0;
}
