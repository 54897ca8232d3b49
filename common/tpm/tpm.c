/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM context over tpm2-tss ESAPI: opening the TCTI, serialising access,
 * turning TSS return codes into dkm codes, and the objects every dkm
 * component needs from the TPM: the endorsement key (persistent or
 * created from the TCG default template), the policy session that lets
 * the EK act as a parent, the storage root key, and salted sessions for
 * parameter encryption.
 *
 * Persistent objects found at the well-known handles are used only when
 * their public area is exactly what the TCG template produces: a
 * provisioning tool may have put a different key there (swtpm_setup
 * --ecc stores a P-384 EK at 0x81010016), and a node identity must not
 * depend on which tool provisioned the machine.
 */
#include "dkm/tpm/tpm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>
#include <tss2/tss2_tctildr.h>

#include "dkm/base/log.h"

/* A persistent EK or SRK found usable, read once per context. */
struct kept_object {
    bool have;
    ESYS_TR tr;
    TPM2B_PUBLIC pub;
};

struct dkm_tpm {
    pthread_mutex_t lock;
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    struct kept_object ek[2]; /* by enum dkm_ek_type */
    struct kept_object srk;   /* a persistent, usable SRK, found once */
    char *conf;               /* the TCTI configuration, to open it again */
};

/* TCG EK Credential Profile: the default EK policy, PolicySecret(TPM_RH_ENDORSEMENT). */
static const uint8_t ek_policy_sha256[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
    0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
    0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

#define DKM_EK_ATTRIBUTES                                                                \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |  \
     TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

#define DKM_SRK_ATTRIBUTES                                                               \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |  \
     TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |              \
     TPMA_OBJECT_DECRYPT)

int dkm_tpm_open(const char *tcti, struct dkm_tpm **ret)
{
    struct dkm_tpm *tpm = NULL;
    pthread_mutexattr_t attr;
    bool mutex_ok = false;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_open: no result pointer");
    if (tcti == NULL || tcti[0] == '\0')
        tcti = getenv("DKM_TCTI");
    if (tcti == NULL || tcti[0] == '\0')
        return dkm_error_set(DKM_E_CONFIG,
                             "no TPM configured: set the tcti option or the "
                             "DKM_TCTI environment variable (for example "
                             "device:/dev/tpmrm0)");

    tpm = calloc(1, sizeof(*tpm));
    if (tpm == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for the TPM context");
        goto done;
    }
    /* Recursive, so helpers that lock for themselves can be called by
     * code that already holds the lock. */
    if (pthread_mutexattr_init(&attr) != 0) {
        r = dkm_error_set(-ENOMEM, "cannot initialise the TPM lock");
        goto done;
    }
    if (pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) == 0 &&
        pthread_mutex_init(&tpm->lock, &attr) == 0)
        mutex_ok = true;
    pthread_mutexattr_destroy(&attr);
    if (!mutex_ok) {
        r = dkm_error_set(-ENOMEM, "cannot initialise the TPM lock");
        goto done;
    }

    rc = Tss2_TctiLdr_Initialize(tcti, &tpm->tcti);
    if (rc != TSS2_RC_SUCCESS) {
        tpm->tcti = NULL;
        r = dkm_error_set(DKM_E_TPM, "cannot open the TPM through TCTI \"%s\": %s (0x%x)",
                          tcti, Tss2_RC_Decode(rc), (unsigned)rc);
        goto done;
    }
    rc = Esys_Initialize(&tpm->esys, tpm->tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        tpm->esys = NULL;
        r = dkm_error_set(DKM_E_TPM, "cannot initialise ESAPI on TCTI \"%s\": %s (0x%x)",
                          tcti, Tss2_RC_Decode(rc), (unsigned)rc);
        goto done;
    }
    tpm->conf = strdup(tcti);
    if (tpm->conf == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for the TPM context");
        goto done;
    }
    log_debug("opened TPM through TCTI %s", tcti);
    *ret = tpm;
    tpm = NULL;
    r = 0;
done:
    if (tpm != NULL) {
        if (tpm->esys != NULL)
            Esys_Finalize(&tpm->esys);
        if (tpm->tcti != NULL)
            Tss2_TctiLdr_Finalize(&tpm->tcti);
        if (mutex_ok)
            pthread_mutex_destroy(&tpm->lock);
        free(tpm);
    }
    return r;
}

void dkm_tpm_close(struct dkm_tpm *tpm)
{
    if (tpm == NULL)
        return;
    if (tpm->esys != NULL)
        Esys_Finalize(&tpm->esys);
    if (tpm->tcti != NULL)
        Tss2_TctiLdr_Finalize(&tpm->tcti);
    pthread_mutex_destroy(&tpm->lock);
    free(tpm->conf);
    free(tpm);
}

int dkm_tpm_reopen(struct dkm_tpm *tpm)
{
    TSS2_TCTI_CONTEXT *tcti = NULL;
    ESYS_CONTEXT *esys = NULL;
    TSS2_RC rc;
    int r;

    if (tpm == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_reopen: no context");
    dkm_tpm_lock(tpm);
    rc = Tss2_TctiLdr_Initialize(tpm->conf, &tcti);
    if (rc != TSS2_RC_SUCCESS) {
        r = dkm_error_set(DKM_E_TPM, "cannot open the TPM through TCTI \"%s\": %s (0x%x)",
                          tpm->conf, Tss2_RC_Decode(rc), (unsigned)rc);
        goto done;
    }
    rc = Esys_Initialize(&esys, tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        Tss2_TctiLdr_Finalize(&tcti);
        r = dkm_error_set(DKM_E_TPM, "cannot initialise ESAPI on TCTI \"%s\": %s (0x%x)",
                          tpm->conf, Tss2_RC_Decode(rc), (unsigned)rc);
        goto done;
    }
    /* The records of the old context (kept EK, SRK) go with it. */
    for (size_t i = 0; i < 2; i++)
        tpm->ek[i].have = false;
    tpm->srk.have = false;
    Esys_Finalize(&tpm->esys);
    Tss2_TctiLdr_Finalize(&tpm->tcti);
    tpm->esys = esys;
    tpm->tcti = tcti;
    log_info("opened the TPM again through TCTI %s", tpm->conf);
    r = 0;
done:
    dkm_tpm_unlock(tpm);
    return r;
}

void dkm_tpm_lock(struct dkm_tpm *tpm)
{
    if (pthread_mutex_lock(&tpm->lock) != 0)
        abort(); /* only on a corrupted mutex: continuing would race the TPM */
}

void dkm_tpm_unlock(struct dkm_tpm *tpm)
{
    if (pthread_mutex_unlock(&tpm->lock) != 0)
        abort();
}

ESYS_CONTEXT *dkm_tpm_esys(struct dkm_tpm *tpm)
{
    return tpm->esys;
}

uint32_t dkm_tpm_rc_base(TSS2_RC rc)
{
    uint32_t layer = rc & TSS2_RC_LAYER_MASK;
    uint32_t code = rc & 0xfff;

    if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
        return rc;
    /* Format-1 codes carry the handle, session or parameter number in
     * bits 6 and 8-11: keep only the error number. */
    if (code & TPM2_RC_FMT1)
        return TPM2_RC_FMT1 | (code & 0x3f);
    return code;
}

int dkm_tpm_rc(TSS2_RC rc, const char *what)
{
    uint32_t base = dkm_tpm_rc_base(rc);
    uint32_t layer = rc & TSS2_RC_LAYER_MASK;
    const char *hint = "";
    int r = DKM_E_TPM;

    if (rc == TSS2_RC_SUCCESS)
        return 0;
    if (what == NULL)
        what = "TPM command";

    switch (base) {
    case TPM2_RC_POLICY_FAIL:
    case TPM2_RC_PCR_CHANGED:
        r = DKM_E_TPM_POLICY;
        hint = ": the platform state does not satisfy the object's policy";
        break;
    case TPM2_RC_VALUE:
        /* PolicyPCR answers VALUE when the given PCR digest is not the
         * current one; elsewhere VALUE is just a bad argument. */
        if (strstr(what, "PolicyPCR") != NULL) {
            r = DKM_E_TPM_POLICY;
            hint = ": the PCR values differ from those the policy requires";
        }
        break;
    case TPM2_RC_INTEGRITY:
    case TPM2_RC_BINDING:
        r = DKM_E_INTEGRITY;
        hint = ": the blob was altered or was made for another TPM or parent";
        break;
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_OBJECT_HANDLES:
    case TPM2_RC_SESSION_HANDLES:
        hint = ": the TPM has no free slot (a handle or session was not flushed, or "
               "another program holds them)";
        break;
    case TPM2_RC_LOCKOUT:
        hint = ": the TPM is in dictionary-attack lockout";
        break;
    case TPM2_RC_AUTH_FAIL:
    case TPM2_RC_BAD_AUTH:
        hint = ": authorization failed (a hierarchy or key has a password set?)";
        break;
    case TPM2_RC_INITIALIZE:
        hint = ": the TPM has not been started (TPM2_Startup)";
        break;
    default:
        break;
    }
    if (layer == TSS2_TCTI_RC_LAYER)
        hint = ": cannot communicate with the TPM";
    return dkm_error_set(r, "%s: %s (0x%x)%s", what, Tss2_RC_Decode(rc), (unsigned)rc,
                         hint);
}

void dkm_tpm_flush(struct dkm_tpm *tpm, ESYS_TR *handle)
{
    TPM2_HANDLE tpm_handle = 0;
    TSS2_RC rc;

    if (tpm == NULL || handle == NULL || *handle == ESYS_TR_NONE)
        return;
    dkm_tpm_lock(tpm);
    rc = Esys_TR_GetTpmHandle(tpm->esys, *handle, &tpm_handle);
    if (rc == TSS2_RC_SUCCESS && ((tpm_handle >> TPM2_HR_SHIFT) == TPM2_HT_PERSISTENT ||
                                  (tpm_handle >> TPM2_HR_SHIFT) == TPM2_HT_NV_INDEX)) {
        /* Persistent objects and NV indices stay in the TPM. ESAPI keeps
         * one record per such handle and gives the same ESYS_TR to every
         * Esys_TR_FromTPMPublic caller, so closing it here would pull it
         * from under another holder; it is freed with the context. */
        *handle = ESYS_TR_NONE;
        dkm_tpm_unlock(tpm);
        return;
    }
    rc = Esys_FlushContext(tpm->esys, *handle);
    if (rc != TSS2_RC_SUCCESS) {
        log_warning("flushing TPM handle 0x%08x failed: %s", (unsigned)tpm_handle,
                    Tss2_RC_Decode(rc));
        rc = Esys_TR_Close(tpm->esys, handle);
        if (rc != TSS2_RC_SUCCESS)
            log_warning("releasing TPM handle 0x%08x failed: %s", (unsigned)tpm_handle,
                        Tss2_RC_Decode(rc));
    }
    *handle = ESYS_TR_NONE;
    dkm_tpm_unlock(tpm);
}

int dkm_tpm_handle_exists(struct dkm_tpm *tpm, TPM2_HANDLE handle, bool *ret)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_handle_exists: missing argument");
    dkm_tpm_lock(tpm);
    /* The TPM lists handles from the one asked for upwards. */
    rc = Esys_GetCapability(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            TPM2_CAP_HANDLES, handle, 1, &more, &cap);
    DKM_TPM_CHECK(rc, "GetCapability(handles)", r, done);
    *ret = cap->capability == TPM2_CAP_HANDLES && cap->data.handles.count >= 1 &&
           cap->data.handles.handle[0] == handle;
    r = 0;
done:
    Esys_Free(cap);
    dkm_tpm_unlock(tpm);
    return r;
}

const char *dkm_ek_type_name(enum dkm_ek_type type)
{
    return type == DKM_EK_RSA2048 ? "rsa" : "ecc";
}

int dkm_tpm_ek_template(enum dkm_ek_type type, TPM2B_PUBLIC *ret)
{
    TPM2B_PUBLIC t;

    if (ret == NULL || (type != DKM_EK_RSA2048 && type != DKM_EK_ECCP256))
        return dkm_error_set(-EINVAL, "unknown EK type %d", (int)type);
    memset(&t, 0, sizeof(t));
    t.publicArea.nameAlg = TPM2_ALG_SHA256;
    t.publicArea.objectAttributes = DKM_EK_ATTRIBUTES;
    t.publicArea.authPolicy.size = sizeof(ek_policy_sha256);
    memcpy(t.publicArea.authPolicy.buffer, ek_policy_sha256, sizeof(ek_policy_sha256));
    if (type == DKM_EK_RSA2048) {
        /* Template L-1: unique is 256 zero bytes. */
        TPMS_RSA_PARMS *p = &t.publicArea.parameters.rsaDetail;

        t.publicArea.type = TPM2_ALG_RSA;
        p->symmetric.algorithm = TPM2_ALG_AES;
        p->symmetric.keyBits.aes = 128;
        p->symmetric.mode.aes = TPM2_ALG_CFB;
        p->scheme.scheme = TPM2_ALG_NULL;
        p->keyBits = 2048;
        p->exponent = 0;
        t.publicArea.unique.rsa.size = 256;
    } else {
        /* Template L-2: unique is two 32-byte zero coordinates. */
        TPMS_ECC_PARMS *p = &t.publicArea.parameters.eccDetail;

        t.publicArea.type = TPM2_ALG_ECC;
        p->symmetric.algorithm = TPM2_ALG_AES;
        p->symmetric.keyBits.aes = 128;
        p->symmetric.mode.aes = TPM2_ALG_CFB;
        p->scheme.scheme = TPM2_ALG_NULL;
        p->curveID = TPM2_ECC_NIST_P256;
        p->kdf.scheme = TPM2_ALG_NULL;
        t.publicArea.unique.ecc.x.size = 32;
        t.publicArea.unique.ecc.y.size = 32;
    }
    *ret = t;
    return 0;
}

int dkm_tpm_ek_public_check(const TPM2B_PUBLIC *pub, enum dkm_ek_type *ret_type)
{
    const TPMT_PUBLIC *p;
    enum dkm_ek_type type;

    if (pub == NULL)
        return dkm_error_set(-EINVAL, "no EK public area");
    p = &pub->publicArea;
    if (p->type == TPM2_ALG_RSA)
        type = DKM_EK_RSA2048;
    else if (p->type == TPM2_ALG_ECC)
        type = DKM_EK_ECCP256;
    else
        return dkm_error_set(DKM_E_FORMAT,
                             "EK public: key type 0x%04x is neither RSA nor ECC",
                             (unsigned)p->type);
    if (p->nameAlg != TPM2_ALG_SHA256)
        return dkm_error_set(DKM_E_FORMAT,
                             "EK public: name algorithm 0x%04x is not SHA-256",
                             (unsigned)p->nameAlg);
    if (p->objectAttributes != DKM_EK_ATTRIBUTES)
        return dkm_error_set(DKM_E_FORMAT,
                             "EK public: object attributes 0x%08x are not the TCG EK "
                             "attributes 0x%08x (restricted decryption key)",
                             (unsigned)p->objectAttributes, (unsigned)DKM_EK_ATTRIBUTES);
    if (p->authPolicy.size != sizeof(ek_policy_sha256) ||
        memcmp(p->authPolicy.buffer, ek_policy_sha256, sizeof(ek_policy_sha256)) != 0)
        return dkm_error_set(DKM_E_FORMAT, "EK public: authPolicy is not the TCG default "
                                           "EK policy");
    if (type == DKM_EK_RSA2048) {
        const TPMS_RSA_PARMS *rp = &p->parameters.rsaDetail;

        if (rp->symmetric.algorithm != TPM2_ALG_AES || rp->symmetric.keyBits.aes != 128 ||
            rp->symmetric.mode.aes != TPM2_ALG_CFB)
            return dkm_error_set(DKM_E_FORMAT, "EK public: RSA EK symmetric algorithm is "
                                               "not AES-128-CFB");
        if (rp->scheme.scheme != TPM2_ALG_NULL)
            return dkm_error_set(DKM_E_FORMAT, "EK public: RSA EK has a scheme");
        if (rp->keyBits != 2048 || p->unique.rsa.size != 256)
            return dkm_error_set(DKM_E_FORMAT,
                                 "EK public: RSA EK is %u bits with a %u-byte modulus, "
                                 "not 2048 bits",
                                 (unsigned)rp->keyBits, (unsigned)p->unique.rsa.size);
        if (rp->exponent != 0)
            return dkm_error_set(DKM_E_FORMAT,
                                 "EK public: RSA EK exponent %u is not the "
                                 "default (0)",
                                 (unsigned)rp->exponent);
    } else {
        const TPMS_ECC_PARMS *ep = &p->parameters.eccDetail;

        if (ep->symmetric.algorithm != TPM2_ALG_AES || ep->symmetric.keyBits.aes != 128 ||
            ep->symmetric.mode.aes != TPM2_ALG_CFB)
            return dkm_error_set(DKM_E_FORMAT, "EK public: ECC EK symmetric algorithm is "
                                               "not AES-128-CFB");
        if (ep->scheme.scheme != TPM2_ALG_NULL || ep->kdf.scheme != TPM2_ALG_NULL)
            return dkm_error_set(DKM_E_FORMAT, "EK public: ECC EK has a scheme or KDF");
        if (ep->curveID != TPM2_ECC_NIST_P256)
            return dkm_error_set(DKM_E_FORMAT,
                                 "EK public: ECC curve 0x%04x is not NIST P-256",
                                 (unsigned)ep->curveID);
        if (p->unique.ecc.x.size != 32 || p->unique.ecc.y.size != 32)
            return dkm_error_set(DKM_E_FORMAT,
                                 "EK public: ECC point coordinates are %u and %u bytes, "
                                 "not 32",
                                 (unsigned)p->unique.ecc.x.size,
                                 (unsigned)p->unique.ecc.y.size);
    }
    if (ret_type != NULL)
        *ret_type = type;
    return 0;
}

int dkm_tpm_public_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *ret)
{
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t off = 0;
    const EVP_MD *md;
    unsigned int dlen = 0;
    TPM2B_NAME name;
    TSS2_RC rc;

    if (pub == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_public_name: missing argument");
    switch (pub->publicArea.nameAlg) {
    case TPM2_ALG_SHA256:
        md = EVP_sha256();
        break;
    case TPM2_ALG_SHA384:
        md = EVP_sha384();
        break;
    case TPM2_ALG_SHA512:
        md = EVP_sha512();
        break;
    default:
        return dkm_error_set(DKM_E_FORMAT,
                             "public area: unsupported name algorithm 0x%04x",
                             (unsigned)pub->publicArea.nameAlg);
    }
    rc = Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &off);
    if (rc != TSS2_RC_SUCCESS)
        return dkm_error_set(DKM_E_FORMAT, "public area cannot be marshaled: %s",
                             Tss2_RC_Decode(rc));
    memset(&name, 0, sizeof(name));
    name.name[0] = (uint8_t)(pub->publicArea.nameAlg >> 8);
    name.name[1] = (uint8_t)pub->publicArea.nameAlg;
    if (EVP_Digest(buf, off, name.name + 2, &dlen, md, NULL) != 1)
        return dkm_error_set(DKM_E_CRYPTO, "hashing the public area failed");
    name.size = (UINT16)(2 + dlen);
    *ret = name;
    return 0;
}

/*
 * ESAPI's serialized record of an object (Esys_TR_Serialize): its handle,
 * name, resource type and, for a key, its public area, in TPM marshaling.
 * ESAPI keeps this format stable so that records can be stored; a record
 * that does not parse, or whose public area does not hash to its name, is
 * not used (the caller asks the TPM instead).
 */
#define IESYS_KEY_RSRC 1u

static int record_parse(const uint8_t *buf, size_t len, TPM2_HANDLE *ret_handle,
                        TPM2B_PUBLIC *ret_public)
{
    TPM2_HANDLE handle = 0;
    TPM2B_NAME name, computed;
    TPM2B_PUBLIC pub;
    UINT32 type = 0;
    size_t off = 0;

    memset(&name, 0, sizeof(name));
    memset(&pub, 0, sizeof(pub));
    if (Tss2_MU_TPM2_HANDLE_Unmarshal(buf, len, &off, &handle) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_NAME_Unmarshal(buf, len, &off, &name) != TSS2_RC_SUCCESS ||
        Tss2_MU_UINT32_Unmarshal(buf, len, &off, &type) != TSS2_RC_SUCCESS ||
        type != IESYS_KEY_RSRC ||
        Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &pub) != TSS2_RC_SUCCESS ||
        dkm_tpm_public_name(&pub, &computed) < 0 || computed.size != name.size ||
        memcmp(computed.name, name.name, name.size) != 0)
        return -EINVAL;
    *ret_handle = handle;
    *ret_public = pub;
    return 0;
}

/* The public area ESAPI holds for tr, without a TPM command. */
static int tr_public(struct dkm_tpm *tpm, ESYS_TR tr, TPM2B_PUBLIC *ret)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    TPM2_HANDLE handle;
    int r;

    if (Esys_TR_Serialize(tpm->esys, tr, &buf, &len) != TSS2_RC_SUCCESS)
        return -EINVAL;
    r = record_parse(buf, len, &handle, ret);
    free(buf);
    return r;
}

/*
 * An ESAPI record for the persistent object at handle whose public area
 * the caller already knows (from an earlier process), without a TPM
 * command: the record is built and deserialized. If the object there is
 * not that one, the commands that use it fail (the name is in their
 * HMACs and salts), so a stale public can do no more than a failed TPM
 * command.
 */
static int record_from_public(struct dkm_tpm *tpm, TPM2_HANDLE handle,
                              const TPM2B_PUBLIC *pub, ESYS_TR *ret)
{
    uint8_t buf[sizeof(TPM2_HANDLE) + sizeof(TPM2B_NAME) + 4 + sizeof(TPM2B_PUBLIC)];
    TPM2B_NAME name;
    size_t off = 0;
    ESYS_TR tr = ESYS_TR_NONE;

    if (dkm_tpm_public_name(pub, &name) < 0 ||
        Tss2_MU_TPM2_HANDLE_Marshal(handle, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_NAME_Marshal(&name, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS ||
        Tss2_MU_UINT32_Marshal(IESYS_KEY_RSRC, buf, sizeof(buf), &off) !=
            TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS ||
        Esys_TR_Deserialize(tpm->esys, buf, off, &tr) != TSS2_RC_SUCCESS)
        return -EINVAL;
    *ret = tr;
    return 0;
}

/* Look for a persistent object: 0 with *ret set, -ENOENT when the handle
 * is empty, or another error. The capability is asked first so that an
 * absent handle does not make ESAPI log an error. */
static int persistent_open(struct dkm_tpm *tpm, TPM2_HANDLE handle, ESYS_TR *ret,
                           TPM2B_PUBLIC *ret_public)
{
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_PUBLIC *pub = NULL;
    bool exists = false;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    r = dkm_tpm_handle_exists(tpm, handle, &exists);
    if (r < 0)
        goto done;
    if (!exists) {
        r = -ENOENT;
        goto done;
    }
    rc = Esys_TR_FromTPMPublic(tpm->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) {
        tr = ESYS_TR_NONE;
        r = dkm_tpm_rc(rc, "reading the persistent object");
        goto done;
    }
    /* ESAPI read the public area to make the record: take it from there
     * rather than asking the TPM a second time. */
    if (tr_public(tpm, tr, ret_public) < 0) {
        rc = Esys_ReadPublic(tpm->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                             &pub, NULL, NULL);
        DKM_TPM_CHECK(rc, "ReadPublic of a persistent object", r, done);
        *ret_public = *pub;
    }
    *ret = tr;
    tr = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &tr);
    Esys_Free(pub);
    return r;
}

static int create_primary(struct dkm_tpm *tpm, ESYS_TR hierarchy,
                          const TPM2B_PUBLIC *tmpl, const char *what, ESYS_TR *ret,
                          TPM2B_PUBLIC *ret_public)
{
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    TPM2B_PUBLIC *pub = NULL;
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcrs, 0, sizeof(pcrs));
    rc = Esys_CreatePrimary(tpm->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                            ESYS_TR_NONE, &sens, tmpl, &outside, &pcrs, &tr, &pub, NULL,
                            NULL, NULL);
    DKM_TPM_CHECK(rc, what, r, done);
    if (ret_public != NULL)
        *ret_public = *pub;
    *ret = tr;
    tr = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &tr);
    Esys_Free(pub);
    return r;
}

int dkm_tpm_ek_load(struct dkm_tpm *tpm, enum dkm_ek_type type, ESYS_TR *ret,
                    bool *ret_transient, TPM2B_PUBLIC *ret_public)
{
    TPM2_HANDLE handle = type == DKM_EK_RSA2048 ? DKM_EK_HANDLE_RSA : DKM_EK_HANDLE_ECC;
    TPM2B_PUBLIC tmpl, pub;
    enum dkm_ek_type found;
    ESYS_TR tr = ESYS_TR_NONE;
    bool transient = false;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_ek_load: missing argument");
    r = dkm_tpm_ek_template(type, &tmpl);
    if (r < 0)
        return r;
    dkm_tpm_lock(tpm);
    if (tpm->ek[type].have) {
        /* Read once per context: a persistent EK does not change. */
        tr = tpm->ek[type].tr;
        pub = tpm->ek[type].pub;
        r = 0;
        goto found;
    }
    r = persistent_open(tpm, handle, &tr, &pub);
    if (r == 0) {
        if (dkm_tpm_ek_public_check(&pub, &found) == 0 && found == type) {
            log_debug("using the persistent %s EK at 0x%08x", dkm_ek_type_name(type),
                      (unsigned)handle);
            tpm->ek[type] = (struct kept_object){.have = true, .tr = tr, .pub = pub};
        } else {
            log_debug("the object at 0x%08x is not a TCG default %s EK (%s); creating "
                      "the EK from the template",
                      (unsigned)handle, dkm_ek_type_name(type), dkm_error_detail());
            dkm_tpm_flush(tpm, &tr);
        }
        dkm_error_clear();
    } else if (r != -ENOENT) {
        goto done;
    }
    if (tr == ESYS_TR_NONE) {
        r = create_primary(tpm, ESYS_TR_RH_ENDORSEMENT, &tmpl, "CreatePrimary of the EK",
                           &tr, &pub);
        if (r < 0)
            goto done;
        transient = true;
        /* A TPM that answers with another key shape than the template
         * asked for is not one we can seal to. */
        r = dkm_tpm_ek_public_check(&pub, &found);
        if (r < 0 || found != type) {
            r = dkm_error_set(DKM_E_TPM,
                              "the TPM created an EK that does not match the %s "
                              "template",
                              dkm_ek_type_name(type));
            goto done;
        }
    }
found:
    if (ret_public != NULL)
        *ret_public = pub;
    if (ret_transient != NULL)
        *ret_transient = transient;
    *ret = tr;
    tr = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &tr);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_tpm_ek_known(struct dkm_tpm *tpm, enum dkm_ek_type type, const TPM2B_PUBLIC *pub)
{
    TPM2_HANDLE handle = type == DKM_EK_RSA2048 ? DKM_EK_HANDLE_RSA : DKM_EK_HANDLE_ECC;
    enum dkm_ek_type found;
    ESYS_TR tr = ESYS_TR_NONE;
    int r;

    if (tpm == NULL || pub == NULL || (type != DKM_EK_RSA2048 && type != DKM_EK_ECCP256))
        return dkm_error_set(-EINVAL, "dkm_tpm_ek_known: bad argument");
    r = dkm_tpm_ek_public_check(pub, &found);
    if (r < 0)
        return r;
    if (found != type)
        return dkm_error_set(DKM_E_FORMAT, "EK public: not a %s EK",
                             dkm_ek_type_name(type));
    dkm_tpm_lock(tpm);
    if (!tpm->ek[type].have) {
        r = record_from_public(tpm, handle, pub, &tr);
        if (r < 0)
            r = dkm_error_set(DKM_E_TPM, "ESAPI refused the record of the %s EK",
                              dkm_ek_type_name(type));
        else
            tpm->ek[type] = (struct kept_object){.have = true, .tr = tr, .pub = *pub};
    }
    dkm_tpm_unlock(tpm);
    return r;
}

void dkm_tpm_forget(struct dkm_tpm *tpm)
{
    if (tpm == NULL)
        return;
    dkm_tpm_lock(tpm);
    for (size_t i = 0; i < 2; i++) {
        if (tpm->ek[i].have)
            (void)Esys_TR_Close(tpm->esys, &tpm->ek[i].tr);
        tpm->ek[i].have = false;
    }
    if (tpm->srk.have)
        (void)Esys_TR_Close(tpm->esys, &tpm->srk.tr);
    tpm->srk.have = false;
    dkm_tpm_unlock(tpm);
}

int dkm_tpm_ek_policy_session(struct dkm_tpm *tpm, ESYS_TR *ret)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    ESYS_TR session = ESYS_TR_NONE;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_ek_policy_session: missing argument");
    dkm_tpm_lock(tpm);
    rc = Esys_StartAuthSession(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym,
                               TPM2_ALG_SHA256, &session);
    DKM_TPM_CHECK(rc, "StartAuthSession for the EK policy", r, done);
    rc = Esys_PolicySecret(tpm->esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD,
                           ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL);
    DKM_TPM_CHECK(rc, "PolicySecret on the endorsement hierarchy", r, done);
    *ret = session;
    session = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_tpm_srk_template(TPM2B_PUBLIC *ret)
{
    TPM2B_PUBLIC t;
    TPMS_ECC_PARMS *p = &t.publicArea.parameters.eccDetail;

    if (ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_srk_template: no result pointer");
    memset(&t, 0, sizeof(t));
    t.publicArea.type = TPM2_ALG_ECC;
    t.publicArea.nameAlg = TPM2_ALG_SHA256;
    t.publicArea.objectAttributes = DKM_SRK_ATTRIBUTES;
    p->symmetric.algorithm = TPM2_ALG_AES;
    p->symmetric.keyBits.aes = 128;
    p->symmetric.mode.aes = TPM2_ALG_CFB;
    p->scheme.scheme = TPM2_ALG_NULL;
    p->curveID = TPM2_ECC_NIST_P256;
    p->kdf.scheme = TPM2_ALG_NULL;
    *ret = t;
    return 0;
}

/* A persistent SRK is usable when it is a fixed, restricted storage key
 * that is authorised by its (empty) auth value. */
static bool srk_usable(const TPM2B_PUBLIC *pub)
{
    TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
                       TPMA_OBJECT_DECRYPT;
    TPMA_OBJECT a = pub->publicArea.objectAttributes;

    if ((a & need) != need || (a & TPMA_OBJECT_SIGN_ENCRYPT) != 0)
        return false;
    return pub->publicArea.type == TPM2_ALG_ECC || pub->publicArea.type == TPM2_ALG_RSA;
}

int dkm_tpm_srk_load(struct dkm_tpm *tpm, ESYS_TR *ret, bool *ret_transient,
                     TPM2B_NAME *ret_name)
{
    TPM2B_PUBLIC tmpl, pub;
    ESYS_TR tr = ESYS_TR_NONE;
    bool transient = false;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_srk_load: missing argument");
    r = dkm_tpm_srk_template(&tmpl);
    if (r < 0)
        return r;
    dkm_tpm_lock(tpm);
    if (tpm->srk.have) {
        tr = tpm->srk.tr;
        pub = tpm->srk.pub;
        goto found;
    }
    r = persistent_open(tpm, DKM_SRK_HANDLE, &tr, &pub);
    if (r == 0 && srk_usable(&pub)) {
        tpm->srk = (struct kept_object){.have = true, .tr = tr, .pub = pub};
    } else if (r == 0) {
        log_debug("the object at 0x%08x is not a storage key; creating the SRK from the "
                  "template",
                  (unsigned)DKM_SRK_HANDLE);
        dkm_tpm_flush(tpm, &tr);
    } else if (r < 0 && r != -ENOENT) {
        goto done;
    }
    if (tr == ESYS_TR_NONE) {
        r = create_primary(tpm, ESYS_TR_RH_OWNER, &tmpl, "CreatePrimary of the SRK", &tr,
                           &pub);
        if (r < 0)
            goto done;
        transient = true;
    }
found:
    if (ret_name != NULL) {
        r = dkm_tpm_public_name(&pub, ret_name);
        if (r < 0)
            goto done;
    }
    if (ret_transient != NULL)
        *ret_transient = transient;
    *ret = tr;
    tr = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &tr);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_tpm_encrypted_session(struct dkm_tpm *tpm, ESYS_TR salt_key, ESYS_TR *ret)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES,
                        .keyBits = {.aes = 128},
                        .mode = {.aes = TPM2_ALG_CFB}};
    ESYS_TR session = ESYS_TR_NONE;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL || salt_key == ESYS_TR_NONE)
        return dkm_error_set(-EINVAL, "dkm_tpm_encrypted_session: missing argument");
    dkm_tpm_lock(tpm);
    rc = Esys_StartAuthSession(tpm->esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym,
                               TPM2_ALG_SHA256, &session);
    DKM_TPM_CHECK(rc, "StartAuthSession (salted, encrypting)", r, done);
    rc = Esys_TRSess_SetAttributes(
        tpm->esys, session,
        TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
    DKM_TPM_CHECK(rc, "setting session attributes", r, done);
    *ret = session;
    session = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_tpm_transient_avail(struct dkm_tpm *tpm, uint32_t *ret)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more = TPM2_NO;
    const TPML_TAGGED_TPM_PROPERTY *props;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_transient_avail: missing argument");
    dkm_tpm_lock(tpm);
    rc = Esys_GetCapability(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            TPM2_CAP_TPM_PROPERTIES, TPM2_PT_HR_TRANSIENT_AVAIL, 1, &more,
                            &cap);
    DKM_TPM_CHECK(rc, "GetCapability(TPM_PT_HR_TRANSIENT_AVAIL)", r, done);
    props = &cap->data.tpmProperties;
    if (cap->capability != TPM2_CAP_TPM_PROPERTIES || props->count < 1 ||
        props->tpmProperty[0].property != TPM2_PT_HR_TRANSIENT_AVAIL) {
        r = dkm_error_set(DKM_E_TPM, "the TPM did not report TPM_PT_HR_TRANSIENT_AVAIL");
        goto done;
    }
    *ret = props->tpmProperty[0].value;
    r = 0;
done:
    Esys_Free(cap);
    dkm_tpm_unlock(tpm);
    return r;
}

void dkm_tpm_scrub(struct dkm_tpm *tpm)
{
    TSS2_SYS_CONTEXT *sys = NULL;
    TPM2B_MAX_BUFFER zeros;

    if (tpm == NULL)
        return;
    memset(&zeros, 0, sizeof(zeros));
    zeros.size = sizeof(zeros.buffer);
    dkm_tpm_lock(tpm);
    /* Preparing a command writes it into the buffer the last response was
     * read into; it is never sent. A Hash of 1024 zero bytes covers every
     * response dkm unseals. */
    if (Esys_GetSysContext(tpm->esys, &sys) != TSS2_RC_SUCCESS || sys == NULL ||
        Tss2_Sys_Hash_Prepare(sys, &zeros, TPM2_ALG_SHA256, TPM2_RH_NULL) !=
            TSS2_RC_SUCCESS)
        log_debug("could not overwrite the TSS command buffer");
    dkm_tpm_unlock(tpm);
}
