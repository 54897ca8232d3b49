/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel keyring cache (keyring.h): payload formats, and the keyctl
 * calls that find dkm's keyring and keep, read, list and invalidate its
 * keys. Payloads travel between the kernel and secure memory only:
 * keyctl_read writes into a secure buffer, add_key reads from one.
 *
 * keyutils returns -1 with errno; every call here turns that into a
 * negative errno with a detail. A refusal by the kernel on open is
 * -EOPNOTSUPP, which the client takes as "use the process cache only".
 */
#include "dkm/client/keyring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyutils.h>
#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"

#define KEY_ID_LABEL "dkm-key-id"
#define CONTEXT_LABEL "dkm keyring v1"
/* "dkm:" context ":" group "/" version-or-"current" */
#define DESC_MAX (4 + DKM_KEYRING_CONTEXT_HEX + 1 + DKM_GROUP_MAX + 1 + 10 + 1)
/* Possessor and user: view, read, write, search, link, setattr. Nothing
 * for the group or others. */
#define KEY_PERMS (KEY_POS_ALL | KEY_USR_ALL)

struct dkm_keyring {
    key_serial_t ring;
    OSSL_LIB_CTX *libctx;
    char *propq;
    char prefix[4 + DKM_KEYRING_CONTEXT_HEX + 2]; /* "dkm:<context>:" */
};

/* ---- payloads ---------------------------------------------------------- */

int dkm_keyring_key_id(OSSL_LIB_CTX *libctx, const char *propq, const void *key,
                       size_t len, uint8_t ret[DKM_KEYRING_KEY_ID_SIZE])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;

    if (key == NULL || len == 0 || len > DKM_KEYRING_KEY_MAX || ret == NULL)
        return dkm_error_set(-EINVAL, "keyring key id: bad key");
    if (EVP_Q_mac(libctx, "HMAC", propq, "SHA256", NULL, key, len,
                  (const unsigned char *)KEY_ID_LABEL, sizeof(KEY_ID_LABEL) - 1, mac,
                  sizeof(mac), &mac_len) == NULL ||
        mac_len < DKM_KEYRING_KEY_ID_SIZE)
        return dkm_error_set(DKM_E_CRYPTO, "HMAC-SHA256 is not available");
    memcpy(ret, mac, DKM_KEYRING_KEY_ID_SIZE);
    dkm_memzero(mac, sizeof(mac));
    return 0;
}

static bool put_group(struct dkm_writer *w, const char *group)
{
    size_t n = strlen(group);

    return dkm_put_u8(w, (uint8_t)n) && dkm_put_bytes(w, group, n);
}

/* A group name of 1..DKM_GROUP_MAX valid bytes, NUL-terminated into out. */
static bool get_group(struct dkm_cursor *c, char out[DKM_GROUP_MAX + 1])
{
    const uint8_t *ref;
    uint8_t n;

    if (!dkm_get_u8(c, &n) || n == 0 || n > DKM_GROUP_MAX || !dkm_get_ref(c, n, &ref) ||
        !dkm_group_valid((const char *)ref, n))
        return false;
    memcpy(out, ref, n);
    out[n] = '\0';
    return true;
}

int dkm_keyring_payload_encode(OSSL_LIB_CTX *libctx, const char *propq,
                               const struct dkm_keyring_entry *e, uint8_t *buf,
                               size_t cap, size_t *ret_len)
{
    struct dkm_writer w = dkm_writer_init(buf, cap);
    uint8_t id[DKM_KEYRING_KEY_ID_SIZE];
    int r;

    if (e == NULL || buf == NULL || ret_len == NULL || e->key == NULL ||
        !dkm_group_valid(e->group, strlen(e->group)) || e->version == 0 ||
        e->key_len == 0 || e->key_len > DKM_KEYRING_KEY_MAX || e->cached_until == 0)
        return dkm_error_set(-EINVAL, "keyring payload: bad entry");
    r = dkm_keyring_key_id(libctx, propq, e->key, e->key_len, id);
    if (r < 0)
        return r;
    (void)dkm_put_u32be(&w, DKM_KEYRING_MAGIC);
    (void)dkm_put_u16be(&w, DKM_KEYRING_VERSION);
    (void)put_group(&w, e->group);
    (void)dkm_put_u32be(&w, e->version);
    (void)dkm_put_u32be(&w, e->policy_serial);
    (void)dkm_put_u16be(&w, e->algorithm);
    (void)dkm_put_u32be(&w, e->cache_ttl);
    (void)dkm_put_u32be(&w, e->pcr_mask);
    (void)dkm_put_u64be(&w, e->expires_at);
    (void)dkm_put_u64be(&w, e->cached_until);
    (void)dkm_put_bytes(&w, id, sizeof(id));
    (void)dkm_put_u8(&w, (uint8_t)e->key_len);
    (void)dkm_put_bytes(&w, e->key, e->key_len);
    if (!dkm_writer_ok(&w) || w.len > DKM_KEYRING_PAYLOAD_MAX)
        return dkm_error_set(-ENOBUFS, "keyring payload: does not fit in %zu bytes", cap);
    *ret_len = w.len;
    return 0;
}

int dkm_keyring_payload_decode(OSSL_LIB_CTX *libctx, const char *propq,
                               const uint8_t *buf, size_t len,
                               struct dkm_keyring_entry *ret)
{
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    struct dkm_keyring_entry e;
    uint8_t id[DKM_KEYRING_KEY_ID_SIZE], n;
    uint32_t magic;
    uint16_t version;
    int r;

    memset(&e, 0, sizeof(e));
    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "keyring payload: missing argument");
    if (len > DKM_KEYRING_PAYLOAD_MAX)
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: %zu bytes, more than %u",
                             len, DKM_KEYRING_PAYLOAD_MAX);
    if (!dkm_get_u32be(&c, &magic) || magic != DKM_KEYRING_MAGIC)
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: not a dkm key (magic)");
    if (!dkm_get_u16be(&c, &version) || version != DKM_KEYRING_VERSION)
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: format version %u, want %u",
                             (unsigned)version, DKM_KEYRING_VERSION);
    if (!get_group(&c, e.group))
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: bad group name");
    if (!dkm_get_u32be(&c, &e.version) || e.version == 0 ||
        !dkm_get_u32be(&c, &e.policy_serial) || !dkm_get_u16be(&c, &e.algorithm) ||
        !dkm_get_u32be(&c, &e.cache_ttl) || !dkm_get_u32be(&c, &e.pcr_mask) ||
        !dkm_get_u64be(&c, &e.expires_at) || !dkm_get_u64be(&c, &e.cached_until) ||
        e.cached_until == 0 || !dkm_get_bytes(&c, e.key_id, sizeof(e.key_id)))
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: truncated or zero field");
    if (!dkm_get_u8(&c, &n) || n == 0 || n > DKM_KEYRING_KEY_MAX ||
        !dkm_get_ref(&c, n, &e.key))
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: bad key length");
    e.key_len = n;
    if (!dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "keyring payload: %zu trailing bytes", c.left);
    r = dkm_keyring_key_id(libctx, propq, e.key, e.key_len, id);
    if (r < 0)
        return r;
    if (CRYPTO_memcmp(id, e.key_id, sizeof(id)) != 0)
        return dkm_error_set(DKM_E_INTEGRITY, "keyring payload: key id does not match");
    *ret = e;
    return 0;
}

int dkm_keyring_current_encode(const char *group, uint32_t version, uint8_t *buf,
                               size_t cap, size_t *ret_len)
{
    struct dkm_writer w = dkm_writer_init(buf, cap);

    if (group == NULL || !dkm_group_valid(group, strlen(group)) || version == 0 ||
        buf == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "keyring current: bad entry");
    (void)dkm_put_u32be(&w, DKM_KEYRING_CURRENT_MAGIC);
    (void)dkm_put_u16be(&w, DKM_KEYRING_VERSION);
    (void)put_group(&w, group);
    (void)dkm_put_u32be(&w, version);
    if (!dkm_writer_ok(&w))
        return dkm_error_set(-ENOBUFS, "keyring current: does not fit in %zu bytes", cap);
    *ret_len = w.len;
    return 0;
}

int dkm_keyring_current_decode(const uint8_t *buf, size_t len,
                               char ret_group[DKM_GROUP_MAX + 1], uint32_t *ret_version)
{
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    char group[DKM_GROUP_MAX + 1];
    uint32_t magic, version;
    uint16_t fmt;

    if (buf == NULL || ret_group == NULL || ret_version == NULL)
        return dkm_error_set(-EINVAL, "keyring current: missing argument");
    if (!dkm_get_u32be(&c, &magic) || magic != DKM_KEYRING_CURRENT_MAGIC ||
        !dkm_get_u16be(&c, &fmt) || fmt != DKM_KEYRING_VERSION || !get_group(&c, group) ||
        !dkm_get_u32be(&c, &version) || version == 0 || !dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "keyring current: not a valid payload");
    memcpy(ret_group, group, sizeof(group));
    *ret_version = version;
    return 0;
}

int dkm_keyring_context(OSSL_LIB_CTX *libctx, const char *propq, const uint8_t *pin,
                        size_t pin_len, const char *tcti, const char *cache_dir,
                        char ret[DKM_KEYRING_CONTEXT_HEX + 1])
{
    const char *parts[2] = {tcti != NULL ? tcti : "", cache_dir != NULL ? cache_dir : ""};
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_MD *sha = EVP_MD_fetch(libctx, "SHA256", propq);
    int ok;

    if (ctx == NULL || sha == NULL) {
        EVP_MD_CTX_free(ctx);
        EVP_MD_free(sha);
        return dkm_error_set(DKM_E_CRYPTO, "SHA-256 is not available");
    }
    ok = EVP_DigestInit_ex(ctx, sha, NULL) &&
         EVP_DigestUpdate(ctx, CONTEXT_LABEL, sizeof(CONTEXT_LABEL)) &&
         (pin_len == 0 || EVP_DigestUpdate(ctx, pin, pin_len)) &&
         EVP_DigestUpdate(ctx, "", 1);
    for (int i = 0; ok && i < 2; i++)
        ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
    ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(sha);
    if (!ok)
        return dkm_error_set(DKM_E_CRYPTO, "SHA-256 failed");
    return dkm_hex_encode(md, DKM_KEYRING_CONTEXT_HEX / 2, ret,
                          DKM_KEYRING_CONTEXT_HEX + 1);
}

/* ---- the kernel -------------------------------------------------------- */

static int errno_error(const char *what)
{
    int e = errno != 0 ? errno : EIO;

    return dkm_error_set(-e, "keyring: %s: %s", what, strerror(e));
}

int dkm_keyring_open(int32_t parent, const char context[DKM_KEYRING_CONTEXT_HEX + 1],
                     OSSL_LIB_CTX *libctx, const char *propq, struct dkm_keyring **ret)
{
    struct dkm_keyring *kr;
    key_serial_t ring;

    if (context == NULL || strlen(context) != DKM_KEYRING_CONTEXT_HEX || ret == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad context");
    ring = (key_serial_t)keyctl_search(parent, "keyring", DKM_KEYRING_NAME, 0);
    if (ring < 0 && errno == ENOKEY) {
        ring = add_key("keyring", DKM_KEYRING_NAME, NULL, 0, parent);
        if (ring >= 0 && keyctl_setperm(ring, KEY_PERMS) < 0) {
            int r = errno_error("setting the permissions of dkm's keyring");

            (void)keyctl_invalidate(ring);
            return r;
        }
    }
    if (ring < 0) {
        int e = errno;

        (void)errno_error("finding dkm's keyring");
        return dkm_error_set(-EOPNOTSUPP, "the kernel keyring is not usable here (%s)",
                             strerror(e));
    }
    kr = calloc(1, sizeof(*kr));
    if (kr == NULL)
        return dkm_error_set(-ENOMEM, "out of memory");
    kr->ring = ring;
    kr->libctx = libctx;
    if (propq != NULL && (kr->propq = strdup(propq)) == NULL) {
        free(kr);
        return dkm_error_set(-ENOMEM, "out of memory");
    }
    snprintf(kr->prefix, sizeof(kr->prefix), "dkm:%s:", context);
    *ret = kr;
    return 0;
}

void dkm_keyring_close(struct dkm_keyring *kr)
{
    if (kr == NULL)
        return;
    free(kr->propq);
    free(kr);
}

static void describe(const struct dkm_keyring *kr, const char *group, uint32_t version,
                     char out[DESC_MAX])
{
    if (version == DKM_VERSION_CURRENT)
        snprintf(out, DESC_MAX, "%s%s/current", kr->prefix, group);
    else
        snprintf(out, DESC_MAX, "%s%s/%u", kr->prefix, group, version);
}

/* The payload of the key described desc into a secure buffer of
 * DKM_KEYRING_PAYLOAD_MAX bytes: 0, -ENOENT, or an error. */
static int read_payload(struct dkm_keyring *kr, const char *desc, key_serial_t *ret_id,
                        uint8_t **ret_buf, size_t *ret_len)
{
    key_serial_t id;
    void *buf = NULL;
    long n;
    int r;

    id = (key_serial_t)keyctl_search(kr->ring, "user", desc, 0);
    if (id < 0) {
        if (errno == ENOKEY || errno == EKEYEXPIRED || errno == EKEYREVOKED)
            return -ENOENT;
        return errno_error("search");
    }
    r = dkm_secmem_alloc(DKM_KEYRING_PAYLOAD_MAX, &buf);
    if (r < 0)
        return r;
    n = keyctl_read(id, buf, DKM_KEYRING_PAYLOAD_MAX);
    if (n < 0) {
        r = errno == EKEYEXPIRED || errno == EKEYREVOKED || errno == ENOKEY
                ? -ENOENT
                : errno_error("read");
        dkm_secmem_free(buf);
        return r;
    }
    *ret_id = id;
    *ret_buf = buf;
    /* Longer than the buffer: the kernel copied only part; refused below. */
    *ret_len = (size_t)n;
    return 0;
}

static void refuse(key_serial_t id, const char *desc)
{
    log_debug("keyring: %s refused (%s); invalidated", desc, dkm_error_detail());
    if (keyctl_invalidate(id) < 0)
        log_debug("keyring: invalidating %s: %s", desc, strerror(errno));
}

int dkm_keyring_get(struct dkm_keyring *kr, const char *group, uint32_t version,
                    void **ret_secret, struct dkm_keyring_entry *ret)
{
    struct dkm_keyring_entry e;
    char desc[DESC_MAX];
    key_serial_t id = 0;
    uint8_t *buf = NULL;
    void *secret = NULL;
    size_t len = 0;
    int r;

    if (kr == NULL || group == NULL || version == DKM_VERSION_CURRENT ||
        ret_secret == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad lookup");
    describe(kr, group, version, desc);
    r = read_payload(kr, desc, &id, &buf, &len);
    if (r < 0)
        return r;
    r = len > DKM_KEYRING_PAYLOAD_MAX
            ? dkm_error_set(DKM_E_FORMAT, "keyring payload: %zu bytes, more than %u", len,
                            DKM_KEYRING_PAYLOAD_MAX)
            : dkm_keyring_payload_decode(kr->libctx, kr->propq, buf, len, &e);
    if (r == 0 && (strcmp(e.group, group) != 0 || e.version != version))
        r = dkm_error_set(DKM_E_INTEGRITY, "keyring payload: names %s/%u", e.group,
                          e.version);
    if (r < 0) {
        refuse(id, desc);
        r = -ENOENT;
        goto done;
    }
    r = dkm_secmem_alloc(e.key_len, &secret);
    if (r < 0)
        goto done;
    memcpy(secret, e.key, e.key_len);
    e.key = secret;
    *ret = e;
    *ret_secret = secret;
    secret = NULL;
    r = 0;
done:
    dkm_secmem_free(secret);
    dkm_secmem_free(buf);
    return r;
}

/* add_key (which updates a key of the same description in place), then
 * the permissions and the timeout. */
static int store(struct dkm_keyring *kr, const char *desc, const uint8_t *payload,
                 size_t len, unsigned timeout)
{
    key_serial_t id;

    id = add_key("user", desc, payload, len, kr->ring);
    if (id < 0)
        return errno_error("add_key");
    if (keyctl_setperm(id, KEY_PERMS) < 0 || keyctl_set_timeout(id, timeout) < 0) {
        int r = errno_error("setting permissions and timeout");

        (void)keyctl_invalidate(id);
        return r;
    }
    return 0;
}

int dkm_keyring_put(struct dkm_keyring *kr, const struct dkm_keyring_entry *e,
                    uint64_t now)
{
    char desc[DESC_MAX];
    void *buf = NULL;
    size_t len = 0;
    uint64_t left;
    int r;

    if (kr == NULL || e == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad entry");
    if (e->cached_until <= now)
        return dkm_error_set(-EINVAL, "keyring: %s/%u is already past its cache time",
                             e->group, e->version);
    left = e->cached_until - now;
    r = dkm_secmem_alloc(DKM_KEYRING_PAYLOAD_MAX, &buf);
    if (r < 0)
        return r;
    r = dkm_keyring_payload_encode(kr->libctx, kr->propq, e, buf, DKM_KEYRING_PAYLOAD_MAX,
                                   &len);
    if (r < 0)
        goto done;
    describe(kr, e->group, e->version, desc);
    r = store(kr, desc, buf, len, left > 0x7fffffff ? 0x7fffffffu : (unsigned)left);
done:
    dkm_secmem_free(buf);
    return r;
}

int dkm_keyring_get_current(struct dkm_keyring *kr, const char *group,
                            uint32_t *ret_version)
{
    char desc[DESC_MAX], g[DKM_GROUP_MAX + 1];
    key_serial_t id = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint32_t v = 0;
    int r;

    if (kr == NULL || group == NULL || ret_version == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad lookup");
    describe(kr, group, DKM_VERSION_CURRENT, desc);
    r = read_payload(kr, desc, &id, &buf, &len);
    if (r < 0)
        return r;
    r = len > DKM_KEYRING_PAYLOAD_MAX
            ? dkm_error_set(DKM_E_FORMAT, "keyring current: too long")
            : dkm_keyring_current_decode(buf, len, g, &v);
    if (r == 0 && strcmp(g, group) != 0)
        r = dkm_error_set(DKM_E_INTEGRITY, "keyring current: names %s", g);
    if (r < 0) {
        refuse(id, desc);
        r = -ENOENT;
    } else {
        *ret_version = v;
    }
    dkm_secmem_free(buf);
    return r;
}

int dkm_keyring_put_current(struct dkm_keyring *kr, const char *group, uint32_t version,
                            unsigned timeout)
{
    uint8_t buf[4 + 2 + 1 + DKM_GROUP_MAX + 4];
    char desc[DESC_MAX];
    size_t len = 0;
    int r;

    if (kr == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad entry");
    r = dkm_keyring_current_encode(group, version, buf, sizeof(buf), &len);
    if (r < 0)
        return r;
    describe(kr, group, DKM_VERSION_CURRENT, desc);
    return store(kr, desc, buf, len, timeout > 0 ? timeout : 1);
}

/*
 * The serials linked in dkm's keyring (malloc'd), and how many. The
 * kernel answers with the size it needs; a keyring that grew in between
 * is read again.
 */
static int ring_members(struct dkm_keyring *kr, key_serial_t **ret, size_t *ret_n)
{
    key_serial_t *ids = NULL;
    long need = 0, got;

    for (int tries = 0; tries < 4; tries++) {
        need = keyctl_read(kr->ring, NULL, 0);
        if (need < 0)
            return errno_error("listing dkm's keyring");
        free(ids);
        ids = malloc((size_t)need + sizeof(key_serial_t));
        if (ids == NULL)
            return dkm_error_set(-ENOMEM, "out of memory");
        got = keyctl_read(kr->ring, (char *)ids, (size_t)need + sizeof(key_serial_t));
        if (got < 0) {
            free(ids);
            return errno_error("listing dkm's keyring");
        }
        if (got <= need + (long)sizeof(key_serial_t)) {
            *ret = ids;
            *ret_n = (size_t)got / sizeof(key_serial_t);
            return 0;
        }
    }
    free(ids);
    return dkm_error_set(-EAGAIN, "keyring: dkm's keyring keeps changing");
}

/* The description of id when it is a user key of this context, else NULL. */
static const char *our_desc(struct dkm_keyring *kr, key_serial_t id, char *buf,
                            size_t size)
{
    const char *d;
    long n = keyctl_describe(id, buf, size);

    if (n < 0 || (size_t)n > size || strncmp(buf, "user;", 5) != 0)
        return NULL;
    /* "type;uid;gid;perm;description" */
    d = buf;
    for (int i = 0; i < 4 && d != NULL; i++) {
        d = strchr(d, ';');
        if (d != NULL)
            d++;
    }
    if (d == NULL || strncmp(d, kr->prefix, strlen(kr->prefix)) != 0)
        return NULL;
    return d + strlen(kr->prefix);
}

int dkm_keyring_list(struct dkm_keyring *kr,
                     int (*fn)(void *arg, const struct dkm_keyring_entry *e), void *arg)
{
    key_serial_t *ids = NULL;
    size_t n = 0;
    void *buf = NULL;
    int r;

    if (kr == NULL || fn == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad listing");
    r = ring_members(kr, &ids, &n);
    if (r < 0)
        return r;
    r = dkm_secmem_alloc(DKM_KEYRING_PAYLOAD_MAX, &buf);
    for (size_t i = 0; r == 0 && i < n; i++) {
        char dbuf[512];
        struct dkm_keyring_entry e;
        const char *rest = our_desc(kr, ids[i], dbuf, sizeof(dbuf));
        long len;

        if (rest == NULL || strstr(rest, "/current") != NULL)
            continue;
        len = keyctl_read(ids[i], buf, DKM_KEYRING_PAYLOAD_MAX);
        if (len < 0 || len > (long)DKM_KEYRING_PAYLOAD_MAX ||
            dkm_keyring_payload_decode(kr->libctx, kr->propq, buf, (size_t)len, &e) < 0)
            continue;
        e.key = NULL;
        e.key_len = 0;
        r = fn(arg, &e);
    }
    dkm_secmem_free(buf);
    free(ids);
    return r;
}

int dkm_keyring_flush(struct dkm_keyring *kr, const char *group, size_t *ret_count)
{
    key_serial_t *ids = NULL;
    size_t n = 0, count = 0, glen = group != NULL ? strlen(group) : 0;
    int r;

    if (kr == NULL)
        return dkm_error_set(-EINVAL, "keyring: bad flush");
    r = ring_members(kr, &ids, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        char dbuf[512];
        const char *rest = our_desc(kr, ids[i], dbuf, sizeof(dbuf));

        if (rest == NULL ||
            (group != NULL && (strncmp(rest, group, glen) != 0 || rest[glen] != '/')))
            continue;
        if (keyctl_invalidate(ids[i]) == 0)
            count++;
        else if (errno != ENOKEY && errno != EKEYEXPIRED)
            r = errno_error("invalidate");
    }
    free(ids);
    if (r == 0 && ret_count != NULL)
        *ret_count = count;
    return r;
}
