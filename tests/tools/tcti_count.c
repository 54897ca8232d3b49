/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A TCTI that counts TPM commands: it passes every command to another
 * TCTI and appends to a file, for each command, a line with its name and
 * the microseconds from sending it to its whole response. Loaded by
 * tpm2-tss's TCTI loader as "dkmcount" (libtss2-tcti-dkmcount.so on the
 * library path) or by its path, with the TCTI to wrap as its
 * configuration:
 *
 *   DKM_TCTI_COUNT_FILE=/tmp/x.log DKM_TCTI="dkmcount:swtpm:host=...,port=..."
 *
 * For tests and bench/tpm_count.sh only; never installed. Without
 * DKM_TCTI_COUNT_FILE it counts nothing and only passes commands on.
 *
 * It can also play a slow TPM, for tests of long operations: with
 * DKM_TCTI_DELAY_FILE set, each command waits the number of microseconds
 * that file holds when the command is sent (read every time, so a test
 * slows the TPM down and speeds it up again while it runs; no file, no
 * wait).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>

#define COUNT_MAGIC 0x646b6d636f756e74ULL /* "dkmcount" */

struct count_ctx {
    TSS2_TCTI_CONTEXT_COMMON_V2 common;
    TSS2_TCTI_CONTEXT *child;
    char path[4096];
    char delay_path[4096];
    uint32_t code;  /* of the command in flight */
    uint64_t start; /* when it was sent, in microseconds */
    bool pending;
};

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const struct {
    uint32_t code;
    const char *name;
} names[] = {
    {0x0000011f, "NV_UndefineSpaceSpecial"},
    {0x00000120, "EvictControl"},
    {0x00000121, "HierarchyControl"},
    {0x00000122, "NV_UndefineSpace"},
    {0x00000124, "ChangeEPS"},
    {0x00000125, "ChangePPS"},
    {0x00000126, "Clear"},
    {0x00000127, "ClearControl"},
    {0x00000128, "ClockSet"},
    {0x00000129, "HierarchyChangeAuth"},
    {0x0000012a, "NV_DefineSpace"},
    {0x0000012b, "PCR_Allocate"},
    {0x0000012c, "PCR_SetAuthPolicy"},
    {0x0000012d, "PP_Commands"},
    {0x0000012e, "SetPrimaryPolicy"},
    {0x0000012f, "FieldUpgradeStart"},
    {0x00000130, "ClockRateAdjust"},
    {0x00000131, "CreatePrimary"},
    {0x00000132, "NV_GlobalWriteLock"},
    {0x00000133, "GetCommandAuditDigest"},
    {0x00000134, "NV_Increment"},
    {0x00000135, "NV_SetBits"},
    {0x00000136, "NV_Extend"},
    {0x00000137, "NV_Write"},
    {0x00000138, "NV_WriteLock"},
    {0x00000139, "DictionaryAttackLockReset"},
    {0x0000013a, "DictionaryAttackParameters"},
    {0x0000013b, "NV_ChangeAuth"},
    {0x0000013c, "PCR_Event"},
    {0x0000013d, "PCR_Reset"},
    {0x0000013e, "SequenceComplete"},
    {0x0000013f, "SetAlgorithmSet"},
    {0x00000140, "SetCommandCodeAuditStatus"},
    {0x00000141, "FieldUpgradeData"},
    {0x00000142, "IncrementalSelfTest"},
    {0x00000143, "SelfTest"},
    {0x00000144, "Startup"},
    {0x00000145, "Shutdown"},
    {0x00000146, "StirRandom"},
    {0x00000147, "ActivateCredential"},
    {0x00000148, "Certify"},
    {0x00000149, "PolicyNV"},
    {0x0000014a, "CertifyCreation"},
    {0x0000014b, "Duplicate"},
    {0x0000014c, "GetTime"},
    {0x0000014d, "GetSessionAuditDigest"},
    {0x0000014e, "NV_Read"},
    {0x0000014f, "NV_ReadLock"},
    {0x00000150, "ObjectChangeAuth"},
    {0x00000151, "PolicySecret"},
    {0x00000152, "Rewrap"},
    {0x00000153, "Create"},
    {0x00000154, "ECDH_ZGen"},
    {0x00000155, "HMAC"},
    {0x00000156, "Import"},
    {0x00000157, "Load"},
    {0x00000158, "Quote"},
    {0x00000159, "RSA_Decrypt"},
    {0x0000015b, "HMAC_Start"},
    {0x0000015c, "SequenceUpdate"},
    {0x0000015d, "Sign"},
    {0x0000015e, "Unseal"},
    {0x00000160, "PolicySigned"},
    {0x00000161, "ContextLoad"},
    {0x00000162, "ContextSave"},
    {0x00000163, "ECDH_KeyGen"},
    {0x00000164, "EncryptDecrypt"},
    {0x00000165, "FlushContext"},
    {0x00000167, "LoadExternal"},
    {0x00000168, "MakeCredential"},
    {0x00000169, "NV_ReadPublic"},
    {0x0000016a, "PolicyAuthorize"},
    {0x0000016b, "PolicyAuthValue"},
    {0x0000016c, "PolicyCommandCode"},
    {0x0000016d, "PolicyCounterTimer"},
    {0x0000016e, "PolicyCpHash"},
    {0x0000016f, "PolicyLocality"},
    {0x00000170, "PolicyNameHash"},
    {0x00000171, "PolicyOR"},
    {0x00000172, "PolicyTicket"},
    {0x00000173, "ReadPublic"},
    {0x00000174, "RSA_Encrypt"},
    {0x00000176, "StartAuthSession"},
    {0x00000177, "VerifySignature"},
    {0x00000178, "ECC_Parameters"},
    {0x00000179, "FirmwareRead"},
    {0x0000017a, "GetCapability"},
    {0x0000017b, "GetRandom"},
    {0x0000017c, "GetTestResult"},
    {0x0000017d, "Hash"},
    {0x0000017e, "PCR_Read"},
    {0x0000017f, "PolicyPCR"},
    {0x00000180, "PolicyRestart"},
    {0x00000181, "ReadClock"},
    {0x00000182, "PCR_Extend"},
    {0x00000183, "PCR_SetAuthValue"},
    {0x00000184, "NV_Certify"},
    {0x00000185, "EventSequenceComplete"},
    {0x00000186, "HashSequenceStart"},
    {0x00000187, "PolicyPhysicalPresence"},
    {0x00000188, "PolicyDuplicationSelect"},
    {0x00000189, "PolicyGetDigest"},
    {0x0000018a, "TestParms"},
    {0x0000018b, "Commit"},
    {0x0000018c, "PolicyPassword"},
    {0x0000018d, "ZGen_2Phase"},
    {0x0000018e, "EC_Ephemeral"},
    {0x0000018f, "PolicyNvWritten"},
    {0x00000190, "PolicyTemplate"},
    {0x00000191, "CreateLoaded"},
    {0x00000192, "PolicyAuthorizeNV"},
    {0x00000193, "EncryptDecrypt2"},
    {0x00000194, "AC_GetCapability"},
    {0x00000195, "AC_Send"},
    {0x00000196, "Policy_AC_SendSelect"},
    {0x00000197, "CertifyX509"},
    {0x00000198, "ACT_SetTimeout"},
    {0x20000000, "Vendor_TCG_Test"},
};

/* Exported, as every TCTI's is; prototypes keep -Wmissing-prototypes. */
const TSS2_TCTI_INFO *Tss2_Tcti_Info(void);

static const char *command_name(uint32_t code, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].code == code)
            return names[i].name;
    snprintf(buf, size, "0x%08x", (unsigned)code);
    return buf;
}

static struct count_ctx *ctx_of(TSS2_TCTI_CONTEXT *t)
{
    struct count_ctx *c = (struct count_ctx *)t;

    return c != NULL && c->common.v1.magic == COUNT_MAGIC ? c : NULL;
}

/* Wait as long as the delay file says, if there is one. */
static void delay(const struct count_ctx *c)
{
    unsigned long us = 0;
    struct timespec ts;
    FILE *f;

    if (c->delay_path[0] == '\0' || (f = fopen(c->delay_path, "re")) == NULL)
        return;
    if (fscanf(f, "%lu", &us) != 1)
        us = 0;
    fclose(f);
    ts.tv_sec = (time_t)(us / 1000000u);
    ts.tv_nsec = (long)(us % 1000000u) * 1000L;
    while (us > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static TSS2_RC count_transmit(TSS2_TCTI_CONTEXT *t, size_t size, const uint8_t *command)
{
    struct count_ctx *c = ctx_of(t);

    if (c == NULL)
        return TSS2_TCTI_RC_BAD_CONTEXT;
    delay(c);
    if (size >= 10) {
        c->code = (uint32_t)command[6] << 24 | (uint32_t)command[7] << 16 |
                  (uint32_t)command[8] << 8 | command[9];
        c->pending = true;
        c->start = now_us();
    }
    return Tss2_Tcti_Transmit(c->child, size, command);
}

static TSS2_RC count_receive(TSS2_TCTI_CONTEXT *t, size_t *size, uint8_t *response,
                             int32_t timeout)
{
    struct count_ctx *c = ctx_of(t);
    TSS2_RC rc;
    char buf[16];
    FILE *f;

    if (c == NULL)
        return TSS2_TCTI_RC_BAD_CONTEXT;
    rc = Tss2_Tcti_Receive(c->child, size, response, timeout);
    /* A call without a buffer only asks for the size; the answer is in
     * when a buffer was filled. */
    if (rc == TSS2_RC_SUCCESS && response != NULL && c->pending) {
        c->pending = false;
        if (c->path[0] != '\0' && (f = fopen(c->path, "ae")) != NULL) {
            fprintf(f, "%s %llu\n", command_name(c->code, buf, sizeof(buf)),
                    (unsigned long long)(now_us() - c->start));
            fclose(f);
        }
    }
    return rc;
}

static void count_finalize(TSS2_TCTI_CONTEXT *t)
{
    struct count_ctx *c = ctx_of(t);

    if (c != NULL && c->child != NULL)
        Tss2_TctiLdr_Finalize(&c->child);
}

static TSS2_RC count_cancel(TSS2_TCTI_CONTEXT *t)
{
    struct count_ctx *c = ctx_of(t);

    return c == NULL ? TSS2_TCTI_RC_BAD_CONTEXT : Tss2_Tcti_Cancel(c->child);
}

static TSS2_RC count_poll_handles(TSS2_TCTI_CONTEXT *t, TSS2_TCTI_POLL_HANDLE *handles,
                                  size_t *num)
{
    struct count_ctx *c = ctx_of(t);

    return c == NULL ? TSS2_TCTI_RC_BAD_CONTEXT
                     : Tss2_Tcti_GetPollHandles(c->child, handles, num);
}

static TSS2_RC count_set_locality(TSS2_TCTI_CONTEXT *t, uint8_t locality)
{
    struct count_ctx *c = ctx_of(t);

    return c == NULL ? TSS2_TCTI_RC_BAD_CONTEXT
                     : Tss2_Tcti_SetLocality(c->child, locality);
}

static TSS2_RC count_make_sticky(TSS2_TCTI_CONTEXT *t, TPM2_HANDLE *handle,
                                 uint8_t sticky)
{
    struct count_ctx *c = ctx_of(t);

    return c == NULL ? TSS2_TCTI_RC_BAD_CONTEXT
                     : Tss2_Tcti_MakeSticky(c->child, handle, sticky);
}

static TSS2_RC count_init(TSS2_TCTI_CONTEXT *t, size_t *size, const char *conf)
{
    struct count_ctx *c = (struct count_ctx *)t;
    const char *path = getenv("DKM_TCTI_COUNT_FILE");
    const char *delay_path = getenv("DKM_TCTI_DELAY_FILE");
    TSS2_RC rc;

    if (size == NULL)
        return TSS2_TCTI_RC_BAD_VALUE;
    if (t == NULL) {
        *size = sizeof(*c);
        return TSS2_RC_SUCCESS;
    }
    if (*size < sizeof(*c) || conf == NULL || conf[0] == '\0')
        return TSS2_TCTI_RC_BAD_VALUE;
    memset(c, 0, sizeof(*c));
    if (path != NULL && strlen(path) < sizeof(c->path))
        strcpy(c->path, path);
    if (delay_path != NULL && strlen(delay_path) < sizeof(c->delay_path))
        strcpy(c->delay_path, delay_path);
    rc = Tss2_TctiLdr_Initialize(conf, &c->child);
    if (rc != TSS2_RC_SUCCESS)
        return rc;
    c->common.v1.magic = COUNT_MAGIC;
    c->common.v1.version = 2;
    c->common.v1.transmit = count_transmit;
    c->common.v1.receive = count_receive;
    c->common.v1.finalize = count_finalize;
    c->common.v1.cancel = count_cancel;
    c->common.v1.getPollHandles = count_poll_handles;
    c->common.v1.setLocality = count_set_locality;
    c->common.makeSticky = count_make_sticky;
    return TSS2_RC_SUCCESS;
}

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void)
{
    static const TSS2_TCTI_INFO info = {
        .version = 2,
        .name = "dkmcount",
        .description = "counts TPM commands into $DKM_TCTI_COUNT_FILE",
        .config_help = "the configuration of the TCTI to wrap, e.g. swtpm:port=2321",
        .init = count_init,
    };

    return &info;
}
