/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's identity, made once by `dkmd init`: its node id (the ECC
 * EK's name), its TPM signing key (a file in the state directory), the
 * authorized server list v1 with this server alone, signed by itself, and
 * this server's own node entry. The list's fingerprint is what clients pin
 * and what this server pins for itself (state directory, file "trust"),
 * so a database whose list v1 was replaced is refused at start.
 *
 * `dkmd init --join` makes the identity of a further server: its signing
 * key, the pin of the existing list v1 (checked against the database,
 * which it only reads) and a signed server card for an administrator to
 * add with `dkmctl server add` on a server already on the list.
 *
 * The signed records it writes are stored as write.c describes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/nodecard.h"
#include "dkm/trust/records.h"
#include "dkm/trust/servercard.h"
#include "dkm/trust/sign.h"
#include "dkm/tpm/tpm.h"
#include "config.h"
#include "identity.h"
#include "migrate.h"
#include "write.h"

/* Write the pinned fingerprint: the server refuses a list v1 that is not this one. */
static int write_trust(const char *state_dir, const char *hex)
{
    char path[4096];
    int fd = -1, r = -EIO;

    snprintf(path, sizeof(path), "%s/%s", state_dir, KS_TRUST_FILE);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = dkm_error_set(-errno, "cannot create %s: %s", path, strerror(errno));
        goto done;
    }
    if (dprintf(fd, "%s\n", hex) < 0 || fsync(fd) < 0) {
        r = dkm_error_set(-EIO, "cannot write %s", path);
        goto done;
    }
    r = 0;
done:
    if (fd >= 0)
        close(fd);
    return r;
}

int ks_identity_init(const struct svc_config *cfg,
                     char ret_fpr[2 * DKM_FINGERPRINT_SIZE + 1])
{
    struct dkm_tpm *tpm = NULL;
    struct dkm_signkey *sk = NULL;
    struct dkm_server_list list = {.list_version = 1, .count = 1};
    struct dkm_node_entry entry = {.role = DKM_ROLE_SERVER, .serial = 1};
    struct dkm_state_head head = {.counter = 1};
    struct dkm_signer signer;
    TPM2B_PUBLIC ek;
    struct dkm_node_id id;
    uint8_t *list_rec = NULL, *entry_rec = NULL, *head_rec = NULL,
            fpr[DKM_FINGERPRINT_SIZE];
    uint8_t ek_bytes[sizeof(TPM2B_PUBLIC)];
    size_t list_len = 0, entry_len = 0, head_len = 0, ek_len = 0;
    char path[4096], hex[2 * DKM_FINGERPRINT_SIZE + 1],
        hostname[DKM_NODE_HOSTNAME_MAX + 1] = "";
    char authorized[32];
    PGconn *conn = NULL;
    bool created = false;
    uint64_t now = (uint64_t)time(NULL);
    int r;

    r = dkm_tpm_open(cfg->tcti, &tpm);
    if (r < 0) {
        r = dkm_error_set(-ENODEV, "cannot open the TPM %s: %s", cfg->tcti,
                          dkm_error_detail());
        goto done;
    }
    r = dkm_node_read_ek(tpm, DKM_EK_ECCP256, &ek, &id);
    if (r < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, KS_SIGNKEY_FILE);
    r = dkm_signkey_create(tpm, path, /* overwrite= */ false, &sk);
    if (r == -EEXIST) {
        r = dkm_error_set(-EEXIST, "%s exists: this server has an identity already",
                          path);
        goto done;
    }
    if (r < 0)
        goto done;
    created = true;
    signer = dkm_signer_signkey(sk, &id);

    list.issued_at = now;
    list.entries[0].node_id = id;
    list.entries[0].ek = ek;
    dkm_signkey_public(sk, &list.entries[0].sk);
    r = dkm_server_list_sign(&list, &signer, &list_rec, &list_len);
    if (r < 0)
        goto done;
    r = dkm_server_list_fingerprint(list_rec, list_len, fpr);
    if (r < 0)
        goto done;

    if (gethostname(hostname, sizeof(hostname) - 1) < 0 ||
        dkm_hostname_check(hostname) < 0)
        hostname[0] = '\0';
    entry.node_id = id;
    entry.ek = ek;
    entry.authorized_at = now;
    snprintf(entry.hostname, sizeof(entry.hostname), "%s", hostname);
    r = dkm_node_entry_sign(&entry, &signer, &entry_rec, &entry_len);
    if (r < 0)
        goto done;
    head.issued_at = now;
    r = dkm_state_head_sign(&head, &signer, &head_rec, &head_len);
    if (r < 0)
        goto done;
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&ek, ek_bytes, sizeof(ek_bytes), &ek_len) !=
        TSS2_RC_SUCCESS) {
        r = dkm_error_set(DKM_E_FORMAT, "cannot marshal the EK public area");
        goto done;
    }
    snprintf(authorized, sizeof(authorized), "%llu", (unsigned long long)now);

    r = svc_db_connect_blocking(cfg->db_conninfo, &conn);
    if (r < 0)
        goto done;
    {
        struct ks_stmt stmts[] = {
            {.sql = "INSERT INTO server_lists (version, body, signature, signer) "
                    "VALUES (1, $1, $2, $3)",
             .n = 3,
             .values = {(char *)list_rec, (char *)list_rec + list_len - DKM_SIG_SIZE,
                        (char *)id.bytes},
             .lengths = {(int)(list_len - DKM_SIG_SIZE), DKM_SIG_SIZE, DKM_NODE_ID_SIZE}},
            {.sql = "INSERT INTO nodes (node_id, ek_public, role, authorized_by, "
                    "signature, entry, hostname, created_at) VALUES ($1, $2, 'server', "
                    "$3, $4, $5, NULLIF($6, ''), to_timestamp($7::bigint))",
             .n = 7,
             .values = {(char *)id.bytes, (char *)ek_bytes, (char *)id.bytes,
                        (char *)entry_rec + entry_len - DKM_SIG_SIZE, (char *)entry_rec,
                        hostname, authorized},
             .lengths = {DKM_NODE_ID_SIZE, (int)ek_len, DKM_NODE_ID_SIZE, DKM_SIG_SIZE,
                         (int)(entry_len - DKM_SIG_SIZE), 0, 0}},
            {.sql = "INSERT INTO state_head (counter, body, signature, signer) "
                    "VALUES (1, $1, $2, $3)",
             .n = 3,
             .values = {(char *)head_rec, (char *)head_rec + head_len - DKM_SIG_SIZE,
                        (char *)id.bytes},
             .lengths = {(int)(head_len - DKM_SIG_SIZE), DKM_SIG_SIZE, DKM_NODE_ID_SIZE}},
        };

        r = ks_db_write(conn, stmts, 3);
        if (r == -EEXIST)
            r = dkm_error_set(-EEXIST, "the database has a server list v1 already: "
                                       "join this server to it instead of init");
        if (r < 0)
            goto done;
    }
    r = dkm_hex_encode(fpr, sizeof(fpr), hex, sizeof(hex));
    if (r < 0)
        goto done;
    r = write_trust(cfg->state_dir, hex);
    if (r < 0)
        goto done;
    {
        char idhex[DKM_NODE_ID_HEX_SIZE];

        dkm_node_id_hex(&id, idhex);
        log_event(DKM_LOG_NOTICE, "identity.created node=%s list_version=1", idhex);
    }
    memcpy(ret_fpr, hex, sizeof(hex));
done:
    /* A half-made identity would block the next init: take the key file back. */
    if (r < 0 && created)
        unlink(path);
    PQfinish(conn);
    free(list_rec);
    free(entry_rec);
    free(head_rec);
    dkm_signkey_free(sk);
    dkm_tpm_close(tpm);
    return r;
}

/* ---- dkmd init --join ---------------------------------------------------- */

/* Server list v1 from the database, checked against the pin. */
static int check_pin(const char *conninfo, const uint8_t pin[DKM_FINGERPRINT_SIZE])
{
    struct dkm_server_list list;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    uint8_t *rec = NULL, fpr[DKM_FINGERPRINT_SIZE];
    size_t blen, slen;
    char hex[2 * DKM_FINGERPRINT_SIZE + 1];
    int r;

    r = svc_db_connect_blocking(conninfo, &conn);
    if (r < 0)
        goto done;
    res = PQexecParams(conn, "SELECT body, signature FROM server_lists WHERE version = 1",
                       0, NULL, NULL, NULL, NULL, /* resultFormat= */ 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dkm_error_set(DKM_E_DB, "cannot read server list v1: %s",
                          PQresultErrorMessage(res));
        goto done;
    }
    if (PQntuples(res) != 1) {
        r = dkm_error_set(-ENOENT, "the database has no server list v1: run `dkmd init` "
                                   "on the first server, or check [database] conninfo");
        goto done;
    }
    blen = (size_t)PQgetlength(res, 0, 0);
    slen = (size_t)PQgetlength(res, 0, 1);
    if (slen != DKM_SIG_SIZE || blen == 0 || blen > DKM_RECORD_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "server list v1 in the database is malformed");
        goto done;
    }
    rec = malloc(blen + slen);
    if (rec == NULL) {
        r = -ENOMEM;
        goto done;
    }
    memcpy(rec, PQgetvalue(res, 0, 0), blen);
    memcpy(rec + blen, PQgetvalue(res, 0, 1), slen);
    r = dkm_server_list_fingerprint(rec, blen + slen, fpr);
    if (r < 0)
        goto done;
    if (memcmp(fpr, pin, sizeof(fpr)) != 0) {
        if (dkm_hex_encode(fpr, sizeof(fpr), hex, sizeof(hex)) < 0)
            hex[0] = '\0';
        r = dkm_error_set(
            DKM_E_SIGNATURE,
            "server list v1 in the database has the fingerprint %s, not the "
            "one given with --trust: wrong database or wrong fingerprint",
            hex);
        goto done;
    }
    r = dkm_server_list_verify_pinned(rec, blen + slen, pin, &list);
done:
    free(rec);
    PQclear(res);
    PQfinish(conn);
    return r;
}

int ks_identity_join(const struct svc_config *cfg, const char *trust,
                     char ret_card[KS_PATH_MAX], char ret_id[DKM_NODE_ID_HEX_SIZE])
{
    struct dkm_tpm *tpm = NULL;
    struct dkm_signkey *sk = NULL;
    struct dkm_servercard card = {0};
    struct dkm_signer signer;
    struct dkm_node_id id;
    uint8_t pin[DKM_FINGERPRINT_SIZE], *bin = NULL;
    size_t len = 0, bin_len = 0;
    char key_path[KS_PATH_MAX], card_path[KS_PATH_MAX], trust_path[KS_PATH_MAX];
    char hex[2 * DKM_FINGERPRINT_SIZE + 1];
    bool made_key = false, made_card = false;
    int r;

    if (trust == NULL || strlen(trust) != 2 * DKM_FINGERPRINT_SIZE ||
        dkm_hex_decode(trust, strlen(trust), pin, sizeof(pin), &len) < 0 ||
        len != sizeof(pin)) {
        r = dkm_error_set(-EINVAL, "--trust: the trust fingerprint of the deployment, 64 "
                                   "hex digits (what `dkmd init` printed on the first "
                                   "server)");
        goto done;
    }
    snprintf(key_path, sizeof(key_path), "%s/%s", cfg->state_dir, KS_SIGNKEY_FILE);
    snprintf(card_path, sizeof(card_path), "%s/%s", cfg->state_dir, DKM_SERVERCARD_FILE);
    snprintf(trust_path, sizeof(trust_path), "%s/%s", cfg->state_dir, KS_TRUST_FILE);
    if (access(key_path, F_OK) == 0 || access(trust_path, F_OK) == 0) {
        r = dkm_error_set(-EEXIST, "%s or %s exists: this server has an identity already",
                          key_path, trust_path);
        goto done;
    }
    /* Nothing is created before the pin is known to name this database's list. */
    r = check_pin(cfg->db_conninfo, pin);
    if (r < 0)
        goto done;
    r = dkm_tpm_open(cfg->tcti, &tpm);
    if (r < 0) {
        r = dkm_error_set(r, "cannot open the TPM %s (a server needs one): %s", cfg->tcti,
                          dkm_error_detail());
        goto done;
    }
    r = dkm_node_read_ek(tpm, DKM_EK_ECCP256, &card.ek, &id);
    if (r < 0)
        goto done;
    r = dkm_signkey_create(tpm, key_path, /* overwrite= */ false, &sk);
    if (r == -EEXIST) {
        r = dkm_error_set(-EEXIST, "%s exists: this server has an identity already",
                          key_path);
        goto done;
    }
    if (r < 0)
        goto done;
    made_key = true;
    signer = dkm_signer_signkey(sk, &id);
    dkm_signkey_public(sk, &card.sk);
    if (gethostname(card.hostname, sizeof(card.hostname) - 1) < 0 ||
        dkm_hostname_check(card.hostname) < 0) {
        r = dkm_error_set(-EINVAL, "this host's name is not a valid DNS name for the "
                                   "server card");
        goto done;
    }
    card.created = (uint64_t)time(NULL);
    r = dkm_servercard_sign(&card, &signer, &bin, &bin_len);
    if (r < 0)
        goto done;
    r = dkm_servercard_write_file(bin, bin_len, card_path, /* overwrite= */ false);
    if (r < 0)
        goto done;
    made_card = true;
    r = dkm_hex_encode(pin, sizeof(pin), hex, sizeof(hex));
    if (r < 0)
        goto done;
    r = write_trust(cfg->state_dir, hex);
    if (r < 0)
        goto done;
    dkm_node_id_hex(&id, ret_id);
    snprintf(ret_card, KS_PATH_MAX, "%s", card_path);
    /* It serves once a server on the list has added it (dkmctl server add). */
    log_event(DKM_LOG_NOTICE, "identity.joined node=%s listed=false", ret_id);
done:
    /* A half-made identity would block the next attempt: take it back. */
    if (r < 0 && made_key)
        unlink(key_path);
    if (r < 0 && made_card)
        unlink(card_path);
    free(bin);
    dkm_signkey_free(sk);
    dkm_tpm_close(tpm);
    return r;
}
