/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl's node-side key commands: `key fetch`, which runs the node's
 * whole fetch path (kernel keyring, trust, fetch, verify, TPM unseal,
 * disk cache) as the provider does, without printing the key; `key list`,
 * the key versions kept in the kernel keyring (never their bytes); and
 * `key flush`, which removes them. Exit codes follow dkmctl.h.
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dkm/base/codec.h"
#include "dkm/base/config.h"
#include "dkm/base/error.h"
#include "dkm/base/uri.h"
#include "dkm/client/client.h"
#include "dkm/client/keyring.h"

static void usage_key(FILE *out)
{
    fprintf(
        out,
        "Usage: dkmctl key fetch GROUP[/VERSION] [--service URLS] [--trust FPR]\n"
        "                        [--tcti TCTI] [--cache-dir DIR]\n"
        "                        [--tls-cert CERT --tls-key KEY] [--json]\n"
        "       dkmctl key list [--trust FPR] [--tcti TCTI] [--cache-dir DIR] [--json]\n"
        "       dkmctl key flush [GROUP] [--trust FPR] [--tcti TCTI] [--cache-dir DIR]\n"
        "\n"
        "fetch: get a key the way the provider does: the kernel keyring first;\n"
        "else server lists from the pinned trust, POST /v1/keys/fetch with a\n"
        "fresh nonce, the signed answer checked, imported and unsealed with this\n"
        "node's TPM, and stored in the disk cache and the kernel keyring; or,\n"
        "when no service URL answers, the cached entry. Prints the version, its\n"
        "expiry, the policy, where it came from and the key id (HMAC of the key,\n"
        "as the provider shows it); never the key.\n"
        "list: the key versions this node's configuration keeps in the kernel\n"
        "keyring, with the time the kernel forgets each; never the keys.\n"
        "flush: remove them from the keyring (all, or those of GROUP); the next\n"
        "use unseals again.\n"
        "  --service URLS  https://HOST:PORT[,...] (default: service in [dkmctl],\n"
        "                  else $DKM_SERVICE)\n"
        "  --trust FPR     pinned server list fingerprint (trust, $DKM_TRUST)\n"
        "  --tcti TCTI     this node's TPM (tcti, $DKM_TCTI)\n"
        "  --cache-dir DIR disk cache (cache_dir, $DKM_CACHE_DIR)\n"
        "  --tls-cert CERT, --tls-key KEY  the node's TLS client certificate and\n"
        "                  key, presented as the provider's tls_cert and tls_key\n"
        "                  are (tls_cert, tls_key); KEY may be held in the TPM\n"
        "                  (a TSS2 key file from `dkmctl node init --tls`)\n"
        "The keyring is used unless key_cache in [dkmctl] or $DKM_KEY_CACHE is\n"
        "\"process\". list and flush see the keys of the same trust, TCTI and\n"
        "cache directory as the provider's configuration.\n");
}

static const char *source_of(const struct dkm_client_key *k)
{
    if (k->from_keyring)
        return "kernel keyring";
    return k->from_cache ? "disk cache (service unreachable)" : "service";
}

static int key_fetch(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                     const char *name)
{
    struct dkm_config *cfg = NULL;
    struct dkm_client *cl = NULL;
    struct dkm_client_key key = {0};
    struct dkm_uri uri;
    uint8_t idb[DKM_KEYRING_KEY_ID_SIZE];
    char id[2 * DKM_KEYRING_KEY_ID_SIZE + 1] = "", tbuf[48], uritext[DKM_URI_MAX + 8];
    json_t *out = NULL;
    int r;

    if (strncmp(name, "dkm:", 4) == 0)
        snprintf(uritext, sizeof(uritext), "%s", name);
    else
        snprintf(uritext, sizeof(uritext), "dkm:%s", name);
    r = dkm_uri_parse(uritext, strlen(uritext), 0, &uri, NULL);
    if (r < 0)
        goto done;
    r = dkmctl_open_client(g, o, &cfg, &cl);
    if (r < 0)
        goto done;
    r = dkm_client_fetch(cl, uri.group, uri.version, &key);
    if (r < 0)
        goto done;
    r = dkm_keyring_key_id(NULL, NULL, key.key, key.key_len, idb);
    if (r == 0)
        r = dkm_hex_encode(idb, sizeof(idb), id, sizeof(id));
    if (r < 0)
        goto done;
    if (o->json) {
        out = json_pack(
            "{s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:b, s:b}", "group", uri.group,
            "version", (json_int_t)key.version, "expires_at", (json_int_t)key.expires_at,
            "key_id", id, "cache_ttl", (json_int_t)key.policy.cache_ttl, "policy_serial",
            (json_int_t)key.policy.serial, "pcr_mask", (json_int_t)key.policy.pcr_mask,
            "from_cache", key.from_cache, "from_keyring", key.from_keyring);
        r = out != NULL ? dkmctl_print_json(out)
                        : dkm_error_set(-ENOMEM, "out of memory");
    } else {
        json_t *t = json_integer((json_int_t)key.expires_at);

        printf("group %s\nversion %u\nexpires %s\nkey-id %s\ncache-ttl %u\n"
               "policy-serial %u\nsource %s\n",
               uri.group, key.version, dkmctl_fmt_time(t, tbuf, sizeof(tbuf)), id,
               key.policy.cache_ttl, key.policy.serial, source_of(&key));
        json_decref(t);
    }
done:
    json_decref(out);
    dkm_client_key_clear(&key);
    dkm_client_free(cl);
    dkm_config_free(cfg);
    return r < 0 ? dkmctl_fail("key fetch", r) : DKMCTL_EXIT_OK;
}

struct listing {
    bool json;
    json_t *array;
    size_t n;
};

static int list_one(void *arg, const struct dkm_keyring_entry *e)
{
    struct listing *l = arg;
    char id[2 * DKM_KEYRING_KEY_ID_SIZE + 1], tbuf[48];
    json_t *t;
    int r;

    r = dkm_hex_encode(e->key_id, sizeof(e->key_id), id, sizeof(id));
    if (r < 0)
        return r;
    l->n++;
    if (l->json)
        return json_array_append_new(
                   l->array,
                   json_pack("{s:s, s:I, s:I, s:I, s:s, s:I}", "group", e->group,
                             "version", (json_int_t)e->version, "cached_until",
                             (json_int_t)e->cached_until, "expires_at",
                             (json_int_t)e->expires_at, "key_id", id, "policy_serial",
                             (json_int_t)e->policy_serial)) == 0
                   ? 0
                   : dkm_error_set(-ENOMEM, "out of memory");
    t = json_integer((json_int_t)e->cached_until);
    printf("%-24s %8u  %-21s %s\n", e->group, e->version,
           dkmctl_fmt_time(t, tbuf, sizeof(tbuf)), id);
    json_decref(t);
    return 0;
}

static int key_list(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o)
{
    struct listing l = {.json = o->json};
    struct dkm_config *cfg = NULL;
    struct dkm_client *cl = NULL;
    int r;

    r = dkmctl_open_client(g, o, &cfg, &cl);
    if (r < 0)
        goto done;
    l.json = o->json;
    if (l.json && (l.array = json_array()) == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    if (!l.json)
        printf("%-24s %8s  %-21s %s\n", "GROUP", "VERSION", "CACHED UNTIL", "KEY ID");
    r = dkm_client_keyring_list(cl, list_one, &l);
    if (r == 0 && l.json)
        r = dkmctl_print_json(l.array);
done:
    json_decref(l.array);
    dkm_client_free(cl);
    dkm_config_free(cfg);
    return r < 0 ? dkmctl_fail("key list", r) : DKMCTL_EXIT_OK;
}

static int key_flush(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                     const char *group)
{
    struct dkm_config *cfg = NULL;
    struct dkm_client *cl = NULL;
    size_t n = 0;
    int r = 0;

    if (group != NULL && !dkm_group_valid(group, strlen(group)))
        r = dkm_error_set(-EINVAL, "\"%.80s\" is not a group name", group);
    if (r == 0)
        r = dkmctl_open_client(g, o, &cfg, &cl);
    if (r == 0)
        r = dkm_client_keyring_flush(cl, group, &n);
    if (r == 0)
        printf("removed %zu key version(s)%s%s from the kernel keyring\n", n,
               group != NULL ? " of " : "", group != NULL ? group : "");
    dkm_client_free(cl);
    dkm_config_free(cfg);
    return r < 0 ? dkmctl_fail("key flush", r) : DKMCTL_EXIT_OK;
}

int dkmctl_cmd_key(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        {"service", required_argument, NULL, OPT_SERVICE},
        {"trust", required_argument, NULL, OPT_TRUST},
        {"tcti", required_argument, NULL, OPT_TCTI},
        {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dkmctl_svc_opts o = {0};
    const char *sub;
    int c, nargs;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_key(argc < 2 ? stderr : stdout);
        return argc < 2 ? DKMCTL_EXIT_USAGE : DKMCTL_EXIT_OK;
    }
    sub = argv[1];
    if (strcmp(sub, "fetch") != 0 && strcmp(sub, "list") != 0 &&
        strcmp(sub, "flush") != 0)
        return dkmctl_usage_error(usage_key, "unknown key subcommand");
    argc--;
    argv++;
    optind = 0;
    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case OPT_SERVICE:
            o.service = optarg;
            break;
        case OPT_TRUST:
            o.trust = optarg;
            break;
        case OPT_TCTI:
            o.tcti = optarg;
            break;
        case OPT_CACHE_DIR:
            o.cache_dir = optarg;
            break;
        case OPT_TLS_CERT:
            o.tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            o.tls_key = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage_key(stdout);
            return DKMCTL_EXIT_OK;
        default:
            return dkmctl_usage_error(usage_key, NULL);
        }
    }
    nargs = argc - optind;
    if (strcmp(sub, "fetch") == 0) {
        if (nargs != 1)
            return dkmctl_usage_error(usage_key, "key fetch: expected GROUP[/VERSION]");
        return key_fetch(g, &o, argv[optind]);
    }
    if (strcmp(sub, "list") == 0) {
        if (nargs != 0)
            return dkmctl_usage_error(usage_key, "key list: takes no arguments");
        return key_list(g, &o);
    }
    if (nargs > 1)
        return dkmctl_usage_error(usage_key, "key flush: expected at most a GROUP");
    return key_flush(g, &o, nargs == 1 ? argv[optind] : NULL);
}
