/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node cards: building one from the TPM, the strict binary encoding, and
 * the text armor that card files use. Every field is validated the same
 * way whether a card is built or decoded, so a card that encodes always
 * decodes and a card that decodes names a usable EK.
 */
#include "dkm/trust/nodecard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "dkm/trust/armor.h"
#include "card.h"
#include "dkm/base/codec.h"
#include "dkm/base/log.h"

/* A marshaled RSA-2048 EK public area is about 310 bytes. */

/* Put a prefix before the current error detail (which must be copied
 * first: it is the buffer being written). */
static int prefix_detail(int r, const char *prefix)
{
    char d[512];

    snprintf(d, sizeof(d), "%s", dkm_error_detail());
    return dkm_error_set(r, "%s: %s", prefix, d);
}

int dkm_hostname_check(const char *name)
{
    size_t len, label = 0;

    if (name == NULL)
        return dkm_error_set(-EINVAL, "no hostname");
    len = strnlen(name, DKM_HOSTNAME_MAX + 1);
    if (len == 0)
        return dkm_error_set(-EINVAL, "hostname is empty");
    if (len > DKM_HOSTNAME_MAX)
        return dkm_error_set(-EINVAL, "hostname is longer than %d characters",
                             DKM_HOSTNAME_MAX);
    for (size_t i = 0; i <= len; i++) {
        char c = name[i];

        if (c == '.' || c == '\0') {
            if (label == 0)
                return dkm_error_set(-EINVAL, "hostname has an empty label at offset %zu",
                                     i);
            if (name[i - 1] == '-')
                return dkm_error_set(-EINVAL,
                                     "hostname label ends with '-' at offset %zu", i - 1);
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return dkm_error_set(-EINVAL, "hostname has character 0x%02x at offset %zu",
                                 (unsigned)(unsigned char)c, i);
        if (label == 0 && c == '-')
            return dkm_error_set(-EINVAL, "hostname label starts with '-' at offset %zu",
                                 i);
        if (++label > 63)
            return dkm_error_set(-EINVAL, "hostname label longer than 63 characters");
    }
    return 0;
}

void dkm_nodecard_free(struct dkm_nodecard *card)
{
    if (card == NULL)
        return;
    free(card->ek_cert);
    free(card);
}

int dkm_nodecard_new(const TPM2B_PUBLIC *ek, const uint8_t *cert, size_t cert_len,
                     const char *hostname, uint64_t created, struct dkm_nodecard **ret)
{
    struct dkm_nodecard *card = NULL;
    EVP_PKEY *pkey = NULL;
    int r = -ENOMEM;

    if (ek == NULL || ret == NULL || (cert == NULL && cert_len != 0))
        return dkm_error_set(-EINVAL, "dkm_nodecard_new: missing argument");
    card = calloc(1, sizeof(*card));
    if (card == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for a node card");
        goto done;
    }
    r = dkm_tpm_ek_public_check(ek, &card->ek_type);
    if (r < 0)
        goto done;
    /* The key itself must be usable: a point on the curve, an odd
     * 2048-bit modulus. */
    r = dkm_node_ek_pkey(ek, &pkey);
    if (r < 0)
        goto done;
    card->ek_public = *ek;
    r = dkm_node_id_from_public(ek, &card->id);
    if (r < 0)
        goto done;
    if (cert_len > 0) {
        r = dkm_node_ek_cert_check(cert, cert_len);
        if (r < 0)
            goto done;
        card->ek_cert = malloc(cert_len);
        if (card->ek_cert == NULL) {
            r = dkm_error_set(-ENOMEM, "out of memory for the EK certificate");
            goto done;
        }
        memcpy(card->ek_cert, cert, cert_len);
        card->ek_cert_len = cert_len;
    }
    r = dkm_hostname_check(hostname);
    if (r < 0) {
        r = DKM_E_FORMAT; /* the detail stays */
        goto done;
    }
    memcpy(card->hostname, hostname, strlen(hostname) + 1);
    if (created == 0 || created > DKM_NODECARD_CREATED_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "node card creation time %llu is out of range",
                          (unsigned long long)created);
        goto done;
    }
    card->created = created;
    *ret = card;
    card = NULL;
    r = 0;
done:
    EVP_PKEY_free(pkey);
    dkm_nodecard_free(card);
    return r;
}

int dkm_nodecard_from_tpm(struct dkm_tpm *tpm, enum dkm_ek_type type,
                          const char *hostname, uint64_t created,
                          struct dkm_nodecard **ret)
{
    char host[DKM_HOSTNAME_MAX + 2];
    TPM2B_PUBLIC ek;
    uint8_t *cert = NULL;
    size_t cert_len = 0;
    int r;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_nodecard_from_tpm: missing argument");
    if (hostname == NULL) {
        memset(host, 0, sizeof(host));
        if (gethostname(host, sizeof(host) - 1) < 0)
            return dkm_error_set(-errno, "cannot get the hostname");
        hostname = host;
    }
    if (created == 0)
        created = (uint64_t)time(NULL);
    r = dkm_node_read_ek(tpm, type, &ek, NULL);
    if (r < 0)
        return r;
    r = dkm_node_read_ek_cert(tpm, type, &cert, &cert_len);
    if (r < 0)
        return r;
    r = dkm_nodecard_new(&ek, cert, cert_len, hostname, created, ret);
    free(cert);
    return r;
}

int dkm_nodecard_encode(const struct dkm_nodecard *card, uint8_t **ret, size_t *ret_len)
{
    uint8_t pub[sizeof(TPMT_PUBLIC)];
    size_t pub_len = 0, host_len;
    struct dkm_writer w;
    uint8_t *buf = NULL;
    int r = -ENOMEM;

    if (card == NULL || ret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_nodecard_encode: missing argument");
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&card->ek_public.publicArea, pub, sizeof(pub),
                                    &pub_len) != TSS2_RC_SUCCESS ||
        pub_len > DKM_CARD_EK_MAX)
        return dkm_error_set(DKM_E_FORMAT, "node card: EK public area cannot be encoded");
    host_len = strnlen(card->hostname, sizeof(card->hostname));
    if (host_len == 0 || host_len > DKM_HOSTNAME_MAX ||
        card->ek_cert_len > DKM_EK_CERT_MAX)
        return dkm_error_set(DKM_E_FORMAT, "node card: a field is out of range");
    buf = malloc(DKM_NODECARD_MAX);
    if (buf == NULL)
        return dkm_error_set(-ENOMEM, "out of memory encoding a node card");
    w = dkm_writer_init(buf, DKM_NODECARD_MAX);
    dkm_put_u32be(&w, DKM_NODECARD_MAGIC);
    dkm_put_u16be(&w, DKM_NODECARD_VERSION);
    dkm_put_len16(&w, pub, pub_len);
    dkm_put_len16(&w, card->ek_cert, card->ek_cert_len);
    dkm_put_u8(&w, (uint8_t)host_len);
    dkm_put_bytes(&w, card->hostname, host_len);
    dkm_put_u64be(&w, card->created);
    if (!dkm_writer_ok(&w)) {
        r = dkm_error_set(DKM_E_FORMAT, "node card does not fit in %u bytes",
                          DKM_NODECARD_MAX);
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

int dkm_nodecard_decode(const uint8_t *buf, size_t len, struct dkm_nodecard **ret)
{
    static const char what[] = "node card";
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    const uint8_t *cert;
    size_t cert_len;
    char host[DKM_HOSTNAME_MAX + 1];
    TPM2B_PUBLIC ek;
    uint64_t created;
    int r;

    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_nodecard_decode: missing argument");
    if (len > DKM_NODECARD_MAX)
        return dkm_error_set(DKM_E_FORMAT, "node card is %zu bytes, more than %u", len,
                             DKM_NODECARD_MAX);
    r = dkm_card_get_header(&c, DKM_NODECARD_MAGIC, DKM_NODECARD_VERSION, what);
    if (r == 0)
        r = dkm_card_get_ek(&c, what, &ek);
    if (r < 0)
        return r;
    if (!dkm_get_len16_ref(&c, DKM_EK_CERT_MAX, &cert, &cert_len))
        return dkm_error_set(DKM_E_FORMAT,
                             "node card: EK certificate length is over %u or "
                             "past the end",
                             DKM_EK_CERT_MAX);
    r = dkm_card_get_hostname(&c, what, host);
    if (r < 0)
        return r;
    if (!dkm_get_u64be(&c, &created))
        return dkm_error_set(DKM_E_FORMAT, "node card: truncated in the creation time");
    if (!dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "node card: %zu trailing bytes", c.left);

    r = dkm_nodecard_new(&ek, cert_len > 0 ? cert : NULL, cert_len, host, created, ret);
    if (r < 0 && r != -ENOMEM)
        return prefix_detail(DKM_E_FORMAT, "node card");
    return r;
}

#define NODECARD_LABEL "DKM NODE CARD"

int dkm_nodecard_armor(const uint8_t *buf, size_t len, char **ret)
{
    return dkm_armor_encode(NODECARD_LABEL, buf, len, DKM_NODECARD_MAX, ret);
}

int dkm_nodecard_dearmor(const char *text, size_t len, uint8_t **ret, size_t *ret_len)
{
    return dkm_armor_decode(NODECARD_LABEL, text, len, DKM_NODECARD_ARMOR_MAX, ret,
                            ret_len);
}

int dkm_nodecard_write_file(const struct dkm_nodecard *card, const char *path,
                            bool overwrite)
{
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    char *text = NULL;
    int r;

    if (card == NULL || path == NULL)
        return dkm_error_set(-EINVAL, "dkm_nodecard_write_file: missing argument");
    r = dkm_nodecard_encode(card, &bin, &bin_len);
    if (r < 0)
        goto done;
    r = dkm_nodecard_armor(bin, bin_len, &text);
    if (r < 0)
        goto done;
    r = dkm_file_write(path, text, strlen(text), 0644, overwrite);
done:
    free(bin);
    free(text);
    return r;
}

int dkm_nodecard_read_file(const char *path, struct dkm_nodecard **ret)
{
    uint8_t *text = NULL, *bin = NULL;
    size_t text_len = 0, bin_len = 0;
    int r;

    if (path == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_nodecard_read_file: missing argument");
    r = dkm_file_read(path, DKM_NODECARD_ARMOR_MAX, &text, &text_len);
    if (r < 0)
        goto done;
    r = dkm_nodecard_dearmor((const char *)text, text_len, &bin, &bin_len);
    if (r == 0)
        r = dkm_nodecard_decode(bin, bin_len, ret);
    if (r < 0)
        r = prefix_detail(r, path);
done:
    free(text);
    free(bin);
    return r;
}
