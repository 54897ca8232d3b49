/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state directory's "seen" file (seen.h): its strict codec, lookups
 * and the merge of what a state load observed. The file is the memory
 * that makes rollback protection survive a restart: without it a server
 * could only compare a reload with the snapshot before it.
 */
#include "seen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/base/file.h"

void ks_seen_key(const void *a, size_t alen, const void *b, size_t blen,
                 uint8_t ret[KS_SEEN_KEY_SIZE])
{
    static const uint8_t zero = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;

    memset(ret, 0, KS_SEEN_KEY_SIZE);
    if (md == NULL)
        return;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, a, alen) == 1 &&
        (b == NULL ||
         (EVP_DigestUpdate(md, &zero, 1) == 1 && EVP_DigestUpdate(md, b, blen) == 1)))
        EVP_DigestFinal_ex(md, ret, &n);
    EVP_MD_CTX_free(md);
}

static int entry_cmp(const void *x, const void *y)
{
    const struct ks_seen_entry *a = x, *b = y;

    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return memcmp(a->key, b->key, KS_SEEN_KEY_SIZE);
}

uint64_t ks_seen_get(const struct ks_seen *s, uint8_t kind,
                     const uint8_t key[KS_SEEN_KEY_SIZE])
{
    struct ks_seen_entry k = {.kind = kind};
    const struct ks_seen_entry *e;

    if (s == NULL || s->n == 0)
        return 0;
    memcpy(k.key, key, KS_SEEN_KEY_SIZE);
    e = bsearch(&k, s->v, s->n, sizeof(*s->v), entry_cmp);
    return e != NULL ? e->serial : 0;
}

int ks_seen_merge(struct ks_seen *s, struct ks_seen_entry *obs, size_t n,
                  bool *ret_changed)
{
    struct ks_seen_entry *out;
    size_t i = 0, j = 0, k = 0;
    bool changed = false;

    if (n > 1)
        qsort(obs, n, sizeof(*obs), entry_cmp);
    if (s->n + n > KS_SEEN_MAX_ENTRIES)
        return dkm_error_set(-E2BIG, "more than %u records to remember",
                             KS_SEEN_MAX_ENTRIES);
    out = malloc((s->n + n + 1) * sizeof(*out));
    if (out == NULL)
        return -ENOMEM;
    while (i < s->n || j < n) {
        int c = i == s->n ? 1 : j == n ? -1 : entry_cmp(&s->v[i], &obs[j]);

        if (c < 0) {
            out[k++] = s->v[i++];
            continue;
        }
        /* A new key, or a key seen before: the highest serial wins. */
        if (c > 0) {
            out[k] = obs[j++];
            changed = true;
        } else {
            out[k] = s->v[i++];
        }
        while (j < n && entry_cmp(&out[k], &obs[j]) == 0) {
            if (obs[j].serial > out[k].serial) {
                out[k].serial = obs[j].serial;
                changed = true;
            }
            j++;
        }
        k++;
    }
    free(s->v);
    s->v = out;
    s->n = k;
    *ret_changed = changed;
    return 0;
}

int ks_seen_decode(const uint8_t *buf, size_t len, struct ks_seen *ret)
{
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    struct ks_seen s = {0};
    const uint8_t *m;
    uint16_t version;
    uint32_t count;
    int r = DKM_E_FORMAT;

    if (len > KS_SEEN_HEADER + (size_t)KS_SEEN_ENTRY * KS_SEEN_MAX_ENTRIES)
        return dkm_error_set(DKM_E_FORMAT, "seen file: %zu bytes, too large", len);
    if (!dkm_get_ref(&c, 4, &m) || memcmp(m, KS_SEEN_MAGIC, 4) != 0)
        return dkm_error_set(DKM_E_FORMAT, "seen file: bad magic");
    if (!dkm_get_u16be(&c, &version) || version != KS_SEEN_VERSION)
        return dkm_error_set(DKM_E_FORMAT, "seen file: unsupported version");
    if (!dkm_get_u64be(&c, &s.head) || !dkm_get_u32be(&c, &s.list_version) ||
        !dkm_get_u32be(&c, &count))
        return dkm_error_set(DKM_E_FORMAT, "seen file: truncated header");
    if (count > KS_SEEN_MAX_ENTRIES || c.left != (size_t)count * KS_SEEN_ENTRY)
        return dkm_error_set(DKM_E_FORMAT,
                             "seen file: %u entries do not fill the %zu bytes left",
                             count, c.left);
    s.v = malloc(((size_t)count + 1) * sizeof(*s.v));
    if (s.v == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        struct ks_seen_entry *e = &s.v[i];

        if (!dkm_get_u8(&c, &e->kind) || !dkm_get_bytes(&c, e->key, KS_SEEN_KEY_SIZE) ||
            !dkm_get_u64be(&c, &e->serial)) {
            r = dkm_error_set(DKM_E_FORMAT, "seen file: truncated entry %u", i);
            goto done;
        }
        if (e->kind < KS_SEEN_NODE || e->kind > KS_SEEN_GRANT) {
            r = dkm_error_set(DKM_E_FORMAT, "seen file: entry %u of unknown kind %u", i,
                              (unsigned)e->kind);
            goto done;
        }
        if (e->serial == 0) {
            r = dkm_error_set(DKM_E_FORMAT, "seen file: entry %u with serial 0", i);
            goto done;
        }
        if (i > 0 && entry_cmp(&s.v[i - 1], e) >= 0) {
            r = dkm_error_set(DKM_E_FORMAT,
                              "seen file: entry %u is out of order or repeated", i);
            goto done;
        }
    }
    s.n = count;
    *ret = s;
    s.v = NULL;
    r = 0;
done:
    free(s.v);
    return r;
}

int ks_seen_encode(const struct ks_seen *s, uint8_t **ret, size_t *ret_len)
{
    size_t cap = KS_SEEN_HEADER + s->n * KS_SEEN_ENTRY;
    uint8_t *buf;
    struct dkm_writer w;

    if (s->n > KS_SEEN_MAX_ENTRIES)
        return dkm_error_set(-E2BIG, "seen file: too many entries");
    buf = malloc(cap);
    if (buf == NULL)
        return -ENOMEM;
    w = dkm_writer_init(buf, cap);
    (void)dkm_put_bytes(&w, KS_SEEN_MAGIC, 4);
    (void)dkm_put_u16be(&w, KS_SEEN_VERSION);
    (void)dkm_put_u64be(&w, s->head);
    (void)dkm_put_u32be(&w, s->list_version);
    (void)dkm_put_u32be(&w, (uint32_t)s->n);
    for (size_t i = 0; i < s->n; i++) {
        (void)dkm_put_u8(&w, s->v[i].kind);
        (void)dkm_put_bytes(&w, s->v[i].key, KS_SEEN_KEY_SIZE);
        (void)dkm_put_u64be(&w, s->v[i].serial);
    }
    if (!dkm_writer_ok(&w)) {
        free(buf);
        return dkm_error_set(-E2BIG, "seen file: encoding overflow");
    }
    *ret = buf;
    *ret_len = w.len;
    return 0;
}

int ks_seen_load(const char *path, struct ks_seen *ret)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    memset(ret, 0, sizeof(*ret));
    r = dkm_file_read(path, KS_SEEN_HEADER + (size_t)KS_SEEN_ENTRY * KS_SEEN_MAX_ENTRIES,
                      &buf, &len);
    if (r < 0)
        return r;
    r = ks_seen_decode(buf, len, ret);
    if (r < 0)
        r = dkm_error_set(r, "%s: %s", path, dkm_error_detail());
    free(buf);
    return r;
}

int ks_seen_save(const char *path, const struct ks_seen *s)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    r = ks_seen_encode(s, &buf, &len);
    if (r == 0)
        r = dkm_file_write(path, buf, len, 0600, /* overwrite= */ true);
    free(buf);
    return r;
}

void ks_seen_clear(struct ks_seen *s)
{
    if (s == NULL)
        return;
    free(s->v);
    memset(s, 0, sizeof(*s));
}
