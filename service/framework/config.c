/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmd.conf: turns the NCONF file into one validated struct svc_config
 * that is passed down to every part of the service. Every key, its
 * default and its bounds are here; docs/operations.md lists them too.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkm/base/config.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "config.h"

static const char *const service_keys[] = {
    "listen",
    "workers",
    "tls_cert",
    "tls_key",
    "admin_socket",
    "admin_socket_mode",
    "state_dir",
    "tcti",
    "sql_dir",
    "log_level",
    "delegation_lifetime",
    NULL,
};
static const char *const database_keys[] = {
    "conninfo",  "pool_size", "connect_timeout", "query_timeout", "reconnect_max",
    "queue_max", NULL,
};
static const char *const limits_keys[] = {
    "max_header_bytes", "max_body_bytes",   "request_timeout",
    "max_connections",  "shutdown_timeout", NULL,
};

static int copy_string(const struct dkm_config *c, const char *section, const char *key,
                       const char *def, char **ret)
{
    const char *v = NULL;
    char *copy;
    int r;

    r = dkm_config_string(c, section, key, def, &v);
    if (r < 0)
        return r;
    copy = strdup(v);
    if (copy == NULL)
        return -ENOMEM;
    free(*ret);
    *ret = copy;
    return 0;
}

/* "host:port" or "[v6]:port". */
static int parse_listen(const struct dkm_config *c, const char *value,
                        struct svc_config *cfg)
{
    const char *colon, *host = value;
    size_t hostlen;
    char *end;
    unsigned long port;

    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        host = value + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (colon == NULL)
            goto bad;
        hostlen = (size_t)(colon - value);
    }
    if (hostlen == 0 || hostlen > 255)
        goto bad;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port == 0 || port > 65535)
        goto bad;
    free(cfg->listen_host);
    cfg->listen_host = strndup(host, hostlen);
    if (cfg->listen_host == NULL)
        return -ENOMEM;
    cfg->listen_port = (uint16_t)port;
    return 0;
bad:
    return dkm_error_set(DKM_E_CONFIG,
                         "%s: [service] listen: expected HOST:PORT or [IPV6]:PORT with a "
                         "port from 1 to 65535, got \"%s\"",
                         dkm_config_name(c), value);
}

static int parse_level(const struct dkm_config *c, const char *value, int *ret)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"error", DKM_LOG_ERR}, {"warning", DKM_LOG_WARNING}, {"notice", DKM_LOG_NOTICE},
        {"info", DKM_LOG_INFO}, {"debug", DKM_LOG_DEBUG},
    };

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(value, levels[i].name) == 0) {
            *ret = levels[i].level;
            return 0;
        }
    }
    return dkm_error_set(DKM_E_CONFIG,
                         "%s: [service] log_level: expected error, warning, notice, info "
                         "or debug, got \"%s\"",
                         dkm_config_name(c), value);
}

static int parse_mode(const struct dkm_config *c, const char *value, unsigned *ret)
{
    char *end;
    unsigned long mode;

    errno = 0;
    mode = strtoul(value, &end, 8);
    if (errno != 0 || *end != '\0' || end == value || mode > 0777 ||
        (mode & 0600) != 0600)
        return dkm_error_set(DKM_E_CONFIG,
                             "%s: [service] admin_socket_mode: expected an octal mode "
                             "from 0600 to 0777 that lets the owner read and write, got "
                             "\"%s\"",
                             dkm_config_name(c), value);
    *ret = (unsigned)mode;
    return 0;
}

static int state_path(const char *dir, const char *file, char **ret)
{
    if (asprintf(ret, "%s/%s", dir, file) < 0) {
        *ret = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int config_from(const struct dkm_config *c, struct svc_config **ret)
{
    struct svc_config *cfg = NULL;
    const char *v = NULL;
    uint64_t u = 0;
    int r = -ENOMEM;

    static const uint64_t def_workers = 2, def_pool = 2, def_connect = 5, def_query = 10,
                          def_reconnect = 5, def_queue = 1024, def_header = 8192,
                          def_body = 64 * 1024, def_timeout = 10, def_maxconn = 1024,
                          def_shutdown = 30, def_delegation = 24 * 3600;

    if ((r = dkm_config_check_keys(c, "service", service_keys)) < 0 ||
        (r = dkm_config_check_keys(c, "database", database_keys)) < 0 ||
        (r = dkm_config_check_keys(c, "limits", limits_keys)) < 0)
        goto done;

    r = -ENOMEM;
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        goto done;
    cfg->path = strdup(dkm_config_name(c));
    if (cfg->path == NULL)
        goto done;

    r = dkm_config_string(c, "service", "listen", "127.0.0.1:8443", &v);
    if (r < 0)
        goto done;
    r = parse_listen(c, v, cfg);
    if (r < 0)
        goto done;
    r = dkm_config_uint(c, "service", "workers", &def_workers, 1, 64, &u);
    if (r < 0)
        goto done;
    cfg->workers = (unsigned)u;
    r = copy_string(c, "service", "state_dir", "/var/lib/dkm", &cfg->state_dir);
    if (r < 0)
        goto done;
    if (cfg->state_dir[0] != '/') {
        r = dkm_error_set(DKM_E_CONFIG,
                          "%s: [service] state_dir: must be an absolute path, got \"%s\"",
                          cfg->path, cfg->state_dir);
        goto done;
    }
    {
        char *def_cert = NULL, *def_key = NULL;
        r = state_path(cfg->state_dir, "tls.crt", &def_cert);
        if (r == 0)
            r = state_path(cfg->state_dir, "tls.key", &def_key);
        if (r == 0)
            r = copy_string(c, "service", "tls_cert", def_cert, &cfg->tls_cert);
        if (r == 0)
            r = copy_string(c, "service", "tls_key", def_key, &cfg->tls_key);
        free(def_cert);
        free(def_key);
        if (r < 0)
            goto done;
    }
    r = copy_string(c, "service", "admin_socket", "/run/dkm/dkmd.sock",
                    &cfg->admin_socket);
    if (r < 0)
        goto done;
    if (strlen(cfg->admin_socket) >= 108 || cfg->admin_socket[0] != '/') {
        r = dkm_error_set(DKM_E_CONFIG,
                          "%s: [service] admin_socket: must be an absolute path shorter "
                          "than 108 bytes",
                          cfg->path);
        goto done;
    }
    r = dkm_config_string(c, "service", "admin_socket_mode", "0600", &v);
    if (r < 0)
        goto done;
    r = parse_mode(c, v, &cfg->admin_socket_mode);
    if (r < 0)
        goto done;
    r = copy_string(c, "service", "tcti", "device:/dev/tpmrm0", &cfg->tcti);
    if (r < 0)
        goto done;
    r = copy_string(c, "service", "sql_dir", DKM_SQL_DIR, &cfg->sql_dir);
    if (r < 0)
        goto done;
    r = dkm_config_string(c, "service", "log_level", "info", &v);
    if (r < 0)
        goto done;
    r = parse_level(c, v, &cfg->log_level);
    if (r < 0)
        goto done;
    r = dkm_config_duration(c, "service", "delegation_lifetime", &def_delegation, 60,
                            7 * 24 * 3600, &u);
    if (r < 0)
        goto done;
    cfg->delegation_lifetime = (unsigned)u;

    r = copy_string(c, "database", "conninfo", NULL, &cfg->db_conninfo);
    if (r < 0)
        goto done;
    r = dkm_config_uint(c, "database", "pool_size", &def_pool, 1, 64, &u);
    if (r < 0)
        goto done;
    cfg->db_pool_size = (unsigned)u;
    r = dkm_config_duration(c, "database", "connect_timeout", &def_connect, 1, 300, &u);
    if (r < 0)
        goto done;
    cfg->db_connect_timeout = (unsigned)u;
    r = dkm_config_duration(c, "database", "query_timeout", &def_query, 1, 3600, &u);
    if (r < 0)
        goto done;
    cfg->db_query_timeout = (unsigned)u;
    r = dkm_config_duration(c, "database", "reconnect_max", &def_reconnect, 1, 300, &u);
    if (r < 0)
        goto done;
    cfg->db_reconnect_max_ms = (unsigned)u * 1000;
    r = dkm_config_uint(c, "database", "queue_max", &def_queue, 1, 1000000, &u);
    if (r < 0)
        goto done;
    cfg->db_queue_max = (unsigned)u;

    r = dkm_config_uint(c, "limits", "max_header_bytes", &def_header, 1024, 1024 * 1024,
                        &u);
    if (r < 0)
        goto done;
    cfg->max_header_bytes = (size_t)u;
    r = dkm_config_uint(c, "limits", "max_body_bytes", &def_body, 1024, 64 * 1024 * 1024,
                        &u);
    if (r < 0)
        goto done;
    cfg->max_body_bytes = (size_t)u;
    r = dkm_config_duration(c, "limits", "request_timeout", &def_timeout, 1, 3600, &u);
    if (r < 0)
        goto done;
    cfg->request_timeout = (unsigned)u;
    r = dkm_config_uint(c, "limits", "max_connections", &def_maxconn, 1, 1000000, &u);
    if (r < 0)
        goto done;
    cfg->max_connections = (unsigned)u;
    r = dkm_config_duration(c, "limits", "shutdown_timeout", &def_shutdown, 1, 3600, &u);
    if (r < 0)
        goto done;
    cfg->shutdown_timeout = (unsigned)u;

    *ret = cfg;
    cfg = NULL;
    r = 0;
done:
    svc_config_free(cfg);
    return r;
}

int svc_config_load(const char *path, struct svc_config **ret)
{
    struct dkm_config *c = NULL;
    int r;

    r = dkm_config_load(path, &c);
    if (r < 0)
        return r;
    r = config_from(c, ret);
    dkm_config_free(c);
    return r;
}

int svc_config_load_string(const char *name, const char *text, struct svc_config **ret)
{
    struct dkm_config *c = NULL;
    int r;

    r = dkm_config_load_string(name, text, &c);
    if (r < 0)
        return r;
    r = config_from(c, ret);
    dkm_config_free(c);
    return r;
}

void svc_config_free(struct svc_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->admin_socket);
    free(cfg->state_dir);
    free(cfg->tcti);
    free(cfg->sql_dir);
    /* The conninfo may carry a password. */
    if (cfg->db_conninfo != NULL)
        dkm_memzero(cfg->db_conninfo, strlen(cfg->db_conninfo));
    free(cfg->db_conninfo);
    free(cfg);
}
