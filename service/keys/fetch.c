/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node-facing endpoints: GET /v1/trust (every authorized server list,
 * for clients to follow from their pinned fingerprint) and POST
 * /v1/keys/fetch, the hot path. A fetch reads only the current snapshot:
 * the ACL check, the requester's EK from its signed node entry, the key
 * unsealed at load time. It seals the key to that EK in software
 * (dkm_dup_seal; once per node and version in a snapshot, blobcache.c)
 * and signs the answer with the delegated software key, so it costs no
 * database round trip and no TPM command. Refusals are 403
 * and audited; the detail names the reason, never another node or group.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/dup.h"
#include "dkm/base/log.h"
#include "dkm/base/uri.h"
#include "audit.h"
#include "blobcache.h"
#include "fetch.h"
#include "http.h"
#include "json.h"
#include "state.h"

const struct svc_json_field ks_fetch_body[] = {
    {.name = "group", .type = SVC_JSON_STRING, .required = true, .min = 1, .max = 64},
    {.name = "version", .type = SVC_JSON_STRING, .required = true, .min = 1, .max = 10},
    {.name = "node_id", .type = SVC_JSON_STRING, .required = true, .min = 68, .max = 68},
    {.name = "nonce",
     .type = SVC_JSON_B64URL,
     .required = true,
     .min = DKM_NONCE_MIN,
     .max = DKM_NONCE_MAX},
};
const size_t ks_fetch_nbody = sizeof(ks_fetch_body) / sizeof(ks_fetch_body[0]);

static bool snapshot_or_503(struct svc_req *r, struct ks_snapshot **ret)
{
    *ret = ks_snapshot_get();
    if (*ret != NULL)
        return true;
    svc_reply_error(r, 503, "service unavailable",
                    "the key state is not loaded (no key-service identity)");
    return false;
}

void ks_trust_handler(struct svc_req *r)
{
    struct ks_snapshot *s;
    json_t *arr, *o;

    if (!snapshot_or_503(r, &s))
        return;
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < s->nlists; i++) {
        size_t n = dkm_b64url_encoded_len(s->list_lens[i]) + 1;
        char *text = malloc(n);

        if (text == NULL ||
            dkm_b64url_encode(s->lists[i], s->list_lens[i], text, n) < 0 ||
            json_array_append_new(arr, json_string(text)) < 0) {
            free(text);
            json_decref(arr);
            arr = NULL;
            break;
        }
        free(text);
    }
    ks_snapshot_put(s);
    o = arr != NULL ? json_pack("{s:o}", "lists", arr) : NULL;
    svc_reply_json(r, 200, o);
}

/* Parse "current" or 1..4294967295; false otherwise. */
static bool parse_version(const char *s, uint32_t *ret)
{
    unsigned long long v = 0;

    if (strcmp(s, "current") == 0) {
        *ret = DKM_VERSION_CURRENT;
        return true;
    }
    if (s[0] < '1' || s[0] > '9')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned long long)(*p - '0');
        if (v > UINT32_MAX)
            return false;
    }
    *ret = (uint32_t)v;
    return true;
}

static void deny(struct svc_req *r, const char *node_hex, const char *group,
                 const char *why)
{
    char target[DKM_GROUP_MAX + 8];

    snprintf(target, sizeof(target), "group:%s", group);
    ks_audit(node_hex, "key.fetch", target, "denied", why);
    svc_reply_error(r, 403, "forbidden", "%s", why);
}

/*
 * The import blob of v for node: from the snapshot's cache, else sealed to
 * the node's EK in software (dkm_dup_seal) and kept for the next fetch.
 */
static int import_blob(const struct ks_snapshot *s, const struct ks_group *g,
                       const struct ks_version *v, const struct ks_node *node,
                       uint8_t env[DKM_DUP_ENCODED_MAX], const uint8_t **ret,
                       size_t *ret_len)
{
    struct dkm_import_blob blob;
    size_t idx = (size_t)(node - s->nodes);
    const uint8_t *hit;
    size_t len = 0;
    int r;

    hit = ks_blobcache_get(s->blobs, v, idx, &len);
    if (hit != NULL) {
        *ret = hit;
        *ret_len = len;
        return 0;
    }
    r = dkm_dup_seal(&node->entry.ek, v->key->secret, v->key->len, g->policy.pcr_mask,
                     g->policy.pcr_mask != 0 ? g->policy_digest : NULL, &blob);
    if (r < 0)
        return r;
    r = dkm_dup_encode(&blob, env, DKM_DUP_ENCODED_MAX, &len);
    if (r < 0)
        return r;
    ks_blobcache_put(s->blobs, v, idx, env, len);
    *ret = env;
    *ret_len = len;
    return 0;
}

/* Seal (or reuse), sign, encode: the part of a fetch that builds the answer. */
static int make_response(const struct ks_snapshot *s, const struct ks_group *g,
                         const struct ks_version *v, const struct ks_node *node,
                         const uint8_t *nonce, size_t nonce_len, char **ret)
{
    struct dkm_fetch_response f = {.version = v->version};
    uint8_t env[DKM_DUP_ENCODED_MAX], *out = NULL;
    size_t out_len = 0, n;
    char *text = NULL;
    int r;

    r = import_blob(s, g, v, node, env, &f.blob, &f.blob_len);
    if (r < 0)
        goto done;
    strcpy(f.group, g->name);
    f.node_id = node->entry.node_id;
    memcpy(f.nonce, nonce, nonce_len);
    f.nonce_len = nonce_len;
    f.issued_at = (uint64_t)time(NULL);
    f.expires_at = v->expires_at;
    f.policy = g->policy_rec;
    f.policy_len = g->policy_len;
    r = dkm_fetch_response_sign(&f, s->deleg->dk, &out, &out_len);
    if (r < 0)
        goto done;
    n = dkm_b64url_encoded_len(out_len) + 1;
    text = malloc(n);
    if (text == NULL) {
        r = -ENOMEM;
        goto done;
    }
    r = dkm_b64url_encode(out, out_len, text, n);
    if (r < 0)
        goto done;
    *ret = text;
    text = NULL;
done:
    free(text);
    free(out);
    return r;
}

void ks_fetch_handler(struct svc_req *r)
{
    const char *group = json_string_value(json_object_get(r->body, "group"));
    const char *vtext = json_string_value(json_object_get(r->body, "version"));
    const char *idtext = json_string_value(json_object_get(r->body, "node_id"));
    uint8_t nonce[DKM_NONCE_MAX];
    size_t nonce_len = 0;
    struct dkm_node_id id;
    struct ks_snapshot *s = NULL;
    const struct ks_node *node;
    const struct ks_group *g;
    const struct ks_version *v;
    uint32_t version;
    char target[DKM_GROUP_MAX + 24];
    char *text = NULL;

    if (!dkm_group_valid(group, strlen(group))) {
        svc_reply_error(r, 400, "bad request", "group: not a valid group name");
        return;
    }
    if (!parse_version(vtext, &version)) {
        svc_reply_error(r, 400, "bad request", "version: \"current\" or 1..4294967295");
        return;
    }
    if (dkm_node_id_parse(idtext, &id) < 0) {
        svc_reply_error(r, 400, "bad request", "node_id: 68 hex characters");
        return;
    }
    if (svc_json_get_b64url(r->body, "nonce", nonce, sizeof(nonce), &nonce_len) < 0) {
        svc_reply_error(r, 400, "bad request", "nonce: bad base64url");
        return;
    }
    if (!snapshot_or_503(r, &s))
        return;
    /* Answers signed by a server off the list would not verify anyway. */
    if (!s->listed) {
        svc_reply_error(r, 503, "service unavailable",
                        "this server is not on the verified authorized server list");
        goto done;
    }
    node = ks_snapshot_node(s, &id);
    if (node == NULL) {
        deny(r, idtext, group, "unknown node");
        goto done;
    }
    if (node->entry.revoked_at != 0) {
        deny(r, idtext, group, "revoked node");
        goto done;
    }
    g = ks_snapshot_group(s, group);
    if (g == NULL || !ks_group_member(g, &id)) {
        /* An unknown group looks the same as one not granted: names do not leak. */
        deny(r, idtext, group, "not granted this group");
        goto done;
    }
    if (version == DKM_VERSION_CURRENT)
        version = g->current;
    snprintf(target, sizeof(target), "group:%s/%u", group, (unsigned)version);
    v = version != 0 ? ks_group_version(g, version) : NULL;
    if (v == NULL) {
        ks_audit(idtext, "key.fetch", target, "denied", "no such version");
        svc_reply_error(r, 404, "not found", "no such version of the group");
        goto done;
    }
    if (!ks_version_servable(v, (uint64_t)time(NULL))) {
        ks_audit(idtext, "key.fetch", target, "denied", "version expired");
        svc_reply_error(r, 410, "expired", "version %u is past its lifetime", version);
        goto done;
    }
    if (v->key == NULL) {
        svc_reply_error(r, 503, "service unavailable",
                        "this server holds no valid copy of version %u", version);
        goto done;
    }
    if (make_response(s, g, v, node, nonce, nonce_len, &text) < 0) {
        log_event(DKM_LOG_ERR, "fetch.failed group=%s version=%u reason=%s", group,
                  version, dkm_error_detail());
        svc_reply_error(r, 500, "internal error", "cannot build the answer");
        goto done;
    }
    /* Every fetch is audited, not only refusals: the queue is written in
     * batches by the keeper, off this path. */
    ks_audit(idtext, "key.fetch", target, "ok", NULL);
    svc_reply_json(r, 200, json_pack("{s:s}", "response", text));
done:
    free(text);
    ks_snapshot_put(s);
}

/*
 * GET /v1/keys/groups: the groups the requesting node may fetch, with
 * their current versions, for `dkm:` listings. The node is the one whose
 * entry binds the TLS client key of the connection: group names are
 * told only to a node that proves it holds a bound key.
 */
void ks_my_groups_handler(struct svc_req *r)
{
    uint8_t key_id[DKM_TLS_KEY_ID_SIZE];
    const struct ks_node *node;
    struct ks_snapshot *s;
    char hex[DKM_NODE_ID_HEX_SIZE];
    json_t *arr;

    if (svc_req_tls_key_id(r, key_id) < 0) {
        svc_reply_error(r, 403, "forbidden",
                        "listing groups needs a TLS client certificate bound to a node");
        return;
    }
    if (!snapshot_or_503(r, &s))
        return;
    node = ks_snapshot_node_by_tls(s, key_id);
    if (node == NULL || node->entry.revoked_at != 0) {
        ks_snapshot_put(s);
        svc_reply_error(r, 403, "forbidden", "%s",
                        node == NULL ? "this TLS key is not bound to a node"
                                     : "revoked node");
        return;
    }
    dkm_node_id_hex(&node->entry.node_id, hex);
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < s->ngroups; i++) {
        const struct ks_group *g = &s->groups[i];

        if (ks_group_member(g, &node->entry.node_id) &&
            json_array_append_new(arr, json_pack("{s:s, s:I}", "name", g->name, "current",
                                                 (json_int_t)g->current)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    ks_snapshot_put(s);
    svc_reply_json(r, 200,
                   arr != NULL ? json_pack("{s:s, s:o}", "node_id", hex, "groups", arr)
                               : NULL);
}
