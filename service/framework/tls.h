/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for dkmd (tls.c): the server context, the identity `dkmd init`
 * makes, certificate fingerprints and the key ids node entries bind.
 */
#ifndef DKM_SVC_TLS_H
#define DKM_SVC_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "dkm/base/error.h"

/* A TLS 1.2+ server context from PEM files; errors name the files. */
DKM_MUSTCHECK int svc_tls_server_ctx(const char *cert, const char *key, SSL_CTX **ret);

/*
 * dkmd init: an ECDSA P-256 key (mode 0600) and a self-signed certificate
 * for the host names and loopback addresses; refuses if either file
 * exists. Writes the SHA-256 fingerprint ("AB:CD:...") into fpr.
 */
DKM_MUSTCHECK int svc_tls_create_identity(const char *cert, const char *key, char *fpr,
                                          size_t fpr_size);

/* SHA-256 fingerprint of the certificate in a PEM file. */
DKM_MUSTCHECK int svc_tls_fingerprint(const char *cert, char *fpr, size_t fpr_size);

#define SVC_TLS_KEY_ID_SIZE 32 /* DKM_TLS_KEY_ID_SIZE of records.h */

/*
 * The key id a node entry binds (records.h): SHA-256 of the certificate's
 * DER SubjectPublicKeyInfo. From an X509, or from len bytes of PEM text
 * holding exactly one certificate (-EINVAL with a detail otherwise).
 */
DKM_MUSTCHECK int svc_tls_key_id(X509 *cert, uint8_t ret[SVC_TLS_KEY_ID_SIZE]);
DKM_MUSTCHECK int svc_tls_key_id_pem(const char *pem, size_t len,
                                     uint8_t ret[SVC_TLS_KEY_ID_SIZE]);

#endif
