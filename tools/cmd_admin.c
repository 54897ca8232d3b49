/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl's service commands: groups, node authorization and the audit log
 * (all through dkmd's admin socket, or over TLS as an admin node), and
 * the settings and client every service command opens. Answers are
 * printed for humans, or as the server's JSON with --json; exit codes
 * follow dkmctl.h.
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

#include "dkm/client/client.h"
#include "dkm/base/codec.h"
#include "dkm/base/config.h"
#include "dkm/base/error.h"
#include "dkm/base/file.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/nodecard.h"
#include "dkm/base/secmem.h"
#include "dkm/base/uri.h"

#define CARD_FILE_MAX 65536

static void usage_node(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl node authorize CARD [--role client|server|admin]\n"
            "                              [--node-tls-cert FILE]\n"
            "       dkmctl node tls NODE_ID CERT\n"
            "       dkmctl node revoke NODE_ID\n"
            "       dkmctl node list\n"
            "\n"
            "Authorize a node from the card `dkmctl node init` wrote (it prints the\n"
            "node id), bind a TLS client key to a node (its certificate CERT, PEM;\n"
            "an admin node administers over TLS with it), revoke a node for good,\n"
            "or list the authorized nodes.\n"
            "  --role ROLE     what the node may do (default client)\n"
            "  --node-tls-cert FILE  bind the key of this PEM certificate to the "
            "node\n" DKMCTL_SVC_OPTIONS_HELP);
}

static void usage_audit(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl audit [--limit N] [--after ID] [OPTIONS]\n"
            "\n"
            "Print dkmd's audit records, oldest first: id, time (UTC), actor,\n"
            "action, target, outcome and detail.\n"
            "  --limit N       at most N records (default: the server's)\n"
            "  --after ID      only records after this id\n" DKMCTL_SVC_OPTIONS_HELP);
}

/* Fill unset settings from the [dkmctl] section, then the environment. */
static int load_settings(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                         struct dkm_config **ret_cfg)
{
    static const struct {
        const char *key;
        const char *env;
        size_t off;
    } map[] = {
        {"admin_socket", "DKM_ADMIN_SOCKET", offsetof(struct dkmctl_svc_opts, socket)},
        {"service", "DKM_SERVICE", offsetof(struct dkmctl_svc_opts, service)},
        {"trust", "DKM_TRUST", offsetof(struct dkmctl_svc_opts, trust)},
        {"tcti", "DKM_TCTI", offsetof(struct dkmctl_svc_opts, tcti)},
        {"cache_dir", "DKM_CACHE_DIR", offsetof(struct dkmctl_svc_opts, cache_dir)},
        {"tls_cert", NULL, offsetof(struct dkmctl_svc_opts, tls_cert)},
        {"tls_key", NULL, offsetof(struct dkmctl_svc_opts, tls_key)},
        {"tls_ca", NULL, offsetof(struct dkmctl_svc_opts, tls_ca)},
        {"key_cache", "DKM_KEY_CACHE", offsetof(struct dkmctl_svc_opts, key_cache)},
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
        if ((v == NULL || v[0] == '\0') && map[i].env != NULL)
            v = getenv(map[i].env);
        if (v != NULL && v[0] != '\0')
            *f = v;
    }
    if (o->socket == NULL)
        o->socket = DKMCTL_DEFAULT_SOCKET;
    if (g->json)
        o->json = true;
    *ret_cfg = cfg;
    return 0;
}

int dkmctl_open_client(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
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
    cc.tls_cert = o->tls_cert;
    cc.tls_key = o->tls_key;
    cc.tls_ca = o->tls_ca;
    cc.key_cache = o->key_cache;
    cc.timeout_ms = o->timeout_ms;
    return dkm_client_new(&cc, NULL, NULL, ret);
}

int dkmctl_print_json(json_t *obj)
{
    if (json_dumpf(obj, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
        return dkm_error_set(-EIO, "cannot write JSON");
    fputc('\n', stdout);
    return 0;
}

/* "1700000000" -> "2023-11-14 22:13:20Z"; "-" for absent. */
const char *dkmctl_fmt_time(const json_t *v, char *buf, size_t size)
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

const char *dkmctl_fmt_duration(const json_t *v, char *buf, size_t size)
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

const char *dkmctl_jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s != NULL ? s : "-";
}

long long dkmctl_jnum(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

int dkmctl_fail(const char *what, int r)
{
    dkmctl_report(what, r);
    return dkmctl_exit_code(r);
}

int dkmctl_usage_error(void (*usage)(FILE *), const char *msg)
{
    if (msg != NULL)
        fprintf(stderr, "dkmctl: %s\n", msg);
    usage(stderr);
    return DKMCTL_EXIT_USAGE;
}

bool dkmctl_svc_option(int c, const char *arg, struct dkmctl_svc_opts *o)
{
    switch (c) {
    case OPT_SOCKET:
        o->socket = arg;
        return true;
    case OPT_SERVICE:
        o->service = arg;
        return true;
    case OPT_TLS_CERT:
        o->tls_cert = arg;
        return true;
    case OPT_TLS_KEY:
        o->tls_key = arg;
        return true;
    case OPT_TLS_CA:
        o->tls_ca = arg;
        return true;
    case 'j':
        o->json = true;
        return true;
    default:
        return false;
    }
}

/* Administration over TLS needs the server pinned, and somewhere to go. */
static int check_tls_admin(const struct dkmctl_svc_opts *o)
{
    if (o->tls_cert == NULL)
        return o->tls_key == NULL
                   ? 0
                   : dkm_error_set(DKM_E_CONFIG, "--tls-key needs --tls-cert");
    if (o->tls_key == NULL)
        return dkm_error_set(DKM_E_CONFIG, "--tls-cert needs --tls-key");
    if (o->tls_ca == NULL)
        return dkm_error_set(DKM_E_CONFIG,
                             "administration over TLS needs --tls-ca (the service's "
                             "certificate or its CA): without it anyone in the path "
                             "could answer in the service's place");
    if (o->service == NULL)
        return dkm_error_set(DKM_E_CONFIG,
                             "administration over TLS needs --service https://HOST:PORT");
    return 0;
}

/* Run one admin call and print its answer with printer (or as JSON). */
int dkmctl_admin_call(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                      const char *what, const char *method, const char *path,
                      json_t *body, void (*printer)(const json_t *ans, const void *arg),
                      const void *arg)
{
    return dkmctl_admin_call_long(g, o, what, method, path, body, printer, arg, NULL);
}

int dkmctl_admin_call_long(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                           const char *what, const char *method, const char *path,
                           json_t *body,
                           void (*printer)(const json_t *ans, const void *arg),
                           const void *arg, const struct dkmctl_watch_spec *watch)
{
    struct dkm_config *cfg = NULL, *wcfg = NULL;
    struct dkm_client *c = NULL, *wc = NULL;
    struct dkmctl_watch *w = NULL;
    json_t *ans = NULL;
    int r;

    if (watch != NULL)
        o->timeout_ms = DKMCTL_LONG_TIMEOUT_MS;
    r = dkmctl_open_client(g, o, &cfg, &c);
    if (r == 0)
        r = check_tls_admin(o);
    /*
     * The watcher's polls are short: a client of its own with the default
     * timeout. Without it the call still runs, only without progress.
     */
    if (r == 0 && watch != NULL) {
        struct dkmctl_svc_opts wo = *o;

        wo.timeout_ms = 0;
        if (dkmctl_open_client(g, &wo, &wcfg, &wc) == 0 &&
            dkmctl_watch_start(wc, o->tls_cert == NULL, watch, &w) < 0)
            w = NULL;
        dkm_error_clear();
    }
    /* A client certificate means: administer over TLS as an admin node. */
    if (r == 0)
        r = dkm_client_call(c, o->tls_cert == NULL, method, path, body, &ans);
    dkmctl_watch_stop(w);
    dkm_client_free(wc);
    dkm_config_free(wcfg);
    if (r == 0) {
        if (o->json)
            r = dkmctl_print_json(ans);
        else
            printer(ans, arg);
    }
    json_decref(ans);
    json_decref(body);
    dkm_client_free(c);
    dkm_config_free(cfg);
    return r < 0 ? dkmctl_fail(what, r) : DKMCTL_EXIT_OK;
}

/* ---- printers ---- */

void dkmctl_print_done(const json_t *a, const void *arg)
{
    (void)a;
    printf("%s\n", (const char *)arg);
}

static void print_node_id(const json_t *a, const void *arg)
{
    (void)arg;
    printf("%s\n", dkmctl_jstr(a, "node_id"));
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
        printf("%-68s %-6s %-3s %-20s %-20s %s\n", dkmctl_jstr(n, "node_id"),
               dkmctl_jstr(n, "role"), dkmctl_jstr(n, "ek_type"),
               dkmctl_fmt_time(json_object_get(n, "authorized_at"), b1, sizeof(b1)),
               dkmctl_fmt_time(json_object_get(n, "revoked_at"), b2, sizeof(b2)),
               dkmctl_jstr(n, "hostname"));
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
        printf("%lld %s %s %s %s %s %s\n", dkmctl_jnum(rec, "id"),
               dkmctl_fmt_time(json_object_get(rec, "at"), b, sizeof(b)),
               dkmctl_jstr(rec, "actor"), dkmctl_jstr(rec, "action"),
               dkmctl_jstr(rec, "target"), dkmctl_jstr(rec, "outcome"),
               dkmctl_jstr(rec, "detail"));
    }
}

/* ---- group ---- */

/* Parse the common options; returns -1 to go on, else an exit code. */
int dkmctl_simple_options(int argc, char **argv, struct dkmctl_svc_opts *o,
                          void (*usage)(FILE *), int nargs)
{
    static const struct option options[] = {
        DKMCTL_SVC_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return DKMCTL_EXIT_OK;
        default:
            if (!dkmctl_svc_option(c, optarg, o))
                return dkmctl_usage_error(usage, NULL);
            break;
        }
    }
    if (argc - optind != nargs)
        return dkmctl_usage_error(usage, "wrong number of arguments");
    return -1;
}

/* ---- node authorize | revoke | list ---- */

#define CERT_FILE_MAX 16384

/* A PEM certificate file as a JSON string (the server checks it). */
static int read_pem_cert(const char *path, json_t **ret)
{
    uint8_t *text = NULL;
    size_t len = 0;
    json_t *v;
    int r;

    r = dkm_file_read(path, CERT_FILE_MAX, &text, &len);
    if (r < 0)
        return r;
    if (len == 0 || memchr(text, '\0', len) != NULL ||
        strstr((const char *)text, "-----BEGIN CERTIFICATE-----") == NULL) {
        free(text);
        return dkm_error_set(-EINVAL, "%s: not a PEM certificate", path);
    }
    v = json_stringn((const char *)text, len);
    free(text);
    if (v == NULL)
        return dkm_error_set(-EINVAL, "%s: not a text file", path);
    *ret = v;
    return 0;
}

static void print_node_tls(const json_t *a, const void *arg)
{
    (void)arg;
    printf("%s TLS key %s\n", dkmctl_jstr(a, "node_id"), dkmctl_jstr(a, "tls_key"));
}

static int node_authorize(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        DKMCTL_SVC_OPTIONS,
        {"role", required_argument, NULL, OPT_ROLE},
        {"node-tls-cert", required_argument, NULL, OPT_NODE_TLS_CERT},
        {NULL, 0, NULL, 0},
    };
    struct dkmctl_svc_opts o = {0};
    const char *role = "client", *node_cert = NULL;
    json_t *pem = NULL;
    uint8_t *text = NULL, *card = NULL;
    size_t text_len = 0, card_len = 0;
    struct dkm_nodecard *nc = NULL;
    enum dkm_role rv;
    char *b64 = NULL;
    json_t *body = NULL;
    int c, r;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage_node(stdout);
            return DKMCTL_EXIT_OK;
        case OPT_ROLE:
            role = optarg;
            break;
        case OPT_NODE_TLS_CERT:
            node_cert = optarg;
            break;
        default:
            if (!dkmctl_svc_option(c, optarg, &o))
                return dkmctl_usage_error(usage_node, NULL);
            break;
        }
    }
    if (argc - optind != 1)
        return dkmctl_usage_error(usage_node, "node authorize: expected one card file");
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
    if (node_cert != NULL) {
        r = read_pem_cert(node_cert, &pem);
        if (r < 0)
            goto done;
    }
    body = json_pack("{s:s, s:s}", "card", b64, "role", role);
    if (body == NULL || (pem != NULL && json_object_set(body, "tls_cert", pem) < 0)) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    r = dkmctl_admin_call(g, &o, "node authorize", "POST", "/v1/nodes", body,
                          print_node_id, NULL);
    body = NULL;
    goto out;
done:
    r = dkmctl_fail("node authorize", r);
out:
    json_decref(pem);
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
    struct dkmctl_svc_opts o = {0};
    struct dkm_node_id id;
    char path[160], hex[DKM_NODE_ID_HEX_SIZE], msg[128];
    int e, r;

    argc--;
    argv++;
    optind = 0;
    if (strcmp(sub, "authorize") == 0)
        return node_authorize(g, argc, argv);
    if (strcmp(sub, "list") == 0) {
        if ((e = dkmctl_simple_options(argc, argv, &o, usage_node, 0)) >= 0)
            return e;
        return dkmctl_admin_call(g, &o, "node list", "GET", "/v1/nodes", NULL,
                                 print_node_list, NULL);
    }
    if (strcmp(sub, "tls") == 0) {
        json_t *pem = NULL;

        if ((e = dkmctl_simple_options(argc, argv, &o, usage_node, 2)) >= 0)
            return e;
        r = dkm_node_id_parse(argv[optind], &id);
        if (r == 0)
            r = read_pem_cert(argv[optind + 1], &pem);
        if (r < 0)
            return dkmctl_fail("node tls", r);
        dkm_node_id_hex(&id, hex);
        snprintf(path, sizeof(path), "/v1/nodes/%s/tls", hex);
        return dkmctl_admin_call(g, &o, "node tls", "PUT", path,
                                 json_pack("{s:o}", "tls_cert", pem), print_node_tls,
                                 NULL);
    }
    if (strcmp(sub, "revoke") == 0) {
        if ((e = dkmctl_simple_options(argc, argv, &o, usage_node, 1)) >= 0)
            return e;
        r = dkm_node_id_parse(argv[optind], &id);
        if (r < 0)
            return dkmctl_fail("node revoke", r);
        dkm_node_id_hex(&id, hex);
        snprintf(path, sizeof(path), "/v1/nodes/%s/revoke", hex);
        snprintf(msg, sizeof(msg), "node %s revoked", hex);
        return dkmctl_admin_call(g, &o, "node revoke", "POST", path, NULL,
                                 dkmctl_print_done, msg);
    }
    return dkmctl_usage_error(usage_node, "unknown node subcommand");
}

/* ---- audit ---- */

int dkmctl_cmd_audit(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        DKMCTL_SVC_OPTIONS,
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"after", required_argument, NULL, OPT_AFTER},
        {NULL, 0, NULL, 0},
    };
    struct dkmctl_svc_opts o = {0};
    const char *limit = NULL, *after = NULL;
    char path[128];
    int c, n = 0;

    while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        switch (c) {
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
            if (!dkmctl_svc_option(c, optarg, &o))
                return dkmctl_usage_error(usage_audit, NULL);
            break;
        }
    }
    if (optind != argc)
        return dkmctl_usage_error(usage_audit, "audit takes no arguments");
    if ((limit != NULL &&
         (limit[0] == '\0' || strspn(limit, "0123456789") != strlen(limit) ||
          strlen(limit) > 9)) ||
        (after != NULL &&
         (after[0] == '\0' || strspn(after, "0123456789") != strlen(after) ||
          strlen(after) > 18)))
        return dkmctl_usage_error(usage_audit,
                                  "--limit and --after take decimal numbers");
    n = snprintf(path, sizeof(path), "/v1/audit");
    if (limit != NULL)
        n += snprintf(path + n, sizeof(path) - (size_t)n, "?limit=%s", limit);
    if (after != NULL)
        snprintf(path + n, sizeof(path) - (size_t)n, "%cafter=%s",
                 limit != NULL ? '&' : '?', after);
    return dkmctl_admin_call(g, &o, "audit", "GET", path, NULL, print_audit, NULL);
}
