/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server cards: the signed binary form a joining dkmd writes, its strict
 * decoder, and a text armor parameterised by its label (node cards use
 * the same rules with their own label). The fields are validated the same
 * way when a card is signed and when it is decoded, so a card that is
 * written always reads back, and a card that reads back names a usable
 * EK and signing key that signed it.
 */
#include "dkm/trust/servercard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include "dkm/trust/armor.h"
#include "card.h"
#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "dkm/tpm/tpm.h"

/* Put a prefix before the current error detail. */
static int prefix_detail(int r, const char *prefix)
{
    return dkm_error_set(r, "%s: %s", prefix, dkm_error_detail());
}

/* The checks every field gets, whether signing or decoding. */
static int check_fields(struct dkm_servercard *card)
{
    enum dkm_ek_type type;
    EVP_PKEY *pkey = NULL;
    int r;

    r = dkm_tpm_ek_public_check(&card->ek, &type);
    if (r < 0) {
        r = prefix_detail(DKM_E_FORMAT, "server card: EK public area");
        goto done;
    }
    if (type != DKM_EK_ECCP256) {
        r = dkm_error_set(DKM_E_FORMAT, "server card: the EK is not the ECC P-256 EK "
                                        "(a server's identity is its ECC EK)");
        goto done;
    }
    /* The point must be on the curve, not only shaped like the template. */
    r = dkm_node_ek_pkey(&card->ek, &pkey);
    if (r < 0) {
        r = prefix_detail(DKM_E_FORMAT, "server card: EK public key");
        goto done;
    }
    r = dkm_node_id_from_public(&card->ek, &card->id);
    if (r < 0)
        goto done;
    r = dkm_p256_public_check(&card->sk);
    if (r < 0) {
        r = prefix_detail(DKM_E_FORMAT, "server card: signing key");
        goto done;
    }
    r = dkm_hostname_check(card->hostname);
    if (r < 0) {
        r = prefix_detail(DKM_E_FORMAT, "server card");
        goto done;
    }
    if (card->created == 0 || card->created > DKM_NODECARD_CREATED_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "server card: creation time %llu is out of range",
                          (unsigned long long)card->created);
        goto done;
    }
    r = 0;
done:
    EVP_PKEY_free(pkey);
    return r;
}

/* Everything before the signature. */
static int encode_body(const struct dkm_servercard *card, struct dkm_writer *w)
{
    uint8_t pub[sizeof(TPMT_PUBLIC)];
    size_t pub_len = 0, host_len = strlen(card->hostname);

    if (Tss2_MU_TPMT_PUBLIC_Marshal(&card->ek.publicArea, pub, sizeof(pub), &pub_len) !=
            TSS2_RC_SUCCESS ||
        pub_len == 0 || pub_len > DKM_CARD_EK_MAX)
        return dkm_error_set(DKM_E_FORMAT,
                             "server card: EK public area cannot be encoded");
    dkm_put_u32be(w, DKM_SERVERCARD_MAGIC);
    dkm_put_u16be(w, DKM_SERVERCARD_VERSION);
    dkm_put_len16(w, pub, pub_len);
    dkm_put_bytes(w, card->sk.point, DKM_P256_PUBLIC_SIZE);
    dkm_put_u8(w, (uint8_t)host_len);
    dkm_put_bytes(w, card->hostname, host_len);
    dkm_put_u64be(w, card->created);
    if (!dkm_writer_ok(w))
        return dkm_error_set(DKM_E_FORMAT, "server card does not fit in %u bytes",
                             DKM_SERVERCARD_MAX);
    return 0;
}

int dkm_servercard_sign(struct dkm_servercard *card, const struct dkm_signer *signer,
                        uint8_t **ret, size_t *ret_len)
{
    struct dkm_writer w;
    uint8_t *buf = NULL;
    int r;

    if (card == NULL || signer == NULL || signer->sign == NULL || ret == NULL ||
        ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_servercard_sign: missing argument");
    r = check_fields(card);
    if (r < 0)
        goto done;
    if (!dkm_node_id_equal(&signer->id, &card->id)) {
        r = dkm_error_set(-EINVAL, "server card: the signer is not the server the card "
                                   "describes");
        goto done;
    }
    buf = malloc(DKM_SERVERCARD_MAX);
    if (buf == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory encoding a server card");
        goto done;
    }
    w = dkm_writer_init(buf, DKM_SERVERCARD_MAX);
    r = encode_body(card, &w);
    if (r < 0)
        goto done;
    if (w.len + DKM_SIG_SIZE > DKM_SERVERCARD_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "server card does not fit in %u bytes",
                          DKM_SERVERCARD_MAX);
        goto done;
    }
    r = signer->sign(signer->ctx, DKM_SIGCTX_SERVER_CARD, buf, w.len, card->sig);
    if (r < 0)
        goto done;
    /* A signature that does not verify with the card's own key would
     * make a card nobody accepts: catch a mismatched signer here. */
    r = dkm_sig_verify(&card->sk, DKM_SIGCTX_SERVER_CARD, buf, w.len, card->sig);
    if (r < 0) {
        r = dkm_error_set(DKM_E_SIGNATURE, "server card: the signing key in the card did "
                                           "not make the signature");
        goto done;
    }
    if (!dkm_put_bytes(&w, card->sig, DKM_SIG_SIZE)) {
        r = dkm_error_set(DKM_E_FORMAT, "server card does not fit");
        goto done;
    }
    *ret = buf;
    *ret_len = w.len;
    buf = NULL;
    r = 0;
done:
    free(buf);
    return r;
}

int dkm_servercard_decode(const uint8_t *buf, size_t len, struct dkm_servercard *ret)
{
    static const char what[] = "server card";
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    struct dkm_servercard card;
    size_t signed_len;
    int r;

    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_servercard_decode: missing argument");
    memset(&card, 0, sizeof(card));
    if (len > DKM_SERVERCARD_MAX)
        return dkm_error_set(DKM_E_FORMAT, "server card is %zu bytes, more than %u", len,
                             DKM_SERVERCARD_MAX);
    r = dkm_card_get_header(&c, DKM_SERVERCARD_MAGIC, DKM_SERVERCARD_VERSION, what);
    if (r == 0)
        r = dkm_card_get_ek(&c, what, &card.ek);
    if (r < 0)
        return r;
    if (!dkm_get_bytes(&c, card.sk.point, DKM_P256_PUBLIC_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "server card: truncated in the signing key");
    r = dkm_card_get_hostname(&c, what, card.hostname);
    if (r < 0)
        return r;
    if (!dkm_get_u64be(&c, &card.created))
        return dkm_error_set(DKM_E_FORMAT, "server card: truncated in the creation time");
    signed_len = len - c.left;
    if (!dkm_get_bytes(&c, card.sig, DKM_SIG_SIZE))
        return dkm_error_set(DKM_E_FORMAT, "server card: truncated in the signature");
    if (!dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "server card: %zu trailing bytes", c.left);
    r = check_fields(&card);
    if (r < 0)
        return r;
    r = dkm_sig_verify(&card.sk, DKM_SIGCTX_SERVER_CARD, buf, signed_len, card.sig);
    if (r == DKM_E_SIGNATURE)
        return dkm_error_set(DKM_E_SIGNATURE,
                             "server card: the signature does not verify (the card was "
                             "altered or not signed by its signing key)");
    if (r < 0)
        return prefix_detail(r, "server card: signature");
    *ret = card;
    return 0;
}

/* ---- files -------------------------------------------------------------- */

int dkm_servercard_from_text(const char *text, size_t len, struct dkm_servercard *ret)
{
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    int r;

    r = dkm_armor_decode(DKM_SERVERCARD_LABEL, text, len, DKM_SERVERCARD_ARMOR_MAX, &bin,
                         &bin_len);
    if (r == 0)
        r = dkm_servercard_decode(bin, bin_len, ret);
    free(bin);
    return r;
}

int dkm_servercard_write_file(const uint8_t *buf, size_t len, const char *path,
                              bool overwrite)
{
    char *text = NULL;
    int r;

    if (buf == NULL || path == NULL)
        return dkm_error_set(-EINVAL, "dkm_servercard_write_file: missing argument");
    r = dkm_armor_encode(DKM_SERVERCARD_LABEL, buf, len, DKM_SERVERCARD_MAX, &text);
    if (r == 0)
        r = dkm_file_write(path, text, strlen(text), 0644, overwrite);
    free(text);
    return r;
}

int dkm_servercard_read_file(const char *path, struct dkm_servercard *ret)
{
    uint8_t *text = NULL;
    size_t text_len = 0;
    int r;

    if (path == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_servercard_read_file: missing argument");
    r = dkm_file_read(path, DKM_SERVERCARD_ARMOR_MAX, &text, &text_len);
    if (r == 0)
        r = dkm_servercard_from_text((const char *)text, text_len, ret);
    if (r < 0)
        r = prefix_detail(r, path);
    free(text);
    return r;
}
