/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict parser and formatter for dkm: URIs (see include/dkm/base/uri.h).
 */
#include "dkm/base/uri.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool group_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool dkm_group_valid(const char *group, size_t len)
{
    if (len == 0 || len > DKM_GROUP_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!group_char(group[i]))
            return false;
    }
    return true;
}

static int fail(const char *reason, const char **ret_reason)
{
    if (ret_reason != NULL)
        *ret_reason = reason;
    return dkm_error_set(DKM_E_URI, "invalid dkm URI: %s", reason);
}

/* VERSION: "current" or a decimal 1..UINT32_MAX without leading zeros. */
static int parse_version(const char *s, size_t len, uint32_t *ret, const char **reason)
{
    uint64_t v = 0;

    if (len == 0) {
        *reason = "empty version (trailing '/')";
        return -EINVAL;
    }
    if (len == 7 && memcmp(s, "current", 7) == 0) {
        *ret = DKM_VERSION_CURRENT;
        return 0;
    }
    if (s[0] == '0') {
        *reason = len == 1 ? "version 0 does not exist (versions start at 1)"
                           : "version has a leading zero";
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            *reason = s[i] == '/'
                          ? "too many '/' separators"
                          : "version is not a positive decimal number or \"current\"";
            return -EINVAL;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX) {
            *reason = "version is larger than 4294967295";
            return -EINVAL;
        }
    }
    *ret = (uint32_t)v;
    return 0;
}

int dkm_uri_parse(const char *s, size_t len, unsigned flags, struct dkm_uri *ret,
                  const char **ret_reason)
{
    struct dkm_uri u = {.version = DKM_VERSION_CURRENT};
    const char *reason = NULL, *slash;
    size_t glen;

    if (s == NULL || len == 0)
        return fail("empty URI", ret_reason);
    if (len > DKM_URI_MAX)
        return fail("URI is longer than 128 characters", ret_reason);
    if (memchr(s, '\0', len) != NULL)
        return fail("URI contains a NUL byte", ret_reason);
    if (len < 4 || strncasecmp(s, "dkm:", 4) != 0)
        return fail("scheme is not \"dkm:\"", ret_reason);
    s += 4;
    len -= 4;
    if (len >= 2 && s[0] == '/' && s[1] == '/') {
        s += 2;
        len -= 2;
        if (len == 0)
            return fail("empty group after \"dkm://\"", ret_reason);
    } else if (len >= 1 && s[0] == '/') {
        return fail("a single '/' after \"dkm:\" (use dkm:GROUP or dkm://GROUP)",
                    ret_reason);
    }
    if (len == 0) {
        if (!(flags & DKM_URI_ALLOW_LIST))
            return fail("no group named", ret_reason);
        u.list = true;
        *ret = u;
        return 0;
    }
    slash = memchr(s, '/', len);
    glen = slash != NULL ? (size_t)(slash - s) : len;
    if (glen == 0)
        return fail("empty group", ret_reason);
    if (glen > DKM_GROUP_MAX)
        return fail("group is longer than 64 characters", ret_reason);
    for (size_t i = 0; i < glen; i++) {
        if (!group_char(s[i])) {
            if (s[i] == '?' || s[i] == '#')
                return fail("queries and fragments are not allowed", ret_reason);
            if (s[i] == '%')
                return fail("percent-encoding is not allowed", ret_reason);
            return fail("group has a character outside [A-Za-z0-9._-]", ret_reason);
        }
    }
    memcpy(u.group, s, glen);
    u.group[glen] = '\0';
    if (slash != NULL) {
        if (parse_version(slash + 1, len - glen - 1, &u.version, &reason) < 0)
            return fail(reason, ret_reason);
    }
    *ret = u;
    return 0;
}

int dkm_uri_format(const struct dkm_uri *uri, char *out, size_t out_size)
{
    int n;

    if (uri->list)
        n = snprintf(out, out_size, "dkm:");
    else if (uri->version == DKM_VERSION_CURRENT)
        n = snprintf(out, out_size, "dkm:%s", uri->group);
    else
        n = snprintf(out, out_size, "dkm:%s/%u", uri->group, (unsigned)uri->version);
    if (n < 0 || (size_t)n >= out_size)
        return -ENOSPC;
    return 0;
}

int dkm_uri_to_key(const struct dkm_uri *uri, uint8_t out[DKM_URI_KEY_LEN])
{
    char text[DKM_URI_MAX + 1];
    size_t n;

    if (uri->list)
        return dkm_error_set(DKM_E_URI, "a listing URI names no key");
    if (dkm_uri_format(uri, text, sizeof(text)) < 0)
        return dkm_error_set(DKM_E_URI, "URI too long");
    n = strlen(text);
    if (n > DKM_URI_KEY_LEN)
        return dkm_error_set(DKM_E_URI,
                             "URI %s is %zu bytes long; at most %d fit in a cipher key",
                             text, n, DKM_URI_KEY_LEN);
    memset(out, 0, DKM_URI_KEY_LEN);
    memcpy(out, text, n);
    return 0;
}

int dkm_uri_from_key(const uint8_t *key, size_t key_len, struct dkm_uri *ret)
{
    const uint8_t *nul;
    size_t n;

    if (key_len != DKM_URI_KEY_LEN)
        return dkm_error_set(DKM_E_URI, "cipher key is %zu bytes, expected %d", key_len,
                             DKM_URI_KEY_LEN);
    nul = memchr(key, '\0', key_len);
    n = nul != NULL ? (size_t)(nul - key) : key_len;
    for (size_t i = n; i < key_len; i++) {
        if (key[i] != 0)
            return dkm_error_set(DKM_E_URI, "cipher key has bytes after the URI's end");
    }
    return dkm_uri_parse((const char *)key, n, 0, ret, NULL);
}
