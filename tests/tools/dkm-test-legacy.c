/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkm-test-legacy: turns a node entry into the form a dkmd of schema
 * version 1 wrote (format 1: no serial, no hostname), signed by the same
 * server's signing key, so that the upgrade test (keys_upgrade.sh) can
 * make a database as it was before version 2 without an old dkmd.
 *
 * Usage: dkm-test-legacy --tcti TCTI --signkey FILE ENTRY_HEX SIGNATURE_HEX
 * Prints the format 1 entry (without its signature) and its signature, in
 * hex, on one line. Exit 0, or 1 with a message.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/tpm.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"

static int fail(const char *what)
{
    fprintf(stderr, "dkm-test-legacy: %s: %s\n", what, dkm_error_detail());
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"tcti", required_argument, NULL, 't'},
        {"signkey", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *tcti = NULL, *signkey = NULL;
    struct dkm_node_entry e;
    struct dkm_tpm *tpm = NULL;
    struct dkm_signkey *sk = NULL;
    static uint8_t rec[DKM_RECORD_MAX], v1[DKM_RECORD_MAX], ek[sizeof(TPM2B_PUBLIC)];
    static char hex[2 * DKM_RECORD_MAX + 1];
    uint8_t sig[DKM_SIG_SIZE];
    size_t len = 0, slen = 0, ek_len = 0;
    struct dkm_writer w;
    int c, status = 1;

    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (c == 't')
            tcti = optarg;
        else if (c == 's')
            signkey = optarg;
        else
            return 2;
    }
    if (signkey == NULL || optind + 2 != argc) {
        fprintf(stderr, "usage: dkm-test-legacy --tcti TCTI --signkey FILE ENTRY_HEX "
                        "SIGNATURE_HEX\n");
        return 2;
    }
    if (dkm_hex_decode(argv[optind], strlen(argv[optind]), rec, sizeof(rec), &len) < 0 ||
        dkm_hex_decode(argv[optind + 1], strlen(argv[optind + 1]), rec + len,
                       sizeof(rec) - len, &slen) < 0 ||
        slen != DKM_SIG_SIZE || dkm_node_entry_decode(rec, len + slen, &e) < 0)
        return fail("the entry");
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&e.ek, ek, sizeof(ek), &ek_len) != TSS2_RC_SUCCESS)
        return fail("the EK");
    w = dkm_writer_init(v1, sizeof(v1));
    (void)dkm_put_bytes(&w, DKM_RECORD_MAGIC_NODE_ENTRY, 4);
    (void)dkm_put_u16be(&w, 1);
    (void)dkm_put_bytes(&w, e.node_id.bytes, DKM_NODE_ID_SIZE);
    (void)dkm_put_bytes(&w, ek, ek_len);
    (void)dkm_put_u8(&w, (uint8_t)e.role);
    (void)dkm_put_u64be(&w, e.authorized_at);
    (void)dkm_put_u64be(&w, e.revoked_at);
    (void)dkm_put_u8(&w, e.has_tls_key ? DKM_TLS_KEY_ID_SIZE : 0);
    if (e.has_tls_key)
        (void)dkm_put_bytes(&w, e.tls_key, DKM_TLS_KEY_ID_SIZE);
    (void)dkm_put_bytes(&w, e.signer.bytes, DKM_NODE_ID_SIZE);
    if (!dkm_writer_ok(&w))
        return fail("encoding");
    if (dkm_tpm_open(tcti, &tpm) < 0 || dkm_signkey_load(tpm, signkey, &sk) < 0 ||
        dkm_signkey_sign(sk, DKM_SIGCTX_NODE_ENTRY, v1, w.len, sig) < 0) {
        status = fail("signing");
        goto done;
    }
    if (dkm_hex_encode(v1, w.len, hex, sizeof(hex)) < 0) {
        status = fail("hex");
        goto done;
    }
    printf("%s ", hex);
    if (dkm_hex_encode(sig, sizeof(sig), hex, sizeof(hex)) < 0) {
        status = fail("hex");
        goto done;
    }
    printf("%s\n", hex);
    status = 0;
done:
    dkm_signkey_free(sk);
    dkm_tpm_close(tpm);
    return status;
}
