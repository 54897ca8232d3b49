/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's disk cache of fetched keys (see common/client/diskcache.h):
 * strictly parsed entries, written atomically, never returned past their
 * version's expiry.
 */
#include "diskcache.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "dkm/base/uri.h"
#include "dkm/trust/records.h"

#define ENTRY_SUFFIX ".dkc"

struct dkm_diskcache {
    char *dir;
};

int dkm_diskcache_open(const char *dir, struct dkm_diskcache **ret)
{
    struct dkm_diskcache *c = NULL;
    struct stat st;
    int r;

    if (dir == NULL || dir[0] == '\0')
        return dkm_error_set(-EINVAL, "disk cache: no directory");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        return dkm_error_set(r, "disk cache: cannot create %s: %s", dir, strerror(-r));
    }
    if (lstat(dir, &st) < 0) {
        r = -errno;
        return dkm_error_set(r, "disk cache: %s: %s", dir, strerror(-r));
    }
    if (!S_ISDIR(st.st_mode))
        return dkm_error_set(-ENOTDIR, "disk cache: %s is not a directory", dir);
    if (st.st_uid != geteuid() || (st.st_mode & 022) != 0)
        return dkm_error_set(-EPERM,
                             "disk cache: %s must be owned by uid %u and not writable by "
                             "others (mode 0700)",
                             dir, (unsigned)geteuid());
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->dir = strdup(dir);
    if (c->dir == NULL) {
        dkm_diskcache_free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

void dkm_diskcache_free(struct dkm_diskcache *c)
{
    if (c == NULL)
        return;
    free(c->dir);
    free(c);
}

static int entry_path(const struct dkm_diskcache *c, const char *group, uint32_t version,
                      char *out, size_t size)
{
    int n;

    if (!dkm_group_valid(group, strnlen(group, DKM_GROUP_MAX + 1)) || version == 0)
        return dkm_error_set(-EINVAL, "disk cache: invalid group or version");
    n = snprintf(out, size, "%s/%s.%u" ENTRY_SUFFIX, c->dir, group, (unsigned)version);
    if (n < 0 || (size_t)n >= size)
        return dkm_error_set(-ENAMETOOLONG, "disk cache: path too long");
    return 0;
}

int dkm_diskcache_put(struct dkm_diskcache *c, const char *group, uint32_t version,
                      uint64_t expires_at, const uint8_t *response, size_t response_len,
                      const struct dkm_sealed *sealed)
{
    uint8_t sealed_buf[DKM_SEALED_ENCODED_MAX];
    char path[4096];
    size_t sealed_len, glen;
    struct dkm_writer w;
    uint8_t *buf;
    int r;

    r = entry_path(c, group, version, path, sizeof(path));
    if (r < 0)
        return r;
    if (response == NULL || response_len == 0 || response_len > DKM_RECORD_MAX)
        return dkm_error_set(-EINVAL, "disk cache: invalid response");
    r = dkm_sealed_encode(sealed, sealed_buf, sizeof(sealed_buf), &sealed_len);
    if (r < 0)
        return r;
    buf = malloc(DKM_DISKCACHE_ENTRY_MAX);
    if (buf == NULL)
        return -ENOMEM;
    glen = strlen(group);
    w = dkm_writer_init(buf, DKM_DISKCACHE_ENTRY_MAX);
    dkm_put_bytes(&w, DKM_DISKCACHE_ENTRY_MAGIC, 4);
    dkm_put_u16be(&w, DKM_DISKCACHE_ENTRY_VERSION);
    dkm_put_u8(&w, (uint8_t)glen);
    dkm_put_bytes(&w, group, glen);
    dkm_put_u32be(&w, version);
    dkm_put_u64be(&w, expires_at);
    dkm_put_len32(&w, response, response_len);
    dkm_put_len16(&w, sealed_buf, sealed_len);
    if (!dkm_writer_ok(&w)) {
        r = dkm_error_set(-E2BIG, "disk cache: entry too large");
        goto done;
    }
    r = dkm_file_write(path, buf, w.len, 0600, /* overwrite= */ true);
done:
    free(buf);
    return r;
}

int dkm_diskcache_get(struct dkm_diskcache *c, const char *group, uint32_t version,
                      uint64_t now, uint8_t **ret_response, size_t *ret_response_len,
                      uint64_t *ret_expires_at, struct dkm_sealed *ret_sealed)
{
    const uint8_t *magic, *g, *resp, *sealed;
    size_t resp_len, sealed_len;
    struct dkm_sealed s;
    struct dkm_cursor cur;
    uint8_t *buf = NULL, *out = NULL;
    uint64_t expires;
    uint32_t ver;
    uint16_t fmt;
    uint8_t glen;
    char path[4096];
    size_t len;
    int r;

    r = entry_path(c, group, version, path, sizeof(path));
    if (r < 0)
        return r;
    r = dkm_file_read(path, DKM_DISKCACHE_ENTRY_MAX, &buf, &len);
    if (r < 0)
        return r;
    r = dkm_error_set(DKM_E_FORMAT, "disk cache: %s is malformed", path);
    cur = dkm_cursor_init(buf, len);
    if (!dkm_get_ref(&cur, 4, &magic) ||
        memcmp(magic, DKM_DISKCACHE_ENTRY_MAGIC, 4) != 0 || !dkm_get_u16be(&cur, &fmt) ||
        fmt != DKM_DISKCACHE_ENTRY_VERSION || !dkm_get_u8(&cur, &glen) ||
        !dkm_get_ref(&cur, glen, &g) || !dkm_get_u32be(&cur, &ver) ||
        !dkm_get_u64be(&cur, &expires) ||
        !dkm_get_len32_ref(&cur, DKM_RECORD_MAX, &resp, &resp_len) || resp_len == 0 ||
        !dkm_get_len16_ref(&cur, DKM_SEALED_ENCODED_MAX, &sealed, &sealed_len) ||
        !dkm_cursor_empty(&cur))
        goto done;
    /* An entry renamed to another group's or version's file name. */
    if (glen != strlen(group) || memcmp(g, group, glen) != 0 || ver != version) {
        r = dkm_error_set(DKM_E_INTEGRITY, "disk cache: %s holds another key's entry",
                          path);
        goto done;
    }
    if (now >= expires) {
        (void)unlink(path);
        r = dkm_error_set(DKM_E_EXPIRED, "disk cache: key %s/%u expired", group,
                          (unsigned)version);
        goto done;
    }
    r = dkm_sealed_decode(sealed, sealed_len, &s);
    if (r < 0)
        goto done;
    out = malloc(resp_len);
    if (out == NULL) {
        r = -ENOMEM;
        goto done;
    }
    memcpy(out, resp, resp_len);
    *ret_response = out;
    *ret_response_len = resp_len;
    if (ret_expires_at != NULL)
        *ret_expires_at = expires;
    *ret_sealed = s;
    r = 0;
done:
    free(buf);
    return r;
}

int dkm_diskcache_parse_name(const char *name, char group[DKM_GROUP_MAX + 1],
                             uint32_t *ret_version)
{
    size_t n = strlen(name), slen = strlen(ENTRY_SUFFIX);
    const char *end, *dot;
    uint64_t v = 0;

    /* GROUP may contain dots: the version is what follows the last one. */
    if (n <= slen || strcmp(name + n - slen, ENTRY_SUFFIX) != 0)
        return -EINVAL;
    end = name + n - slen;
    dot = end;
    while (dot > name && dot[-1] != '.')
        dot--;
    if (dot <= name + 1 || dot == end || dot[0] == '0' ||
        !dkm_group_valid(name, (size_t)(dot - 1 - name)))
        return -EINVAL;
    for (const char *p = dot; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return -EINVAL;
    }
    memcpy(group, name, (size_t)(dot - 1 - name));
    group[dot - 1 - name] = '\0';
    *ret_version = (uint32_t)v;
    return 0;
}

int dkm_diskcache_latest(struct dkm_diskcache *c, const char *group, uint64_t now,
                         uint32_t *ret_version)
{
    uint32_t best = 0;
    struct dirent *de;
    DIR *d;

    if (!dkm_group_valid(group, strnlen(group, DKM_GROUP_MAX + 1)))
        return dkm_error_set(-EINVAL, "disk cache: invalid group");
    d = opendir(c->dir);
    if (d == NULL)
        return dkm_error_set(-errno, "disk cache: cannot read %s", c->dir);
    while ((de = readdir(d)) != NULL) {
        char g[DKM_GROUP_MAX + 1];
        struct dkm_sealed s;
        uint8_t *resp = NULL;
        uint32_t v;
        size_t len;

        if (dkm_diskcache_parse_name(de->d_name, g, &v) < 0 || strcmp(g, group) != 0 ||
            v <= best)
            continue;
        /* Only an entry that reads back valid and unexpired counts. */
        if (dkm_diskcache_get(c, group, v, now, &resp, &len, NULL, &s) == 0)
            best = v;
        free(resp);
    }
    closedir(d);
    if (best == 0)
        return dkm_error_set(-ENOENT, "disk cache: no usable entry for group %s", group);
    *ret_version = best;
    return 0;
}

int dkm_diskcache_prune(struct dkm_diskcache *c, uint64_t now)
{
    struct dirent *de;
    int removed = 0;
    DIR *d;

    d = opendir(c->dir);
    if (d == NULL)
        return dkm_error_set(-errno, "disk cache: cannot read %s", c->dir);
    while ((de = readdir(d)) != NULL) {
        char group[DKM_GROUP_MAX + 1];
        struct dkm_sealed s;
        uint8_t *resp = NULL;
        uint32_t v;
        size_t len;

        if (dkm_diskcache_parse_name(de->d_name, group, &v) < 0)
            continue;
        if (dkm_diskcache_get(c, group, v, now, &resp, &len, NULL, &s) == DKM_E_EXPIRED)
            removed++;
        free(resp);
    }
    closedir(d);
    return removed;
}
