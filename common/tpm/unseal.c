/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node side of a key in transit: TPM2_Import of an import blob under the
 * local EK, then TPM2_Load and TPM2_Unseal into secure memory.
 *
 * The EK's TCG default policy (PolicySecret on the endorsement hierarchy)
 * authorizes it as a parent. One session does all of it (session_start):
 * salted with the EK, it is the policy session of Import and Load and
 * encrypts the Unseal's response, so the secret is never in clear on the
 * TPM bus. Every handle and session is flushed on every path: swtpm has
 * three object slots and no resource manager.
 */
#include "dkm/tpm/unseal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "envelope.h"

static void pcr_list(uint32_t mask, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < DKM_DUP_PCR_COUNT && len + 4 < cap; i++) {
        if (mask & (1u << i)) {
            int n = snprintf(out + len, cap - len, "%s%u", len ? "," : "", i);

            if (n < 0)
                break;
            len += (size_t)n;
        }
    }
}

/* The EK of the given type, checked to be the node the object is for. */
static int ek_for_node(struct dkm_tpm *tpm, enum dkm_ek_type type,
                       const struct dkm_node_id *want, ESYS_TR *ret)
{
    TPM2B_PUBLIC pub;
    struct dkm_node_id have;
    ESYS_TR ek = ESYS_TR_NONE;
    int r;

    r = dkm_tpm_ek_load(tpm, type, &ek, NULL, &pub);
    if (r < 0)
        goto done;
    r = dkm_node_id_from_public(&pub, &have);
    if (r < 0)
        goto done;
    if (!dkm_node_id_equal(&have, want)) {
        char want_hex[DKM_NODE_ID_HEX_SIZE], have_hex[DKM_NODE_ID_HEX_SIZE];

        dkm_node_id_hex(want, want_hex);
        dkm_node_id_hex(&have, have_hex);
        r = dkm_error_set(DKM_E_TPM_NOT_MINE,
                          "the key was sealed for node %s, but this TPM's %s EK is node "
                          "%s: it was made for another machine",
                          want_hex, dkm_ek_type_name(type), have_hex);
        goto done;
    }
    *ret = ek;
    ek = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &ek);
    return r;
}

/* Whether the TPM is in failure mode (only then is TPM_RC_FAILURE about
 * the TPM rather than about the command's input). */
static bool tpm_failed(ESYS_CONTEXT *esys)
{
    TPM2B_MAX_BUFFER *out = NULL;
    TPM2_RC result = TPM2_RC_FAILURE;
    TSS2_RC rc;

    rc =
        Esys_GetTestResult(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &out, &result);
    Esys_Free(out);
    return rc != TSS2_RC_SUCCESS || result != TPM2_RC_SUCCESS;
}

/*
 * A TPM error about a parameter of Import or Load (the public area, the
 * private or duplicate, the encrypted seed) means the blob is not for
 * this TPM or was altered: report it as an integrity failure, whatever
 * check inside the TPM caught it first (OAEP padding, ECC point, HMAC).
 * libtpms (swtpm) answers an RSA-OAEP seed that does not decrypt with
 * TPM_RC_FAILURE instead of TPM_RC_VALUE, without entering failure mode:
 * that is a refused blob too, once the TPM is seen to be healthy.
 */
static int blob_refused(struct dkm_tpm *tpm, TSS2_RC rc, const char *what)
{
    int r = dkm_tpm_rc(rc, what);
    uint32_t layer = rc & TSS2_RC_LAYER_MASK;
    bool param = (rc & TPM2_RC_FMT1) && (rc & TPM2_RC_P);

    if (layer != TSS2_TPM_RC_LAYER)
        return r;
    if (param ||
        (dkm_tpm_rc_base(rc) == TPM2_RC_FAILURE && !tpm_failed(dkm_tpm_esys(tpm)))) {
        char tpm_detail[256];

        snprintf(tpm_detail, sizeof(tpm_detail), "%s", dkm_error_detail());
        r = dkm_error_set(DKM_E_INTEGRITY,
                          "the TPM refused the sealed key: it was altered, or encrypted "
                          "to another TPM's EK (%s)",
                          tpm_detail);
    }
    return r;
}

/*
 * The one session of an import and unseal: a policy session salted with
 * the EK, with AES-128-CFB for parameter encryption. PolicySecret on the
 * endorsement hierarchy before Import and before Load satisfies the EK's
 * policy (a policy session's digest starts over after each use); then,
 * for an object with a PCR policy, PolicyPCR makes it the Unseal's
 * authorization, and either way it encrypts the Unseal's response. The
 * Unseal clears continueSession, so the TPM ends the session itself.
 */
static int session_start(struct dkm_tpm *tpm, ESYS_TR ek, ESYS_TR *ret)
{
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm);
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES,
                        .keyBits = {.aes = 128},
                        .mode = {.aes = TPM2_ALG_CFB}};
    ESYS_TR s = ESYS_TR_NONE;
    TSS2_RC rc;
    int r;

    rc = Esys_StartAuthSession(esys, ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256,
                               &s);
    DKM_TPM_CHECK(rc, "StartAuthSession (EK-salted policy session)", r, done);
    rc = Esys_TRSess_SetAttributes(esys, s, TPMA_SESSION_CONTINUESESSION, 0xff);
    DKM_TPM_CHECK(rc, "setting session attributes", r, done);
    *ret = s;
    s = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &s);
    return r;
}

static int ek_policy(struct dkm_tpm *tpm, ESYS_TR session)
{
    TSS2_RC rc;
    int r;

    rc = Esys_PolicySecret(dkm_tpm_esys(tpm), ESYS_TR_RH_ENDORSEMENT, session,
                           ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL, NULL,
                           0, NULL, NULL);
    DKM_TPM_CHECK(rc, "PolicySecret on the endorsement hierarchy", r, done);
    r = 0;
done:
    return r;
}

static int import_with(struct dkm_tpm *tpm, ESYS_TR ek, ESYS_TR session,
                       const struct dkm_import_blob *blob, TPM2B_PRIVATE *ret)
{
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm);
    TPM2B_DATA no_inner_key;
    TPMT_SYM_DEF_OBJECT no_inner = {.algorithm = TPM2_ALG_NULL};
    TPM2B_PRIVATE *out = NULL;
    TSS2_RC rc;
    int r;

    memset(&no_inner_key, 0, sizeof(no_inner_key));
    r = ek_policy(tpm, session);
    if (r < 0)
        goto done;
    rc = Esys_Import(esys, ek, session, ESYS_TR_NONE, ESYS_TR_NONE, &no_inner_key,
                     &blob->public, &blob->duplicate, &blob->seed, &no_inner, &out);
    if (rc != TSS2_RC_SUCCESS) {
        r = blob_refused(tpm, rc, "Import");
        goto done;
    }
    *ret = *out;
    r = 0;
done:
    Esys_Free(out);
    return r;
}

/* After the Unseal: a session whose continueSession was clear is gone
 * from the TPM; drop ESAPI's record of it too (no TPM command). */
static void session_ended(struct dkm_tpm *tpm, ESYS_TR *session)
{
    TPM2_HANDLE h;

    if (Esys_TR_GetTpmHandle(dkm_tpm_esys(tpm), *session, &h) == TSS2_RC_SUCCESS)
        (void)Esys_TR_Close(dkm_tpm_esys(tpm), session);
    *session = ESYS_TR_NONE;
}

static int load_unseal_with(struct dkm_tpm *tpm, ESYS_TR ek, ESYS_TR *session,
                            const struct dkm_sealed *sealed, void **ret_secret,
                            size_t *ret_len)
{
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm);
    ESYS_TR object = ESYS_TR_NONE;
    TPM2B_SENSITIVE_DATA *data = NULL;
    void *secret = NULL;
    TSS2_RC rc;
    int r;

    r = ek_policy(tpm, *session);
    if (r < 0)
        goto done;
    rc = Esys_Load(esys, ek, *session, ESYS_TR_NONE, ESYS_TR_NONE, &sealed->private,
                   &sealed->public, &object);
    if (rc != TSS2_RC_SUCCESS) {
        r = blob_refused(tpm, rc, "Load of the sealed key");
        goto done;
    }
    /* Response encryption only: Unseal has no command parameter to
     * decrypt (a session asking for one is refused); the last use. */
    rc = Esys_TRSess_SetAttributes(esys, *session, TPMA_SESSION_ENCRYPT,
                                   TPMA_SESSION_ENCRYPT | TPMA_SESSION_DECRYPT |
                                       TPMA_SESSION_CONTINUESESSION);
    DKM_TPM_CHECK(rc, "setting session attributes for Unseal", r, done);

    if (sealed->pcr_mask != 0) {
        TPML_PCR_SELECTION sel;
        TPM2B_DIGEST current;

        memset(&sel, 0, sizeof(sel));
        memset(&current, 0, sizeof(current));
        sel.count = 1;
        sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
        sel.pcrSelections[0].sizeofSelect = DKM_ENV_PCR_SELECT_SIZE;
        for (unsigned i = 0; i < DKM_ENV_PCR_SELECT_SIZE; i++)
            sel.pcrSelections[0].pcrSelect[i] = (uint8_t)(sealed->pcr_mask >> (8 * i));
        /* An empty digest: the TPM uses the PCRs' current values, and the
         * policy digest only matches if they are the sealed-to ones. */
        rc = Esys_PolicyPCR(esys, *session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            &current, &sel);
        DKM_TPM_CHECK(rc, "PolicyPCR", r, done);
        rc = Esys_Unseal(esys, object, *session, ESYS_TR_NONE, ESYS_TR_NONE, &data);
    } else {
        rc = Esys_Unseal(esys, object, ESYS_TR_PASSWORD, *session, ESYS_TR_NONE, &data);
    }
    if (rc != TSS2_RC_SUCCESS) {
        r = dkm_tpm_rc(rc, "Unseal");
        if (r == DKM_E_TPM_POLICY) {
            char pcrs[80];

            pcr_list(sealed->pcr_mask, pcrs, sizeof(pcrs));
            r = dkm_error_set(DKM_E_TPM_POLICY,
                              "the platform state (PCR values) does not match the key's "
                              "policy: SHA-256 PCR %s differ from the values the key was "
                              "sealed to",
                              pcrs);
        }
        goto done;
    }
    session_ended(tpm, session);
    if (data->size == 0 || data->size > DKM_DUP_SECRET_MAX) {
        r = dkm_error_set(DKM_E_TPM, "Unseal returned %u bytes, expected 1..%u",
                          (unsigned)data->size, DKM_DUP_SECRET_MAX);
        goto done;
    }
    r = dkm_secmem_alloc(data->size, &secret);
    if (r < 0)
        goto done;
    memcpy(secret, data->buffer, data->size);
    *ret_len = data->size;
    *ret_secret = secret;
    secret = NULL;
    r = 0;
done:
    if (data != NULL) {
        OPENSSL_cleanse(data, sizeof(*data));
        Esys_Free(data);
        dkm_tpm_scrub(tpm);
    }
    dkm_secmem_free(secret);
    dkm_tpm_flush(tpm, &object);
    return r;
}

static void sealed_from_blob(const struct dkm_import_blob *blob,
                             const TPM2B_PRIVATE *private, struct dkm_sealed *out)
{
    memset(out, 0, sizeof(*out));
    out->ek_type = blob->ek_type;
    out->node_id = blob->node_id;
    out->public = blob->public;
    out->private = *private;
    out->pcr_mask = blob->pcr_mask;
}

static int check_blob(const struct dkm_import_blob *blob)
{
    if (blob->ek_type != DKM_EK_RSA2048 && blob->ek_type != DKM_EK_ECCP256)
        return dkm_error_set(-EINVAL, "import blob: unknown EK type %d",
                             (int)blob->ek_type);
    if ((blob->pcr_mask & ~DKM_DUP_PCR_MASK_ALL) != 0)
        return dkm_error_set(-EINVAL,
                             "import blob: PCR selection 0x%x names a PCR above 23",
                             (unsigned)blob->pcr_mask);
    return 0;
}

int dkm_unseal_import(struct dkm_tpm *tpm, const struct dkm_import_blob *blob,
                      struct dkm_sealed *ret_sealed)
{
    TPM2B_PRIVATE private;
    ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
    int r;

    if (tpm == NULL || blob == NULL || ret_sealed == NULL)
        return dkm_error_set(-EINVAL, "dkm_unseal_import: missing argument");
    r = check_blob(blob);
    if (r < 0)
        return r;
    dkm_tpm_lock(tpm);
    r = ek_for_node(tpm, blob->ek_type, &blob->node_id, &ek);
    if (r < 0)
        goto done;
    r = session_start(tpm, ek, &session);
    if (r < 0)
        goto done;
    r = import_with(tpm, ek, session, blob, &private);
    if (r < 0)
        goto done;
    sealed_from_blob(blob, &private, ret_sealed);
    r = 0;
done:
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_flush(tpm, &ek);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_unseal(struct dkm_tpm *tpm, const struct dkm_sealed *sealed, void **ret_secret,
               size_t *ret_len)
{
    ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
    int r;

    if (tpm == NULL || sealed == NULL || ret_secret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_unseal: missing argument");
    if (sealed->ek_type != DKM_EK_RSA2048 && sealed->ek_type != DKM_EK_ECCP256)
        return dkm_error_set(-EINVAL, "sealed key: unknown EK type %d",
                             (int)sealed->ek_type);
    if ((sealed->pcr_mask & ~DKM_DUP_PCR_MASK_ALL) != 0)
        return dkm_error_set(-EINVAL,
                             "sealed key: PCR selection 0x%x names a PCR above 23",
                             (unsigned)sealed->pcr_mask);
    dkm_tpm_lock(tpm);
    r = ek_for_node(tpm, sealed->ek_type, &sealed->node_id, &ek);
    if (r < 0)
        goto done;
    r = session_start(tpm, ek, &session);
    if (r < 0)
        goto done;
    r = load_unseal_with(tpm, ek, &session, sealed, ret_secret, ret_len);
done:
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_flush(tpm, &ek);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_unseal_blob(struct dkm_tpm *tpm, const struct dkm_import_blob *blob,
                    struct dkm_sealed *ret_sealed, void **ret_secret, size_t *ret_len)
{
    struct dkm_sealed sealed;
    TPM2B_PRIVATE private;
    ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
    int r;

    if (tpm == NULL || blob == NULL || ret_secret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_unseal_blob: missing argument");
    r = check_blob(blob);
    if (r < 0)
        return r;
    dkm_tpm_lock(tpm);
    r = ek_for_node(tpm, blob->ek_type, &blob->node_id, &ek);
    if (r < 0)
        goto done;
    r = session_start(tpm, ek, &session);
    if (r < 0)
        goto done;
    r = import_with(tpm, ek, session, blob, &private);
    if (r < 0)
        goto done;
    sealed_from_blob(blob, &private, &sealed);
    r = load_unseal_with(tpm, ek, &session, &sealed, ret_secret, ret_len);
    if (r < 0)
        goto done;
    if (ret_sealed != NULL)
        *ret_sealed = sealed;
done:
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_flush(tpm, &ek);
    dkm_tpm_unlock(tpm);
    return r;
}

/* Wire values of the EK type, as in the import blob envelope. */

int dkm_sealed_encode(const struct dkm_sealed *sealed, uint8_t *buf, size_t cap,
                      size_t *ret_len)
{
    struct dkm_sealed check;
    struct dkm_writer w;
    int r;

    if (sealed == NULL || buf == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "sealed key: missing argument");
    if (sealed->ek_type != DKM_EK_RSA2048 && sealed->ek_type != DKM_EK_ECCP256)
        return dkm_error_set(-EINVAL, "sealed key: unknown EK type %d",
                             (int)sealed->ek_type);
    if ((sealed->pcr_mask & ~DKM_DUP_PCR_MASK_ALL) != 0)
        return dkm_error_set(-EINVAL,
                             "sealed key: PCR selection 0x%x names a PCR above 23",
                             (unsigned)sealed->pcr_mask);
    if (sealed->private.size > sizeof(sealed->private.buffer))
        return dkm_error_set(-EINVAL, "sealed key: private area size %u is too large",
                             (unsigned)sealed->private.size);
    w = dkm_writer_init(buf, cap);
    if (!dkm_env_put_prefix(&w, DKM_SEALED_MAGIC, DKM_SEALED_VERSION, sealed->ek_type,
                            &sealed->node_id, &sealed->public) &&
        dkm_writer_ok(&w))
        return dkm_error_set(-EINVAL, "sealed key: public area cannot be marshaled");
    (void)dkm_put_len16(&w, sealed->private.buffer, sealed->private.size);
    (void)dkm_env_put_pcr_selection(&w, sealed->pcr_mask);
    if (!dkm_writer_ok(&w))
        return dkm_error_set(-ENOBUFS, "sealed key: does not fit in %zu bytes", cap);
    /* Never write what the decoder would refuse. */
    r = dkm_sealed_decode(buf, w.len, &check);
    if (r < 0)
        return dkm_error_set(-EINVAL, "sealed key: not encodable: %s",
                             dkm_error_detail());
    *ret_len = w.len;
    return 0;
}

int dkm_sealed_decode(const uint8_t *buf, size_t len, struct dkm_sealed *ret)
{
    static const char what[] = "sealed key";
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    struct dkm_sealed s;
    const uint8_t *ref;
    size_t n;
    int r;

    memset(&s, 0, sizeof(s));
    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "sealed key: missing argument");
    if (len > DKM_SEALED_ENCODED_MAX)
        return dkm_error_set(DKM_E_FORMAT, "sealed key: %zu bytes, more than %u", len,
                             DKM_SEALED_ENCODED_MAX);
    r = dkm_env_get_prefix(&c, DKM_SEALED_MAGIC, DKM_SEALED_VERSION, what, &s.ek_type,
                           &s.node_id, &s.public);
    if (r < 0)
        return r;

    /* A TPM private area starts with its 32-byte outer HMAC (SHA-256,
     * the EK's name algorithm); the rest only the TPM can check. */
    if (!dkm_get_len16_ref(&c, sizeof(s.private.buffer), &ref, &n) ||
        n <= 2 + DKM_DUP_DIGEST_SIZE || ref[0] != 0 || ref[1] != DKM_DUP_DIGEST_SIZE)
        return dkm_error_set(DKM_E_FORMAT,
                             "sealed key: private area is too short, too large, beyond "
                             "the end, or does not start with a 32-byte HMAC");
    memcpy(s.private.buffer, ref, n);
    s.private.size = (UINT16)n;

    r = dkm_env_get_pcr_selection(&c, what, &s.pcr_mask);
    if (r < 0)
        return r;
    if (!dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "sealed key: %zu trailing bytes", c.left);
    r = dkm_dup_check_public(&s.public.publicArea, s.pcr_mask);
    if (r < 0)
        return r;
    *ret = s;
    return 0;
}

bool dkm_sealed_matches_blob(const struct dkm_sealed *sealed,
                             const struct dkm_import_blob *blob)
{
    TPM2B_NAME a, b;

    if (sealed == NULL || blob == NULL || dkm_tpm_public_name(&sealed->public, &a) < 0 ||
        dkm_tpm_public_name(&blob->public, &b) < 0)
        return false;
    return a.size == b.size && memcmp(a.name, b.name, a.size) == 0 &&
           sealed->ek_type == blob->ek_type && sealed->pcr_mask == blob->pcr_mask &&
           dkm_node_id_equal(&sealed->node_id, &blob->node_id);
}
