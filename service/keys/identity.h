/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's identity (identity.c): made once by `dkmd init` (or
 * `dkmd init --join` for a further server) and read back by the keeper at
 * every start.
 */
#ifndef DKM_KS_IDENTITY_H
#define DKM_KS_IDENTITY_H

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/records.h"

struct svc_config;

/* File names in the state directory. */
#define KS_SIGNKEY_FILE "signkey"
#define KS_TRUST_FILE "trust" /* hex fingerprint of server list v1 */

/* Delegation window: starts this far back (clients' clock skew); lasts
 * [service] delegation_lifetime (24 h by default), and is renewed an hour
 * before it ends, or a quarter of its life for a shorter one. */
#define KS_DELEGATION_BACK (5 * 60)
#define KS_DELEGATION_RENEW (3600)

#define KS_PATH_MAX 4096

/*
 * dkmd init, TPM part: open the TPM (cfg->tcti), read the ECC EK, create
 * the signing key in the state directory (refused when one exists), write
 * server list v1 (this server alone, self-signed) and this server's node
 * entry into the database in one transaction, and store the trust
 * fingerprint in the state directory. ret_fpr gets its hex form. -ENODEV
 * (nothing done) when the configured TPM cannot be opened.
 */
DKM_MUSTCHECK int ks_identity_init(const struct svc_config *cfg,
                                   char ret_fpr[2 * DKM_FINGERPRINT_SIZE + 1]);

/*
 * dkmd init --join: check that trust (64 hex) is the fingerprint of the
 * database's server list v1 (read only, nothing written to the database),
 * open the TPM, create the signing key in the state directory (refused
 * when an identity exists), write the signed server card
 * (DKM_SERVERCARD_FILE) and the trust file. ret_card gets the card's path,
 * ret_id this server's node id.
 */
DKM_MUSTCHECK int ks_identity_join(const struct svc_config *cfg, const char *trust,
                                   char ret_card[KS_PATH_MAX],
                                   char ret_id[DKM_NODE_ID_HEX_SIZE]);

#endif
