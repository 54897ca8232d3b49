/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seeds of the seed generator (gen_corpus.h) that carry signatures or
 * TPM-shaped objects: the signed records, the import blob and the cached
 * sealed object, the disk-cache entry and the trust chain a node keeps,
 * all with the fixed keys of fuzz.h, and the TPM object files. A delegation and the fetch response
 * it signs have no encoder outside a TPM (only a TPM signing key makes a
 * delegated key), so their bytes are laid out here as docs/formats.md
 * gives them and as dkm_fetch_response_sign writes them.
 */
#include <string.h>

#include <jansson.h>
#include <tss2/tss2_mu.h>

#include "diskcache.h"
#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "dkm/tpm/tpm.h"
#include "dkm/tpm/dup.h"
#include "dkm/tpm/unseal.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"
#include "dkm/trust/trust.h"
#include "fixtures.h"
#include "gen_corpus.h"

/* ---- records ---- */

static void policy_record(const char *group, uint32_t pcr_mask, uint8_t **ret,
                          size_t *ret_len)
{
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_group_policy p;

    memset(&p, 0, sizeof(p));
    snprintf(p.group, sizeof(p.group), "%s", group);
    p.serial = 1;
    p.algorithm = DKM_ALG_AES_256_GCM;
    p.rotation_period = 86400;
    p.version_lifetime = 30 * 86400;
    p.cache_ttl = 300;
    p.pcr_mask = pcr_mask;
    for (unsigned i = 0; i < 24; i++)
        memset(p.pcr_values[i], (int)(0xa0 + i), 32);
    p.created_at = NOW - 2 * 86400;
    CHECK(dkm_group_policy_sign(&p, &signer, ret, ret_len) == 0, "dkm_group_policy_sign");
}

/* An import blob of a 32-byte key for ek, with a PCR policy when pcr_mask. */
static size_t import_blob(const TPM2B_PUBLIC *ek, uint32_t pcr_mask, uint8_t *out,
                          size_t cap, struct dkm_import_blob *ret_blob)
{
    uint8_t secret[32], values[24 * 32], policy[DKM_DUP_DIGEST_SIZE];
    size_t n = (size_t)__builtin_popcount(pcr_mask) * 32, len = 0;
    struct dkm_import_blob blob;

    memset(secret, 0x5c, sizeof(secret));
    memset(values, 0x11, sizeof(values));
    if (pcr_mask != 0)
        CHECK(dkm_dup_policy_pcr(pcr_mask, values, n, policy) == 0, "dkm_dup_policy_pcr");
    CHECK(dkm_dup_seal(ek, secret, sizeof(secret), pcr_mask,
                       pcr_mask != 0 ? policy : NULL, &blob) == 0,
          "dkm_dup_seal");
    CHECK(dkm_dup_encode(&blob, out, cap, &len) == 0, "dkm_dup_encode");
    if (ret_blob != NULL)
        *ret_blob = blob;
    return len;
}

/* The delegation of the fixed server's SK to the fixed delegated key. */
static void delegation(uint8_t out[DKM_DELEGATION_SIZE])
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_writer w = dkm_writer_init(out, DKM_DELEGATION_SIZE);

    (void)dkm_put_u32be(&w, DKM_DELEGATION_MAGIC);
    (void)dkm_put_u16be(&w, DKM_DELEGATION_VERSION);
    (void)dkm_put_bytes(&w, k->delegated_pub.point, DKM_P256_PUBLIC_SIZE);
    (void)dkm_put_u64be(&w, NOW - 3600);
    (void)dkm_put_u64be(&w, NOW + 86400);
    (void)dkm_put_bytes(&w, k->server_id.bytes, DKM_NODE_ID_SIZE);
    CHECK(dkm_writer_ok(&w) && w.len == DKM_DELEGATION_SIZE - DKM_SIG_SIZE,
          "delegation layout");
    CHECK(dkm_fuzz_sign(k->server_sk, DKM_SIGCTX_DELEGATION, out, w.len, out + w.len) ==
              0,
          "signing the delegation");
}

/*
 * A fetch response for the fixed node, laid out as dkm_fetch_response_sign
 * writes it (docs/formats.md, "Fetch response") and signed with the
 * fixed delegated key. Returns its length in out.
 */
static size_t fetch_response(const char *group, uint32_t version, uint64_t expires,
                             uint32_t pcr_mask, uint8_t *out, size_t cap)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    uint8_t blob[DKM_DUP_ENCODED_MAX], nonce[32], deleg[DKM_DELEGATION_SIZE];
    uint8_t *policy = NULL;
    size_t policy_len = 0, blob_len;
    struct dkm_writer w = dkm_writer_init(out, cap);

    policy_record(group, pcr_mask, &policy, &policy_len);
    blob_len = import_blob(&k->node_ek, pcr_mask, blob, sizeof(blob), NULL);
    delegation(deleg);
    memset(nonce, 0x4e, sizeof(nonce));
    (void)dkm_put_bytes(&w, "DKFR", 4);
    (void)dkm_put_u16be(&w, DKM_RECORD_VERSION);
    (void)dkm_put_u8(&w, (uint8_t)strlen(group));
    (void)dkm_put_bytes(&w, group, strlen(group));
    (void)dkm_put_u32be(&w, version);
    (void)dkm_put_bytes(&w, k->node_id.bytes, DKM_NODE_ID_SIZE);
    (void)dkm_put_u8(&w, sizeof(nonce));
    (void)dkm_put_bytes(&w, nonce, sizeof(nonce));
    (void)dkm_put_u64be(&w, NOW - 60);
    (void)dkm_put_u64be(&w, expires);
    (void)dkm_put_len16(&w, policy, policy_len);
    (void)dkm_put_len16(&w, blob, blob_len);
    (void)dkm_put_bytes(&w, deleg, sizeof(deleg));
    (void)dkm_put_bytes(&w, k->server_id.bytes, DKM_NODE_ID_SIZE);
    CHECK(dkm_writer_ok(&w) && w.len + DKM_SIG_SIZE <= cap, "fetch response layout");
    CHECK(dkm_fuzz_sign(k->delegated, DKM_SIGCTX_RESPONSE, out, w.len, out + w.len) == 0,
          "signing the fetch response");
    free(policy);
    return w.len + DKM_SIG_SIZE;
}

/* List version 2: the fixed server and a second one, signed by the first. */
static void server_list_v2(uint8_t **ret, size_t *ret_len)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_server_list l = k->trust;
    struct dkm_test_server other;

    CHECK(dkm_test_server_make(&other) == 0, "a second server");
    l.list_version = 2;
    l.issued_at = NOW - 3600;
    l.count = 2;
    l.entries[1].node_id = other.id;
    l.entries[1].ek = other.ek;
    l.entries[1].sk = other.pub;
    CHECK(dkm_server_list_sign(&l, &signer, ret, ret_len) == 0, "dkm_server_list_sign");
    dkm_test_server_free(&other);
}

static void node_entry(const char *name, enum dkm_role role, bool tls, uint64_t revoked)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_node_entry e;
    uint8_t *rec = NULL;
    size_t len = 0;

    memset(&e, 0, sizeof(e));
    e.serial = revoked != 0 ? 2 : 1;
    snprintf(e.hostname, sizeof(e.hostname), "node-1.example");
    e.node_id = k->node_id;
    e.ek = k->node_ek;
    e.role = role;
    e.authorized_at = NOW - 7 * 86400;
    e.revoked_at = revoked;
    e.has_tls_key = tls;
    memset(e.tls_key, 0x7b, sizeof(e.tls_key));
    CHECK(dkm_node_entry_sign(&e, &signer, &rec, &len) == 0, "dkm_node_entry_sign");
    gen_put("records", name, rec, len);
    free(rec);
}

/*
 * A node entry of format 1, as a dkmd of schema version 1 signed it (no
 * serial, no hostname): what the upgrade reads. No encoder writes format
 * 1 any more, so its bytes are laid out here as docs/formats.md gives
 * them (the fields of format 2 from the node id on).
 */
static void node_entry_v1(const char *name, bool tls)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    uint8_t buf[DKM_RECORD_MAX], ek[sizeof(TPM2B_PUBLIC)], tls_key[DKM_TLS_KEY_ID_SIZE];
    struct dkm_writer w = dkm_writer_init(buf, sizeof(buf));
    size_t ek_len = 0;

    CHECK(Tss2_MU_TPM2B_PUBLIC_Marshal(&k->node_ek, ek, sizeof(ek), &ek_len) ==
              TSS2_RC_SUCCESS,
          "marshalling the node's EK");
    memset(tls_key, 0x7b, sizeof(tls_key));
    (void)dkm_put_bytes(&w, DKM_RECORD_MAGIC_NODE_ENTRY, 4);
    (void)dkm_put_u16be(&w, 1);
    (void)dkm_put_bytes(&w, k->node_id.bytes, DKM_NODE_ID_SIZE);
    (void)dkm_put_bytes(&w, ek, ek_len);
    (void)dkm_put_u8(&w, (uint8_t)DKM_ROLE_CLIENT);
    (void)dkm_put_u64be(&w, NOW - 30 * 86400);
    (void)dkm_put_u64be(&w, 0);
    (void)dkm_put_u8(&w, tls ? DKM_TLS_KEY_ID_SIZE : 0);
    if (tls)
        (void)dkm_put_bytes(&w, tls_key, sizeof(tls_key));
    (void)dkm_put_bytes(&w, k->server_id.bytes, DKM_NODE_ID_SIZE);
    CHECK(dkm_writer_ok(&w) && w.len + DKM_SIG_SIZE <= sizeof(buf), "a format 1 entry");
    CHECK(dkm_fuzz_sign(k->server_sk, DKM_SIGCTX_NODE_ENTRY, buf, w.len, buf + w.len) ==
              0,
          "signing a format 1 entry");
    gen_put("records", name, buf, w.len + DKM_SIG_SIZE);
}

static void grant_record(const char *name, const char *group, enum dkm_grant_state state,
                         uint64_t serial)
{
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_grant g;
    uint8_t *rec = NULL;
    size_t len = 0;

    memset(&g, 0, sizeof(g));
    snprintf(g.group, sizeof(g.group), "%s", group);
    g.node_id = dkm_fuzz_keys()->node_id;
    g.state = state;
    g.serial = serial;
    g.at = NOW - 3600;
    CHECK(dkm_grant_sign(&g, &signer, &rec, &len) == 0, "dkm_grant_sign");
    gen_put("records", name, rec, len);
    free(rec);
}

static void state_head_record(const char *name, uint64_t counter)
{
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_state_head h = {.counter = counter, .issued_at = NOW - 60};
    uint8_t *rec = NULL;
    size_t len = 0;

    CHECK(dkm_state_head_sign(&h, &signer, &rec, &len) == 0, "dkm_state_head_sign");
    gen_put("records", name, rec, len);
    free(rec);
}

void gen_records(uint8_t **ret_v2, size_t *ret_v2_len)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    uint8_t *rec = NULL, blob[DKM_DUP_ENCODED_MAX], resp[DKM_RECORD_MAX];
    uint8_t deleg[DKM_DELEGATION_SIZE];
    struct dkm_sealed_copy c;
    size_t len = 0;

    gen_put("records", "server-list-v1", k->trust_encoded, k->trust_encoded_len);
    server_list_v2(ret_v2, ret_v2_len);
    gen_put("records", "server-list-v2", *ret_v2, *ret_v2_len);

    node_entry("node-entry-client", DKM_ROLE_CLIENT, false, 0);
    node_entry("node-entry-admin-tls", DKM_ROLE_ADMIN, true, 0);
    node_entry("node-entry-revoked", DKM_ROLE_SERVER, false, NOW - 86400);
    node_entry_v1("node-entry-v1", false);
    node_entry_v1("node-entry-v1-tls", true);

    grant_record("grant", "web", DKM_GRANT_GRANTED, 1);
    grant_record("grant-revoked", "db.prod", DKM_GRANT_REVOKED, 2);
    state_head_record("state-head", 42);

    policy_record("web", 0, &rec, &len);
    gen_put("records", "group-policy", rec, len);
    free(rec);
    policy_record("db.prod", 0x000181, &rec, &len);
    gen_put("records", "group-policy-pcr", rec, len);
    free(rec);

    memset(&c, 0, sizeof(c));
    snprintf(c.group, sizeof(c.group), "web");
    c.version = 3;
    c.created_at = NOW - 86400;
    c.expires_at = NOW + YEAR;
    c.holder = k->server_id;
    c.blob = blob;
    c.blob_len = import_blob(&k->server_ek, 0, blob, sizeof(blob), NULL);
    CHECK(dkm_sealed_copy_sign(&c, &signer, &rec, &len) == 0, "dkm_sealed_copy_sign");
    gen_put("records", "sealed-copy", rec, len);
    free(rec);

    len = fetch_response(DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, NOW + YEAR, 0, resp,
                         sizeof(resp));
    gen_put("records", "fetch-response", resp, len);
    len = fetch_response("db.prod", 1, NOW + YEAR, 0x000181, resp, sizeof(resp));
    gen_put("records", "fetch-response-pcr", resp, len);

    delegation(deleg);
    gen_put("records", "delegation", deleg, sizeof(deleg));
}

/* ---- envelope ---- */

static void sealed_object(uint32_t pcr_mask, uint8_t *out, size_t cap, size_t *ret_len)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    uint8_t blob_bytes[DKM_DUP_ENCODED_MAX];
    struct dkm_import_blob blob;
    struct dkm_sealed s;

    (void)import_blob(&k->node_ek, pcr_mask, blob_bytes, sizeof(blob_bytes), &blob);
    memset(&s, 0, sizeof(s));
    s.ek_type = DKM_EK_ECCP256;
    s.node_id = k->node_id;
    s.public = blob.public;
    s.pcr_mask = pcr_mask;
    /* What TPM2_Import returns: a 32-byte outer HMAC, then the encrypted
     * sensitive area (only the TPM can tell these bytes are not its own). */
    s.private.size = 2 + 32 + 80;
    memset(s.private.buffer, 0x3c, s.private.size);
    s.private.buffer[0] = 0;
    s.private.buffer[1] = 32;
    CHECK(dkm_sealed_encode(&s, out, cap, ret_len) == 0, "dkm_sealed_encode");
}

void gen_envelope(void)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    uint8_t buf[DKM_DUP_ENCODED_MAX];
    TPM2B_PUBLIC rsa;
    size_t len = 0;

    len = import_blob(&k->node_ek, 0, buf, sizeof(buf), NULL);
    gen_put("envelope", "import-blob-ecc", buf, len);
    CHECK(dkm_test_soft_ek(DKM_EK_RSA2048, &rsa, NULL) == 0, "an RSA EK");
    len = import_blob(&rsa, 0x000003, buf, sizeof(buf), NULL);
    gen_put("envelope", "import-blob-rsa-pcr", buf, len);
    sealed_object(0, buf, sizeof(buf), &len);
    gen_put("envelope", "sealed", buf, len);
    sealed_object(0x800001, buf, sizeof(buf), &len);
    gen_put("envelope", "sealed-pcr", buf, len);
}

/* ---- diskcache and trust ---- */

void gen_diskcache(void)
{
    uint8_t resp[DKM_RECORD_MAX], *entry = NULL;
    struct dkm_diskcache *cache = NULL;
    struct dkm_fetch_response fr;
    struct dkm_import_blob blob;
    struct dkm_sealed sealed;
    size_t len, entry_len = 0;
    char dir[2048], path[4096];

    snprintf(dir, sizeof(dir), "%s/gen-cache", dkm_fuzz_tmpdir());
    CHECK(dkm_diskcache_open(dir, &cache) == 0, "dkm_diskcache_open");
    len = fetch_response(DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, NOW + YEAR, 0, resp,
                         sizeof(resp));
    /* The object the response's blob imports to, as TPM2_Import makes it. */
    CHECK(dkm_fetch_response_decode(resp, len, &fr) == 0, "dkm_fetch_response_decode");
    CHECK(dkm_dup_decode(fr.blob, fr.blob_len, &blob) == 0, "dkm_dup_decode");
    memset(&sealed, 0, sizeof(sealed));
    sealed.ek_type = blob.ek_type;
    sealed.node_id = blob.node_id;
    sealed.public = blob.public;
    sealed.pcr_mask = blob.pcr_mask;
    sealed.private.size = 2 + 32 + 80;
    memset(sealed.private.buffer, 0x3c, sealed.private.size);
    sealed.private.buffer[0] = 0;
    sealed.private.buffer[1] = 32;
    CHECK(dkm_diskcache_put(cache, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, NOW + YEAR, resp,
                            len, &sealed) == 0,
          "dkm_diskcache_put");
    snprintf(path, sizeof(path), "%s/%s.%u.dkc", dir, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION);
    CHECK(dkm_file_read(path, DKM_DISKCACHE_ENTRY_MAX, &entry, &entry_len) == 0, path);
    gen_put("diskcache", "entry", entry, entry_len);
    free(entry);
    dkm_diskcache_free(cache);
}

/* The answer of GET /v1/trust with these lists; caller frees. */
static json_t *trust_answer(uint8_t *const *lists, const size_t *lens, size_t n)
{
    json_t *arr = json_array();

    CHECK(arr != NULL, "json_array");
    for (size_t i = 0; i < n; i++) {
        char *b64 = malloc(dkm_b64url_encoded_len(lens[i]) + 1);

        CHECK(b64 != NULL && dkm_b64url_encode(lists[i], lens[i], b64,
                                               dkm_b64url_encoded_len(lens[i]) + 1) == 0,
              "dkm_b64url_encode");
        CHECK(json_array_append_new(arr, json_string(b64)) == 0, "json_array_append");
        free(b64);
    }
    return json_pack("{s:o}", "lists", arr);
}

/* Have the client keep the chain (dkm_trust_accept_answer) and copy the file. */
static void trust_file(const char *name, uint8_t *const *lists, const size_t *lens,
                       size_t n)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    json_t *answer = trust_answer(lists, lens, n);
    struct dkm_server_list list;
    char dir[4096], path[4200];
    uint8_t *buf = NULL;
    size_t len = 0;

    snprintf(dir, sizeof(dir), "%s/gen-trust-%s", dkm_fuzz_tmpdir(), name);
    CHECK(dkm_trust_accept_answer(answer, k->trust_pin, 0, dir, &list) == 0,
          "dkm_trust_accept_answer");
    snprintf(path, sizeof(path), "%s/%s", dir, DKM_TRUST_FILE);
    CHECK(dkm_file_read(path, 1u << 20, &buf, &len) == 0, path);
    gen_put("trust", name, buf, len);
    free(buf);
    json_decref(answer);
}

void gen_trust(uint8_t *v2, size_t v2_len)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    uint8_t *lists[2] = {(uint8_t *)k->trust_encoded, v2};
    size_t lens[2] = {k->trust_encoded_len, v2_len};
    json_t *answer;
    char *text;

    trust_file("lists-v1", lists, lens, 1);
    trust_file("lists-v1-v2", lists, lens, 2);
    answer = trust_answer(lists, lens, 2);
    text = json_dumps(answer, JSON_COMPACT);
    CHECK(text != NULL, "json_dumps");
    gen_put_text("trust", "answer-v1-v2.json", text);
    free(text);
    json_decref(answer);
}

/* ---- tpmobject ---- */

/* The file of a TPM object (the signing key) as the TPM's blobs would
 * fill it: the parent's name, a public area, a private blob. */
void gen_tpmobject(void)
{
    struct dkm_tpm_object obj;
    uint8_t *buf = NULL;
    size_t len = 0;

    memset(&obj, 0, sizeof(obj));
    obj.parent.size = DKM_NODE_ID_SIZE;
    memcpy(obj.parent.name, dkm_fuzz_keys()->server_id.bytes, DKM_NODE_ID_SIZE);
    obj.pub = dkm_fuzz_keys()->server_ek;
    obj.priv.size = 2 + 32 + 96;
    memset(obj.priv.buffer, 0x6b, obj.priv.size);
    obj.priv.buffer[0] = 0;
    obj.priv.buffer[1] = 32;
    obj.parent.name[DKM_NODE_ID_SIZE - 1] ^= 1;
    obj.pub = dkm_fuzz_keys()->node_ek;
    CHECK(dkm_tpm_object_encode(DKM_SIGNKEY_MAGIC, &obj, &buf, &len) == 0,
          "dkm_tpm_object_encode");
    gen_put("tpmobject", "signing-key", buf, len);
    free(buf);
}
