/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl's service commands: groups, node authorization, the audit log
 * (all through dkmd's admin socket), and `key fetch`, which runs the
 * node's whole fetch path (trust, fetch, verify, TPM unseal, disk cache)
 * for debugging without printing the key. Answers are printed for humans,
 * or as the server's JSON with --json; exit codes follow dkmctl.h.
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "dkm/client.h"
#include "dkm/codec.h"
#include "dkm/config.h"
#include "dkm/error.h"
#include "dkm/file.h"
#include "dkm/node.h"
#include "dkm/nodecard.h"
#include "dkm/secmem.h"
#include "dkm/uri.h"

#define DEFAULT_SOCKET "/run/dkm/dkmd.sock"
#define DEFAULT_ROTATE (30u * 86400u)
#define DEFAULT_LIFETIME (90u * 86400u)
#define DEFAULT_TTL 300u
#define CARD_FILE_MAX 65536

/* Settings shared by the service commands: option, else config, else env. */
struct svc_opts {
    const char *socket;
    const char *service;
    const char *trust;
    const char *tcti;
    const char *cache_dir;
    bool json;
};

enum {
    OPT_SOCKET = 0x100,
    OPT_SERVICE,
    OPT_TRUST,
    OPT_TCTI,
    OPT_CACHE_DIR,
    OPT_ROTATE,
    OPT_LIFETIME,
    OPT_TTL,
    OPT_PCR,
    OPT_PCR_VALUES,
    OPT_ROLE,
    OPT_LIMIT,
    OPT_AFTER,
};

#define COMMON_OPTIONS                                                                   \
    {"socket", required_argument, NULL, OPT_SOCKET}, {"json", no_argument, NULL, 'j'},   \
    {                                                                                    \
        "help", no_argument, NULL, 'h'                                                   \
    }

static void usage_group(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl group create NAME [--rotate D] [--lifetime D] [--ttl D]\n"
            "                               [--pcr N[,N...] --pcr-values HEX]\n"
            "       dkmctl group list\n"
            "       dkmctl group show NAME\n"
            "       dkmctl group rotate NAME\n"
            "       dkmctl group policy NAME [--rotate D] [--lifetime D] [--ttl D]\n"
            "                               [--pcr N[,N...] --pcr-values HEX]\n"
            "       dkmctl group grant NAME NODE_ID\n"
            "       dkmctl group revoke NAME NODE_ID\n"
            "\n"
            "Manage key groups through dkmd's admin socket.\n"
            "  create    new group with version 1 active\n"
            "  rotate    make a new version current (older ones stay usable for\n"
            "            decryption until their lifetime ends)\n"
            "  policy    change the group's policy (only the options given)\n"
            "  grant     let a node fetch the group's keys; revoke takes it back\n"
            "\n"
            "  --rotate D      rotation period (default 30d)\n"
            "  --lifetime D    lifetime of a version from its creation (default 90d)\n"
            "  --ttl D         how long a node keeps a key in memory (default 5m)\n"
            "                  D is seconds, or a number with s, m, h, d or w\n"
            "  --pcr LIST      seal keys to these SHA-256 PCRs (0..23)\n"
            "  --pcr-values HEX  their values, 64 hex digits per PCR, ascending\n"
            "  --socket PATH   admin socket (default: admin_socket in [dkmctl] of\n"
            "                  --config, else $DKM_ADMIN_SOCKET, else " DEFAULT_SOCKET
            ")\n"
            "  --json          print the server's JSON answer\n");
}

static void usage_node(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl node authorize CARD [--role client|server|admin]\n"
            "       dkmctl node revoke NODE_ID\n"
            "       dkmctl node list\n"
            "\n"
            "Authorize a node from the card `dkmctl node init` wrote (it prints the\n"
            "node id), revoke a node for good, or list the authorized nodes, through\n"
            "dkmd's admin socket.\n"
            "  --role ROLE     what the node may do (default client)\n"
            "  --socket PATH   admin socket (see dkmctl group --help)\n"
            "  --json          print the server's JSON answer\n");
}

static void usage_audit(FILE *out)
{
    fprintf(out, "Usage: dkmctl audit [--limit N] [--after ID] [--socket PATH] [--json]\n"
                 "\n"
                 "Print dkmd's audit records, oldest first: id, time (UTC), actor,\n"
                 "action, target, outcome and detail.\n"
                 "  --limit N       at most N records (default: the server's)\n"
                 "  --after ID      only records after this id\n");
}

static void usage_key(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl key fetch GROUP[/VERSION] [--service URLS] [--trust FPR]\n"
            "                        [--tcti TCTI] [--cache-dir DIR] [--json]\n"
            "\n"
            "Fetch a key the way the provider does: server lists from the pinned\n"
            "trust, POST /v1/keys/fetch with a fresh nonce, the signed answer checked,\n"
            "imported and unsealed with this node's TPM, and stored in the disk\n"
            "cache; or, when no service URL answers, the cached entry. Prints the\n"
            "version, its expiry, the policy, where it came from and the key id\n"
            "(HMAC of the key, as the provider shows it); never the key.\n"
            "  --service URLS  https://HOST:PORT[,...] (default: service in [dkmctl],\n"
            "                  else $DKM_SERVICE)\n"
            "  --trust FPR     pinned server list fingerprint (trust, $DKM_TRUST)\n"
            "  --tcti TCTI     this node's TPM (tcti, $DKM_TCTI)\n"
            "  --cache-dir DIR disk cache (cache_dir, $DKM_CACHE_DIR)\n");
}

/* Fill unset settings from the [dkmctl] section, then the environment. */
static int load_settings(const struct dkmctl_globals *g, struct svc_opts *o,
                         struct dkm_config **ret_cfg)
{
    static const struct {
        const char *key;
        const char *env;
        size_t off;
    } map[] = {
        {"admin_socket", "DKM_ADMIN_SOCKET", offsetof(struct svc_opts, socket)},
        {"service", "DKM_SERVICE", offsetof(struct svc_opts, service)},
        {"trust", "DKM_TRUST", offsetof(struct svc_opts, trust)},
        {"tcti", "DKM_TCTI", offsetof(struct svc_opts, tcti)},
        {"cache_dir", "DKM_CACHE_DIR", offsetof(struct svc_opts, cache_dir)},
    };
    struct dkm_config *cfg = NULL;
    int r;

    if (g->config_path != NULL) {
        r = dkm_config_load(g->config_path, &cfg);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        const char **f = (const char **)((char *)o + map[i].off);
        const char *v = NULL;

        if (*f != NULL)
            continue;
        if (cfg != NULL) {
            r = dkm_config_string(cfg, "dkmctl", map[i].key, "", &v);
            if (r < 0) {
                dkm_config_free(cfg);
                return r;
            }
        }
        if (v == NULL || v[0] == '\0')
            v = getenv(map[i].env);
        if (v != NULL && v[0] != '\0')
            *f = v;
    }
    if (o->socket == NULL)
        o->socket = DEFAULT_SOCKET;
    if (g->json)
        o->json = true;
    *ret_cfg = cfg;
    return 0;
}

static int open_client(const struct dkmctl_globals *g, struct svc_opts *o,
                       struct dkm_config **ret_cfg, struct dkm_client **ret)
{
    struct dkm_client_config cc = {0};
    int r;

    r = load_settings(g, o, ret_cfg);
    if (r < 0)
        return r;
    cc.admin_socket = o->socket;
    cc.service = o->service;
    cc.trust = o->trust;
    cc.tcti = o->tcti;
    cc.cache_dir = o->cache_dir;
    return dkm_client_new(&cc, NULL, NULL, ret);
}

static int print_json(json_t *obj)
{
    if (json_dumpf(obj, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
        return dkm_error_set(-EIO, "cannot write JSON");
    fputc('\n', stdout);
    return 0;
}

/* "1700000000" -> "2023-11-14 22:13:20Z"; "-" for absent. */
static const char *fmt_time(const json_t *v, char *buf, size_t size)
{
    time_t t;
    struct tm tm;

    if (!json_is_integer(v))
        return "-";
    t = (time_t)json_integer_value(v);
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        return "?";
    return buf;
}

static const char *fmt_duration(const json_t *v, char *buf, size_t size)
{
    static const struct {
        long long s;
        char u;
    } units[] = {{604800, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}};
    long long n;

    if (!json_is_integer(v))
        return "-";
    n = (long long)json_integer_value(v);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (n > 0 && n % units[i].s == 0) {
            snprintf(buf, size, "%lld%c", n / units[i].s, units[i].u);
            return buf;
        }
    }
    snprintf(buf, size, "%llds", n);
    return buf;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s != NULL ? s : "-";
}

static long long num(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* Seconds, or a number with a unit s/m/h/d/w. */
static int parse_duration(const char *opt, const char *s, json_int_t *ret)
{
    unsigned long long n = 0, mult = 1;
    const char *p = s;

    if (*p < '0' || *p > '9')
        goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (unsigned long long)(*p - '0');
        if (n > 100000000000ULL)
            goto bad;
    }
    if (*p != '\0') {
        switch (*p) {
        case 's':
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        case 'w':
            mult = 604800;
            break;
        default:
            goto bad;
        }
        if (p[1] != '\0')
            goto bad;
    }
    if (n == 0)
        goto bad;
    *ret = (json_int_t)(n * mult);
    return 0;
bad:
    return dkm_error_set(-EINVAL,
                         "--%s: expected a duration such as 3600, 90m, 12h, 30d, "
                         "got \"%.32s\"",
                         opt, s);
}

static int parse_pcrs(const char *s, json_int_t *ret_mask)
{
    unsigned long mask = 0;
    const char *p = s;

    while (*p != '\0') {
        char *end = NULL;
        unsigned long v;

        if (*p < '0' || *p > '9')
            goto bad;
        v = strtoul(p, &end, 10);
        if (v > 23 || (*end != ',' && *end != '\0'))
            goto bad;
        mask |= 1ul << v;
        p = *end == ',' ? end + 1 : end;
    }
    if (mask == 0)
        goto bad;
    *ret_mask = (json_int_t)mask;
    return 0;
bad:
    return dkm_error_set(-EINVAL,
                         "--pcr: expected PCR numbers 0..23 separated by commas");
}

static int set_pcr_values(json_t *body, const char *hex, json_int_t mask)
{
    uint8_t values[24 * 32];
    char b64[1100];
    size_t len = 0, nbits = 0;
    int r;

    for (unsigned b = 0; b < 24; b++)
        nbits += ((unsigned long)mask >> b) & 1u;
    if (hex == NULL)
        return dkm_error_set(-EINVAL, "--pcr needs --pcr-values (64 hex digits per PCR)");
    r = dkm_hex_decode(hex, strlen(hex), values, sizeof(values), &len);
    if (r < 0 || len != 32 * nbits)
        return dkm_error_set(
            -EINVAL, "--pcr-values: expected %zu hex digits (64 per PCR)", 64 * nbits);
    r = dkm_b64url_encode(values, len, b64, sizeof(b64));
    if (r < 0)
        return r;
    if (json_object_set_new(body, "pcr_values", json_string(b64)) < 0)
        return dkm_error_set(-ENOMEM, "out of memory");
    return 0;
}

static int report(const char *what, int r)
{
    dkmctl_report(what, r);
    return dkmctl_exit_code(r);
}

static int usage_error(void (*usage)(FILE *), const char *msg)
{
    if (msg != NULL)
        fprintf(stderr, "dkmctl: %s\n", msg);
    usage(stderr);
    return DKMCTL_EXIT_USAGE;
}

/* Run one admin call and print its answer with printer (or as JSON). */
static int admin_call(const struct dkmctl_globals *g, struct svc_opts *o,
                      const char *what, const char *method, const char *path,
                      json_t *body, void (*printer)(const json_t *ans, const void *arg),
                      const void *arg)
{
    struct dkm_config *cfg = NULL;
    struct dkm_client *c = NULL;
    json_t *ans = NULL;
    int r;

    r = open_client(g, o, &cfg, &c);
    if (r == 0)
        r = dkm_client_call(c, true, method, path, body, &ans);
    if (r == 0) {
        if (o->json)
            r = print_json(ans);
        else
            printer(ans, arg);
    }
    json_decref(ans);
    json_decref(body);
    dkm_client_free(c);
    dkm_config_free(cfg);
    return r < 0 ? report(what, r) : DKMCTL_EXIT_OK;
}

/* ---- printers ---- */

static void print_created(const json_t *a, const void *arg)
{
    (void)arg;
    printf("group %s created, version %lld is current\n", str(a, "group"),
           num(a, "version"));
}

static void print_policy(const json_t *p)
{
    char b1[32], b2[32], b3[32], b4[48];

    printf("policy:    serial %lld, rotate every %s, versions live %s, cache ttl %s",
           num(p, "serial"),
           fmt_duration(json_object_get(p, "rotation_period"), b1, sizeof(b1)),
           fmt_duration(json_object_get(p, "version_lifetime"), b2, sizeof(b2)),
           fmt_duration(json_object_get(p, "cache_ttl"), b3, sizeof(b3)));
    if (num(p, "pcr_mask") != 0)
        printf(", PCR mask 0x%06llx", num(p, "pcr_mask"));
    printf("\n           since %s\n",
           fmt_time(json_object_get(p, "created_at"), b4, sizeof(b4)));
}

static void print_group_list(const json_t *a, const void *arg)
{
    const json_t *groups = json_object_get(a, "groups"), *gr;
    char b1[32], b2[32], b3[32];
    size_t i;

    (void)arg;
    printf("%-24s %7s %8s %8s %8s %6s\n", "GROUP", "CURRENT", "VERSIONS", "ROTATE",
           "LIFETIME", "TTL");
    json_array_foreach(groups, i, gr)
    {
        const json_t *p = json_object_get(gr, "policy");

        printf("%-24s %7lld %8lld %8s %8s %6s\n", str(gr, "name"),
               num(gr, "current_version"), num(gr, "versions"),
               fmt_duration(json_object_get(p, "rotation_period"), b1, sizeof(b1)),
               fmt_duration(json_object_get(p, "version_lifetime"), b2, sizeof(b2)),
               fmt_duration(json_object_get(p, "cache_ttl"), b3, sizeof(b3)));
    }
}

static void print_group_show(const json_t *a, const void *arg)
{
    const json_t *v, *m;
    char b1[48], b2[48];
    size_t i;

    (void)arg;
    printf("group:     %s\n", str(a, "name"));
    print_policy(json_object_get(a, "policy"));
    printf("versions:\n");
    json_array_foreach(json_object_get(a, "versions"), i, v)
    {
        printf("  %-6lld %-13s created %s  expires %s\n", num(v, "version"),
               str(v, "state"),
               fmt_time(json_object_get(v, "created_at"), b1, sizeof(b1)),
               fmt_time(json_object_get(v, "expires_at"), b2, sizeof(b2)));
    }
    printf("members:%s\n",
           json_array_size(json_object_get(a, "members")) == 0 ? " none" : "");
    json_array_foreach(json_object_get(a, "members"), i, m)
    {
        printf("  %s\n", json_string_value(m) != NULL ? json_string_value(m) : "?");
    }
}

static void print_rotated(const json_t *a, const void *arg)
{
    printf("group %s: version %lld is current\n", (const char *)arg, num(a, "version"));
}

static void print_policy_serial(const json_t *a, const void *arg)
{
    printf("group %s: policy serial %lld\n", (const char *)arg, num(a, "serial"));
}

static void print_done(const json_t *a, const void *arg)
{
    (void)a;
    printf("%s\n", (const char *)arg);
}

static void print_node_id(const json_t *a, const void *arg)
{
    (void)arg;
    printf("%s\n", str(a, "node_id"));
}

static void print_node_list(const json_t *a, const void *arg)
{
    const json_t *n;
    char b1[48], b2[48];
    size_t i;

    (void)arg;
    printf("%-68s %-6s %-3s %-20s %-20s %s\n", "NODE", "ROLE", "EK", "AUTHORIZED",
           "REVOKED", "HOSTNAME");
    json_array_foreach(json_object_get(a, "nodes"), i, n)
    {
        printf("%-68s %-6s %-3s %-20s %-20s %s\n", str(n, "node_id"), str(n, "role"),
               str(n, "ek_type"),
               fmt_time(json_object_get(n, "authorized_at"), b1, sizeof(b1)),
               fmt_time(json_object_get(n, "revoked_at"), b2, sizeof(b2)),
               str(n, "hostname"));
    }
}

static void print_audit(const json_t *a, const void *arg)
{
    const json_t *rec;
    char b[48];
    size_t i;

    (void)arg;
    json_array_foreach(json_object_get(a, "records"), i, rec)
    {
        printf("%lld %s %s %s %s %s %s\n", num(rec, "id"),
               fmt_time(json_object_get(rec, "at"), b, sizeof(b)), str(rec, "actor"),
               str(rec, "action"), str(rec, "target"), str(rec, "outcome"),
               str(rec, "detail"));
    }
}

/* ---- group ---- */

static int check_group(const char *name)
{
    if (!dkm_group_valid(name, strlen(name)))
        return dkm_error_set(-EINVAL,
                             "invalid group name \"%.80s\" (1-64 of "
                             "[A-Za-z0-9._-])",
                             name);
    return 0;
}

static int group_policy_cmd(const struct dkmctl_globals *g, int argc, char **argv,
                            bool create)
{
    static const struct option options[] = {
        COMMON_OPTIONS,
        {"rotate", required_argument, NULL, OPT_ROTATE},
        {"lifetime", required_argument, NULL, OPT_LIFETIME},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"pcr", required_argument, NULL, OPT_PCR},
        {"pcr-values", required_argument, NULL, OPT_PCR_VALUES},
        {NULL, 0, NULL, 0},
    };
    struct svc_opts o = {0};
    json_int_t rotate = DEFAULT_ROTATE, lifetime = DEFAULT_LIFETIME, ttl = DEFAULT_TTL;
    json_int_t mask = 0;
    bool has_rotate = false, has_lifetime = false, has_ttl = false;
    const char *pcr_values = NULL, *name;
    char path[128];
    json_t *body = NULL;
    int c, r = 0;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case OPT_SOCKET:
            o.socket = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage_group(stdout);
            return DKMCTL_EXIT_OK;
        case OPT_ROTATE:
            r = parse_duration("rotate", optarg, &rotate);
            has_rotate = true;
            break;
        case OPT_LIFETIME:
            r = parse_duration("lifetime", optarg, &lifetime);
            has_lifetime = true;
            break;
        case OPT_TTL:
            r = parse_duration("ttl", optarg, &ttl);
            has_ttl = true;
            break;
        case OPT_PCR:
            r = parse_pcrs(optarg, &mask);
            break;
        case OPT_PCR_VALUES:
            pcr_values = optarg;
            break;
        default:
            return usage_error(usage_group, NULL);
        }
        if (r < 0)
            return report(create ? "group create" : "group policy", r);
    }
    if (optind + 1 != argc)
        return usage_error(usage_group, "expected one group name");
    name = argv[optind];
    r = check_group(name);
    if (r < 0)
        return report("group", r);
    body = json_object();
    if (body == NULL)
        return report("group", -ENOMEM);
    if (create)
        json_object_set_new(body, "name", json_string(name));
    if (create || has_rotate)
        json_object_set_new(body, "rotation_period", json_integer(rotate));
    if (create || has_lifetime)
        json_object_set_new(body, "version_lifetime", json_integer(lifetime));
    if (create || has_ttl)
        json_object_set_new(body, "cache_ttl", json_integer(ttl));
    if (mask != 0) {
        json_object_set_new(body, "pcr_mask", json_integer(mask));
        r = set_pcr_values(body, pcr_values, mask);
    } else if (pcr_values != NULL) {
        r = dkm_error_set(-EINVAL, "--pcr-values needs --pcr");
    }
    if (r < 0) {
        json_decref(body);
        return report("group", r);
    }
    if (!create && json_object_size(body) == 0) {
        json_decref(body);
        return usage_error(usage_group, "group policy: nothing to change");
    }
    if (create)
        return admin_call(g, &o, "group create", "POST", "/v1/groups", body,
                          print_created, NULL);
    snprintf(path, sizeof(path), "/v1/groups/%s/policy", name);
    return admin_call(g, &o, "group policy", "PUT", path, body, print_policy_serial,
                      name);
}

/* Parse the common options; returns -1 to go on, else an exit code. */
static int simple_options(int argc, char **argv, struct svc_opts *o,
                          void (*usage)(FILE *), int nargs)
{
    static const struct option options[] = {
        COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case OPT_SOCKET:
            o->socket = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            return DKMCTL_EXIT_OK;
        default:
            return usage_error(usage, NULL);
        }
    }
    if (argc - optind != nargs)
        return usage_error(usage, "wrong number of arguments");
    return -1;
}

int dkmctl_cmd_group(const struct dkmctl_globals *g, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    struct svc_opts o = {0};
    char path[256], msg[256];
    json_t *body;
    int e, r;

    if (sub == NULL)
        return usage_error(usage_group, NULL);
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        usage_group(stdout);
        return DKMCTL_EXIT_OK;
    }
    argc--;
    argv++;
    optind = 0;
    if (strcmp(sub, "create") == 0)
        return group_policy_cmd(g, argc, argv, true);
    if (strcmp(sub, "policy") == 0)
        return group_policy_cmd(g, argc, argv, false);
    if (strcmp(sub, "list") == 0) {
        if ((e = simple_options(argc, argv, &o, usage_group, 0)) >= 0)
            return e;
        return admin_call(g, &o, "group list", "GET", "/v1/groups", NULL,
                          print_group_list, NULL);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "rotate") == 0) {
        if ((e = simple_options(argc, argv, &o, usage_group, 1)) >= 0)
            return e;
        if ((r = check_group(argv[optind])) < 0)
            return report("group", r);
        if (strcmp(sub, "show") == 0) {
            snprintf(path, sizeof(path), "/v1/groups/%s", argv[optind]);
            return admin_call(g, &o, "group show", "GET", path, NULL, print_group_show,
                              NULL);
        }
        snprintf(path, sizeof(path), "/v1/groups/%s/rotate", argv[optind]);
        return admin_call(g, &o, "group rotate", "POST", path, NULL, print_rotated,
                          argv[optind]);
    }
    if (strcmp(sub, "grant") == 0 || strcmp(sub, "revoke") == 0) {
        struct dkm_node_id id;
        char hex[DKM_NODE_ID_HEX_SIZE];

        if ((e = simple_options(argc, argv, &o, usage_group, 2)) >= 0)
            return e;
        if ((r = check_group(argv[optind])) < 0 ||
            (r = dkm_node_id_parse(argv[optind + 1], &id)) < 0)
            return report(sub, r);
        dkm_node_id_hex(&id, hex);
        body = json_pack("{s:s}", "node_id", hex);
        if (body == NULL)
            return report(sub, -ENOMEM);
        snprintf(path, sizeof(path), "/v1/groups/%s/%s", argv[optind], sub);
        snprintf(msg, sizeof(msg), "group %s: node %s %s", argv[optind], hex,
                 strcmp(sub, "grant") == 0 ? "granted" : "no longer granted");
        return admin_call(g, &o,
                          strcmp(sub, "grant") == 0 ? "group grant" : "group revoke",
                          "POST", path, body, print_done, msg);
    }
    fprintf(stderr, "dkmctl: group: unknown subcommand \"%s\"\n", sub);
    return usage_error(usage_group, NULL);
}

/* ---- node authorize | revoke | list ---- */

static int node_authorize(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        COMMON_OPTIONS,
        {"role", required_argument, NULL, OPT_ROLE},
        {NULL, 0, NULL, 0},
    };
    struct svc_opts o = {0};
    const char *role = "client";
    uint8_t *text = NULL, *card = NULL;
    size_t text_len = 0, card_len = 0;
    struct dkm_nodecard *nc = NULL;
    enum dkm_role rv;
    char *b64 = NULL;
    json_t *body = NULL;
    int c, r;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case OPT_SOCKET:
            o.socket = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage_node(stdout);
            return DKMCTL_EXIT_OK;
        case OPT_ROLE:
            role = optarg;
            break;
        default:
            return usage_error(usage_node, NULL);
        }
    }
    if (argc - optind != 1)
        return usage_error(usage_node, "node authorize: expected one card file");
    r = dkm_role_parse(role, &rv);
    if (r < 0) {
        r = dkm_error_set(-EINVAL, "--role: expected client, server or admin");
        goto done;
    }
    r = dkm_file_read(argv[optind], CARD_FILE_MAX, &text, &text_len);
    if (r < 0)
        goto done;
    r = dkm_nodecard_dearmor((const char *)text, text_len, &card, &card_len);
    if (r < 0)
        goto done;
    /* Check it here too, so that a wrong file gets a local, precise error. */
    r = dkm_nodecard_decode(card, card_len, &nc);
    if (r < 0)
        goto done;
    b64 = malloc(dkm_b64url_encoded_len(card_len) + 1);
    if (b64 == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    r = dkm_b64url_encode(card, card_len, b64, dkm_b64url_encoded_len(card_len) + 1);
    if (r < 0)
        goto done;
    body = json_pack("{s:s, s:s}", "card", b64, "role", role);
    if (body == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    r = admin_call(g, &o, "node authorize", "POST", "/v1/nodes", body, print_node_id,
                   NULL);
    body = NULL;
    goto out;
done:
    r = report("node authorize", r);
out:
    json_decref(body);
    dkm_nodecard_free(nc);
    free(b64);
    free(card);
    free(text);
    return r;
}

int dkmctl_cmd_node_service(const struct dkmctl_globals *g, int argc, char **argv)
{
    const char *sub = argv[1];
    struct svc_opts o = {0};
    struct dkm_node_id id;
    char path[160], hex[DKM_NODE_ID_HEX_SIZE], msg[128];
    int e, r;

    argc--;
    argv++;
    optind = 0;
    if (strcmp(sub, "authorize") == 0)
        return node_authorize(g, argc, argv);
    if (strcmp(sub, "list") == 0) {
        if ((e = simple_options(argc, argv, &o, usage_node, 0)) >= 0)
            return e;
        return admin_call(g, &o, "node list", "GET", "/v1/nodes", NULL, print_node_list,
                          NULL);
    }
    if (strcmp(sub, "revoke") == 0) {
        if ((e = simple_options(argc, argv, &o, usage_node, 1)) >= 0)
            return e;
        r = dkm_node_id_parse(argv[optind], &id);
        if (r < 0)
            return report("node revoke", r);
        dkm_node_id_hex(&id, hex);
        snprintf(path, sizeof(path), "/v1/nodes/%s/revoke", hex);
        snprintf(msg, sizeof(msg), "node %s revoked", hex);
        return admin_call(g, &o, "node revoke", "POST", path, NULL, print_done, msg);
    }
    return usage_error(usage_node, "unknown node subcommand");
}

/* ---- audit ---- */

int dkmctl_cmd_audit(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        COMMON_OPTIONS,
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"after", required_argument, NULL, OPT_AFTER},
        {NULL, 0, NULL, 0},
    };
    struct svc_opts o = {0};
    const char *limit = NULL, *after = NULL;
    char path[128];
    int c, n = 0;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case OPT_SOCKET:
            o.socket = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage_audit(stdout);
            return DKMCTL_EXIT_OK;
        case OPT_LIMIT:
            limit = optarg;
            break;
        case OPT_AFTER:
            after = optarg;
            break;
        default:
            return usage_error(usage_audit, NULL);
        }
    }
    if (optind != argc)
        return usage_error(usage_audit, "audit takes no arguments");
    if ((limit != NULL &&
         (limit[0] == '\0' || strspn(limit, "0123456789") != strlen(limit) ||
          strlen(limit) > 9)) ||
        (after != NULL &&
         (after[0] == '\0' || strspn(after, "0123456789") != strlen(after) ||
          strlen(after) > 18)))
        return usage_error(usage_audit, "--limit and --after take decimal numbers");
    n = snprintf(path, sizeof(path), "/v1/audit");
    if (limit != NULL)
        n += snprintf(path + n, sizeof(path) - (size_t)n, "?limit=%s", limit);
    if (after != NULL)
        snprintf(path + n, sizeof(path) - (size_t)n, "%cafter=%s",
                 limit != NULL ? '&' : '?', after);
    return admin_call(g, &o, "audit", "GET", path, NULL, print_audit, NULL);
}

/* ---- key fetch ---- */

static int key_id(const void *key, size_t len, char out[17])
{
    static const char label[] = "dkm-key-id";
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t mlen = 0;
    int r;

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, len, (const uint8_t *)label,
                  sizeof(label) - 1, mac, sizeof(mac), &mlen) == NULL ||
        mlen < 8)
        return dkm_error_set(DKM_E_CRYPTO, "HMAC-SHA256 is not available");
    r = dkm_hex_encode(mac, 8, out, 17);
    dkm_memzero(mac, sizeof(mac));
    return r;
}

int dkmctl_cmd_key(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        {"service", required_argument, NULL, OPT_SERVICE},
        {"trust", required_argument, NULL, OPT_TRUST},
        {"tcti", required_argument, NULL, OPT_TCTI},
        {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct svc_opts o = {0};
    struct dkm_config *cfg = NULL;
    struct dkm_client *cl = NULL;
    struct dkm_client_key key = {0};
    struct dkm_uri uri;
    char id[17] = "", tbuf[48], uritext[DKM_URI_MAX + 8];
    json_t *out = NULL;
    int c, r;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_key(argc < 2 ? stderr : stdout);
        return argc < 2 ? DKMCTL_EXIT_USAGE : DKMCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "fetch") != 0)
        return usage_error(usage_key, "unknown key subcommand");
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
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage_key(stdout);
            return DKMCTL_EXIT_OK;
        default:
            return usage_error(usage_key, NULL);
        }
    }
    if (argc - optind != 1)
        return usage_error(usage_key, "key fetch: expected GROUP[/VERSION]");
    if (strncmp(argv[optind], "dkm:", 4) == 0)
        snprintf(uritext, sizeof(uritext), "%s", argv[optind]);
    else
        snprintf(uritext, sizeof(uritext), "dkm:%s", argv[optind]);
    r = dkm_uri_parse(uritext, strlen(uritext), 0, &uri, NULL);
    if (r < 0)
        goto done;
    r = open_client(g, &o, &cfg, &cl);
    if (r < 0)
        goto done;
    r = dkm_client_fetch(cl, uri.group, uri.version, &key);
    if (r < 0)
        goto done;
    r = key_id(key.key, key.key_len, id);
    if (r < 0)
        goto done;
    if (o.json) {
        out = json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:b}", "group", uri.group,
                        "version", (json_int_t)key.version, "expires_at",
                        (json_int_t)key.expires_at, "key_id", id, "cache_ttl",
                        (json_int_t)key.policy.cache_ttl, "policy_serial",
                        (json_int_t)key.policy.serial, "pcr_mask",
                        (json_int_t)key.policy.pcr_mask, "from_cache", key.from_cache);
        r = out != NULL ? print_json(out) : dkm_error_set(-ENOMEM, "out of memory");
    } else {
        json_t *t = json_integer((json_int_t)key.expires_at);

        printf("group %s\nversion %u\nexpires %s\nkey-id %s\ncache-ttl %u\n"
               "policy-serial %u\nsource %s\n",
               uri.group, key.version, fmt_time(t, tbuf, sizeof(tbuf)), id,
               key.policy.cache_ttl, key.policy.serial,
               key.from_cache ? "disk cache (service unreachable)" : "service");
        json_decref(t);
    }
done:
    json_decref(out);
    dkm_client_key_clear(&key);
    dkm_client_free(cl);
    dkm_config_free(cfg);
    return r < 0 ? report("key fetch", r) : DKMCTL_EXIT_OK;
}
