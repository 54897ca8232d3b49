/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS keys held in the TPM (include/dkm/tpm/tlskey.h), through
 * tpm2-openssl: its library context, key creation with a self-signed
 * certificate, key loading, and the key handed to libssl.
 *
 * Why a key of our own for libssl: with the TPM key in libssl's library
 * context, tpm2-openssl takes the whole signature, hashing included, into
 * the TPM as hash sequence objects that the handshake duplicates, and,
 * preferred for signatures, also the verification of the server's
 * signature (its public key loaded into the TPM): more transient objects
 * than a TPM has (three on swtpm and on many chips), so the handshake
 * fails. libssl gets instead an EC key of the default provider whose one
 * private operation, signing a digest, is a TPM2_Sign through tpm2-openssl
 * in the private library context (EVP_PKEY_sign, one object: the key).
 * OpenSSL 3.0 offers that hook only through the legacy EC_KEY_METHOD,
 * hence the deprecated calls in this one file (as an engine's key would).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "dkm/tpm/tlskey.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#include "dkm/base/file.h"
#include "dkm/tpm/tpm.h"

static int ossl_fail(int r, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    return dkm_error_set(r, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

bool dkm_tls_key_in_tpm(const char *path)
{
    char line[64] = "";
    FILE *f = path != NULL ? fopen(path, "re") : NULL;
    bool yes;

    if (f == NULL)
        return false;
    yes = fgets(line, sizeof(line), f) != NULL &&
          strncmp(line, DKM_TLS_TPM_PEM_LABEL, strlen(DKM_TLS_TPM_PEM_LABEL)) == 0;
    fclose(f);
    return yes;
}

/*
 * tpm2-openssl 1.1 takes its TCTI from $TPM2OPENSSL_TCTI when it
 * starts (its `tcti` configuration setting does not reach it through
 * OpenSSL 3.0): set it for the load and put back what was there, under
 * a lock, so that two contexts made at once each get their own.
 */
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;

static int load_tpm2(OSSL_LIB_CTX *libctx, const char *tcti)
{
    const char *was = getenv("TPM2OPENSSL_TCTI");
    char *saved = was != NULL ? strdup(was) : NULL;
    OSSL_PROVIDER *p;
    int r = 0;

    if (was != NULL && saved == NULL)
        return dkm_error_set(-ENOMEM, "out of memory");
    pthread_mutex_lock(&env_lock);
    if (setenv("TPM2OPENSSL_TCTI", tcti, 1) < 0) {
        r = dkm_error_set(-errno, "cannot pass the TCTI to the tpm2 provider");
    } else {
        p = OSSL_PROVIDER_load(libctx, "tpm2");
        if (p == NULL)
            r = ossl_fail(DKM_E_TPM, "cannot load the tpm2 provider (tpm2-openssl) for "
                                     "the TPM at the configured TCTI");
        if (saved != NULL)
            (void)setenv("TPM2OPENSSL_TCTI", saved, 1);
        else
            (void)unsetenv("TPM2OPENSSL_TCTI");
    }
    pthread_mutex_unlock(&env_lock);
    free(saved);
    return r;
}

/* The default provider and the default properties come from a configuration. */
int dkm_tls_libctx_new(const char *tcti, OSSL_LIB_CTX **ret)
{
    static const char text[] = "openssl_conf = dkm_tls_init\n"
                               "[dkm_tls_init]\n"
                               "providers = dkm_tls_providers\n"
                               "alg_section = dkm_tls_algs\n"
                               "[dkm_tls_providers]\n"
                               "default = dkm_tls_default\n"
                               "[dkm_tls_default]\n"
                               "activate = 1\n"
                               "[dkm_tls_algs]\n"
                               "default_properties = " DKM_TLS_TPM_PROPERTIES "\n";
    OSSL_LIB_CTX *libctx = NULL;
    CONF *conf = NULL;
    BIO *bio = NULL;
    long line = 0;
    int r;

    if (tcti == NULL || tcti[0] == '\0')
        tcti = getenv("DKM_TCTI");
    if (tcti == NULL || tcti[0] == '\0')
        return dkm_error_set(DKM_E_CONFIG, "a TLS key in the TPM needs a TPM: set tcti "
                                           "or DKM_TCTI");
    r = DKM_E_CRYPTO;
    OPENSSL_load_builtin_modules();
    libctx = OSSL_LIB_CTX_new();
    conf = libctx != NULL ? NCONF_new_ex(libctx, NULL) : NULL;
    bio = BIO_new_mem_buf(text, -1);
    if (conf == NULL || bio == NULL) {
        r = ossl_fail(-ENOMEM, "cannot make a library context for the TPM's TLS key");
        goto done;
    }
    ERR_set_mark();
    if (NCONF_load_bio(conf, bio, &line) <= 0 || CONF_modules_load(conf, NULL, 0) <= 0 ||
        !OSSL_PROVIDER_available(libctx, "default")) {
        r = ossl_fail(DKM_E_CRYPTO, "cannot configure the TLS library context");
        ERR_pop_to_mark();
        goto done;
    }
    r = load_tpm2(libctx, tcti);
    ERR_pop_to_mark();
    if (r < 0)
        goto done;
    *ret = libctx;
    libctx = NULL;
    r = 0;
done:
    BIO_free(bio);
    NCONF_free(conf);
    OSSL_LIB_CTX_free(libctx);
    return r;
}

int dkm_tls_key_load(OSSL_LIB_CTX *libctx, const char *path, EVP_PKEY **ret)
{
    OSSL_STORE_CTX *st;
    EVP_PKEY *pkey = NULL;
    int r;

    ERR_set_mark();
    st = OSSL_STORE_open_ex(path, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    while (st != NULL && pkey == NULL && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);

        if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
        if (info == NULL)
            break;
    }
    r = pkey != NULL ? 0
                     : ossl_fail(DKM_E_TPM, "the TPM does not load the TLS key (a key "
                                            "file of another TPM, or a cleared one?)");
    OSSL_STORE_close(st);
    ERR_pop_to_mark();
    if (r == 0)
        *ret = pkey;
    return r;
}

static int keygen(OSSL_LIB_CTX *libctx, bool under_srk, EVP_PKEY **ret)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(libctx, "EC", "provider=tpm2");
    unsigned int parent = DKM_SRK_HANDLE;
    OSSL_PARAM params[3];
    size_t n = 0;
    int ok;

    params[n++] =
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0);
    if (under_srk)
        params[n++] = OSSL_PARAM_construct_uint("parent", &parent);
    params[n] = OSSL_PARAM_construct_end();
    *ret = NULL;
    ok = kc != NULL && EVP_PKEY_keygen_init(kc) == 1 &&
         EVP_PKEY_CTX_set_params(kc, params) == 1 && EVP_PKEY_generate(kc, ret) == 1;
    EVP_PKEY_CTX_free(kc);
    return ok ? 0 : ossl_fail(DKM_E_TPM, "the TPM did not create the TLS key");
}

static int pem_of_key(EVP_PKEY *pkey, uint8_t **ret, size_t *ret_len)
{
    OSSL_ENCODER_CTX *ec = OSSL_ENCODER_CTX_new_for_pkey(
        pkey, EVP_PKEY_KEYPAIR, "PEM", "PrivateKeyInfo", "provider=tpm2");
    unsigned char *data = NULL;
    size_t len = 0;

    if (ec == NULL || OSSL_ENCODER_CTX_get_num_encoders(ec) == 0 ||
        OSSL_ENCODER_to_data(ec, &data, &len) != 1) {
        OSSL_ENCODER_CTX_free(ec);
        return ossl_fail(DKM_E_CRYPTO, "cannot write the TPM key as a TSS2 key file");
    }
    OSSL_ENCODER_CTX_free(ec);
    *ret = data;
    *ret_len = len;
    return 0;
}

static int self_signed(OSSL_LIB_CTX *libctx, EVP_PKEY *pkey, const char *cn,
                       unsigned days, uint8_t **ret, size_t *ret_len)
{
    X509 *x = X509_new_ex(libctx, NULL);
    X509_NAME *name = NULL;
    EVP_MD_CTX *md = NULL;
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    BIO *mem = NULL;
    char *data;
    long len;
    int r = DKM_E_CRYPTO;

    if (x == NULL || (name = X509_NAME_new()) == NULL || (bn = BN_new()) == NULL ||
        (md = EVP_MD_CTX_new()) == NULL || (mem = BIO_new(BIO_s_mem())) == NULL)
        goto fail;
    if (!BN_rand(bn, 63, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
        (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
        !X509_set_serialNumber(x, serial) || !X509_set_version(x, X509_VERSION_3) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
        !X509_set_pubkey(x, pkey))
        goto fail;
    /* SHA-256 in the default provider, the signature by the TPM key. */
    if (EVP_DigestSignInit_ex(md, NULL, "SHA256", libctx, NULL, pkey, NULL) != 1 ||
        X509_sign_ctx(x, md) <= 0 || PEM_write_bio_X509(mem, x) != 1)
        goto fail;
    len = BIO_get_mem_data(mem, &data);
    *ret = malloc((size_t)len);
    if (*ret == NULL) {
        r = -ENOMEM;
        goto done;
    }
    memcpy(*ret, data, (size_t)len);
    *ret_len = (size_t)len;
    r = 0;
    goto done;
fail:
    r = ossl_fail(DKM_E_CRYPTO, "cannot make the TLS key's self-signed certificate");
done:
    BIO_free(mem);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    EVP_MD_CTX_free(md);
    X509_NAME_free(name);
    X509_free(x);
    return r;
}

int dkm_tls_key_create(const char *tcti, const char *key_path, const char *cert_path,
                       const char *common_name, unsigned days, bool overwrite,
                       uint8_t ret_key_id[32])
{
    OSSL_LIB_CTX *libctx = NULL;
    EVP_PKEY *pkey = NULL;
    uint8_t *key_pem = NULL, *cert_pem = NULL, *spki = NULL;
    size_t key_len = 0, cert_len = 0;
    unsigned int n = 0;
    int spki_len, r;

    if (days == 0 || days > 36500 || common_name == NULL || common_name[0] == '\0')
        return dkm_error_set(-EINVAL, "TLS key: a common name and 1..36500 days");
    r = dkm_tls_libctx_new(tcti, &libctx);
    if (r < 0)
        goto done;
    ERR_set_mark();
    r = keygen(libctx, /* under_srk= */ true, &pkey);
    if (r < 0)
        r = keygen(libctx, /* under_srk= */ false, &pkey);
    ERR_pop_to_mark();
    if (r < 0)
        goto done;
    r = pem_of_key(pkey, &key_pem, &key_len);
    if (r == 0)
        r = self_signed(libctx, pkey, common_name, days, &cert_pem, &cert_len);
    if (r < 0)
        goto done;
    spki_len = i2d_PUBKEY(pkey, &spki);
    if (spki_len <= 0 ||
        (ret_key_id != NULL &&
         EVP_Digest(spki, (size_t)spki_len, ret_key_id, &n, EVP_sha256(), NULL) != 1)) {
        r = ossl_fail(DKM_E_CRYPTO, "cannot hash the TLS key's public key");
        goto done;
    }
    r = dkm_file_write(key_path, key_pem, key_len, 0600, overwrite);
    if (r == 0) {
        r = dkm_file_write(cert_path, cert_pem, cert_len, 0644, overwrite);
        if (r < 0 && !overwrite)
            (void)remove(key_path); /* nothing half-made is left */
    }
done:
    OPENSSL_free(spki);
    OPENSSL_free(key_pem);
    free(cert_pem);
    EVP_PKEY_free(pkey);
    OSSL_LIB_CTX_free(libctx);
    return r;
}

/* ---- the key handed to libssl ---- */

/* What a bridged EC key signs with; freed with the key (ex_data). */
struct bridge {
    OSSL_LIB_CTX *libctx;
    EVP_PKEY *tpm_key;
};

static int bridge_index = -1;
static EC_KEY_METHOD *bridge_method;
static pthread_once_t bridge_once = PTHREAD_ONCE_INIT;

static void bridge_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                        void *argp)
{
    struct bridge *b = ptr;

    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (b == NULL)
        return;
    EVP_PKEY_free(b->tpm_key);
    OSSL_LIB_CTX_free(b->libctx);
    free(b);
}

/* ECDSA over a digest: the TPM signs it (TPM2_Sign), DER out. */
static int bridge_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
                       unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r,
                       EC_KEY *eckey)
{
    struct bridge *b = EC_KEY_get_ex_data(eckey, bridge_index);
    EVP_PKEY_CTX *pc;
    size_t n = (size_t)ECDSA_size(eckey);
    int ok;

    (void)type;
    (void)kinv;
    (void)r;
    if (b == NULL || dlen <= 0)
        return 0;
    pc = EVP_PKEY_CTX_new_from_pkey(b->libctx, b->tpm_key, NULL);
    ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
         EVP_PKEY_sign(pc, sig, &n, dgst, (size_t)dlen) == 1;
    EVP_PKEY_CTX_free(pc);
    if (ok)
        *siglen = (unsigned int)n;
    return ok;
}

static ECDSA_SIG *bridge_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
                                  const BIGNUM *r, EC_KEY *eckey)
{
    unsigned char der[160];
    const unsigned char *p = der;
    unsigned int n = sizeof(der);

    if ((size_t)ECDSA_size(eckey) > sizeof(der) ||
        !bridge_sign(0, dgst, dlen, der, &n, kinv, r, eckey))
        return NULL;
    return d2i_ECDSA_SIG(NULL, &p, n);
}

static void bridge_init(void)
{
    int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;

    bridge_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, bridge_free);
    bridge_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (bridge_method == NULL)
        return;
    EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), NULL, &sign_setup, NULL);
    EC_KEY_METHOD_set_sign(bridge_method, bridge_sign, sign_setup, bridge_sign_sig);
}

int dkm_tls_key_open(const char *tcti, const char *path, EVP_PKEY **ret)
{
    struct bridge *b = NULL;
    EC_KEY *ec = NULL;
    EVP_PKEY *pkey = NULL, *pub = NULL;
    unsigned char *spki = NULL;
    const unsigned char *p;
    int len, r;

    pthread_once(&bridge_once, bridge_init);
    if (bridge_method == NULL || bridge_index < 0)
        return dkm_error_set(-ENOMEM, "cannot set up the TPM key's signing method");
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return dkm_error_set(-ENOMEM, "out of memory");
    r = dkm_tls_libctx_new(tcti, &b->libctx);
    if (r == 0)
        r = dkm_tls_key_load(b->libctx, path, &b->tpm_key);
    if (r < 0)
        goto done;
    r = DKM_E_CRYPTO;
    /* The public key, as the default provider's EC key. */
    len = i2d_PUBKEY(b->tpm_key, &spki);
    p = spki;
    if (len <= 0 || (pub = d2i_PUBKEY(NULL, &p, len)) == NULL ||
        (ec = EVP_PKEY_get1_EC_KEY(pub)) == NULL) {
        r = ossl_fail(DKM_E_CRYPTO, "the TPM's TLS key is not an EC key");
        goto done;
    }
    if (EC_KEY_set_method(ec, bridge_method) != 1 ||
        EC_KEY_set_ex_data(ec, bridge_index, b) != 1) {
        r = ossl_fail(DKM_E_CRYPTO, "cannot bridge the TPM's TLS key");
        goto done;
    }
    b = NULL; /* the key owns it now */
    pkey = EVP_PKEY_new();
    if (pkey == NULL || EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) {
        r = ossl_fail(-ENOMEM, "cannot bridge the TPM's TLS key");
        goto done;
    }
    ec = NULL;
    *ret = pkey;
    pkey = NULL;
    r = 0;
done:
    EVP_PKEY_free(pkey);
    EC_KEY_free(ec);
    EVP_PKEY_free(pub);
    OPENSSL_free(spki);
    bridge_free(NULL, b, NULL, 0, 0, NULL);
    return r;
}
