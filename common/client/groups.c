/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dkmd client's group listings: the groups a node may fetch, from the
 * service when the node proves a bound TLS key (GET /v1/keys/groups), and
 * otherwise, or while the service is unreachable, the groups it has keys
 * of in its disk cache.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "diskcache.h"
#include "dkm/base/log.h"
#include "dkm/base/uri.h"
#include "internal.h"

/* ---- cached groups ---- */

int dkm_client_cached_groups(struct dkm_client *c,
                             int (*fn)(void *arg, const char *group), void *arg)
{
    char seen[64][DKM_GROUP_MAX + 1];
    size_t n_seen = 0;
    struct dirent *de;
    DIR *d = NULL;
    int r = 0;

    pthread_mutex_lock(&c->lock);
    if (c->cache_dir == NULL)
        goto done;
    d = opendir(c->cache_dir);
    if (d == NULL) {
        if (errno != ENOENT)
            r = dkm_error_set(-errno, "cache_dir %s: %s", c->cache_dir, strerror(errno));
        goto done;
    }
    while ((de = readdir(d)) != NULL) {
        char group[DKM_GROUP_MAX + 1];
        uint32_t version;
        bool dup = false;

        if (dkm_diskcache_parse_name(de->d_name, group, &version) < 0)
            continue;
        for (size_t i = 0; i < n_seen && !dup; i++)
            dup = strcmp(seen[i], group) == 0;
        if (dup)
            continue;
        if (n_seen < sizeof(seen) / sizeof(seen[0]))
            memcpy(seen[n_seen++], group, strlen(group) + 1);
        r = fn(arg, group);
        if (r < 0)
            break;
    }
done:
    if (d != NULL)
        closedir(d);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- the node's groups, from the service ---- */

int dkm_client_groups(struct dkm_client *c, int (*fn)(void *arg, const char *group),
                      void *arg)
{
    json_t *ans = NULL, *arr, *g;
    size_t i;
    int r;

    if (c->tls_cert == NULL || c->service == NULL)
        return dkm_client_cached_groups(c, fn, arg);
    r = dkm_client_call(c, false, "GET", "/v1/keys/groups", NULL, &ans);
    if (r == DKM_E_UNAVAILABLE) {
        log_info("listing groups from the disk cache: %s", dkm_error_detail());
        return dkm_client_cached_groups(c, fn, arg);
    }
    if (r < 0)
        return r;
    arr = json_object_get(ans, "groups");
    if (!json_is_array(arr)) {
        r = dkm_error_set(DKM_E_PROTOCOL, "GET /v1/keys/groups: no \"groups\" array");
        goto done;
    }
    json_array_foreach(arr, i, g)
    {
        const char *name = json_string_value(json_object_get(g, "name"));

        if (name == NULL || !dkm_group_valid(name, strlen(name))) {
            r = dkm_error_set(DKM_E_PROTOCOL,
                              "GET /v1/keys/groups: an invalid group name");
            goto done;
        }
        r = fn(arg, name);
        if (r < 0)
            goto done;
    }
    r = 0;
done:
    json_decref(ans);
    return r;
}
