/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node identity and TPM context tests against two swtpm instances (two
 * machines): node ids are stable and differ between TPMs, the name is
 * computed in software exactly as the TPM computes it, the EK created
 * from our templates is the persistent EK (RSA) and the EK tpm2-tools
 * creates (ECC), EK certificates are read from NV, the EK policy session
 * authorizes the EK as a parent, return codes map as documented, and no
 * test leaves a transient object behind.
 */
/* swtpm: 2 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "dkm/tpm/node.h"
#include "dkm/trust/nodecard.h"
#include "dkm/tpm/tpm.h"
#include "unit.h"

static struct dkm_tpm *tpm1, *tpm2;

static int suite_init(void)
{
    if (dkm_tpm_open(dkm_test_tcti(1), &tpm1) < 0 ||
        dkm_tpm_open(dkm_test_tcti(2), &tpm2) < 0) {
        fprintf(stderr, "cannot open the test TPMs: %s\n", dkm_error_detail());
        return 1;
    }
    return 0;
}

static int suite_cleanup(void)
{
    dkm_tpm_close(tpm1);
    dkm_tpm_close(tpm2);
    return 0;
}

/* Every test ends with all three transient slots free on both TPMs. */
static void no_leak(void)
{
    uint32_t a1 = 0, a2 = 0;

    CU_ASSERT_EQUAL(dkm_tpm_transient_avail(tpm1, &a1), 0);
    CU_ASSERT_EQUAL(dkm_tpm_transient_avail(tpm2, &a2), 0);
    CU_ASSERT_EQUAL(a1, 3);
    CU_ASSERT_EQUAL(a2, 3);
}

static void public_bytes(const TPM2B_PUBLIC *pub, uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    CU_ASSERT_FATAL(Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, cap, len) ==
                    TSS2_RC_SUCCESS);
}

static bool same_public(const TPM2B_PUBLIC *a, const TPM2B_PUBLIC *b)
{
    uint8_t ba[sizeof(TPMT_PUBLIC)], bb[sizeof(TPMT_PUBLIC)];
    size_t la, lb;

    public_bytes(a, ba, sizeof(ba), &la);
    public_bytes(b, bb, sizeof(bb), &lb);
    return la == lb && memcmp(ba, bb, la) == 0;
}

static void test_tpm_open_needs_tcti(void)
{
    struct dkm_tpm *t = NULL;
    char *saved = getenv("DKM_TCTI") ? strdup(getenv("DKM_TCTI")) : NULL;

    unsetenv("DKM_TCTI");
    CU_ASSERT_EQUAL(dkm_tpm_open(NULL, &t), DKM_E_CONFIG);
    CU_ASSERT(strstr(dkm_error_detail(), "DKM_TCTI") != NULL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_EQUAL(dkm_tpm_open("", &t), DKM_E_CONFIG);
    setenv("DKM_TCTI", dkm_test_tcti(1), 1);
    CU_ASSERT_EQUAL(dkm_tpm_open(NULL, &t), 0);
    dkm_tpm_close(t);
    t = NULL;
    /* A port nobody listens on. */
    CU_ASSERT_EQUAL(dkm_tpm_open("swtpm:host=127.0.0.1,port=1", &t), DKM_E_TPM);
    CU_ASSERT_PTR_NULL(t);
    if (saved != NULL)
        setenv("DKM_TCTI", saved, 1);
    else
        unsetenv("DKM_TCTI");
    free(saved);
    dkm_tpm_close(NULL);
}

static void test_tpm_rc_mapping(void)
{
    /* Format-1 codes carry parameter/handle/session numbers: masked. */
    CU_ASSERT_EQUAL(dkm_tpm_rc_base(TPM2_RC_POLICY_FAIL | TPM2_RC_S | TPM2_RC_1),
                    TPM2_RC_POLICY_FAIL);
    CU_ASSERT_EQUAL(dkm_tpm_rc_base(TPM2_RC_HANDLE | TPM2_RC_H | TPM2_RC_2),
                    TPM2_RC_HANDLE);
    CU_ASSERT_EQUAL(dkm_tpm_rc_base(TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_3),
                    TPM2_RC_VALUE);
    CU_ASSERT_EQUAL(dkm_tpm_rc_base(TPM2_RC_OBJECT_MEMORY), TPM2_RC_OBJECT_MEMORY);
    CU_ASSERT_EQUAL(dkm_tpm_rc_base(TSS2_ESYS_RC_BAD_REFERENCE),
                    TSS2_ESYS_RC_BAD_REFERENCE);

    CU_ASSERT_EQUAL(dkm_tpm_rc(TSS2_RC_SUCCESS, "x"), 0);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TPM2_RC_POLICY_FAIL | TPM2_RC_S | TPM2_RC_1, "Unseal"),
                    DKM_E_TPM_POLICY);
    CU_ASSERT(strstr(dkm_error_detail(), "Unseal") != NULL);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TPM2_RC_PCR_CHANGED, "Unseal"), DKM_E_TPM_POLICY);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_1, "PolicyPCR"),
                    DKM_E_TPM_POLICY);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_1, "Create"),
                    DKM_E_TPM);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TPM2_RC_INTEGRITY | TPM2_RC_P | TPM2_RC_1, "Import"),
                    DKM_E_INTEGRITY);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TPM2_RC_OBJECT_MEMORY, "Load"), DKM_E_TPM);
    CU_ASSERT(strstr(dkm_error_detail(), "slot") != NULL);
    CU_ASSERT_EQUAL(dkm_tpm_rc(TSS2_TCTI_RC_IO_ERROR, "Sign"), DKM_E_TPM);
}

/* A real PolicyPCR with a digest that is not the PCRs' answers VALUE,
 * which the mapping turns into a policy failure. */
static void test_tpm_rc_policy_pcr(void)
{
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    TPML_PCR_SELECTION sel = {.count = 1};
    TPM2B_DIGEST wrong = {.size = 32};
    ESYS_TR session = ESYS_TR_NONE;
    ESYS_CONTEXT *esys;
    TSS2_RC rc;

    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    sel.pcrSelections[0].pcrSelect[0] = 0x01;
    memset(wrong.buffer, 0xa5, 32);
    dkm_tpm_lock(tpm1);
    esys = dkm_tpm_esys(tpm1);
    rc = Esys_StartAuthSession(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym,
                               TPM2_ALG_SHA256, &session);
    CU_ASSERT_EQUAL_FATAL(rc, TSS2_RC_SUCCESS);
    rc = Esys_PolicyPCR(esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &wrong,
                        &sel);
    CU_ASSERT_EQUAL(dkm_tpm_rc_base(rc), TPM2_RC_VALUE);
    CU_ASSERT_EQUAL(dkm_tpm_rc(rc, "PolicyPCR"), DKM_E_TPM_POLICY);
    dkm_tpm_flush(tpm1, &session);
    CU_ASSERT_EQUAL(session, ESYS_TR_NONE);
    dkm_tpm_unlock(tpm1);
    no_leak();
}

static void test_node_id_stable(void)
{
    struct dkm_node_id a, b, c;
    struct dkm_tpm *again = NULL;
    char hex[DKM_NODE_ID_HEX_SIZE];

    for (int type = DKM_EK_RSA2048; type <= DKM_EK_ECCP256; type++) {
        CU_ASSERT_FATAL(dkm_node_read_ek(tpm1, (enum dkm_ek_type)type, NULL, &a) == 0);
        CU_ASSERT_FATAL(dkm_node_read_ek(tpm1, (enum dkm_ek_type)type, NULL, &b) == 0);
        CU_ASSERT_FATAL(dkm_tpm_open(dkm_test_tcti(1), &again) == 0);
        CU_ASSERT_FATAL(dkm_node_read_ek(again, (enum dkm_ek_type)type, NULL, &c) == 0);
        dkm_tpm_close(again);
        CU_ASSERT(dkm_node_id_equal(&a, &b));
        CU_ASSERT(dkm_node_id_equal(&a, &c));
        dkm_node_id_hex(&a, hex);
        CU_ASSERT_EQUAL(strlen(hex), 68);
        CU_ASSERT(strncmp(hex, "000b", 4) == 0);
        printf("\n  node id (%s EK): %s", dkm_ek_type_name((enum dkm_ek_type)type), hex);
    }
    no_leak();
}

static void test_node_ids_differ_between_tpms(void)
{
    struct dkm_node_id a, b, e1;

    CU_ASSERT_FATAL(dkm_node_read_ek(tpm1, DKM_EK_ECCP256, NULL, &a) == 0);
    CU_ASSERT_FATAL(dkm_node_read_ek(tpm2, DKM_EK_ECCP256, NULL, &b) == 0);
    CU_ASSERT(!dkm_node_id_equal(&a, &b));
    CU_ASSERT_FATAL(dkm_node_read_ek(tpm1, DKM_EK_RSA2048, NULL, &e1) == 0);
    CU_ASSERT(!dkm_node_id_equal(&a, &e1));
    CU_ASSERT_FATAL(dkm_node_read_ek(tpm2, DKM_EK_RSA2048, NULL, &b) == 0);
    CU_ASSERT(!dkm_node_id_equal(&e1, &b));
    no_leak();
}

/* The software name equals the name ESAPI gets from the TPM. */
static void test_node_name_matches_tpm(void)
{
    for (int type = DKM_EK_RSA2048; type <= DKM_EK_ECCP256; type++) {
        ESYS_TR ek = ESYS_TR_NONE;
        TPM2B_PUBLIC pub, *tpm_pub = NULL;
        TPM2B_NAME *tpm_name = NULL, sw;
        struct dkm_node_id id;

        dkm_tpm_lock(tpm1);
        CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm1, (enum dkm_ek_type)type, &ek, NULL, &pub) ==
                        0);
        CU_ASSERT_EQUAL(Esys_ReadPublic(dkm_tpm_esys(tpm1), ek, ESYS_TR_NONE,
                                        ESYS_TR_NONE, ESYS_TR_NONE, &tpm_pub, &tpm_name,
                                        NULL),
                        TSS2_RC_SUCCESS);
        dkm_tpm_flush(tpm1, &ek);
        dkm_tpm_unlock(tpm1);
        CU_ASSERT_FATAL(tpm_name != NULL && tpm_pub != NULL);
        CU_ASSERT(same_public(&pub, tpm_pub));
        CU_ASSERT_EQUAL(dkm_tpm_public_name(&pub, &sw), 0);
        CU_ASSERT_EQUAL(sw.size, tpm_name->size);
        CU_ASSERT(memcmp(sw.name, tpm_name->name, sw.size) == 0);
        CU_ASSERT_EQUAL(dkm_node_id_from_public(&pub, &id), 0);
        CU_ASSERT(memcmp(id.bytes, tpm_name->name, DKM_NODE_ID_SIZE) == 0);
        Esys_Free(tpm_pub);
        Esys_Free(tpm_name);
    }
    no_leak();
}

/* Run a command; returns its exit status. */
static int run(const char *cmd)
{
    int st = system(cmd);

    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The RSA EK made from our template is the provisioned persistent one. */
static void test_node_ek_template_rsa_matches_persistent(void)
{
    TPM2B_PUBLIC persistent, created, tmpl;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PUBLIC *out = NULL;
    ESYS_TR ek = ESYS_TR_NONE, made = ESYS_TR_NONE;
    bool transient = true;
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm1);

    dkm_tpm_lock(tpm1);
    CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm1, DKM_EK_RSA2048, &ek, &transient, &persistent) ==
                    0);
    CU_ASSERT(!transient); /* swtpm_setup provisioned it */
    dkm_tpm_flush(tpm1, &ek);
    CU_ASSERT_FATAL(dkm_tpm_ek_template(DKM_EK_RSA2048, &tmpl) == 0);
    CU_ASSERT_EQUAL_FATAL(Esys_CreatePrimary(esys, ESYS_TR_RH_ENDORSEMENT,
                                             ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                             &sens, &tmpl, &outside, &pcrs, &made, &out,
                                             NULL, NULL, NULL),
                          TSS2_RC_SUCCESS);
    created = *out;
    Esys_Free(out);
    dkm_tpm_flush(tpm1, &made);
    dkm_tpm_unlock(tpm1);
    CU_ASSERT(same_public(&persistent, &created));
    no_leak();
}

/*
 * Without a persistent EK the same key is created: evict the RSA EK,
 * read it through dkm_tpm_ek_load (now transient), then make it
 * persistent again from that very handle.
 */
static void test_node_ek_created_when_not_persistent(void)
{
    TPM2B_PUBLIC before, after;
    ESYS_TR ek = ESYS_TR_NONE, gone = ESYS_TR_NONE, back = ESYS_TR_NONE;
    struct dkm_node_id id_before, id_after;
    bool transient = false;
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm2);

    CU_ASSERT_FATAL(dkm_node_read_ek(tpm2, DKM_EK_RSA2048, &before, &id_before) == 0);
    dkm_tpm_lock(tpm2);
    CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm2, DKM_EK_RSA2048, &ek, &transient, NULL) == 0);
    CU_ASSERT_FATAL(!transient);
    CU_ASSERT_EQUAL_FATAL(Esys_EvictControl(esys, ESYS_TR_RH_OWNER, ek, ESYS_TR_PASSWORD,
                                            ESYS_TR_NONE, ESYS_TR_NONE, DKM_EK_HANDLE_RSA,
                                            &gone),
                          TSS2_RC_SUCCESS);
    /* EvictControl of a persistent object invalidates both records; the
     * context must forget the EK it read. */
    ek = ESYS_TR_NONE;
    dkm_tpm_forget(tpm2);
    CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm2, DKM_EK_RSA2048, &ek, &transient, &after) == 0);
    CU_ASSERT(transient);
    CU_ASSERT(same_public(&before, &after));
    CU_ASSERT_EQUAL(dkm_node_id_from_public(&after, &id_after), 0);
    CU_ASSERT(dkm_node_id_equal(&id_before, &id_after));
    CU_ASSERT_EQUAL(Esys_EvictControl(esys, ESYS_TR_RH_OWNER, ek, ESYS_TR_PASSWORD,
                                      ESYS_TR_NONE, ESYS_TR_NONE, DKM_EK_HANDLE_RSA,
                                      &back),
                    TSS2_RC_SUCCESS);
    dkm_tpm_flush(tpm2, &back);
    dkm_tpm_flush(tpm2, &ek);
    dkm_tpm_forget(tpm2);
    CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm2, DKM_EK_RSA2048, &ek, &transient, &after) == 0);
    CU_ASSERT(!transient);
    dkm_tpm_flush(tpm2, &ek);
    dkm_tpm_unlock(tpm2);
    CU_ASSERT(same_public(&before, &after));
    no_leak();
}

/*
 * swtpm_setup --ecc puts a P-384 EK (high-range template) at 0x81010016:
 * dkm must not take it for the P-256 EK, and the P-256 EK it creates must
 * be the one tpm2-tools' tpm2_createek creates from the TCG template.
 */
static void test_node_ek_template_ecc_matches_tpm2_tools(void)
{
    TPM2B_PUBLIC ours, theirs;
    ESYS_TR ek = ESYS_TR_NONE;
    bool transient = false;
    uint8_t *file = NULL;
    size_t file_len = 0, off = 0;
    char cmd[4096], path[512], ctx[512];

    dkm_tpm_lock(tpm1);
    CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm1, DKM_EK_ECCP256, &ek, &transient, &ours) == 0);
    dkm_tpm_flush(tpm1, &ek);
    dkm_tpm_unlock(tpm1);
    CU_ASSERT_EQUAL(ours.publicArea.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);

    snprintf(path, sizeof(path), "%s/ek-ecc.pub", dkm_test_tmpdir());
    snprintf(ctx, sizeof(ctx), "%s/ek-ecc.ctx", dkm_test_tmpdir());
    snprintf(cmd, sizeof(cmd),
             "tpm2_createek -T '%s' -G ecc -c '%s' -u '%s' >/dev/null 2>&1 && "
             "tpm2_flushcontext -T '%s' -t >/dev/null 2>&1",
             dkm_test_tcti(1), ctx, path, dkm_test_tcti(1));
    CU_ASSERT_EQUAL_FATAL(run(cmd), 0);
    CU_ASSERT_FATAL(dkm_file_read(path, 4096, &file, &file_len) == 0);
    memset(&theirs, 0, sizeof(theirs));
    CU_ASSERT_EQUAL(Tss2_MU_TPM2B_PUBLIC_Unmarshal(file, file_len, &off, &theirs),
                    TSS2_RC_SUCCESS);
    CU_ASSERT_EQUAL(off, file_len);
    free(file);
    CU_ASSERT(same_public(&ours, &theirs));
    no_leak();
}

static void test_node_persistent_ecc_p384_ignored(void)
{
    ESYS_TR tr = ESYS_TR_NONE, ek = ESYS_TR_NONE;
    TPM2B_PUBLIC *pub = NULL, ours;
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm1);
    enum dkm_ek_type type;
    bool transient = false;
    int r;

    dkm_tpm_lock(tpm1);
    CU_ASSERT_EQUAL_FATAL(Esys_TR_FromTPMPublic(esys, DKM_EK_HANDLE_ECC, ESYS_TR_NONE,
                                                ESYS_TR_NONE, ESYS_TR_NONE, &tr),
                          TSS2_RC_SUCCESS);
    CU_ASSERT_EQUAL(Esys_ReadPublic(esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    &pub, NULL, NULL),
                    TSS2_RC_SUCCESS);
    dkm_tpm_flush(tpm1, &tr);
    CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm1, DKM_EK_ECCP256, &ek, &transient, &ours) == 0);
    dkm_tpm_flush(tpm1, &ek);
    dkm_tpm_unlock(tpm1);
    CU_ASSERT_FATAL(pub != NULL);
    /* swtpm 0.7 stores a P-384 EK there: it must be passed over. A
     * P-256 EK of the TCG template there would be used as it is. */
    r = dkm_tpm_ek_public_check(pub, &type);
    if (r == 0) {
        CU_ASSERT(!transient);
        CU_ASSERT(same_public(pub, &ours));
    } else {
        CU_ASSERT_EQUAL(r, DKM_E_FORMAT);
        CU_ASSERT(transient);
        CU_ASSERT(!same_public(pub, &ours));
    }
    printf("\n  object at 0x81010016: %s, curve 0x%04x", r == 0 ? "P-256 EK" : "not used",
           (unsigned)pub->publicArea.parameters.eccDetail.curveID);
    Esys_Free(pub);
    no_leak();
}

static void test_node_default_ek_type(void)
{
    enum dkm_ek_type type = DKM_EK_RSA2048;

    CU_ASSERT_EQUAL(dkm_node_default_ek_type(tpm1, &type), 0);
    CU_ASSERT_EQUAL(type, DKM_EK_ECCP256);
    no_leak();
}

/* Use the EK policy session for what it is for: the EK as a parent. */
static void test_tpm_ek_policy_session_authorizes_parent(void)
{
    for (int type = DKM_EK_RSA2048; type <= DKM_EK_ECCP256; type++) {
        ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
        TPM2B_SENSITIVE_CREATE sens = {0};
        TPM2B_DATA outside = {0};
        TPML_PCR_SELECTION pcrs = {0};
        TPM2B_PUBLIC tmpl = {0};
        TPM2B_PRIVATE *priv = NULL;
        TSS2_RC rc;

        tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
        tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
        tmpl.publicArea.objectAttributes =
            TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH;
        tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
        sens.sensitive.data.size = 4;
        memcpy(sens.sensitive.data.buffer, "seal", 4);

        dkm_tpm_lock(tpm1);
        CU_ASSERT_FATAL(dkm_tpm_ek_load(tpm1, (enum dkm_ek_type)type, &ek, NULL, NULL) ==
                        0);
        /* Without the policy the EK refuses (it has no userWithAuth). */
        rc = Esys_Create(dkm_tpm_esys(tpm1), ek, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &priv, NULL, NULL,
                         NULL, NULL);
        CU_ASSERT_NOT_EQUAL(rc, TSS2_RC_SUCCESS);
        Esys_Free(priv);
        priv = NULL;
        CU_ASSERT_FATAL(dkm_tpm_ek_policy_session(tpm1, &session) == 0);
        rc = Esys_Create(dkm_tpm_esys(tpm1), ek, session, ESYS_TR_NONE, ESYS_TR_NONE,
                         &sens, &tmpl, &outside, &pcrs, &priv, NULL, NULL, NULL, NULL);
        CU_ASSERT_EQUAL(rc, TSS2_RC_SUCCESS);
        Esys_Free(priv);
        dkm_tpm_flush(tpm1, &session);
        dkm_tpm_flush(tpm1, &ek);
        dkm_tpm_unlock(tpm1);
    }
    no_leak();
}

static void test_tpm_srk_and_encrypted_session(void)
{
    ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
    TPM2B_NAME n1, n2;
    bool transient = true;

    CU_ASSERT_FATAL(dkm_tpm_srk_load(tpm1, &srk, &transient, &n1) == 0);
    CU_ASSERT(!transient); /* swtpm_setup --create-spk */
    CU_ASSERT_EQUAL(dkm_tpm_encrypted_session(tpm1, srk, &session), 0);
    dkm_tpm_flush(tpm1, &session);
    dkm_tpm_flush(tpm1, &srk);
    CU_ASSERT_FATAL(dkm_tpm_srk_load(tpm1, &srk, NULL, &n2) == 0);
    dkm_tpm_flush(tpm1, &srk);
    CU_ASSERT(n1.size == n2.size && memcmp(n1.name, n2.name, n1.size) == 0);
    CU_ASSERT_FATAL(dkm_tpm_srk_load(tpm2, &srk, NULL, &n2) == 0);
    dkm_tpm_flush(tpm2, &srk);
    CU_ASSERT(n1.size != n2.size || memcmp(n1.name, n2.name, n1.size) != 0);
    no_leak();
}

static void test_node_ek_cert_absent(void)
{
    uint8_t *cert = (uint8_t *)"x";
    size_t len = 1;

    CU_ASSERT_EQUAL(dkm_node_read_ek_cert(tpm1, DKM_EK_RSA2048, &cert, &len), 0);
    CU_ASSERT_PTR_NULL(cert);
    CU_ASSERT_EQUAL(len, 0);
    no_leak();
}

static int make_cert(uint8_t **ret)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    int n;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"test ek", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    X509_sign(x, k, EVP_sha256());
    *ret = NULL;
    n = i2d_X509(x, ret);
    X509_free(x);
    EVP_PKEY_free(k);
    return n;
}

/*
 * Provision an ECC EK certificate the way manufacturers do (an NV index
 * readable with owner and its own auth, padded beyond the DER), read it
 * back, and put in a card; then remove the index again.
 */
static void test_node_ek_cert_from_nv(void)
{
    uint8_t *der = NULL, *got = NULL;
    int der_len = make_cert(&der);
    uint16_t size;
    TPM2B_NV_PUBLIC nvpub = {0};
    TPM2B_AUTH auth = {0};
    TPM2B_MAX_NV_BUFFER chunk;
    ESYS_TR nv = ESYS_TR_NONE;
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm1);
    struct dkm_nodecard *card = NULL;
    size_t got_len = 0;

    CU_ASSERT_FATAL(der_len > 0);
    size = (uint16_t)(der_len + 37); /* padding after the certificate */
    nvpub.nvPublic.nvIndex = DKM_EK_CERT_NV_ECC;
    nvpub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    nvpub.nvPublic.attributes = TPMA_NV_PPWRITE | TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE |
                                TPMA_NV_PPREAD | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD |
                                TPMA_NV_NO_DA;
    nvpub.nvPublic.dataSize = size;
    dkm_tpm_lock(tpm1);
    CU_ASSERT_EQUAL_FATAL(Esys_NV_DefineSpace(esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
                                              ESYS_TR_NONE, ESYS_TR_NONE, &auth, &nvpub,
                                              &nv),
                          TSS2_RC_SUCCESS);
    for (uint16_t off = 0; off < size; off += 512) {
        uint16_t n = (uint16_t)(size - off < 512 ? size - off : 512);

        memset(&chunk, 0, sizeof(chunk));
        chunk.size = n;
        if (off < der_len)
            memcpy(chunk.buffer, der + off,
                   (size_t)(der_len - off < n ? der_len - off : n));
        CU_ASSERT_EQUAL(Esys_NV_Write(esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                      ESYS_TR_NONE, &chunk, off),
                        TSS2_RC_SUCCESS);
    }
    dkm_tpm_unlock(tpm1);

    CU_ASSERT_EQUAL(dkm_node_read_ek_cert(tpm1, DKM_EK_ECCP256, &got, &got_len), 0);
    CU_ASSERT_EQUAL(got_len, (size_t)der_len);
    CU_ASSERT(got != NULL && memcmp(got, der, (size_t)der_len) == 0);
    free(got);

    CU_ASSERT_EQUAL(dkm_nodecard_from_tpm(tpm1, DKM_EK_ECCP256, "host-a", 0, &card), 0);
    CU_ASSERT_FATAL(card != NULL);
    CU_ASSERT_EQUAL(card->ek_cert_len, (size_t)der_len);
    dkm_nodecard_free(card);

    dkm_tpm_lock(tpm1);
    CU_ASSERT_EQUAL(Esys_NV_UndefineSpace(esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD,
                                          ESYS_TR_NONE, ESYS_TR_NONE),
                    TSS2_RC_SUCCESS);
    dkm_tpm_unlock(tpm1);
    got = (uint8_t *)"x";
    CU_ASSERT_EQUAL(dkm_node_read_ek_cert(tpm1, DKM_EK_ECCP256, &got, &got_len), 0);
    CU_ASSERT_PTR_NULL(got);
    OPENSSL_free(der);
    no_leak();
}

static void test_nodecard_from_tpm_round_trip(void)
{
    for (int type = DKM_EK_RSA2048; type <= DKM_EK_ECCP256; type++) {
        struct dkm_nodecard *card = NULL, *back = NULL;
        struct dkm_node_id id;
        char path[512];

        snprintf(path, sizeof(path), "%s/node-%d.card", dkm_test_tmpdir(), type);
        CU_ASSERT_FATAL(
            dkm_nodecard_from_tpm(tpm1, (enum dkm_ek_type)type, NULL, 0, &card) == 0);
        CU_ASSERT_FATAL(dkm_node_read_ek(tpm1, (enum dkm_ek_type)type, NULL, &id) == 0);
        CU_ASSERT(dkm_node_id_equal(&card->id, &id));
        CU_ASSERT(card->created > 1600000000u);
        CU_ASSERT_EQUAL(dkm_nodecard_write_file(card, path, false), 0);
        CU_ASSERT_FATAL(dkm_nodecard_read_file(path, &back) == 0);
        CU_ASSERT(dkm_node_id_equal(&back->id, &id));
        CU_ASSERT_EQUAL(back->ek_type, (enum dkm_ek_type)type);
        CU_ASSERT_STRING_EQUAL(back->hostname, card->hostname);
        CU_ASSERT_EQUAL(back->created, card->created);
        CU_ASSERT(same_public(&back->ek_public, &card->ek_public));
        dkm_nodecard_free(card);
        dkm_nodecard_free(back);
    }
    no_leak();
}

/* The persistent RSA EK's name as tpm2_readpublic prints it. */
static void test_node_name_matches_tpm2_tools(void)
{
    char cmd[1024], line[256] = {0}, buf[256], hex[DKM_NODE_ID_HEX_SIZE];
    struct dkm_node_id id;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "tpm2_readpublic -T '%s' -c 0x81010001 2>/dev/null",
             dkm_test_tcti(1));
    p = popen(cmd, "r");
    CU_ASSERT_FATAL(p != NULL);
    while (fgets(buf, sizeof(buf), p) != NULL)
        if (strncmp(buf, "name: ", 6) == 0 && line[0] == '\0')
            memcpy(line, buf, sizeof(line));
    CU_ASSERT_EQUAL(pclose(p), 0);
    CU_ASSERT_FATAL(dkm_node_read_ek(tpm1, DKM_EK_RSA2048, NULL, &id) == 0);
    dkm_node_id_hex(&id, hex);
    CU_ASSERT(strncmp(line + 6, hex, 68) == 0);
    no_leak();
}

static CU_TestInfo tpm_tests[] = {
    {"test_tpm_open_needs_tcti", test_tpm_open_needs_tcti},
    {"test_tpm_rc_mapping", test_tpm_rc_mapping},
    {"test_tpm_rc_policy_pcr", test_tpm_rc_policy_pcr},
    {"test_tpm_ek_policy_session_authorizes_parent",
     test_tpm_ek_policy_session_authorizes_parent},
    {"test_tpm_srk_and_encrypted_session", test_tpm_srk_and_encrypted_session},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo node_tests[] = {
    {"test_node_id_stable", test_node_id_stable},
    {"test_node_ids_differ_between_tpms", test_node_ids_differ_between_tpms},
    {"test_node_name_matches_tpm", test_node_name_matches_tpm},
    {"test_node_name_matches_tpm2_tools", test_node_name_matches_tpm2_tools},
    {"test_node_ek_template_rsa_matches_persistent",
     test_node_ek_template_rsa_matches_persistent},
    {"test_node_ek_created_when_not_persistent",
     test_node_ek_created_when_not_persistent},
    {"test_node_ek_template_ecc_matches_tpm2_tools",
     test_node_ek_template_ecc_matches_tpm2_tools},
    {"test_node_persistent_ecc_p384_ignored", test_node_persistent_ecc_p384_ignored},
    {"test_node_default_ek_type", test_node_default_ek_type},
    {"test_node_ek_cert_absent", test_node_ek_cert_absent},
    {"test_node_ek_cert_from_nv", test_node_ek_cert_from_nv},
    {"test_nodecard_from_tpm_round_trip", test_nodecard_from_tpm_round_trip},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"tpm", suite_init, suite_cleanup, NULL, NULL, tpm_tests},
    {"node", suite_init, suite_cleanup, NULL, NULL, node_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
