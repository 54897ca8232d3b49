/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service client's trust chain (include/dkm/trust/trust.h): server lists
 * verified from the pinned fingerprint through their signed successors,
 * taken from dkmd's answer to GET /v1/trust or from the copy kept in the
 * cache directory. The file holds nothing secret and nothing is believed
 * because it is on disk: it is verified from the pin every time it is
 * read, exactly like an answer from the network.
 */
#include "dkm/trust/trust.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "dkm/base/log.h"

/*
 * Verify a chain of encoded lists: find the pinned one, follow its
 * successors. *ret_first is the index of the pinned list.
 */
static int verify_chain(const uint8_t *pin, uint8_t *const *lists, const size_t *lens,
                        size_t n, struct dkm_server_list *ret, size_t *ret_first)
{
    struct dkm_server_list cur, next;
    uint8_t fpr[DKM_FINGERPRINT_SIZE];
    size_t i, first = n;
    int r;

    for (i = 0; i < n && first == n; i++) {
        r = dkm_server_list_fingerprint(lists[i], lens[i], fpr);
        if (r < 0)
            return r;
        if (CRYPTO_memcmp(fpr, pin, sizeof(fpr)) == 0)
            first = i;
    }
    if (first == n)
        return dkm_error_set(DKM_E_SIGNATURE,
                             "none of the %zu server lists offered has the pinned "
                             "fingerprint (config `trust`)",
                             n);
    r = dkm_server_list_verify_pinned(lists[first], lens[first], pin, &cur);
    if (r < 0)
        return r;
    for (i = first + 1; i < n; i++) {
        r = dkm_server_list_verify_next(&cur, lists[i], lens[i], &next);
        if (r < 0)
            return dkm_error_set(r, "server list %zu after the pinned one: %s", i - first,
                                 dkm_error_detail());
        cur = next;
    }
    *ret = cur;
    *ret_first = first;
    return 0;
}

static void free_lists(uint8_t **lists, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lists[i]);
    free(lists);
}

/* Keep the verified chain (from the pinned list on) in dir. */
static void save_chain(const char *dir, uint8_t *const *lists, const size_t *lens,
                       size_t n)
{
    struct dkm_writer w;
    uint8_t *buf = NULL;
    size_t cap = 8, i;
    char *path = NULL;
    int r;

    for (i = 0; i < n; i++)
        cap += 4 + lens[i];
    buf = malloc(cap);
    if (buf == NULL || asprintf(&path, "%s/%s", dir, DKM_TRUST_FILE) < 0) {
        path = NULL;
        goto done;
    }
    w = dkm_writer_init(buf, cap);
    (void)dkm_put_bytes(&w, DKM_TRUST_FILE_MAGIC, 4);
    (void)dkm_put_u16be(&w, DKM_TRUST_FILE_VERSION);
    (void)dkm_put_u16be(&w, (uint16_t)n);
    for (i = 0; i < n; i++)
        (void)dkm_put_len32(&w, lists[i], lens[i]);
    if (!dkm_writer_ok(&w))
        goto done;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        goto done;
    r = dkm_file_write(path, buf, w.len, 0600, /* overwrite= */ true);
    if (r < 0)
        log_warning("cannot keep the server lists in %s: %s", path, dkm_error_detail());
done:
    free(path);
    free(buf);
}

int dkm_trust_load(const char *dir, const uint8_t pin[DKM_FINGERPRINT_SIZE],
                   struct dkm_server_list *ret)
{
    uint8_t *buf = NULL, **lists = NULL;
    size_t len = 0, lens[DKM_TRUST_LISTS_MAX], first;
    struct dkm_cursor cur;
    uint16_t version, n = 0;
    char *path = NULL;
    size_t i;
    int r;

    if (dir == NULL)
        return dkm_error_set(-ENOENT, "no server lists kept: no cache_dir");
    if (asprintf(&path, "%s/%s", dir, DKM_TRUST_FILE) < 0) {
        path = NULL;
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    r = dkm_file_read(path, DKM_TRUST_LISTS_MAX * (size_t)DKM_RECORD_MAX, &buf, &len);
    if (r < 0)
        goto done;
    cur = dkm_cursor_init(buf, len);
    if (len < 8 || memcmp(buf, DKM_TRUST_FILE_MAGIC, 4) != 0 || !dkm_skip(&cur, 4) ||
        !dkm_get_u16be(&cur, &version) || version != DKM_TRUST_FILE_VERSION ||
        !dkm_get_u16be(&cur, &n) || n == 0 || n > DKM_TRUST_LISTS_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "%s: not a server list file", path);
        goto done;
    }
    lists = calloc(n, sizeof(*lists));
    if (lists == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        const uint8_t *p;

        if (!dkm_get_len32_ref(&cur, DKM_RECORD_MAX, &p, &lens[i]) ||
            (lists[i] = malloc(lens[i] + 1)) == NULL) {
            r = dkm_error_set(DKM_E_FORMAT, "%s: truncated", path);
            goto done;
        }
        memcpy(lists[i], p, lens[i]);
    }
    if (!dkm_cursor_empty(&cur)) {
        r = dkm_error_set(DKM_E_FORMAT, "%s: trailing bytes", path);
        goto done;
    }
    r = verify_chain(pin, lists, lens, n, ret, &first);
done:
    free_lists(lists, lists != NULL ? n : 0);
    free(buf);
    free(path);
    return r;
}

int dkm_trust_accept_answer(const json_t *answer, const uint8_t pin[DKM_FINGERPRINT_SIZE],
                            uint32_t min_version, const char *dir,
                            struct dkm_server_list *ret)
{
    uint8_t **lists = NULL;
    size_t lens[DKM_TRUST_LISTS_MAX], n = 0, first = 0;
    struct dkm_server_list list;
    const json_t *arr, *v;
    size_t i;
    int r;

    arr = json_object_get(answer, "lists");
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > DKM_TRUST_LISTS_MAX) {
        r = dkm_error_set(DKM_E_PROTOCOL, "GET /v1/trust: no \"lists\" array");
        goto done;
    }
    lists = calloc(json_array_size(arr), sizeof(*lists));
    if (lists == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        size_t slen = s != NULL ? strlen(s) : 0;

        lists[n] = malloc(DKM_RECORD_MAX);
        if (lists[n] == NULL) {
            r = dkm_error_set(-ENOMEM, "out of memory");
            goto done;
        }
        n++;
        if (s == NULL ||
            dkm_b64url_decode(s, slen, lists[n - 1], DKM_RECORD_MAX, &lens[n - 1]) < 0) {
            r = dkm_error_set(DKM_E_PROTOCOL, "GET /v1/trust: list %zu is not base64url",
                              i);
            goto done;
        }
    }
    r = verify_chain(pin, lists, lens, n, &list, &first);
    if (r < 0)
        goto done;
    if (list.list_version < min_version) {
        r = dkm_error_set(DKM_E_SIGNATURE,
                          "the key service offered server list version %u, older than "
                          "version %u already trusted",
                          list.list_version, min_version);
        goto done;
    }
    if (dir != NULL)
        save_chain(dir, lists + first, lens + first, n - first);
    *ret = list;
    r = 0;
done:
    free_lists(lists, n);
    return r;
}
