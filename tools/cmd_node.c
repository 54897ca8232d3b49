/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl node: this machine's identity. `node init` reads the TPM's
 * endorsement key and writes a node card for the administrator to
 * authorize; `node show` prints what a card says. The service-side node
 * commands (authorize, revoke, list) talk to dkmd and live elsewhere.
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dkm/base/config.h"
#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/nodecard.h"
#include "dkm/base/codec.h"
#include "dkm/tpm/tlskey.h"
#include "dkm/tpm/tpm.h"

#define DEFAULT_CARD "node.card"
#define DEFAULT_TLS_KEY "node-tls.key"
#define DEFAULT_TLS_CERT "node-tls.crt"
#define TLS_CERT_DAYS 3650

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl node init [--tcti TCTI] [--out FILE] [--ek rsa|ecc]\n"
            "                        [--hostname NAME] [--force] [--json]\n"
            "                        [--tls [--tls-key FILE] [--tls-cert FILE]]\n"
            "       dkmctl node show [--in FILE] [--json]\n"
            "\n"
            "init  Read this machine's TPM endorsement key (EK), write a node card and\n"
            "      print the node id (the EK's TPM name, 68 hex digits) on stdout.\n"
            "      The card holds the EK public key, the EK certificate when the TPM\n"
            "      has one, the hostname and the time; give it to an administrator\n"
            "      for `dkmctl node authorize`. It contains no secret.\n"
            "  --tcti TCTI     TPM to use, e.g. device:/dev/tpmrm0 or\n"
            "                  swtpm:host=127.0.0.1,port=2321; default: `tcti` in the\n"
            "                  [dkmctl] section of --config, else $DKM_TCTI\n"
            "  --out FILE      card file to write (default: ./" DEFAULT_CARD ")\n"
            "  --ek rsa|ecc    which EK is the identity (default: ecc when the TPM\n"
            "                  has NIST P-256, else rsa); keep the same choice on a\n"
            "                  machine, the two give different node ids\n"
            "  --hostname NAME hostname to put in the card (default: this machine's)\n"
            "  --force         replace an existing card file (and TLS files)\n"
            "  --tls           also create a TLS client key in the TPM (ECDSA P-256\n"
            "                  under the storage root key, through tpm2-openssl) and a\n"
            "                  self-signed certificate for it; the key file is a TPM\n"
            "                  blob that no other TPM can use. Bind it to the node\n"
            "                  with `dkmctl node authorize CARD --node-tls-cert CERT`\n"
            "                  and use it as tls_key/tls_cert (provider, dkmctl)\n"
            "  --tls-key FILE  the TLS key file (default: ./" DEFAULT_TLS_KEY ")\n"
            "  --tls-cert FILE its certificate (default: ./" DEFAULT_TLS_CERT ")\n"
            "\n"
            "show  Print a node card: node id, EK type, hostname, creation time and\n"
            "      whether it carries an EK certificate.\n"
            "  --in FILE       card file to read (default: ./" DEFAULT_CARD ")\n"
            "\n"
            "  --json          print JSON instead of text (also the global --json)\n");
}

/* The TCTI from the command line, else from the configuration file. A
 * NULL result lets dkm_tpm_open fall back to $DKM_TCTI. */
static int pick_tcti(const struct dkmctl_globals *g, const char *opt, char **ret)
{
    struct dkm_config *cfg = NULL;
    const char *v = NULL;
    int r;

    *ret = NULL;
    if (opt != NULL || g->config_path == NULL) {
        if (opt != NULL && (*ret = strdup(opt)) == NULL)
            return dkm_error_set(-ENOMEM, "out of memory");
        return 0;
    }
    r = dkm_config_load(g->config_path, &cfg);
    if (r < 0)
        return r;
    r = dkm_config_string(cfg, "dkmctl", "tcti", "", &v);
    if (r == 0 && v[0] != '\0' && (*ret = strdup(v)) == NULL)
        r = dkm_error_set(-ENOMEM, "out of memory");
    dkm_config_free(cfg);
    return r;
}

static int print_json(json_t *obj)
{
    int r = 0;

    if (obj == NULL || json_dumpf(obj, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
        r = dkm_error_set(-ENOMEM, "cannot write JSON");
    else
        fputc('\n', stdout);
    json_decref(obj);
    return r;
}

static int cmd_init(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        {"tcti", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},
        {"ek", required_argument, NULL, 'e'},
        {"hostname", required_argument, NULL, 'H'},
        {"force", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"tls", no_argument, NULL, 'T'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *tcti_opt = NULL, *out = DEFAULT_CARD, *ek = NULL, *hostname = NULL;
    const char *tls_key = DEFAULT_TLS_KEY, *tls_cert = DEFAULT_TLS_CERT;
    bool force = false, json = g->json, tls = false;
    uint8_t key_id[32];
    char key_hex[65] = "";
    struct dkm_nodecard *card = NULL;
    struct dkm_tpm *tpm = NULL;
    enum dkm_ek_type type = DKM_EK_ECCP256;
    char hex[DKM_NODE_ID_HEX_SIZE];
    char *tcti = NULL;
    int c, r;

    while ((c = getopt_long(argc, argv, "t:o:e:H:fjTK:C:h", options, NULL)) != -1) {
        switch (c) {
        case 'T':
            tls = true;
            break;
        case 'K':
            tls_key = optarg;
            break;
        case 'C':
            tls_cert = optarg;
            break;
        case 't':
            tcti_opt = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'e':
            ek = optarg;
            break;
        case 'H':
            hostname = optarg;
            break;
        case 'f':
            force = true;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return DKMCTL_EXIT_OK;
        default:
            usage(stderr);
            return DKMCTL_EXIT_USAGE;
        }
    }
    if (optind != argc || out[0] == '\0' ||
        (ek != NULL && strcmp(ek, "rsa") != 0 && strcmp(ek, "ecc") != 0)) {
        usage(stderr);
        return DKMCTL_EXIT_USAGE;
    }
    if (hostname != NULL && dkm_hostname_check(hostname) < 0) {
        dkmctl_report("--hostname", -EINVAL);
        return DKMCTL_EXIT_USAGE;
    }

    r = pick_tcti(g, tcti_opt, &tcti);
    if (r < 0) {
        dkmctl_report("configuration", r);
        goto done;
    }
    r = dkm_tpm_open(tcti, &tpm);
    if (r < 0) {
        dkmctl_report("opening the TPM", r);
        goto done;
    }
    if (ek != NULL)
        type = strcmp(ek, "rsa") == 0 ? DKM_EK_RSA2048 : DKM_EK_ECCP256;
    else
        r = dkm_node_default_ek_type(tpm, &type);
    if (r == 0)
        r = dkm_nodecard_from_tpm(tpm, type, hostname, 0, &card);
    if (r < 0) {
        dkmctl_report("reading the endorsement key", r);
        goto done;
    }
    r = dkm_nodecard_write_file(card, out, force);
    if (r == -EEXIST) {
        dkm_error_set(r, "%s exists; use --force to replace it", out);
        dkmctl_report("writing the node card", r);
        goto done;
    }
    if (r < 0) {
        dkmctl_report("writing the node card", r);
        goto done;
    }
    dkm_node_id_hex(&card->id, hex);
    if (tls) {
        /* tpm2-openssl opens a connection of its own: ours goes first (a
         * TPM without a resource manager serves one at a time). */
        dkm_tpm_close(tpm);
        tpm = NULL;
        r = dkm_tls_key_create(tcti, tls_key, tls_cert, card->hostname, TLS_CERT_DAYS,
                               force, key_id);
        if (r == -EEXIST)
            dkm_error_set(r, "%s or %s exists; use --force to replace them", tls_key,
                          tls_cert);
        if (r < 0) {
            dkmctl_report("creating the TLS key in the TPM", r);
            goto done;
        }
        r = dkm_hex_encode(key_id, sizeof(key_id), key_hex, sizeof(key_hex));
        if (r < 0)
            goto done;
    }
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b}", "node_id", hex, "ek_type",
                              dkm_ek_type_name(type), "hostname", card->hostname, "card",
                              out, "ek_certificate", card->ek_cert != NULL);

        if (o != NULL && tls)
            json_object_set_new(o, "tls",
                                json_pack("{s:s, s:s, s:s}", "key", tls_key, "cert",
                                          tls_cert, "key_id", key_hex));
        r = print_json(o);
    } else {
        printf("%s\n", hex);
        if (tls)
            fprintf(stderr, "TLS key in the TPM: %s, certificate %s, key id %s\n",
                    tls_key, tls_cert, key_hex);
    }
    if (r < 0)
        dkmctl_report("output", r);
done:
    dkm_nodecard_free(card);
    dkm_tpm_close(tpm);
    free(tcti);
    return dkmctl_exit_code(r);
}

static int cmd_show(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        {"in", required_argument, NULL, 'i'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *in = DEFAULT_CARD;
    bool json = g->json;
    struct dkm_nodecard *card = NULL;
    char hex[DKM_NODE_ID_HEX_SIZE], when[32] = "?";
    time_t t;
    struct tm tm;
    int c, r;

    while ((c = getopt_long(argc, argv, "i:jh", options, NULL)) != -1) {
        switch (c) {
        case 'i':
            in = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return DKMCTL_EXIT_OK;
        default:
            usage(stderr);
            return DKMCTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return DKMCTL_EXIT_USAGE;
    }
    r = dkm_nodecard_read_file(in, &card);
    if (r < 0) {
        dkmctl_report("reading the node card", r);
        return dkmctl_exit_code(r);
    }
    dkm_node_id_hex(&card->id, hex);
    t = (time_t)card->created;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (json) {
        r = print_json(json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:I}", "node_id", hex,
                                 "ek_type", dkm_ek_type_name(card->ek_type), "hostname",
                                 card->hostname, "created", (json_int_t)card->created,
                                 "created_utc", when, "ek_certificate",
                                 card->ek_cert != NULL, "ek_certificate_bytes",
                                 (json_int_t)card->ek_cert_len));
        if (r < 0)
            dkmctl_report("output", r);
    } else {
        printf("node id:         %s\n", hex);
        printf("EK type:         %s (%s)\n", dkm_ek_type_name(card->ek_type),
               card->ek_type == DKM_EK_RSA2048 ? "RSA 2048" : "ECC NIST P-256");
        printf("hostname:        %s\n", card->hostname);
        printf("created:         %s\n", when);
        if (card->ek_cert != NULL)
            printf("EK certificate:  present (%zu bytes)\n", card->ek_cert_len);
        else
            printf("EK certificate:  absent\n");
    }
    dkm_nodecard_free(card);
    return dkmctl_exit_code(r);
}

int dkmctl_cmd_node(const struct dkmctl_globals *g, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub == NULL) {
        usage(stderr);
        return DKMCTL_EXIT_USAGE;
    }
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        usage(stdout);
        return DKMCTL_EXIT_OK;
    }
    /* getopt starts afresh on the subcommand's arguments. */
    optind = 0;
    if (strcmp(sub, "init") == 0)
        return cmd_init(g, argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0)
        return cmd_show(g, argc - 1, argv + 1);
    fprintf(stderr, "dkmctl: node: unknown subcommand \"%s\" (see dkmctl node --help)\n",
            sub);
    return DKMCTL_EXIT_USAGE;
}
