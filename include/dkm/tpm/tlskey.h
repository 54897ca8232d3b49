/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS keys held in the TPM, through the tpm2-openssl provider
 * ("tpm2"): a private OpenSSL library context with that provider and the
 * default one, whose default properties keep digests, ciphers and random
 * numbers off the TPM (only the key's own signatures run there); creating
 * an ECDSA P-256 key in the TPM under its storage root key, written as a
 * "TSS2 PRIVATE KEY" file, with a self-signed certificate; and loading
 * such a file. The file holds the key only as a TPM blob: another TPM
 * (or this one after a clear) cannot load it.
 *
 * tpm2-openssl opens a TPM connection of its own for each library
 * context: on a TPM shared by several connections (the kernel's
 * /dev/tpmrm0, a resource manager) it coexists with the ESAPI context of
 * tpm.h.
 */
#ifndef DKM_TPM_TLSKEY_H
#define DKM_TPM_TLSKEY_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/types.h>

#include "dkm/base/error.h"

/* What the library context prefers: TPM signatures, and nothing else of the TPM. */
#define DKM_TLS_TPM_PROPERTIES                                                           \
    "?tpm2.signature,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes"
/* How a key file held in a TPM begins. */
#define DKM_TLS_TPM_PEM_LABEL "-----BEGIN TSS2 PRIVATE KEY-----"

/* Whether the PEM file at path is a TPM-held key (a TSS2 PRIVATE KEY). */
bool dkm_tls_key_in_tpm(const char *path);

/*
 * A new library context with the default and tpm2 providers, tpm2
 * talking to tcti (NULL: $DKM_TCTI), and DKM_TLS_TPM_PROPERTIES as its
 * default properties. Free with OSSL_LIB_CTX_free.
 */
DKM_MUSTCHECK int dkm_tls_libctx_new(const char *tcti, OSSL_LIB_CTX **ret);

/* Load the private key of a TSS2 PRIVATE KEY file in libctx. */
DKM_MUSTCHECK int dkm_tls_key_load(OSSL_LIB_CTX *libctx, const char *path,
                                   EVP_PKEY **ret);

/*
 * The key of a TSS2 PRIVATE KEY file for libssl (or any library context):
 * an EC key of the default provider's kind whose signatures are made by
 * the TPM at tcti (NULL: $DKM_TCTI) through tpm2-openssl, in a library
 * context of its own (dkm_tls_libctx_new), one TPM2_Sign per signature;
 * digests, ciphers and the peer's signatures stay out of the TPM. Free
 * with EVP_PKEY_free (which closes that context and its TPM connection).
 */
DKM_MUSTCHECK int dkm_tls_key_open(const char *tcti, const char *path, EVP_PKEY **ret);

/*
 * Create an ECDSA P-256 key in the TPM at tcti, under the persistent SRK
 * (0x81000001) when there is one, else under tpm2-openssl's primary key
 * of the owner hierarchy; write it to key_path (mode 0600) and a
 * self-signed certificate for it (CN=common_name, valid for days) to
 * cert_path (mode 0644). Neither file is replaced unless overwrite.
 * ret_key_id (may be NULL) gets SHA-256 of the key's DER
 * SubjectPublicKeyInfo, the id a node entry binds.
 */
DKM_MUSTCHECK int dkm_tls_key_create(const char *tcti, const char *key_path,
                                     const char *cert_path, const char *common_name,
                                     unsigned days, bool overwrite,
                                     uint8_t ret_key_id[32]);

#endif
