/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl group: create, list, show, rotate, policy, grant and revoke key
 * groups through dkmd's admin socket. Durations and PCR selections are
 * parsed here; the admin call and the output helpers are in cmd_admin.c.
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dkm/base/codec.h"
#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/base/uri.h"

#define DEFAULT_ROTATE (30u * 86400u)
#define DEFAULT_LIFETIME (90u * 86400u)
#define DEFAULT_TTL 300u

static void usage_group(FILE *out)
{
    fprintf(
        out,
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
        "Manage key groups through dkmd's admin socket, or over TLS as an admin node.\n"
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
        "  --pcr-values HEX  their values, 64 hex digits per PCR, "
        "ascending\n" DKMCTL_SVC_OPTIONS_HELP);
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

static void print_created(const json_t *a, const void *arg)
{
    (void)arg;
    printf("group %s created, version %lld is current\n", dkmctl_jstr(a, "group"),
           dkmctl_jnum(a, "version"));
}

static void print_policy(const json_t *p)
{
    char b1[32], b2[32], b3[32], b4[48];

    printf("policy:    serial %lld, rotate every %s, versions live %s, cache ttl %s",
           dkmctl_jnum(p, "serial"),
           dkmctl_fmt_duration(json_object_get(p, "rotation_period"), b1, sizeof(b1)),
           dkmctl_fmt_duration(json_object_get(p, "version_lifetime"), b2, sizeof(b2)),
           dkmctl_fmt_duration(json_object_get(p, "cache_ttl"), b3, sizeof(b3)));
    if (dkmctl_jnum(p, "pcr_mask") != 0)
        printf(", PCR mask 0x%06llx", dkmctl_jnum(p, "pcr_mask"));
    printf("\n           since %s\n",
           dkmctl_fmt_time(json_object_get(p, "created_at"), b4, sizeof(b4)));
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

        printf(
            "%-24s %7lld %8lld %8s %8s %6s\n", dkmctl_jstr(gr, "name"),
            dkmctl_jnum(gr, "current_version"), dkmctl_jnum(gr, "versions"),
            dkmctl_fmt_duration(json_object_get(p, "rotation_period"), b1, sizeof(b1)),
            dkmctl_fmt_duration(json_object_get(p, "version_lifetime"), b2, sizeof(b2)),
            dkmctl_fmt_duration(json_object_get(p, "cache_ttl"), b3, sizeof(b3)));
    }
}

static void print_group_show(const json_t *a, const void *arg)
{
    const json_t *v, *m;
    char b1[48], b2[48];
    size_t i;

    (void)arg;
    printf("group:     %s\n", dkmctl_jstr(a, "name"));
    print_policy(json_object_get(a, "policy"));
    printf("versions:\n");
    json_array_foreach(json_object_get(a, "versions"), i, v)
    {
        printf("  %-6lld %-13s created %s  expires %s\n", dkmctl_jnum(v, "version"),
               dkmctl_jstr(v, "state"),
               dkmctl_fmt_time(json_object_get(v, "created_at"), b1, sizeof(b1)),
               dkmctl_fmt_time(json_object_get(v, "expires_at"), b2, sizeof(b2)));
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
    printf("group %s: version %lld is current\n", (const char *)arg,
           dkmctl_jnum(a, "version"));
}

static void print_policy_serial(const json_t *a, const void *arg)
{
    printf("group %s: policy serial %lld\n", (const char *)arg, dkmctl_jnum(a, "serial"));
}

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
        DKMCTL_SVC_OPTIONS,
        {"rotate", required_argument, NULL, OPT_ROTATE},
        {"lifetime", required_argument, NULL, OPT_LIFETIME},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"pcr", required_argument, NULL, OPT_PCR},
        {"pcr-values", required_argument, NULL, OPT_PCR_VALUES},
        {NULL, 0, NULL, 0},
    };
    struct dkmctl_svc_opts o = {0};
    json_int_t rotate = DEFAULT_ROTATE, lifetime = DEFAULT_LIFETIME, ttl = DEFAULT_TTL;
    json_int_t mask = 0;
    bool has_rotate = false, has_lifetime = false, has_ttl = false;
    const char *pcr_values = NULL, *name;
    char path[128];
    json_t *body = NULL;
    int c, r = 0;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
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
            if (!dkmctl_svc_option(c, optarg, &o))
                return dkmctl_usage_error(usage_group, NULL);
            break;
        }
        if (r < 0)
            return dkmctl_fail(create ? "group create" : "group policy", r);
    }
    if (optind + 1 != argc)
        return dkmctl_usage_error(usage_group, "expected one group name");
    name = argv[optind];
    r = check_group(name);
    if (r < 0)
        return dkmctl_fail("group", r);
    body = json_object();
    if (body == NULL)
        return dkmctl_fail("group", -ENOMEM);
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
        return dkmctl_fail("group", r);
    }
    if (!create && json_object_size(body) == 0) {
        json_decref(body);
        return dkmctl_usage_error(usage_group, "group policy: nothing to change");
    }
    if (create)
        return dkmctl_admin_call(g, &o, "group create", "POST", "/v1/groups", body,
                                 print_created, NULL);
    snprintf(path, sizeof(path), "/v1/groups/%s/policy", name);
    return dkmctl_admin_call(g, &o, "group policy", "PUT", path, body,
                             print_policy_serial, name);
}

int dkmctl_cmd_group(const struct dkmctl_globals *g, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    struct dkmctl_svc_opts o = {0};
    char path[256], msg[256];
    json_t *body;
    int e, r;

    if (sub == NULL)
        return dkmctl_usage_error(usage_group, NULL);
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
        if ((e = dkmctl_simple_options(argc, argv, &o, usage_group, 0)) >= 0)
            return e;
        return dkmctl_admin_call(g, &o, "group list", "GET", "/v1/groups", NULL,
                                 print_group_list, NULL);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "rotate") == 0) {
        if ((e = dkmctl_simple_options(argc, argv, &o, usage_group, 1)) >= 0)
            return e;
        if ((r = check_group(argv[optind])) < 0)
            return dkmctl_fail("group", r);
        if (strcmp(sub, "show") == 0) {
            snprintf(path, sizeof(path), "/v1/groups/%s", argv[optind]);
            return dkmctl_admin_call(g, &o, "group show", "GET", path, NULL,
                                     print_group_show, NULL);
        }
        snprintf(path, sizeof(path), "/v1/groups/%s/rotate", argv[optind]);
        return dkmctl_admin_call(g, &o, "group rotate", "POST", path, NULL, print_rotated,
                                 argv[optind]);
    }
    if (strcmp(sub, "grant") == 0 || strcmp(sub, "revoke") == 0) {
        struct dkm_node_id id;
        char hex[DKM_NODE_ID_HEX_SIZE];

        if ((e = dkmctl_simple_options(argc, argv, &o, usage_group, 2)) >= 0)
            return e;
        if ((r = check_group(argv[optind])) < 0 ||
            (r = dkm_node_id_parse(argv[optind + 1], &id)) < 0)
            return dkmctl_fail(sub, r);
        dkm_node_id_hex(&id, hex);
        body = json_pack("{s:s}", "node_id", hex);
        if (body == NULL)
            return dkmctl_fail(sub, -ENOMEM);
        snprintf(path, sizeof(path), "/v1/groups/%s/%s", argv[optind], sub);
        snprintf(msg, sizeof(msg), "group %s: node %s %s", argv[optind], hex,
                 strcmp(sub, "grant") == 0 ? "granted" : "no longer granted");
        return dkmctl_admin_call(
            g, &o, strcmp(sub, "grant") == 0 ? "group grant" : "group revoke", "POST",
            path, body, dkmctl_print_done, msg);
    }
    fprintf(stderr, "dkmctl: group: unknown subcommand \"%s\"\n", sub);
    return dkmctl_usage_error(usage_group, NULL);
}
