/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed records shared by dkmd, its database and the provider: server
 * list, node entry, group policy, sealed copy, grant, state head, fetch
 * response. See
 * include/dkm/trust/records.h for the framing and docs/formats.md for bytes.
 */
#include "dkm/trust/records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/dup.h"
#include "dkm/tpm/tpm.h"
#include "dkm/trust/nodecard.h"

/* signer id + signature closing every record */
#define TAIL_SIZE (DKM_NODE_ID_SIZE + DKM_SIG_SIZE)
#define HEADER_SIZE 6

static int signkey_sign_cb(void *ctx, const char *context, const void *msg, size_t len,
                           uint8_t ret_sig[DKM_SIG_SIZE])
{
    return dkm_signkey_sign(ctx, context, msg, len, ret_sig);
}

struct dkm_signer dkm_signer_signkey(struct dkm_signkey *sk, const struct dkm_node_id *id)
{
    struct dkm_signer s = {.sign = signkey_sign_cb, .ctx = sk, .id = *id};

    return s;
}

/* ---- framing helpers ---- */

static bool put_header_v(struct dkm_writer *w, const char *magic, uint16_t version)
{
    return dkm_put_bytes(w, magic, 4) && dkm_put_u16be(w, version);
}

static bool put_header(struct dkm_writer *w, const char *magic)
{
    return put_header_v(w, magic, DKM_RECORD_VERSION);
}

/*
 * Where every record decoder starts: refuse more than DKM_RECORD_MAX
 * bytes before reading any, then the magic and a version within
 * min..max (*ret_version). *c is left after the header.
 */
static int record_begin_v(const uint8_t *buf, size_t len, const char *magic,
                          const char *what, uint16_t min, uint16_t max,
                          struct dkm_cursor *c, uint16_t *ret_version)
{
    const uint8_t *m;
    uint16_t version;

    if (len > DKM_RECORD_MAX)
        return dkm_error_set(DKM_E_FORMAT, "%s: %zu bytes, too large (at most %d)", what,
                             len, DKM_RECORD_MAX);
    *c = dkm_cursor_init(buf, len);
    if (!dkm_get_ref(c, 4, &m) || memcmp(m, magic, 4) != 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: bad magic", what);
    if (!dkm_get_u16be(c, &version))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated header", what);
    if (version < min || version > max)
        return dkm_error_set(DKM_E_FORMAT, "%s: unsupported format version %u", what,
                             (unsigned)version);
    *ret_version = version;
    return 0;
}

static int record_begin(const uint8_t *buf, size_t len, const char *magic,
                        const char *what, struct dkm_cursor *c)
{
    uint16_t version;

    return record_begin_v(buf, len, magic, what, DKM_RECORD_VERSION, DKM_RECORD_VERSION,
                          c, &version);
}

/* Read signer id and signature, which must end the record. */
static int get_tail(struct dkm_cursor *c, struct dkm_node_id *signer, uint8_t *sig,
                    const char *what)
{
    if (!dkm_get_bytes(c, signer->bytes, DKM_NODE_ID_SIZE) ||
        !dkm_get_bytes(c, sig, DKM_SIG_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated signature", what);
    if (!dkm_cursor_empty(c))
        return dkm_error_set(DKM_E_FORMAT, "%s: %zu trailing bytes", what, c->left);
    return 0;
}

/*
 * Append the signer id, sign everything written so far, append the
 * signature, and hand out a right-sized copy.
 */
static int finish_signed(struct dkm_writer *w, const struct dkm_signer *signer,
                         const char *context, struct dkm_node_id *ret_signer,
                         uint8_t *ret_sig, uint8_t **ret, size_t *ret_len)
{
    uint8_t sig[DKM_SIG_SIZE];
    uint8_t *out;
    int r;

    if (!dkm_put_bytes(w, signer->id.bytes, DKM_NODE_ID_SIZE) || !dkm_writer_ok(w))
        return dkm_error_set(-E2BIG, "record larger than %d bytes", DKM_RECORD_MAX);
    r = signer->sign(signer->ctx, context, w->buf, w->len, sig);
    if (r < 0)
        return r;
    if (!dkm_put_bytes(w, sig, sizeof(sig)))
        return dkm_error_set(-E2BIG, "record larger than %d bytes", DKM_RECORD_MAX);
    out = malloc(w->len);
    if (out == NULL)
        return -ENOMEM;
    memcpy(out, w->buf, w->len);
    *ret_signer = signer->id;
    memcpy(ret_sig, sig, sizeof(sig));
    *ret = out;
    *ret_len = w->len;
    return 0;
}

static int writer_new(struct dkm_writer *w)
{
    uint8_t *buf = malloc(DKM_RECORD_MAX);

    if (buf == NULL)
        return -ENOMEM;
    *w = dkm_writer_init(buf, DKM_RECORD_MAX);
    return 0;
}

static bool put_group(struct dkm_writer *w, const char *group)
{
    size_t n = strlen(group);

    return n <= DKM_GROUP_MAX && dkm_put_u8(w, (uint8_t)n) && dkm_put_bytes(w, group, n);
}

static int get_group(struct dkm_cursor *c, char out[DKM_GROUP_MAX + 1], const char *what)
{
    const uint8_t *p;
    uint8_t n;

    if (!dkm_get_u8(c, &n) || !dkm_get_ref(c, n, &p))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated group name", what);
    if (!dkm_group_valid((const char *)p, n))
        return dkm_error_set(DKM_E_FORMAT, "%s: invalid group name", what);
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* An EK public area as a marshaled TPM2B_PUBLIC (u16 size || TPMT_PUBLIC). */
static bool put_ek(struct dkm_writer *w, const TPM2B_PUBLIC *ek)
{
    uint8_t buf[DKM_EK_PUBLIC_MAX];
    size_t off = 0;

    if (Tss2_MU_TPM2B_PUBLIC_Marshal(ek, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
        w->overflow = true;
        return false;
    }
    return dkm_put_bytes(w, buf, off);
}

static int get_ek(struct dkm_cursor *c, TPM2B_PUBLIC *ret, struct dkm_node_id *ret_id,
                  const char *what)
{
    const uint8_t *p;
    size_t n, off = 0;
    TPM2B_PUBLIC ek = {0};
    uint8_t again[DKM_EK_PUBLIC_MAX];
    int r;

    if (!dkm_get_len16_ref(c, DKM_EK_PUBLIC_MAX, &p, &n) || n == 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated or oversized EK public", what);
    if (Tss2_MU_TPMT_PUBLIC_Unmarshal(p, n, &off, &ek.publicArea) != TSS2_RC_SUCCESS ||
        off != n)
        return dkm_error_set(DKM_E_FORMAT, "%s: EK public does not unmarshal", what);
    ek.size = (uint16_t)n;
    /* Only the canonical encoding: marshaling it again gives the input. */
    off = 0;
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&ek.publicArea, again, sizeof(again), &off) !=
            TSS2_RC_SUCCESS ||
        off != n || memcmp(again, p, n) != 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: EK public is not canonically encoded",
                             what);
    r = dkm_node_id_from_public(&ek, ret_id);
    if (r < 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: not a TCG EK public area", what);
    *ret = ek;
    return 0;
}

static int get_p256(struct dkm_cursor *c, struct dkm_p256_public *ret, const char *what)
{
    if (!dkm_get_bytes(c, ret->point, DKM_P256_PUBLIC_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated public key", what);
    if (dkm_p256_public_check(ret) < 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: public key is not a P-256 point", what);
    return 0;
}

/* ---- server list ---- */

int dkm_server_list_sign(struct dkm_server_list *list, const struct dkm_signer *signer,
                         uint8_t **ret, size_t *ret_len)
{
    struct dkm_writer w;
    int r;

    if (list->count == 0 || list->count > DKM_SERVER_LIST_MAX || list->list_version == 0)
        return dkm_error_set(-EINVAL,
                             "server list: needs 1..%d entries and a version >= 1",
                             DKM_SERVER_LIST_MAX);
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header(&w, DKM_RECORD_MAGIC_SERVER_LIST);
    dkm_put_u32be(&w, list->list_version);
    dkm_put_u64be(&w, list->issued_at);
    dkm_put_u8(&w, list->count);
    for (unsigned i = 0; i < list->count; i++) {
        const struct dkm_server_entry *e = &list->entries[i];

        dkm_put_bytes(&w, e->node_id.bytes, DKM_NODE_ID_SIZE);
        put_ek(&w, &e->ek);
        dkm_put_bytes(&w, e->sk.point, DKM_P256_PUBLIC_SIZE);
    }
    r = finish_signed(&w, signer, DKM_SIGCTX_SERVER_LIST, &list->signer, list->sig, ret,
                      ret_len);
    free(w.buf);
    return r;
}

int dkm_server_list_decode(const uint8_t *buf, size_t len, struct dkm_server_list *ret)
{
    static const char what[] = "server list";
    struct dkm_server_list *l;
    struct dkm_cursor c;
    int r;

    r = record_begin(buf, len, DKM_RECORD_MAGIC_SERVER_LIST, what, &c);
    if (r < 0)
        return r;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    r = dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (!dkm_get_u32be(&c, &l->list_version) || !dkm_get_u64be(&c, &l->issued_at) ||
        !dkm_get_u8(&c, &l->count))
        goto done;
    if (l->list_version == 0 || l->count == 0 || l->count > DKM_SERVER_LIST_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "%s: version %u with %u entries is not valid",
                          what, (unsigned)l->list_version, (unsigned)l->count);
        goto done;
    }
    for (unsigned i = 0; i < l->count; i++) {
        struct dkm_server_entry *e = &l->entries[i];
        struct dkm_node_id id;

        if (!dkm_get_bytes(&c, e->node_id.bytes, DKM_NODE_ID_SIZE)) {
            r = dkm_error_set(DKM_E_FORMAT, "%s: truncated entry %u", what, i);
            goto done;
        }
        r = get_ek(&c, &e->ek, &id, what);
        if (r < 0)
            goto done;
        if (!dkm_node_id_equal(&id, &e->node_id)) {
            r = dkm_error_set(DKM_E_FORMAT, "%s: entry %u: node id is not its EK's name",
                              what, i);
            goto done;
        }
        for (unsigned j = 0; j < i; j++) {
            if (dkm_node_id_equal(&l->entries[j].node_id, &e->node_id)) {
                r = dkm_error_set(DKM_E_FORMAT, "%s: entry %u repeats entry %u", what, i,
                                  j);
                goto done;
            }
        }
        r = get_p256(&c, &e->sk, what);
        if (r < 0)
            goto done;
    }
    r = get_tail(&c, &l->signer, l->sig, what);
    if (r < 0)
        goto done;
    *ret = *l;
    r = 0;
done:
    free(l);
    return r;
}

int dkm_server_list_fingerprint(const uint8_t *buf, size_t len,
                                uint8_t ret[DKM_FINGERPRINT_SIZE])
{
    unsigned int n = 0;

    if (EVP_Digest(buf, len, ret, &n, EVP_sha256(), NULL) != 1 ||
        n != DKM_FINGERPRINT_SIZE)
        return dkm_error_set(DKM_E_CRYPTO, "SHA-256 failed");
    return 0;
}

const struct dkm_server_entry *dkm_server_list_find(const struct dkm_server_list *list,
                                                    const struct dkm_node_id *id)
{
    for (unsigned i = 0; i < list->count; i++) {
        if (dkm_node_id_equal(&list->entries[i].node_id, id))
            return &list->entries[i];
    }
    return NULL;
}

/* Signature over buf's signed part by the SK of signer, looked up in list. */
static int verify_by(const struct dkm_server_list *list, const struct dkm_node_id *signer,
                     const char *context, const uint8_t *buf, size_t len,
                     const char *what)
{
    const struct dkm_server_entry *e = dkm_server_list_find(list, signer);

    if (len < HEADER_SIZE + TAIL_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "%s: too short", what);
    if (e == NULL)
        return dkm_error_set(DKM_E_SIGNATURE, "%s: signed by a server not on the list",
                             what);
    if (dkm_sig_verify(&e->sk, context, buf, len - DKM_SIG_SIZE,
                       buf + len - DKM_SIG_SIZE) < 0)
        return dkm_error_set(DKM_E_SIGNATURE, "%s: signature does not verify", what);
    return 0;
}

int dkm_server_list_verify_pinned(const uint8_t *buf, size_t len,
                                  const uint8_t pin[DKM_FINGERPRINT_SIZE],
                                  struct dkm_server_list *ret)
{
    uint8_t fp[DKM_FINGERPRINT_SIZE];
    struct dkm_server_list *l;
    int r;

    r = dkm_server_list_fingerprint(buf, len, fp);
    if (r < 0)
        return r;
    if (CRYPTO_memcmp(fp, pin, sizeof(fp)) != 0)
        return dkm_error_set(DKM_E_SIGNATURE,
                             "server list does not match the pinned trust fingerprint");
    l = malloc(sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    r = dkm_server_list_decode(buf, len, l);
    if (r == 0)
        r = verify_by(l, &l->signer, DKM_SIGCTX_SERVER_LIST, buf, len,
                      "pinned server list");
    if (r == 0)
        *ret = *l;
    free(l);
    return r;
}

int dkm_server_list_verify_next(const struct dkm_server_list *prev, const uint8_t *buf,
                                size_t len, struct dkm_server_list *ret)
{
    struct dkm_server_list *l = malloc(sizeof(*l));
    int r;

    if (l == NULL)
        return -ENOMEM;
    r = dkm_server_list_decode(buf, len, l);
    if (r == 0 && l->list_version != prev->list_version + 1)
        r = dkm_error_set(DKM_E_SIGNATURE, "server list version %u does not follow %u",
                          (unsigned)l->list_version, (unsigned)prev->list_version);
    if (r == 0)
        r = verify_by(prev, &l->signer, DKM_SIGCTX_SERVER_LIST, buf, len, "server list");
    if (r == 0)
        *ret = *l;
    free(l);
    return r;
}

int dkm_record_verify(const struct dkm_server_list *list, const char *context,
                      const uint8_t *buf, size_t len)
{
    struct dkm_node_id signer;

    if (len < HEADER_SIZE + TAIL_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "record too short");
    memcpy(signer.bytes, buf + len - TAIL_SIZE, DKM_NODE_ID_SIZE);
    return verify_by(list, &signer, context, buf, len, context);
}

/* ---- node entry ---- */

const char *dkm_role_name(enum dkm_role role)
{
    switch (role) {
    case DKM_ROLE_CLIENT:
        return "client";
    case DKM_ROLE_SERVER:
        return "server";
    case DKM_ROLE_ADMIN:
        return "admin";
    }
    return NULL;
}

int dkm_role_parse(const char *name, enum dkm_role *ret)
{
    for (int role = DKM_ROLE_CLIENT; role <= DKM_ROLE_ADMIN; role++) {
        if (strcmp(name, dkm_role_name(role)) == 0) {
            *ret = role;
            return 0;
        }
    }
    return dkm_error_set(-EINVAL, "unknown role \"%.16s\" (client, server or admin)",
                         name);
}

int dkm_node_entry_sign(struct dkm_node_entry *e, const struct dkm_signer *signer,
                        uint8_t **ret, size_t *ret_len)
{
    struct dkm_node_id id;
    struct dkm_writer w;
    size_t hlen;
    int r;

    if (dkm_role_name(e->role) == NULL)
        return dkm_error_set(-EINVAL, "node entry: invalid role");
    if (e->serial == 0)
        return dkm_error_set(-EINVAL, "node entry: serial must be at least 1");
    hlen = strnlen(e->hostname, sizeof(e->hostname));
    if (hlen == sizeof(e->hostname) || (hlen > 0 && dkm_hostname_check(e->hostname) < 0))
        return dkm_error_set(-EINVAL, "node entry: invalid hostname");
    r = dkm_node_id_from_public(&e->ek, &id);
    if (r < 0)
        return r;
    if (!dkm_node_id_equal(&id, &e->node_id))
        return dkm_error_set(-EINVAL, "node entry: node id is not the EK's name");
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header_v(&w, DKM_RECORD_MAGIC_NODE_ENTRY, DKM_NODE_ENTRY_VERSION);
    dkm_put_u64be(&w, e->serial);
    dkm_put_u8(&w, (uint8_t)hlen);
    dkm_put_bytes(&w, e->hostname, hlen);
    dkm_put_bytes(&w, e->node_id.bytes, DKM_NODE_ID_SIZE);
    put_ek(&w, &e->ek);
    dkm_put_u8(&w, (uint8_t)e->role);
    dkm_put_u64be(&w, e->authorized_at);
    dkm_put_u64be(&w, e->revoked_at);
    dkm_put_u8(&w, e->has_tls_key ? DKM_TLS_KEY_ID_SIZE : 0);
    if (e->has_tls_key)
        dkm_put_bytes(&w, e->tls_key, DKM_TLS_KEY_ID_SIZE);
    r = finish_signed(&w, signer, DKM_SIGCTX_NODE_ENTRY, &e->signer, e->sig, ret,
                      ret_len);
    if (r == 0)
        e->format = DKM_NODE_ENTRY_VERSION;
    free(w.buf);
    return r;
}

int dkm_node_entry_decode(const uint8_t *buf, size_t len, struct dkm_node_entry *ret)
{
    static const char what[] = "node entry";
    struct dkm_node_entry e = {0};
    struct dkm_node_id id;
    struct dkm_cursor c;
    uint8_t role, tls_len, hlen;
    const uint8_t *host;
    int r;

    r = record_begin_v(buf, len, DKM_RECORD_MAGIC_NODE_ENTRY, what, 1,
                       DKM_NODE_ENTRY_VERSION, &c, &e.format);
    if (r < 0)
        return r;
    if (e.format >= 2) {
        if (!dkm_get_u64be(&c, &e.serial) || !dkm_get_u8(&c, &hlen) ||
            !dkm_get_ref(&c, hlen, &host))
            return dkm_error_set(DKM_E_FORMAT, "%s: truncated serial or hostname", what);
        if (e.serial == 0)
            return dkm_error_set(DKM_E_FORMAT, "%s: serial 0", what);
        if (hlen > DKM_NODE_HOSTNAME_MAX || memchr(host, '\0', hlen) != NULL)
            return dkm_error_set(DKM_E_FORMAT, "%s: invalid hostname", what);
        memcpy(e.hostname, host, hlen);
        e.hostname[hlen] = '\0';
        if (hlen > 0 && dkm_hostname_check(e.hostname) < 0)
            return dkm_error_set(DKM_E_FORMAT, "%s: invalid hostname", what);
    }
    if (!dkm_get_bytes(&c, e.node_id.bytes, DKM_NODE_ID_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated node id", what);
    r = get_ek(&c, &e.ek, &id, what);
    if (r < 0)
        return r;
    if (!dkm_node_id_equal(&id, &e.node_id))
        return dkm_error_set(DKM_E_FORMAT, "%s: node id is not the EK's name", what);
    if (!dkm_get_u8(&c, &role) || !dkm_get_u64be(&c, &e.authorized_at) ||
        !dkm_get_u64be(&c, &e.revoked_at))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (dkm_role_name(role) == NULL)
        return dkm_error_set(DKM_E_FORMAT, "%s: unknown role %u", what, (unsigned)role);
    e.role = role;
    if (e.revoked_at != 0 && e.revoked_at < e.authorized_at)
        return dkm_error_set(DKM_E_FORMAT, "%s: revoked before it was authorized", what);
    if (!dkm_get_u8(&c, &tls_len))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (tls_len != 0 && tls_len != DKM_TLS_KEY_ID_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "%s: TLS key id of %u bytes (0 or %u)", what,
                             (unsigned)tls_len, (unsigned)DKM_TLS_KEY_ID_SIZE);
    e.has_tls_key = tls_len != 0;
    if (e.has_tls_key && !dkm_get_bytes(&c, e.tls_key, DKM_TLS_KEY_ID_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated TLS key id", what);
    r = get_tail(&c, &e.signer, e.sig, what);
    if (r < 0)
        return r;
    *ret = e;
    return 0;
}

/* ---- group policy ---- */

static unsigned popcount24(uint32_t mask)
{
    return (unsigned)__builtin_popcount(mask & 0xffffffu);
}

int dkm_group_policy_check(const struct dkm_group_policy *p)
{
    if (!dkm_group_valid(p->group, strnlen(p->group, DKM_GROUP_MAX + 1)))
        return dkm_error_set(-EINVAL, "policy: invalid group name");
    if (p->serial == 0)
        return dkm_error_set(-EINVAL, "policy: serial must be at least 1");
    if (p->algorithm != DKM_ALG_AES_256_GCM)
        return dkm_error_set(-EINVAL, "policy: unknown algorithm %u",
                             (unsigned)p->algorithm);
    if (p->rotation_period == 0)
        return dkm_error_set(-EINVAL, "policy: rotation period must be positive");
    if (p->version_lifetime < p->rotation_period)
        return dkm_error_set(-EINVAL, "policy: version lifetime is shorter than the "
                                      "rotation period");
    if (p->cache_ttl == 0 || p->cache_ttl > p->version_lifetime)
        return dkm_error_set(-EINVAL,
                             "policy: cache TTL must be positive and at most the "
                             "version lifetime");
    if (p->pcr_mask & ~0xffffffu)
        return dkm_error_set(-EINVAL, "policy: PCR selection beyond PCR 23");
    return 0;
}

int dkm_group_policy_sign(struct dkm_group_policy *p, const struct dkm_signer *signer,
                          uint8_t **ret, size_t *ret_len)
{
    struct dkm_writer w;
    int r;

    r = dkm_group_policy_check(p);
    if (r < 0)
        return r;
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header(&w, DKM_RECORD_MAGIC_GROUP_POLICY);
    put_group(&w, p->group);
    dkm_put_u32be(&w, p->serial);
    dkm_put_u16be(&w, p->algorithm);
    dkm_put_u64be(&w, p->rotation_period);
    dkm_put_u64be(&w, p->version_lifetime);
    dkm_put_u32be(&w, p->cache_ttl);
    dkm_put_u32be(&w, p->pcr_mask);
    dkm_put_bytes(&w, p->pcr_values, 32 * popcount24(p->pcr_mask));
    dkm_put_u64be(&w, p->created_at);
    r = finish_signed(&w, signer, DKM_SIGCTX_GROUP_POLICY, &p->signer, p->sig, ret,
                      ret_len);
    free(w.buf);
    return r;
}

int dkm_group_policy_decode(const uint8_t *buf, size_t len, struct dkm_group_policy *ret)
{
    static const char what[] = "group policy";
    struct dkm_group_policy p;
    struct dkm_cursor c;
    int r;

    memset(&p, 0, sizeof(p));
    r = record_begin(buf, len, DKM_RECORD_MAGIC_GROUP_POLICY, what, &c);
    if (r < 0)
        return r;
    r = get_group(&c, p.group, what);
    if (r < 0)
        return r;
    if (!dkm_get_u32be(&c, &p.serial) || !dkm_get_u16be(&c, &p.algorithm) ||
        !dkm_get_u64be(&c, &p.rotation_period) ||
        !dkm_get_u64be(&c, &p.version_lifetime) || !dkm_get_u32be(&c, &p.cache_ttl) ||
        !dkm_get_u32be(&c, &p.pcr_mask))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (p.pcr_mask & ~0xffffffu)
        return dkm_error_set(DKM_E_FORMAT, "%s: PCR selection beyond PCR 23", what);
    if (!dkm_get_bytes(&c, p.pcr_values, 32 * popcount24(p.pcr_mask)) ||
        !dkm_get_u64be(&c, &p.created_at))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (dkm_group_policy_check(&p) < 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: %s", what, dkm_error_detail());
    r = get_tail(&c, &p.signer, p.sig, what);
    if (r < 0)
        return r;
    *ret = p;
    return 0;
}

/* ---- sealed copy ---- */

int dkm_sealed_copy_sign(struct dkm_sealed_copy *s, const struct dkm_signer *signer,
                         uint8_t **ret, size_t *ret_len)
{
    struct dkm_writer w;
    int r;

    if (!dkm_group_valid(s->group, strnlen(s->group, DKM_GROUP_MAX + 1)) ||
        s->version == 0 || s->blob_len == 0 || s->blob_len > DKM_DUP_ENCODED_MAX ||
        s->expires_at <= s->created_at)
        return dkm_error_set(-EINVAL,
                             "sealed copy: invalid group, version, blob or times");
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header(&w, DKM_RECORD_MAGIC_SEALED_COPY);
    put_group(&w, s->group);
    dkm_put_u32be(&w, s->version);
    dkm_put_u64be(&w, s->created_at);
    dkm_put_u64be(&w, s->expires_at);
    dkm_put_bytes(&w, s->holder.bytes, DKM_NODE_ID_SIZE);
    dkm_put_len16(&w, s->blob, s->blob_len);
    r = finish_signed(&w, signer, DKM_SIGCTX_SEALED_COPY, &s->signer, s->sig, ret,
                      ret_len);
    free(w.buf);
    return r;
}

int dkm_sealed_copy_decode(const uint8_t *buf, size_t len, struct dkm_sealed_copy *ret)
{
    static const char what[] = "sealed copy";
    struct dkm_sealed_copy s;
    struct dkm_cursor c;
    int r;

    memset(&s, 0, sizeof(s));
    r = record_begin(buf, len, DKM_RECORD_MAGIC_SEALED_COPY, what, &c);
    if (r < 0)
        return r;
    r = get_group(&c, s.group, what);
    if (r < 0)
        return r;
    if (!dkm_get_u32be(&c, &s.version) || !dkm_get_u64be(&c, &s.created_at) ||
        !dkm_get_u64be(&c, &s.expires_at) ||
        !dkm_get_bytes(&c, s.holder.bytes, DKM_NODE_ID_SIZE) ||
        !dkm_get_len16_ref(&c, DKM_DUP_ENCODED_MAX, &s.blob, &s.blob_len))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated or oversized", what);
    if (s.version == 0 || s.blob_len == 0 || s.expires_at <= s.created_at)
        return dkm_error_set(DKM_E_FORMAT, "%s: invalid version, blob or times", what);
    r = get_tail(&c, &s.signer, s.sig, what);
    if (r < 0)
        return r;
    *ret = s;
    return 0;
}

/* ---- grant ---- */

int dkm_grant_sign(struct dkm_grant *g, const struct dkm_signer *signer, uint8_t **ret,
                   size_t *ret_len)
{
    struct dkm_writer w;
    int r;

    if (!dkm_group_valid(g->group, strnlen(g->group, DKM_GROUP_MAX + 1)) ||
        (g->state != DKM_GRANT_GRANTED && g->state != DKM_GRANT_REVOKED) ||
        g->serial == 0 || g->node_id.bytes[0] != 0x00 || g->node_id.bytes[1] != 0x0b)
        return dkm_error_set(-EINVAL, "grant: invalid group, node id, state or serial");
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header(&w, DKM_RECORD_MAGIC_GRANT);
    put_group(&w, g->group);
    dkm_put_bytes(&w, g->node_id.bytes, DKM_NODE_ID_SIZE);
    dkm_put_u8(&w, (uint8_t)g->state);
    dkm_put_u64be(&w, g->serial);
    dkm_put_u64be(&w, g->at);
    r = finish_signed(&w, signer, DKM_SIGCTX_GRANT, &g->signer, g->sig, ret, ret_len);
    free(w.buf);
    return r;
}

int dkm_grant_decode(const uint8_t *buf, size_t len, struct dkm_grant *ret)
{
    static const char what[] = "grant";
    struct dkm_grant g;
    struct dkm_cursor c;
    uint8_t state;
    int r;

    memset(&g, 0, sizeof(g));
    r = record_begin(buf, len, DKM_RECORD_MAGIC_GRANT, what, &c);
    if (r < 0)
        return r;
    r = get_group(&c, g.group, what);
    if (r < 0)
        return r;
    if (!dkm_get_bytes(&c, g.node_id.bytes, DKM_NODE_ID_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated node id", what);
    if (g.node_id.bytes[0] != 0x00 || g.node_id.bytes[1] != 0x0b)
        return dkm_error_set(DKM_E_FORMAT, "%s: node id is not a SHA-256 name", what);
    if (!dkm_get_u8(&c, &state))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated state", what);
    if (state != DKM_GRANT_GRANTED && state != DKM_GRANT_REVOKED)
        return dkm_error_set(DKM_E_FORMAT, "%s: unknown state %u", what, (unsigned)state);
    g.state = state;
    if (!dkm_get_u64be(&c, &g.serial) || !dkm_get_u64be(&c, &g.at))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (g.serial == 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: serial 0", what);
    r = get_tail(&c, &g.signer, g.sig, what);
    if (r < 0)
        return r;
    *ret = g;
    return 0;
}

/* ---- state head ---- */

int dkm_state_head_sign(struct dkm_state_head *h, const struct dkm_signer *signer,
                        uint8_t **ret, size_t *ret_len)
{
    struct dkm_writer w;
    int r;

    if (h->counter == 0)
        return dkm_error_set(-EINVAL, "state head: counter must be at least 1");
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header(&w, DKM_RECORD_MAGIC_STATE_HEAD);
    dkm_put_u64be(&w, h->counter);
    dkm_put_u64be(&w, h->issued_at);
    r = finish_signed(&w, signer, DKM_SIGCTX_STATE_HEAD, &h->signer, h->sig, ret,
                      ret_len);
    free(w.buf);
    return r;
}

int dkm_state_head_decode(const uint8_t *buf, size_t len, struct dkm_state_head *ret)
{
    static const char what[] = "state head";
    struct dkm_state_head h;
    struct dkm_cursor c;
    int r;

    memset(&h, 0, sizeof(h));
    r = record_begin(buf, len, DKM_RECORD_MAGIC_STATE_HEAD, what, &c);
    if (r < 0)
        return r;
    if (!dkm_get_u64be(&c, &h.counter) || !dkm_get_u64be(&c, &h.issued_at))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (h.counter == 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: counter 0", what);
    r = get_tail(&c, &h.signer, h.sig, what);
    if (r < 0)
        return r;
    *ret = h;
    return 0;
}

/* ---- fetch response ---- */

static int delegated_sign_cb(void *ctx, const char *context, const void *msg, size_t len,
                             uint8_t ret_sig[DKM_SIG_SIZE])
{
    return dkm_delegated_sign(ctx, context, msg, len, ret_sig);
}

int dkm_fetch_response_sign(struct dkm_fetch_response *f, struct dkm_delegated_key *dk,
                            uint8_t **ret, size_t *ret_len)
{
    struct dkm_signer signer = {.sign = delegated_sign_cb, .ctx = dk};
    struct dkm_writer w;
    int r;

    if (!dkm_group_valid(f->group, strnlen(f->group, DKM_GROUP_MAX + 1)) ||
        f->version == 0 || f->nonce_len < DKM_NONCE_MIN || f->nonce_len > DKM_NONCE_MAX ||
        f->policy_len == 0 || f->policy_len > DKM_RECORD_MAX / 2 || f->blob_len == 0 ||
        f->blob_len > DKM_DUP_ENCODED_MAX || f->expires_at <= f->issued_at)
        return dkm_error_set(-EINVAL, "fetch response: invalid field");
    signer.id = dkm_delegated_key_info(dk)->server_id;
    memcpy(f->delegation, dkm_delegated_key_record(dk), DKM_DELEGATION_SIZE);
    r = writer_new(&w);
    if (r < 0)
        return r;
    put_header(&w, DKM_RECORD_MAGIC_FETCH_RESPONSE);
    put_group(&w, f->group);
    dkm_put_u32be(&w, f->version);
    dkm_put_bytes(&w, f->node_id.bytes, DKM_NODE_ID_SIZE);
    dkm_put_u8(&w, (uint8_t)f->nonce_len);
    dkm_put_bytes(&w, f->nonce, f->nonce_len);
    dkm_put_u64be(&w, f->issued_at);
    dkm_put_u64be(&w, f->expires_at);
    dkm_put_len16(&w, f->policy, f->policy_len);
    dkm_put_len16(&w, f->blob, f->blob_len);
    dkm_put_bytes(&w, f->delegation, DKM_DELEGATION_SIZE);
    r = finish_signed(&w, &signer, DKM_SIGCTX_RESPONSE, &f->signer, f->sig, ret, ret_len);
    free(w.buf);
    return r;
}

int dkm_fetch_response_decode(const uint8_t *buf, size_t len,
                              struct dkm_fetch_response *ret)
{
    static const char what[] = "fetch response";
    struct dkm_fetch_response f;
    struct dkm_cursor c;
    uint8_t nonce_len;
    int r;

    memset(&f, 0, sizeof(f));
    r = record_begin(buf, len, DKM_RECORD_MAGIC_FETCH_RESPONSE, what, &c);
    if (r < 0)
        return r;
    r = get_group(&c, f.group, what);
    if (r < 0)
        return r;
    if (!dkm_get_u32be(&c, &f.version) ||
        !dkm_get_bytes(&c, f.node_id.bytes, DKM_NODE_ID_SIZE) ||
        !dkm_get_u8(&c, &nonce_len))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated", what);
    if (f.version == 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: version 0", what);
    if (nonce_len < DKM_NONCE_MIN || nonce_len > DKM_NONCE_MAX)
        return dkm_error_set(DKM_E_FORMAT, "%s: nonce of %u bytes", what,
                             (unsigned)nonce_len);
    f.nonce_len = nonce_len;
    if (!dkm_get_bytes(&c, f.nonce, f.nonce_len) || !dkm_get_u64be(&c, &f.issued_at) ||
        !dkm_get_u64be(&c, &f.expires_at) ||
        !dkm_get_len16_ref(&c, DKM_RECORD_MAX / 2, &f.policy, &f.policy_len) ||
        !dkm_get_len16_ref(&c, DKM_DUP_ENCODED_MAX, &f.blob, &f.blob_len) ||
        !dkm_get_bytes(&c, f.delegation, DKM_DELEGATION_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated or oversized", what);
    if (f.policy_len == 0 || f.blob_len == 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: empty policy or blob", what);
    /* As for a sealed copy: a key whose lifetime is over when it is handed out. */
    if (f.expires_at <= f.issued_at)
        return dkm_error_set(DKM_E_FORMAT, "%s: expires at or before it was issued",
                             what);
    r = get_tail(&c, &f.signer, f.sig, what);
    if (r < 0)
        return r;
    *ret = f;
    return 0;
}

int dkm_fetch_response_verify(const struct dkm_server_list *list, const uint8_t *buf,
                              size_t len, struct dkm_fetch_response *ret,
                              struct dkm_group_policy *ret_policy)
{
    struct dkm_fetch_response f;
    struct dkm_group_policy p;
    const struct dkm_server_entry *e;
    int r;

    r = dkm_fetch_response_decode(buf, len, &f);
    if (r < 0)
        return r;
    e = dkm_server_list_find(list, &f.signer);
    if (e == NULL)
        return dkm_error_set(DKM_E_SIGNATURE,
                             "fetch response from a server not on the list");
    /* The delegation must have been valid when the response was made;
     * a cached response stays verifiable after the delegation ends. */
    r = dkm_response_verify(&e->sk, &f.signer, f.delegation, DKM_DELEGATION_SIZE,
                            f.issued_at, DKM_SIGCTX_RESPONSE, buf, len - DKM_SIG_SIZE,
                            f.sig);
    if (r < 0)
        return r;
    r = dkm_group_policy_decode(f.policy, f.policy_len, &p);
    if (r < 0)
        return r;
    r = dkm_record_verify(list, DKM_SIGCTX_GROUP_POLICY, f.policy, f.policy_len);
    if (r < 0)
        return r;
    if (strcmp(p.group, f.group) != 0)
        return dkm_error_set(DKM_E_SIGNATURE,
                             "fetch response carries another group's policy");
    *ret = f;
    if (ret_policy != NULL)
        *ret_policy = p;
    return 0;
}

int dkm_fetch_response_check(const struct dkm_fetch_response *f,
                             const struct dkm_node_id *node, const char *group,
                             uint32_t version, const uint8_t *nonce, size_t nonce_len,
                             uint64_t now, uint64_t max_skew)
{
    if (!dkm_node_id_equal(&f->node_id, node))
        return dkm_error_set(DKM_E_PROTOCOL, "response was made for another node");
    if (strcmp(f->group, group) != 0)
        return dkm_error_set(DKM_E_PROTOCOL, "response is for group %s, not %s", f->group,
                             group);
    if (version != DKM_VERSION_CURRENT && f->version != version)
        return dkm_error_set(DKM_E_PROTOCOL, "response is for version %u, not %u",
                             (unsigned)f->version, (unsigned)version);
    if (nonce != NULL &&
        (nonce_len != f->nonce_len || CRYPTO_memcmp(nonce, f->nonce, nonce_len) != 0))
        return dkm_error_set(DKM_E_PROTOCOL,
                             "response does not answer this request (nonce)");
    if (f->issued_at > now + max_skew)
        return dkm_error_set(DKM_E_PROTOCOL, "response is issued in the future");
    if (now >= f->expires_at)
        return dkm_error_set(DKM_E_EXPIRED, "key %s/%u expired", f->group,
                             (unsigned)f->version);
    return 0;
}
