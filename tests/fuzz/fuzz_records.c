/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "records": the signed records (records.h) as they arrive
 * from the network, the database or the disk, each through the decoder
 * and the verification the product applies, against the fixed trust of
 * fuzz.h (server list version 1 with one server):
 *
 *   server list     decode; verify as a pinned list (pin: its own
 *                   fingerprint, as trust.c finds it) and as the
 *                   successor of the fixed list
 *   node entry,     decode and dkm_record_verify, as the key service
 *   group policy,   loads them (service/keys/state.c); a node entry of
 *   grant,          format 1 also through the upgrade's signing again
 *   state head      (service/keys/upgrade.c)
 *   sealed copy     the same, then the import blob it carries
 *                   (dkm_dup_decode), held by the fixed server
 *   fetch response  dkm_fetch_response_verify and _check for the fixed
 *                   node, then its import blob, as the client does
 *   delegation      decode and verify with the fixed server's key
 *
 * The decoders are strict, so a record that decodes must encode back to
 * the same bytes: every record signed by a server key is signed again
 * with the fixed key and compared up to its signer id and signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/uri.h"
#include "dkm/tpm/dup.h"
#include "dkm/trust/nodecard.h"
#include "dkm/trust/records.h"
#include "fuzz.h"

/* signer id + signature end every record */
#define TAIL (DKM_NODE_ID_SIZE + DKM_SIG_SIZE)

/* buf (len bytes) and again agree up to the tail, and are as long. */
static void check_same_body(const uint8_t *buf, size_t len, uint8_t *again,
                            size_t again_len)
{
    FUZZ_CHECK(len > TAIL && again_len == len && memcmp(again, buf, len - TAIL) == 0);
    free(again);
}

static bool server_list(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_server_list *l = malloc(sizeof(*l)), *v = malloc(sizeof(*v));
    struct dkm_signer signer = dkm_fuzz_server_signer();
    uint8_t pin[DKM_FINGERPRINT_SIZE], *again = NULL;
    size_t again_len = 0;
    bool ok = false;

    FUZZ_CHECK(l != NULL && v != NULL);
    if (dkm_server_list_decode(data, size, l) == 0) {
        FUZZ_CHECK(l->count >= 1 && l->count <= DKM_SERVER_LIST_MAX);
        FUZZ_CHECK(dkm_server_list_find(l, &l->entries[0].node_id) == &l->entries[0]);
        FUZZ_CHECK(dkm_server_list_sign(l, &signer, &again, &again_len) == 0);
        check_same_body(data, size, again, again_len);
        FUZZ_CHECK(dkm_server_list_fingerprint(data, size, pin) == 0);
        if (dkm_server_list_verify_pinned(data, size, pin, v) == 0) {
            FUZZ_CHECK(dkm_server_list_find(v, &v->signer) != NULL);
            ok = true;
        }
        if (dkm_server_list_verify_next(&k->trust, data, size, v) == 0) {
            FUZZ_CHECK(v->list_version == 2);
            FUZZ_CHECK(dkm_server_list_find(&k->trust, &v->signer) != NULL);
            ok = true;
        }
    }
    free(l);
    free(v);
    return ok;
}

/*
 * A node entry of format 1 (schema version 1) is decoded only for the
 * upgrade, which signs it again as format 2 with serial 1 and the
 * hostname column (service/keys/upgrade.c): that must work for every
 * entry that decodes, and keep every field.
 */
static void node_entry_upgrade(const struct dkm_node_entry *old)
{
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_node_entry e = *old, back;
    uint8_t *again = NULL;
    size_t again_len = 0;

    FUZZ_CHECK(e.serial == 0 && e.hostname[0] == '\0');
    e.serial = 1;
    snprintf(e.hostname, sizeof(e.hostname), "upgraded.example");
    FUZZ_CHECK(dkm_node_entry_sign(&e, &signer, &again, &again_len) == 0);
    FUZZ_CHECK(dkm_node_entry_decode(again, again_len, &back) == 0);
    FUZZ_CHECK(back.format == DKM_NODE_ENTRY_VERSION && back.serial == 1 &&
               strcmp(back.hostname, e.hostname) == 0 &&
               dkm_node_id_equal(&back.node_id, &old->node_id) &&
               back.role == old->role && back.authorized_at == old->authorized_at &&
               back.revoked_at == old->revoked_at &&
               back.has_tls_key == old->has_tls_key &&
               (!old->has_tls_key ||
                memcmp(back.tls_key, old->tls_key, DKM_TLS_KEY_ID_SIZE) == 0));
    free(again);
}

static bool node_entry(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_node_entry e;
    struct dkm_node_id id;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_node_entry_decode(data, size, &e) < 0)
        return false;
    FUZZ_CHECK(dkm_role_name(e.role) != NULL);
    FUZZ_CHECK(dkm_node_id_from_public(&e.ek, &id) == 0 &&
               dkm_node_id_equal(&id, &e.node_id));
    FUZZ_CHECK(e.format == 1 || e.format == DKM_NODE_ENTRY_VERSION);
    if (e.format == 1) {
        node_entry_upgrade(&e);
    } else {
        FUZZ_CHECK(e.serial >= 1);
        FUZZ_CHECK(e.hostname[0] == '\0' || dkm_hostname_check(e.hostname) == 0);
        FUZZ_CHECK(dkm_node_entry_sign(&e, &signer, &again, &again_len) == 0);
        check_same_body(data, size, again, again_len);
    }
    return dkm_record_verify(&k->trust, DKM_SIGCTX_NODE_ENTRY, data, size) == 0;
}

static bool group_policy(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_group_policy p;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_group_policy_decode(data, size, &p) < 0)
        return false;
    FUZZ_CHECK(dkm_group_policy_check(&p) == 0);
    FUZZ_CHECK(dkm_group_policy_sign(&p, &signer, &again, &again_len) == 0);
    check_same_body(data, size, again, again_len);
    return dkm_record_verify(&k->trust, DKM_SIGCTX_GROUP_POLICY, data, size) == 0;
}

static bool grant(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_grant g;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_grant_decode(data, size, &g) < 0)
        return false;
    FUZZ_CHECK(dkm_group_valid(g.group, strlen(g.group)));
    FUZZ_CHECK(g.state == DKM_GRANT_GRANTED || g.state == DKM_GRANT_REVOKED);
    FUZZ_CHECK(g.serial >= 1);
    FUZZ_CHECK(dkm_grant_sign(&g, &signer, &again, &again_len) == 0);
    check_same_body(data, size, again, again_len);
    return dkm_record_verify(&k->trust, DKM_SIGCTX_GRANT, data, size) == 0;
}

static bool state_head(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_state_head h;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_state_head_decode(data, size, &h) < 0)
        return false;
    FUZZ_CHECK(h.counter >= 1);
    FUZZ_CHECK(dkm_state_head_sign(&h, &signer, &again, &again_len) == 0);
    check_same_body(data, size, again, again_len);
    return dkm_record_verify(&k->trust, DKM_SIGCTX_STATE_HEAD, data, size) == 0;
}

static bool sealed_copy(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_import_blob blob;
    struct dkm_sealed_copy c;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_sealed_copy_decode(data, size, &c) < 0)
        return false;
    FUZZ_CHECK(c.blob >= data && c.blob + c.blob_len <= data + size);
    FUZZ_CHECK(dkm_sealed_copy_sign(&c, &signer, &again, &again_len) == 0);
    check_same_body(data, size, again, again_len);
    if (dkm_record_verify(&k->trust, DKM_SIGCTX_SEALED_COPY, data, size) < 0 ||
        !dkm_node_id_equal(&c.holder, &k->server_id))
        return false;
    return dkm_dup_decode(c.blob, c.blob_len, &blob) == 0;
}

static bool fetch_response(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_fetch_response f, g;
    struct dkm_group_policy p;
    struct dkm_import_blob blob;

    if (dkm_fetch_response_decode(data, size, &f) < 0)
        return false;
    FUZZ_CHECK(f.policy >= data && f.policy + f.policy_len <= data + size);
    FUZZ_CHECK(f.blob >= data && f.blob + f.blob_len <= data + size);
    FUZZ_CHECK(f.nonce_len >= DKM_NONCE_MIN && f.nonce_len <= DKM_NONCE_MAX);
    if (dkm_fetch_response_verify(&k->trust, data, size, &g, &p) < 0)
        return false;
    FUZZ_CHECK(strcmp(p.group, g.group) == 0);
    FUZZ_CHECK(dkm_server_list_find(&k->trust, &g.signer) != NULL);
    if (dkm_fetch_response_check(&g, &k->node_id, g.group, DKM_VERSION_CURRENT, NULL, 0,
                                 DKM_FUZZ_NOW, 300) < 0)
        return false;
    return dkm_dup_decode(g.blob, g.blob_len, &blob) == 0;
}

static bool delegation(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_delegation d, v;

    if (dkm_delegation_decode(data, size, &d) < 0)
        return false;
    FUZZ_CHECK(d.not_before < d.not_after &&
               d.not_after - d.not_before <= DKM_DELEGATION_MAX_LIFETIME);
    if (dkm_delegation_verify(&k->server_sk_pub, &k->server_id, data, size, DKM_FUZZ_NOW,
                              &v) < 0)
        return false;
    FUZZ_CHECK(memcmp(d.key.point, v.key.point, sizeof(d.key.point)) == 0 &&
               d.not_before == v.not_before && d.not_after == v.not_after &&
               dkm_node_id_equal(&d.server_id, &v.server_id));
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool ok = false;

    /* Every decoder sees every input: each must refuse the others' magic. */
    ok |= server_list(data, size);
    ok |= node_entry(data, size);
    ok |= group_policy(data, size);
    ok |= grant(data, size);
    ok |= state_head(data, size);
    ok |= sealed_copy(data, size);
    ok |= fetch_response(data, size);
    ok |= delegation(data, size);
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
