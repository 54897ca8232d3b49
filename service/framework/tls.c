/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for dkmd: the server context loaded from the configured PEM files,
 * and, for `dkmd init`, a fresh ECDSA P-256 key with a self-signed
 * certificate whose SHA-256 fingerprint clients can pin. TLS protects the
 * transport; keys in answers are protected by TPM sealing regardless.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "dkm/base/log.h"
#include "tls.h"

static int ossl_error(const char *what, const char *path)
{
    char reason[256] = "";
    unsigned long e = ERR_peek_last_error();

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    return dkm_error_set(DKM_E_CRYPTO, "%s%s%s: %s", what, path ? " " : "",
                         path ? path : "", reason[0] ? reason : "unknown error");
}

/*
 * Client certificates are asked for, never required, and accepted
 * whoever issued them: a client key means something only when a signed
 * node entry names it (svc_tls_key_id), which the admin routes check per
 * request. Chains, names and dates of client certificates carry no trust
 * here, as with SSH keys.
 */
static int accept_client_cert(int preverify_ok, X509_STORE_CTX *x509_ctx)
{
    (void)preverify_ok;
    (void)x509_ctx;
    return 1;
}

int svc_tls_server_ctx(const char *cert, const char *key, SSL_CTX **ret)
{
    static const unsigned char sid_ctx[] = "dkmd";
    SSL_CTX *ctx = NULL;
    int r = DKM_E_CRYPTO;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        r = ossl_error("cannot create a TLS context", NULL);
        goto done;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        r = ossl_error("cannot set the TLS minimum version", NULL);
        goto done;
    }
    /* No renegotiation, no compression. Session tickets are stateless: a
     * client resumes without a new certificate signature (a TPM-held
     * client key signs once per process), whichever worker it reaches and
     * however the previous connection ended (the session cache drops a
     * session whose connection closed without close_notify). Ticket keys
     * are random per context, so a reload (SIGHUP) ends every ticket. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        r = ossl_error("cannot load the TLS certificate", cert);
        goto done;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        r = ossl_error("cannot load the TLS key", key);
        goto done;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        r = ossl_error("the TLS key does not match the certificate", key);
        goto done;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_client_cert);
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
        r = ossl_error("cannot set the TLS session id context", NULL);
        goto done;
    }
    *ret = ctx;
    ctx = NULL;
    r = 0;
done:
    SSL_CTX_free(ctx);
    return r;
}

static int fingerprint(X509 *x, char *fpr, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!X509_digest(x, EVP_sha256(), md, &n))
        return ossl_error("cannot hash the certificate", NULL);
    if (size < (size_t)n * 3)
        return -ENOBUFS;
    for (unsigned i = 0; i < n; i++)
        snprintf(fpr + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
    return 0;
}

int svc_tls_fingerprint(const char *cert, char *fpr, size_t size)
{
    FILE *f;
    X509 *x;
    int r;

    f = fopen(cert, "r");
    if (f == NULL)
        return dkm_error_set(-errno, "cannot open %s: %s", cert, strerror(errno));
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return ossl_error("cannot read the certificate", cert);
    r = fingerprint(x, fpr, size);
    X509_free(x);
    return r;
}

/* Open for writing only if the file does not exist yet. */
static int create_exclusive(const char *path, mode_t mode, FILE **ret)
{
    int fd;
    FILE *f;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return dkm_error_set(-EEXIST, "%s already exists; refusing to overwrite it",
                                 path);
        return dkm_error_set(-errno, "cannot create %s: %s", path, strerror(errno));
    }
    /* The umask must not widen nor narrow what we asked for. */
    if (fchmod(fd, mode) < 0) {
        int e = errno;
        close(fd);
        return dkm_error_set(-e, "cannot set the mode of %s: %s", path, strerror(e));
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        int e = errno;
        close(fd);
        return dkm_error_set(-e, "cannot open %s: %s", path, strerror(e));
    }
    *ret = f;
    return 0;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return ossl_error("cannot build a certificate extension", value);
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : ossl_error("cannot add a certificate extension", value);
}

static int make_cert(EVP_PKEY *pkey, X509 **ret)
{
    X509 *x = NULL;
    X509_NAME *name;
    char host[256] = "localhost";
    char san[600];
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int r = DKM_E_CRYPTO;

    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    /* A host name with characters outside DNS syntax stays out of the SAN. */
    for (char *p = host; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) {
            snprintf(host, sizeof(host), "localhost");
            break;
        }
    }
    x = X509_new();
    if (x == NULL || !X509_set_version(x, X509_VERSION_3))
        goto crypto;
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto crypto;
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto crypto;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 3650, 0, NULL) == NULL)
        goto crypto;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"dkm",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host,
                                    -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pkey))
        goto crypto;
    snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", host);
    if ((r = add_ext(x, NID_subject_alt_name, san)) < 0 ||
        (r = add_ext(x, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
        (r = add_ext(x, NID_key_usage, "critical,digitalSignature")) < 0 ||
        (r = add_ext(x, NID_ext_key_usage, "serverAuth")) < 0 ||
        (r = add_ext(x, NID_subject_key_identifier, "hash")) < 0)
        goto done;
    if (X509_sign(x, pkey, EVP_sha256()) <= 0)
        goto crypto;
    *ret = x;
    x = NULL;
    r = 0;
    goto done;
crypto:
    r = ossl_error("cannot build the TLS certificate", NULL);
done:
    BN_free(bn);
    X509_free(x);
    return r;
}

int svc_tls_create_identity(const char *cert, const char *key, char *fpr, size_t fpr_size)
{
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    FILE *kf = NULL, *cf = NULL;
    bool key_created = false, cert_created = false;
    struct stat st;
    int r;

    /* Check both first so that a refusal leaves nothing behind. */
    if (stat(key, &st) == 0 || errno != ENOENT) {
        r = dkm_error_set(-EEXIST, "%s already exists; refusing to overwrite it", key);
        goto done;
    }
    if (stat(cert, &st) == 0 || errno != ENOENT) {
        r = dkm_error_set(-EEXIST, "%s already exists; refusing to overwrite it", cert);
        goto done;
    }
    pkey = EVP_EC_gen("P-256");
    if (pkey == NULL) {
        r = ossl_error("cannot generate the TLS key", NULL);
        goto done;
    }
    r = make_cert(pkey, &x);
    if (r < 0)
        goto done;
    r = create_exclusive(key, 0600, &kf);
    if (r < 0)
        goto done;
    key_created = true;
    if (PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        r = ossl_error("cannot write the TLS key", key);
        goto done;
    }
    if (fflush(kf) != 0 || fsync(fileno(kf)) != 0) {
        r = dkm_error_set(-errno, "cannot write %s: %s", key, strerror(errno));
        goto done;
    }
    r = create_exclusive(cert, 0644, &cf);
    if (r < 0)
        goto done;
    cert_created = true;
    if (PEM_write_X509(cf, x) != 1) {
        r = ossl_error("cannot write the TLS certificate", cert);
        goto done;
    }
    if (fflush(cf) != 0 || fsync(fileno(cf)) != 0) {
        r = dkm_error_set(-errno, "cannot write %s: %s", cert, strerror(errno));
        goto done;
    }
    r = fingerprint(x, fpr, fpr_size);
done:
    if (kf != NULL && fclose(kf) != 0 && r == 0)
        r = dkm_error_set(-EIO, "cannot write %s", key);
    if (cf != NULL && fclose(cf) != 0 && r == 0)
        r = dkm_error_set(-EIO, "cannot write %s", cert);
    if (r < 0) {
        /* A half-made identity would block the next init: remove what we made. */
        if (key_created)
            unlink(key);
        if (cert_created)
            unlink(cert);
    }
    X509_free(x);
    EVP_PKEY_free(pkey);
    return r;
}

int svc_tls_key_id(X509 *cert, uint8_t ret[SVC_TLS_KEY_ID_SIZE])
{
    unsigned char *der = NULL;
    unsigned int mdlen = 0;
    int len, r;

    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (len <= 0)
        return ossl_error("cannot encode the certificate's public key", NULL);
    r = EVP_Digest(der, (size_t)len, ret, &mdlen, EVP_sha256(), NULL) == 1 &&
                mdlen == SVC_TLS_KEY_ID_SIZE
            ? 0
            : ossl_error("cannot hash the certificate's public key", NULL);
    OPENSSL_free(der);
    return r;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int svc_tls_key_id_pem(const char *pem, size_t len, uint8_t ret[SVC_TLS_KEY_ID_SIZE])
{
    BIO *bio = NULL;
    X509 *x = NULL;
    char extra[64];
    int n, r;

    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    size_t lead = 0;

    while (lead < len && is_space(pem[lead]))
        lead++;
    if (len - lead < sizeof(begin) - 1 ||
        memcmp(pem + lead, begin, sizeof(begin) - 1) != 0)
        return dkm_error_set(-EINVAL, "not a PEM X.509 certificate");
    if (len > INT_MAX)
        return dkm_error_set(-EINVAL, "certificate too long");
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return -ENOMEM;
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL) {
        r = dkm_error_set(-EINVAL, "not a PEM X.509 certificate");
        goto done;
    }
    /* Exactly one certificate: anything after it would be ignored. */
    while ((n = BIO_read(bio, extra, sizeof(extra))) > 0) {
        for (int i = 0; i < n; i++) {
            if (!is_space(extra[i])) {
                r = dkm_error_set(-EINVAL, "text after the certificate");
                goto done;
            }
        }
    }
    r = svc_tls_key_id(x, ret);
done:
    ERR_clear_error();
    X509_free(x);
    BIO_free(bio);
    return r;
}
