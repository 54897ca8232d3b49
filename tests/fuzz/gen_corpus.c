/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seed generator of the fuzz targets: writes valid inputs for each
 * target into OUTDIR/<target>/, made by the project's own encoders
 * (dkm_nodecard_encode, dkm_servercard_sign, dkm_*_sign of records.h,
 * dkm_dup_seal and dkm_dup_encode, dkm_sealed_encode, dkm_protect_seal,
 * the stream encryptor, dkm_diskcache_put, the client's keeping of the
 * trust chain, svc_json_error_body, ks_seen_encode, ...) with the fixed keys of fuzz.h,
 * so every seed verifies against the trust the targets hold. The signed
 * and TPM-shaped seeds are in gen_signed.c. Request bodies are built from
 * each route's own field table.
 *
 * Signatures with the fixed keys are deterministic; sealing (the seed
 * encrypted to an EK), stream salts and the RSA EK are random, so a
 * regenerated corpus differs in those bytes only. Files whose names start
 * with "bad-" are regression inputs kept by hand and never touched here.
 *
 * Usage: dkm_fuzz_gen_corpus OUTDIR   (cmake --build B --target fuzz-corpus
 *        rewrites tests/fuzz/corpus)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkm/base/codec.h"
#include "dkm/base/uri.h"
#include "dkm/client/keyring.h"
#include "dkm/data/protect.h"
#include "dkm/data/stream.h"
#include "dkm/trust/armor.h"
#include "dkm/trust/nodecard.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"
#include "dkm/trust/servercard.h"
#include "fixtures.h"
#include "gen_corpus.h"
#include "json.h"
#include "router.h"
#include "routes.h"
#include "seen.h"

static const char *outdir;

/* Write OUTDIR/target/name: prefix (plen bytes, may be 0) then data. */
void gen_put2(const char *target, const char *name, const void *prefix, size_t plen,
              const void *data, size_t len)
{
    char dir[4096], path[4200];
    uint8_t *buf = malloc(plen + len + 1);

    CHECK(buf != NULL, "malloc");
    snprintf(dir, sizeof(dir), "%s/%s", outdir, target);
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (plen > 0)
        memcpy(buf, prefix, plen);
    if (len > 0)
        memcpy(buf + plen, data, len);
    CHECK(dkm_fuzz_write_file(path, buf, plen + len) == 0, path);
    free(buf);
    printf("%s/%s (%zu bytes)\n", target, name, plen + len);
}

void gen_put(const char *target, const char *name, const void *data, size_t len)
{
    gen_put2(target, name, NULL, 0, data, len);
}

void gen_put_text(const char *target, const char *name, const char *text)
{
    gen_put(target, name, text, strlen(text));
}

/* ---- uri ---- */

static void gen_uri(void)
{
    static const struct {
        const char *name, *group;
        uint32_t version;
        bool list;
    } uris[] = {
        {"current", "web", DKM_VERSION_CURRENT, false},
        {"version", "web", 3, false},
        {"max-version", "db.prod_1-a", UINT32_MAX, false},
        {"listing", "", 0, true},
    };
    char text[DKM_URI_MAX + 1], group[DKM_GROUP_MAX + 1];
    uint8_t key[DKM_URI_KEY_LEN];
    struct dkm_uri u;

    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        memset(&u, 0, sizeof(u));
        snprintf(u.group, sizeof(u.group), "%s", uris[i].group);
        u.version = uris[i].version;
        u.list = uris[i].list;
        CHECK(dkm_uri_format(&u, text, sizeof(text)) == 0, "dkm_uri_format");
        gen_put_text("uri", uris[i].name, text);
    }
    /* The other spellings users type: authority form, "current", any case. */
    gen_put_text("uri", "authority", "dkm://web/current");
    memset(group, 'g', DKM_GROUP_MAX);
    group[DKM_GROUP_MAX] = '\0';
    snprintf(text, sizeof(text), "DKM:%s/4294967295", group);
    gen_put_text("uri", "longest", text);
    memset(&u, 0, sizeof(u));
    snprintf(u.group, sizeof(u.group), "web");
    u.version = 12;
    CHECK(dkm_uri_to_key(&u, key) == 0, "dkm_uri_to_key");
    gen_put("uri", "cipher-key", key, sizeof(key));
}

/* ---- cards ---- */

/* A self-signed certificate stands in for an EK certificate. */
static X509 *make_cert(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *n = x != NULL ? X509_get_subject_name(x) : NULL;

    CHECK(k != NULL && x != NULL && n != NULL && X509_set_version(x, 2) &&
              ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
              X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                         (const unsigned char *)"dkm fuzz EK", -1, -1,
                                         0) &&
              X509_set_issuer_name(x, n) && X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
              X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365) &&
              X509_set_pubkey(x, k) && X509_sign(x, k, EVP_sha256()) > 0,
          "a test certificate");
    EVP_PKEY_free(k);
    return x;
}

static void nodecard_seed(const char *name, const TPM2B_PUBLIC *ek, const uint8_t *cert,
                          size_t cert_len, const char *host, uint8_t **ret,
                          size_t *ret_len)
{
    struct dkm_nodecard *card = NULL;
    char binname[64], armname[64];
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    char *text = NULL;

    CHECK(dkm_nodecard_new(ek, cert, cert_len, host, NOW - 3600, &card) == 0,
          "dkm_nodecard_new");
    CHECK(dkm_nodecard_encode(card, &bin, &bin_len) == 0, "dkm_nodecard_encode");
    CHECK(dkm_nodecard_armor(bin, bin_len, &text) == 0, "dkm_nodecard_armor");
    snprintf(binname, sizeof(binname), "%s.bin", name);
    snprintf(armname, sizeof(armname), "%s.card", name);
    gen_put("nodecard", binname, bin, bin_len);
    gen_put_text("nodecard", armname, text);
    free(text);
    dkm_nodecard_free(card);
    if (ret != NULL) {
        *ret = bin;
        *ret_len = bin_len;
    } else {
        free(bin);
    }
}

/* The fixed node's card (kept for a request body) and an RSA one with a cert. */
static void gen_nodecard(uint8_t **ret_card, size_t *ret_card_len)
{
    TPM2B_PUBLIC rsa;
    uint8_t *der = NULL;
    X509 *x = make_cert();
    int der_len = i2d_X509(x, &der);

    CHECK(der_len > 0, "i2d_X509");
    nodecard_seed("ecc", &dkm_fuzz_keys()->node_ek, NULL, 0, "node-1.example", ret_card,
                  ret_card_len);
    CHECK(dkm_test_soft_ek(DKM_EK_RSA2048, &rsa, NULL) == 0, "an RSA EK");
    nodecard_seed("rsa-cert", &rsa, der, (size_t)der_len, "rsa_node.example.org", NULL,
                  NULL);
    OPENSSL_free(der);
    X509_free(x);
}

/* The fixed server's card; its armored text is returned for a request body. */
static char *gen_servercard(void)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_signer signer = dkm_fuzz_server_signer();
    struct dkm_servercard card;
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    char *text = NULL;

    memset(&card, 0, sizeof(card));
    card.ek = k->server_ek;
    card.sk = k->server_sk_pub;
    snprintf(card.hostname, sizeof(card.hostname), "dkmd-2.example");
    card.created = NOW - 600;
    CHECK(dkm_servercard_sign(&card, &signer, &bin, &bin_len) == 0,
          "dkm_servercard_sign");
    CHECK(dkm_armor_encode(DKM_SERVERCARD_LABEL, bin, bin_len, DKM_SERVERCARD_MAX,
                           &text) == 0,
          "dkm_armor_encode");
    gen_put("servercard", "card.bin", bin, bin_len);
    gen_put_text("servercard", "card.txt", text);
    free(bin);
    return text;
}

/* ---- protect and stream ---- */

static void protect_seed(const char *name, const char *group, uint32_t version,
                         const char *aad, const char *pt)
{
    uint8_t key[DKM_PROTECT_KEY_LEN], blob[512], prefix[256];
    size_t aad_len = aad != NULL ? strlen(aad) : 0, len = 0;

    dkm_fuzz_group_key(group, version, key);
    CHECK(dkm_protect_seal(NULL, NULL, key, group, version, (const uint8_t *)aad, aad_len,
                           NULL, (const uint8_t *)pt, strlen(pt), blob, sizeof(blob),
                           &len) == 0,
          "dkm_protect_seal");
    prefix[0] = (uint8_t)aad_len;
    memcpy(prefix + 1, aad != NULL ? aad : "", aad_len);
    gen_put2("protect", name, prefix, 1 + aad_len, blob, len);
}

static void gen_protect(void)
{
    protect_seed("plain", "web", 1, NULL, "the quick brown fox");
    protect_seed("with-aad", "db.prod_1-a", 4294967295u, "row 17 of table t",
                 "a secret value");
    protect_seed("empty", "web", 2, NULL, "");
}

/* An encrypted stream of n bytes, with control byte ctl and chunk lengths. */
static void stream_seed(const char *name, unsigned seg_log2, size_t n,
                        const uint8_t *chunks, size_t nchunks, bool empty)
{
    uint8_t key[DKM_STREAM_KEY_LEN], *pt = malloc(n + 1), *out = malloc(2 * n + 4096);
    uint8_t prefix[16];
    struct dkm_stream *s = NULL;
    size_t len = 0, got = 0, seg = (size_t)1 << seg_log2;

    CHECK(pt != NULL && out != NULL && nchunks < 16, "stream buffers");
    for (size_t i = 0; i < n; i++)
        pt[i] = (uint8_t)(i * 7 + 1);
    dkm_fuzz_group_key(DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, key);
    CHECK(dkm_stream_encrypt_new(NULL, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, key, seg_log2,
                                 &s) == 0,
          "dkm_stream_encrypt_new");
    /* Updates of at most a segment, each with EVP's output allowance. */
    for (size_t off = 0; !empty && off < n; off += seg) {
        size_t take = n - off < seg ? n - off : seg;

        CHECK(dkm_stream_update(s, pt + off, take, out + len,
                                take + DKM_STREAM_BLOCK_SIZE, &got) == 0,
              "dkm_stream_update");
        len += got;
    }
    CHECK(dkm_stream_final(s, out + len, DKM_STREAM_BLOCK_SIZE, &got) == 0,
          "dkm_stream_final");
    len += got;
    dkm_stream_free(s);
    prefix[0] = (uint8_t)(nchunks | (seg_log2 == DKM_STREAM_SEG_LOG2_MIN ? 16 : 0));
    if (nchunks > 0)
        memcpy(prefix + 1, chunks, nchunks);
    gen_put2("stream", name, prefix, 1 + nchunks, out, len);
    free(pt);
    free(out);
}

static void gen_stream(void)
{
    static const uint8_t odd[] = {1, 17, 200};
    static const uint8_t tags[] = {16, 0, 32, 255};

    stream_seed("one-update", DKM_STREAM_SEG_LOG2_DEFAULT, 100, NULL, 0, false);
    stream_seed("small-segments-split", DKM_STREAM_SEG_LOG2_MIN, 1000, odd, sizeof(odd),
                false);
    stream_seed("two-full-segments", DKM_STREAM_SEG_LOG2_MIN, 512, tags, sizeof(tags),
                false);
    stream_seed("empty", DKM_STREAM_SEG_LOG2_DEFAULT, 0, NULL, 0, true);
}

/* ---- json: request bodies from the routes' own field tables ---- */

struct realistic {
    const char *node_id_hex;
    const char *card_b64;    /* a node card (POST /v1/nodes) */
    const char *server_card; /* armored server card (POST /v1/servers) */
    const char *cert_pem;
};

static json_t *b64_value(const uint8_t *p, size_t n)
{
    char *s = malloc(dkm_b64url_encoded_len(n) + 1);
    json_t *v;

    CHECK(s != NULL && dkm_b64url_encode(p, n, s, dkm_b64url_encoded_len(n) + 1) == 0,
          "dkm_b64url_encode");
    v = json_string(s);
    free(s);
    return v;
}

/* A value of the field's type within its bounds. */
static json_t *generic_value(const struct svc_json_field *f)
{
    size_t n = f->min > 8 ? f->min : (f->max < 8 ? f->max : 8);
    uint8_t bytes[64];
    char text[128];

    switch (f->type) {
    case SVC_JSON_STRING:
        CHECK(n < sizeof(text), "field length");
        memset(text, 'x', n);
        text[n] = '\0';
        return json_string(text);
    case SVC_JSON_B64URL:
        n = f->min > 16 ? f->min : (f->max < 16 ? f->max : 16);
        CHECK(n <= sizeof(bytes), "field length");
        memset(bytes, 0x5a, sizeof(bytes));
        return b64_value(bytes, n);
    case SVC_JSON_UINT:
        return json_integer((json_int_t)(f->min > 0 ? f->min : (f->max > 0 ? 1 : 0)));
    case SVC_JSON_BOOL:
        return json_true();
    }
    return json_null();
}

/* What a client would send for the fields dkm knows by name. */
static json_t *realistic_value(const struct svc_json_field *f, const struct realistic *r)
{
    uint8_t nonce[32], values[2 * 32];

    memset(nonce, 0x4e, sizeof(nonce));
    memset(values, 0x11, sizeof(values));
    if (strcmp(f->name, "node_id") == 0)
        return json_string(r->node_id_hex);
    if (strcmp(f->name, "group") == 0 || strcmp(f->name, "name") == 0)
        return json_string("web");
    if (strcmp(f->name, "version") == 0)
        return json_string("current");
    if (strcmp(f->name, "role") == 0)
        return json_string("client");
    if (strcmp(f->name, "card") == 0)
        return json_string(f->type == SVC_JSON_B64URL ? r->card_b64 : r->server_card);
    if (strcmp(f->name, "tls_cert") == 0)
        return json_string(r->cert_pem);
    if (strcmp(f->name, "nonce") == 0)
        return b64_value(nonce, sizeof(nonce));
    if (strcmp(f->name, "rotation_period") == 0)
        return json_integer(86400);
    if (strcmp(f->name, "version_lifetime") == 0)
        return json_integer(30 * 86400);
    if (strcmp(f->name, "cache_ttl") == 0)
        return json_integer(300);
    if (strcmp(f->name, "pcr_mask") == 0)
        return json_integer(0x3);
    if (strcmp(f->name, "pcr_values") == 0)
        return b64_value(values, sizeof(values));
    return generic_value(f);
}

/* The body for route: all fields or only the required ones. */
static char *route_body(const struct svc_route *route, bool all,
                        const struct realistic *r)
{
    char why[256];
    json_t *parsed = NULL;
    char *text = NULL;

    for (int pass = 0; pass < 2 && text == NULL; pass++) {
        json_t *o = json_object();

        CHECK(o != NULL, "json_object");
        for (size_t i = 0; i < route->nbody; i++) {
            const struct svc_json_field *f = &route->body[i];

            if (all || f->required)
                CHECK(json_object_set_new(o, f->name,
                                          pass == 0 ? realistic_value(f, r)
                                                    : generic_value(f)) == 0,
                      "json_object_set");
        }
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        CHECK(text != NULL, "json_dumps");
        /* A realistic value outside the table's bounds: use generic ones. */
        if (svc_json_parse(text, strlen(text), route->body, route->nbody, &parsed, why,
                           sizeof(why)) < 0) {
            free(text);
            text = NULL;
        }
        json_decref(parsed);
        parsed = NULL;
    }
    CHECK(text != NULL, route->name);
    return text;
}

/* A json seed: the route's name, a newline, the body. */
static void put_route_body(const char *seed, const char *route, const char *body)
{
    size_t n = strlen(route);
    char *prefix = malloc(n + 1);

    CHECK(prefix != NULL, "malloc");
    memcpy(prefix, route, n);
    prefix[n] = '\n';
    gen_put2("json", seed, prefix, n + 1, body, strlen(body));
    free(prefix);
}

static void gen_json(const uint8_t *card, size_t card_len, const char *server_card)
{
    char hex[DKM_NODE_ID_HEX_SIZE], name[128], *b64, *pem = NULL;
    struct realistic r;
    X509 *x = make_cert();
    BIO *bio = BIO_new(BIO_s_mem());
    long pem_len;
    char *pem_data = NULL;

    CHECK(bio != NULL && PEM_write_bio_X509(bio, x) == 1, "PEM_write_bio_X509");
    pem_len = BIO_get_mem_data(bio, &pem_data);
    pem = strndup(pem_data, (size_t)pem_len);
    b64 = malloc(dkm_b64url_encoded_len(card_len) + 1);
    CHECK(pem != NULL && b64 != NULL &&
              dkm_b64url_encode(card, card_len, b64,
                                dkm_b64url_encoded_len(card_len) + 1) == 0,
          "encoding the node card");
    dkm_node_id_hex(&dkm_fuzz_keys()->node_id, hex);
    r = (struct realistic){
        .node_id_hex = hex, .card_b64 = b64, .server_card = server_card, .cert_pem = pem};

    for (size_t i = 0; i < ks_nroutes; i++) {
        const struct svc_route *route = &ks_routes[i];
        bool has_optional = false;
        char *text;

        if (route->body == NULL)
            continue;
        for (size_t j = 0; j < route->nbody; j++)
            has_optional = has_optional || !route->body[j].required;
        text = route_body(route, true, &r);
        put_route_body(route->name, route->name, text);
        free(text);
        if (has_optional) {
            text = route_body(route, false, &r);
            snprintf(name, sizeof(name), "%s-required", route->name);
            put_route_body(name, route->name, text);
            free(text);
        }
    }
    /* A body without a route name: tried against every route. */
    {
        uint8_t nonce[16];

        memset(nonce, 0x4e, sizeof(nonce));
        json_t *o = json_pack("{s:o}", "nonce", b64_value(nonce, sizeof(nonce)));
        char *text = json_dumps(o, JSON_COMPACT);

        CHECK(text != NULL, "json_dumps");
        gen_put_text("json", "no-route-name", text);
        free(text);
        json_decref(o);
    }
    free(b64);
    free(pem);
    BIO_free(bio);
    X509_free(x);
}

/* ---- http_client ---- */

static void http_seed(const char *name, uint8_t read_size, const char *status,
                      const char *content_type, const char *body)
{
    char head[512];
    int n;

    n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                 status, content_type != NULL ? "Content-Type: " : "",
                 content_type != NULL ? content_type : "",
                 content_type != NULL ? "\r\n" : "", strlen(body));
    CHECK(n > 0 && (size_t)n < sizeof(head), "HTTP head");
    {
        size_t len = (size_t)n + strlen(body);
        char *buf = malloc(len + 1);

        CHECK(buf != NULL, "malloc");
        memcpy(buf, head, (size_t)n);
        memcpy(buf + n, body, strlen(body));
        gen_put2("http_client", name, &read_size, 1, buf, len);
        free(buf);
    }
}

static void gen_http_client(void)
{
    char *err = svc_json_error_body("not found", "no group \"web\"");
    json_t *o = json_pack("{s:s, s:I}", "nonce", "Tk5OTk5OTk5OTk5OTk5OTg", "time",
                          (json_int_t)NOW);
    char *ping = json_dumps(o, JSON_COMPACT);

    CHECK(err != NULL && ping != NULL, "JSON bodies");
    http_seed("ok-one-read", 0, "200 OK", "application/json", ping);
    http_seed("ok-small-reads", 7, "200 OK", "application/json", ping);
    http_seed("error-byte-reads", 1, "404 Not Found", "application/json", err);
    http_seed("empty-body", 0, "204 No Content", NULL, "");
    free(err);
    free(ping);
    json_decref(o);
}

/* ---- config ---- */

static void gen_config(void)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    char hex[2 * DKM_FINGERPRINT_SIZE + 1], text[1024];

    CHECK(dkm_hex_encode(k->trust_pin, sizeof(k->trust_pin), hex, sizeof(hex)) == 0,
          "dkm_hex_encode");
    gen_put_text("config", "dkmd-full",
                 "D# dkmd.conf with every setting\n"
                 "[service]\n"
                 "listen = [::]:8443\n"
                 "workers = 2\n"
                 "tls_cert = /var/lib/dkm/tls.crt\n"
                 "tls_key = /var/lib/dkm/tls.key\n"
                 "admin_socket = /run/dkm/dkmd.sock\n"
                 "admin_socket_mode = 0660\n"
                 "state_dir = /var/lib/dkm\n"
                 "tcti = device:/dev/tpmrm0\n"
                 "sql_dir = /usr/share/dkm/sql\n"
                 "log_level = debug\n"
                 "\n"
                 "[database]\n"
                 "conninfo = host=db.example dbname=dkm user=dkmd sslmode=verify-full\n"
                 "pool_size = 4\n"
                 "connect_timeout = 5s\n"
                 "query_timeout = 1m\n"
                 "reconnect_max = 30\n"
                 "queue_max = 1024\n"
                 "\n"
                 "[limits]\n"
                 "max_header_bytes = 8192\n"
                 "max_body_bytes = 65536\n"
                 "request_timeout = 10s\n"
                 "max_connections = 2048\n"
                 "shutdown_timeout = 1h\n");
    gen_put_text("config", "dkmd-minimal",
                 "D[database]\nconninfo = host=/run/postgresql dbname=dkm\n");
    snprintf(text, sizeof(text),
             "Pservice=https://dkm-1.example:8443,https://[::1]:8443/\n"
             "trust=sha256:%s\n"
             "cache_dir=/var/cache/dkm\n"
             "tcti=device:/dev/tpmrm0\n"
             "tls_key=/etc/dkm/node.key\n"
             "tls_cert=/etc/dkm/node.crt\n"
             "debug=no\n",
             hex);
    gen_put_text("config", "provider-service", text);
    gen_put_text(
        "config", "provider-test-keys",
        "Pkeysource=test\ntest_keys=web,db\ntest_seed=fuzz\ntest_ttl=60\ndebug=on\n");
}

/* Kernel keyring payloads (keyring.c) of a key version and of a group's
 * current version, as dkm_keyring_put and dkm_keyring_put_current write
 * them. */
static void gen_keyring(void)
{
    uint8_t key[32], buf[DKM_KEYRING_PAYLOAD_MAX];
    struct dkm_keyring_entry e;
    size_t len = 0;

    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0xa0 + i);
    memset(&e, 0, sizeof(e));
    snprintf(e.group, sizeof(e.group), "%s", DKM_FUZZ_GROUP);
    e.version = DKM_FUZZ_VERSION;
    e.policy_serial = 2;
    e.algorithm = 1;
    e.cache_ttl = 600;
    e.expires_at = DKM_FUZZ_NOW + 86400;
    e.cached_until = DKM_FUZZ_NOW + 600;
    e.key = key;
    e.key_len = sizeof(key);
    CHECK(dkm_keyring_payload_encode(NULL, NULL, &e, buf, sizeof(buf), &len) == 0,
          "dkm_keyring_payload_encode");
    gen_put("keyring", "version", buf, len);
    e.key_len = 1;
    e.pcr_mask = 0x10000;
    CHECK(dkm_keyring_payload_encode(NULL, NULL, &e, buf, sizeof(buf), &len) == 0,
          "dkm_keyring_payload_encode");
    gen_put("keyring", "version-short-key", buf, len);
    CHECK(dkm_keyring_current_encode(DKM_FUZZ_GROUP, 7, buf, sizeof(buf), &len) == 0,
          "dkm_keyring_current_encode");
    gen_put("keyring", "current", buf, len);
}

/* The node's EK file (node.c) for its ECC and RSA EKs. */
static void gen_ekfile(void)
{
    uint8_t buf[DKM_NODE_EK_FILE_MAX];
    TPM2B_PUBLIC rsa;
    size_t len = 0;

    CHECK(dkm_node_ek_file_encode(DKM_EK_ECCP256, &dkm_fuzz_keys()->node_ek, buf,
                                  sizeof(buf), &len) == 0,
          "dkm_node_ek_file_encode (ecc)");
    gen_put("ekfile", "ecc", buf, len);
    CHECK(dkm_test_soft_ek(DKM_EK_RSA2048, &rsa, NULL) == 0, "a software RSA EK");
    CHECK(dkm_node_ek_file_encode(DKM_EK_RSA2048, &rsa, buf, sizeof(buf), &len) == 0,
          "dkm_node_ek_file_encode (rsa)");
    gen_put("ekfile", "rsa", buf, len);
}

/* One seen file (seen.h) of head, list and the observations in obs. */
static void seen_file(const char *name, uint64_t head, uint32_t list,
                      struct ks_seen_entry *obs, size_t n)
{
    struct ks_seen s = {.head = head, .list_version = list};
    uint8_t *buf = NULL;
    size_t len = 0;
    bool changed = false;

    CHECK(ks_seen_merge(&s, obs, n, &changed) == 0, "ks_seen_merge");
    CHECK(ks_seen_encode(&s, &buf, &len) == 0, "ks_seen_encode");
    gen_put("seen", name, buf, len);
    free(buf);
    ks_seen_clear(&s);
}

/* dkmd's seen file: before any state load, and after some, with each
 * kind of record and repeated observations (the highest serial kept). */
static void gen_seen(void)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct ks_seen_entry obs[6];

    memset(obs, 0, sizeof(obs));
    seen_file("empty", 0, 0, NULL, 0);
    obs[0].kind = KS_SEEN_NODE;
    ks_seen_key(k->node_id.bytes, DKM_NODE_ID_SIZE, NULL, 0, obs[0].key);
    obs[0].serial = 2;
    obs[1] = obs[0];
    obs[1].serial = 1;
    obs[2].kind = KS_SEEN_NODE;
    ks_seen_key(k->server_id.bytes, DKM_NODE_ID_SIZE, NULL, 0, obs[2].key);
    obs[2].serial = 1;
    obs[3].kind = KS_SEEN_POLICY;
    ks_seen_key("web", 3, NULL, 0, obs[3].key);
    obs[3].serial = 5;
    obs[4].kind = KS_SEEN_GRANT;
    ks_seen_key("web", 3, k->node_id.bytes, DKM_NODE_ID_SIZE, obs[4].key);
    obs[4].serial = 3;
    obs[5].kind = KS_SEEN_GRANT;
    ks_seen_key("db.prod", 7, k->node_id.bytes, DKM_NODE_ID_SIZE, obs[5].key);
    obs[5].serial = UINT64_MAX;
    seen_file("first-load", 1, 1, obs, 3);
    seen_file("every-kind", 1234, 3, obs, 6);
}

int main(int argc, char **argv)
{
    uint8_t *card = NULL, *v2 = NULL;
    size_t card_len = 0, v2_len = 0;
    char *server_card;

    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    CHECK(mkdir(outdir, 0755) == 0 || errno == EEXIST, outdir);
    gen_uri();
    gen_nodecard(&card, &card_len);
    server_card = gen_servercard();
    gen_records(&v2, &v2_len);
    gen_envelope();
    gen_protect();
    gen_stream();
    gen_diskcache();
    gen_trust(v2, v2_len);
    gen_json(card, card_len, server_card);
    gen_http_client();
    gen_config();
    gen_tpmobject();
    gen_keyring();
    gen_ekfile();
    gen_seen();
    free(card);
    free(v2);
    free(server_card);
    return 0;
}
