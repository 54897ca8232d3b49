/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration files in OpenSSL's NCONF syntax (the openssl.cnf syntax),
 * with typed getters whose errors name the file, the section and the key.
 *
 * Every getter takes a pointer to a default: NULL means the key is
 * required, and a missing key is an error. Errors return DKM_E_CONFIG
 * (-ENOENT for a missing file) and leave a detail such as
 *     dkmd.conf: [service] workers: expected an integer from 1 to 64, got "x"
 */
#ifndef DKM_CONFIG_H
#define DKM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "dkm/base/error.h"

struct dkm_config;

/* Load and parse a file. */
DKM_MUSTCHECK int dkm_config_load(const char *path, struct dkm_config **ret);

/* Parse text held in memory; name is used in messages in place of a path. */
DKM_MUSTCHECK int dkm_config_load_string(const char *name, const char *text,
                                         struct dkm_config **ret);

/* NULL is accepted. */
void dkm_config_free(struct dkm_config *cfg);

/* The path or name the configuration was loaded from. */
const char *dkm_config_name(const struct dkm_config *cfg);

/* Whether the section exists. */
bool dkm_config_has_section(const struct dkm_config *cfg, const char *section);

/*
 * A string value. *ret points into the configuration (valid until
 * dkm_config_free) or is def. An empty value counts as set.
 */
DKM_MUSTCHECK int dkm_config_string(const struct dkm_config *cfg, const char *section,
                                    const char *key, const char *def, const char **ret);

/* A decimal integer in [min, max]. */
DKM_MUSTCHECK int dkm_config_uint(const struct dkm_config *cfg, const char *section,
                                  const char *key, const uint64_t *def, uint64_t min,
                                  uint64_t max, uint64_t *ret);

/* yes/no, true/false, on/off, 1/0 (any case). */
DKM_MUSTCHECK int dkm_config_bool(const struct dkm_config *cfg, const char *section,
                                  const char *key, const bool *def, bool *ret);

/*
 * A duration: an integer with an optional unit s, m, h or d (seconds if
 * none), in seconds, within [min, max] seconds.
 */
DKM_MUSTCHECK int dkm_config_duration(const struct dkm_config *cfg, const char *section,
                                      const char *key, const uint64_t *def, uint64_t min,
                                      uint64_t max, uint64_t *ret);

/*
 * Refuse keys of a section that are not in the NULL-terminated list
 * known (a misspelt key is an error, not silently ignored). A missing
 * section is fine.
 */
DKM_MUSTCHECK int dkm_config_check_keys(const struct dkm_config *cfg, const char *section,
                                        const char *const *known);

#endif
