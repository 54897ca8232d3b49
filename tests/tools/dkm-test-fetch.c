/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkm-test-fetch: the node half of a key fetch, for the integration tests.
 * Given dkmd's GET /v1/trust answer, the fingerprint a client pins, a
 * POST /v1/keys/fetch answer and the node's TPM, it follows the server
 * lists from the pinned one, verifies the answer's whole chain (server SK
 * -> delegation -> response, embedded policy), checks that it was made
 * for this node, group, version and nonce, imports and unseals the key
 * with the node's TPM and prints the SHA-256 of the key (never the key).
 *
 *   dkm-test-fetch --tcti T --pin HEX --trust FILE --response FILE
 *                  --group G --version V|current --nonce B64URL
 *
 * Output: "version N" and "key-sha256 HEX". Exit 0, or 1 with a message.
 * With --search FILE it also reports whether FILE holds the key in any
 * form a leak would take (raw bytes, hex in either case, base64 and
 * base64url): "key-in-file no" or "key-in-file yes".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/dup.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/records.h"
#include "dkm/base/secmem.h"
#include "dkm/tpm/unseal.h"

static int fail(const char *what)
{
    const char *d = dkm_error_detail();

    fprintf(stderr, "dkm-test-fetch: %s%s%s\n", what, d[0] ? ": " : "", d);
    return 1;
}

/* Decode a base64url string into a malloc'd buffer. */
static uint8_t *b64(const char *s, size_t *ret_len)
{
    size_t cap = strlen(s) + 4;
    uint8_t *buf = malloc(cap);

    if (buf == NULL || dkm_b64url_decode(s, strlen(s), buf, cap, ret_len) < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

/* The forms a leaked key takes in a file: hex either case, base64, base64url. */
static int key_forms(const uint8_t *key, size_t len, char forms[5][256])
{
    for (size_t i = 0; i < len; i++) {
        snprintf(forms[0] + 2 * i, 3, "%02x", key[i]);
        snprintf(forms[1] + 2 * i, 3, "%02X", key[i]);
    }
    EVP_EncodeBlock((unsigned char *)forms[2], key, (int)len);
    if (dkm_b64url_encode(key, len, forms[3], 256) < 0)
        return -1;
    /* Base64 text up to its last full group: what appears inside longer data. */
    memcpy(forms[4], forms[2], len / 3 * 4);
    forms[4][len / 3 * 4] = '\0';
    forms[3][len / 3 * 4] = '\0';
    return 0;
}

static int search_buf(const uint8_t *data, size_t n, const uint8_t *key, size_t len)
{
    char forms[5][256];
    int found;

    if (len > 64 || key_forms(key, len, forms) < 0)
        return -1;
    found = contains(data, n, key, len);
    for (int i = 0; i < 5; i++)
        found |= contains(data, n, forms[i], strlen(forms[i]));
    return found;
}

/* 1 when the file holds the key in one of its leak forms, 0 when not, -1 on error. */
static int search(const char *path, const uint8_t *key, size_t len)
{
    uint8_t *data = NULL;
    size_t n = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    int found;

    if (f == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            uint8_t *p = realloc(data, cap = cap ? 2 * cap : 65536);

            if (p == NULL) {
                fclose(f);
                free(data);
                return -1;
            }
            data = p;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    found = search_buf(data, n, key, len);
    free(data);
    return found;
}

/*
 * The search's own check, in memory only: each leak form embedded in
 * other bytes is found, and the same bytes without it are not.
 */
static bool search_control(const uint8_t *key, size_t len)
{
    char forms[5][256];
    uint8_t buf[600];

    if (len > 64 || key_forms(key, len, forms) < 0)
        return false;
    for (int i = -1; i < 5; i++) {
        const void *form = i < 0 ? (const void *)key : forms[i];
        size_t flen = i < 0 ? len : strlen(forms[i]);

        memset(buf, '#', sizeof(buf));
        memcpy(buf + 101, form, flen);
        if (search_buf(buf, sizeof(buf), key, len) != 1)
            return false;
    }
    memset(buf, '#', sizeof(buf));
    dkm_memzero(forms, sizeof(forms));
    return search_buf(buf, sizeof(buf), key, len) == 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tcti", required_argument, NULL, 't'},
        {"pin", required_argument, NULL, 'p'},
        {"trust", required_argument, NULL, 'T'},
        {"response", required_argument, NULL, 'r'},
        {"group", required_argument, NULL, 'g'},
        {"version", required_argument, NULL, 'v'},
        {"nonce", required_argument, NULL, 'n'},
        {"search", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *tcti = NULL, *pin_hex = NULL, *trust_file = NULL, *resp_file = NULL;
    const char *group = NULL, *vtext = "current", *nonce_text = NULL, *search_file = NULL;
    uint8_t pin[DKM_FINGERPRINT_SIZE], nonce[DKM_NONCE_MAX], *resp = NULL;
    size_t len = 0, nonce_len = 0, resp_len = 0, slen = 0;
    struct dkm_server_list list;
    struct dkm_fetch_response f;
    struct dkm_import_blob blob;
    struct dkm_node_id self;
    struct dkm_tpm *tpm = NULL;
    json_t *trust = NULL, *answer = NULL, *lists;
    void *secret = NULL;
    uint8_t digest[32];
    char hex[65];
    uint32_t version = DKM_VERSION_CURRENT;
    uint64_t now = (uint64_t)time(NULL);
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            tcti = optarg;
            break;
        case 'p':
            pin_hex = optarg;
            break;
        case 'T':
            trust_file = optarg;
            break;
        case 'r':
            resp_file = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'v':
            vtext = optarg;
            break;
        case 'n':
            nonce_text = optarg;
            break;
        case 's':
            search_file = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!tcti || !pin_hex || !trust_file || !resp_file || !group || !nonce_text) {
        fprintf(stderr, "dkm-test-fetch: missing arguments (see the file's header)\n");
        return 2;
    }
    if (strcmp(vtext, "current") != 0)
        version = (uint32_t)strtoul(vtext, NULL, 10);
    if (dkm_hex_decode(pin_hex, strlen(pin_hex), pin, sizeof(pin), &len) < 0 ||
        len != sizeof(pin)) {
        rc = fail("bad pin");
        goto done;
    }
    if (dkm_b64url_decode(nonce_text, strlen(nonce_text), nonce, sizeof(nonce),
                          &nonce_len) < 0) {
        rc = fail("bad nonce");
        goto done;
    }
    trust = json_load_file(trust_file, 0, NULL);
    answer = json_load_file(resp_file, 0, NULL);
    lists = json_object_get(trust, "lists");
    if (!json_is_array(lists) || json_array_size(lists) == 0 ||
        !json_is_string(json_object_get(answer, "response"))) {
        fprintf(stderr,
                "dkm-test-fetch: the trust or response file is not as expected\n");
        goto done;
    }
    /* The pinned list, then each later one signed by its predecessor. */
    {
        bool found = false;

        for (size_t i = 0; i < json_array_size(lists); i++) {
            uint8_t *rec = b64(json_string_value(json_array_get(lists, i)), &len);
            struct dkm_server_list next;
            int r;

            if (rec == NULL) {
                rc = fail("a server list is not base64url");
                goto done;
            }
            if (!found) {
                r = dkm_server_list_verify_pinned(rec, len, pin, &next);
                found = r == 0;
                r = 0;
            } else {
                r = dkm_server_list_verify_next(&list, rec, len, &next);
            }
            free(rec);
            if (r < 0) {
                rc = fail("a server list does not verify");
                goto done;
            }
            if (found)
                list = next;
        }
        if (!found) {
            fprintf(stderr,
                    "dkm-test-fetch: no server list has the pinned fingerprint\n");
            goto done;
        }
    }
    resp = b64(json_string_value(json_object_get(answer, "response")), &resp_len);
    if (resp == NULL) {
        rc = fail("the response is not base64url");
        goto done;
    }
    if (dkm_tpm_open(tcti, &tpm) < 0 ||
        dkm_node_read_ek(tpm, DKM_EK_ECCP256, NULL, &self) < 0) {
        rc = fail("cannot read the node's EK");
        goto done;
    }
    if (dkm_fetch_response_verify(&list, resp, resp_len, &f, NULL) < 0) {
        rc = fail("the response does not verify");
        goto done;
    }
    if (dkm_fetch_response_check(&f, &self, group, version, nonce, nonce_len, now, 300) <
        0) {
        rc = fail("the response is not the one asked for");
        goto done;
    }
    if (dkm_dup_decode(f.blob, f.blob_len, &blob) < 0 ||
        dkm_unseal_blob(tpm, &blob, NULL, &secret, &slen) < 0) {
        rc = fail("cannot unseal the key");
        goto done;
    }
    if (EVP_Digest(secret, slen, digest, NULL, EVP_sha256(), NULL) != 1 ||
        dkm_hex_encode(digest, sizeof(digest), hex, sizeof(hex)) < 0) {
        rc = fail("cannot hash the key");
        goto done;
    }
    if (search_file != NULL) {
        int found = search(search_file, secret, slen);

        if (found < 0) {
            fprintf(stderr, "dkm-test-fetch: cannot read %s\n", search_file);
            goto done;
        }
        printf("key-in-file %s\n", found ? "yes" : "no");
        printf("search-control %s\n", search_control(secret, slen) ? "ok" : "FAILED");
    }
    printf("version %u\nexpires_at %llu\nkey-sha256 %s\n", f.version,
           (unsigned long long)f.expires_at, hex);
    rc = 0;
done:
    dkm_secmem_free(secret);
    dkm_tpm_close(tpm);
    free(resp);
    json_decref(trust);
    json_decref(answer);
    return rc;
}
