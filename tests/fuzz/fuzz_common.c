/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fixtures of the fuzz targets (tests/fuzz/fuzz.h): the verdict flag,
 * the fixed keys derived from labels, deterministic ECDSA with them, and
 * a private scratch directory. Deterministic signatures make the encoded
 * server list the targets pin the same in every process, so the seeds the
 * generator wrote verify against the trust a target builds on its own.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "dkm/tpm/tpm.h"

static bool accepted;

void dkm_fuzz_accept(void)
{
    accepted = true;
}

void dkm_fuzz_reset(void)
{
    accepted = false;
}

bool dkm_fuzz_accepted(void)
{
    return accepted;
}

void dkm_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

/* SHA-256 of label || data. */
static void label_hash(const char *label, const void *data, size_t len, uint8_t out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;

    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, label, strlen(label)) != 1 ||
        (len > 0 && EVP_DigestUpdate(c, data, len) != 1) ||
        EVP_DigestFinal_ex(c, out, &n) != 1 || n != 32) {
        fprintf(stderr, "fuzz: SHA-256 failed\n");
        abort();
    }
    EVP_MD_CTX_free(c);
}

/*
 * A P-256 key pair whose private scalar is SHA-256(label): the public
 * point into pub, the pair as an EVP_PKEY into *ret (may be NULL).
 */
static int derive_p256(const char *label, struct dkm_p256_public *pub, EVP_PKEY **ret)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EC_POINT *pt = NULL;
    BIGNUM *d = NULL;
    uint8_t scalar[32];
    int r = -1;

    label_hash(label, NULL, 0, scalar);
    d = BN_bin2bn(scalar, sizeof(scalar), NULL);
    if (g == NULL || bld == NULL || d == NULL || BN_is_zero(d) ||
        BN_cmp(d, EC_GROUP_get0_order(g)) >= 0)
        goto done;
    pt = EC_POINT_new(g);
    if (pt == NULL || !EC_POINT_mul(g, pt, d, NULL, NULL, NULL) ||
        EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub->point,
                           sizeof(pub->point), NULL) != sizeof(pub->point))
        goto done;
    if (ret != NULL) {
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256",
                                             0) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub->point,
                                              sizeof(pub->point)) ||
            (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
            (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
            EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, ret, EVP_PKEY_KEYPAIR, params) != 1)
            goto done;
    }
    r = 0;
done:
    OPENSSL_cleanse(scalar, sizeof(scalar));
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(pt);
    BN_clear_free(d);
    EC_GROUP_free(g);
    return r;
}

/* A TCG default ECC EK public area whose point is derived from label. */
static int derive_ek(const char *label, TPM2B_PUBLIC *ret, struct dkm_node_id *ret_id)
{
    struct dkm_p256_public pub;
    TPM2B_PUBLIC ek;

    if (derive_p256(label, &pub, NULL) < 0 ||
        dkm_tpm_ek_template(DKM_EK_ECCP256, &ek) < 0)
        return -1;
    memcpy(ek.publicArea.unique.ecc.x.buffer, pub.point + 1, 32);
    ek.publicArea.unique.ecc.x.size = 32;
    memcpy(ek.publicArea.unique.ecc.y.buffer, pub.point + 33, 32);
    ek.publicArea.unique.ecc.y.size = 32;
    if (dkm_tpm_ek_public_check(&ek, NULL) < 0 ||
        dkm_node_id_from_public(&ek, ret_id) < 0)
        return -1;
    *ret = ek;
    return 0;
}

/*
 * ECDSA P-256 over a digest with a nonce derived from the key and the
 * digest (k = SHA-256(label || d || digest || counter)), so the same
 * message always gets the same signature. Verifies as any ECDSA
 * signature does; a fixture, never to be used with a real key.
 */
static int det_ecdsa(EVP_PKEY *key, const uint8_t digest[32], uint8_t sig[DKM_SIG_SIZE])
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *d = NULL, *k = BN_new(), *z = BN_new(), *x = BN_new(), *rr = BN_new(),
           *s = BN_new(), *kinv = NULL;
    EC_POINT *R = NULL;
    const BIGNUM *n;
    uint8_t dbytes[32], in[32 + 32 + 1], kb[32];
    int r = -1;

    if (g == NULL || bn == NULL || k == NULL || z == NULL || x == NULL || rr == NULL ||
        s == NULL || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
        BN_bn2binpad(d, dbytes, sizeof(dbytes)) != sizeof(dbytes))
        goto done;
    n = EC_GROUP_get0_order(g);
    R = EC_POINT_new(g);
    if (R == NULL || BN_bin2bn(digest, 32, z) == NULL || !BN_nnmod(z, z, n, bn))
        goto done;
    memcpy(in, dbytes, 32);
    memcpy(in + 32, digest, 32);
    for (uint8_t counter = 0; counter < 16; counter++) {
        in[64] = counter;
        label_hash("dkm fuzz ecdsa nonce", in, sizeof(in), kb);
        if (BN_bin2bn(kb, sizeof(kb), k) == NULL || BN_is_zero(k) || BN_cmp(k, n) >= 0)
            continue;
        if (!EC_POINT_mul(g, R, k, NULL, NULL, bn) ||
            !EC_POINT_get_affine_coordinates(g, R, x, NULL, bn) ||
            !BN_nnmod(rr, x, n, bn) || BN_is_zero(rr))
            continue;
        BN_free(kinv);
        kinv = BN_mod_inverse(NULL, k, n, bn);
        /* s = k^-1 (z + r d) mod n */
        if (kinv == NULL || !BN_mod_mul(s, rr, d, n, bn) || !BN_mod_add(s, s, z, n, bn) ||
            !BN_mod_mul(s, s, kinv, n, bn) || BN_is_zero(s))
            continue;
        if (BN_bn2binpad(rr, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
            goto done;
        r = 0;
        break;
    }
done:
    OPENSSL_cleanse(dbytes, sizeof(dbytes));
    OPENSSL_cleanse(in, sizeof(in));
    OPENSSL_cleanse(kb, sizeof(kb));
    EC_POINT_free(R);
    BN_clear_free(d);
    BN_clear_free(k);
    BN_clear_free(kinv);
    BN_free(z);
    BN_free(x);
    BN_free(rr);
    BN_free(s);
    BN_CTX_free(bn);
    EC_GROUP_free(g);
    return r;
}

int dkm_fuzz_sign(EVP_PKEY *key, const char *context, const void *msg, size_t len,
                  uint8_t ret_sig[DKM_SIG_SIZE])
{
    uint8_t digest[32];

    if (dkm_sig_digest(context, msg, len, digest) < 0)
        return -1;
    return det_ecdsa(key, digest, ret_sig);
}

static int server_sign_cb(void *ctx, const char *context, const void *msg, size_t len,
                          uint8_t ret_sig[DKM_SIG_SIZE])
{
    (void)ctx;
    return dkm_fuzz_sign(dkm_fuzz_keys()->server_sk, context, msg, len, ret_sig) == 0
               ? 0
               : DKM_E_CRYPTO;
}

struct dkm_signer dkm_fuzz_server_signer(void)
{
    struct dkm_signer s = {.sign = server_sign_cb, .id = dkm_fuzz_keys()->server_id};

    return s;
}

void dkm_fuzz_group_key(const char *group, uint32_t version, uint8_t ret[32])
{
    uint8_t buf[DKM_GROUP_MAX + 5];
    size_t n = strnlen(group, DKM_GROUP_MAX);

    memcpy(buf, group, n);
    buf[n] = 0;
    buf[n + 1] = (uint8_t)(version >> 24);
    buf[n + 2] = (uint8_t)(version >> 16);
    buf[n + 3] = (uint8_t)(version >> 8);
    buf[n + 4] = (uint8_t)version;
    label_hash("dkm fuzz group key", buf, n + 5, ret);
}

static struct dkm_fuzz_keys keys;
static bool keys_made;

static int make_keys(struct dkm_fuzz_keys *k)
{
    struct dkm_signer signer;
    uint8_t *enc = NULL;
    size_t len = 0;
    int r = -1;

    if (derive_ek("dkm fuzz server EK", &k->server_ek, &k->server_id) < 0 ||
        derive_p256("dkm fuzz server SK", &k->server_sk_pub, &k->server_sk) < 0 ||
        derive_p256("dkm fuzz delegated key", &k->delegated_pub, &k->delegated) < 0 ||
        derive_ek("dkm fuzz node EK", &k->node_ek, &k->node_id) < 0)
        return -1;

    k->trust.list_version = 1;
    k->trust.issued_at = DKM_FUZZ_NOW - 86400;
    k->trust.count = 1;
    k->trust.entries[0].node_id = k->server_id;
    k->trust.entries[0].ek = k->server_ek;
    k->trust.entries[0].sk = k->server_sk_pub;
    signer = (struct dkm_signer){.sign = server_sign_cb, .id = k->server_id};
    if (dkm_server_list_sign(&k->trust, &signer, &enc, &len) < 0)
        return -1;
    if (len <= sizeof(k->trust_encoded) &&
        dkm_server_list_fingerprint(enc, len, k->trust_pin) == 0) {
        memcpy(k->trust_encoded, enc, len);
        k->trust_encoded_len = len;
        r = 0;
    }
    free(enc);
    return r;
}

const struct dkm_fuzz_keys *dkm_fuzz_keys(void)
{
    if (!keys_made) {
        /* Set first: signing the list calls back into dkm_fuzz_keys(). */
        keys_made = true;
        if (make_keys(&keys) < 0) {
            fprintf(stderr, "fuzz: cannot make the fixed test keys: %s\n",
                    dkm_error_detail());
            abort();
        }
    }
    return &keys;
}

static char tmpdir[PATH_MAX];

static void remove_tmpdir(void)
{
    char cmd[PATH_MAX + 16];

    if (tmpdir[0] == '\0')
        return;
    /* mkdtemp's name from a fixed template: no quoting needed. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", tmpdir);
}

const char *dkm_fuzz_tmpdir(void)
{
    const char *base;

    if (tmpdir[0] != '\0')
        return tmpdir;
    base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/dkm-fuzz-XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "fuzz: cannot make a directory under %s: %s\n", base,
                strerror(errno));
        abort();
    }
    atexit(remove_tmpdir);
    return tmpdir;
}

int dkm_fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t off = 0;

    if (fd < 0)
        return -1;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);

        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    return close(fd) == 0 ? 0 : -1;
}
