/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmd.conf (config.c): the [service], [database] and [limits] sections,
 * loaded and validated into one struct that is passed down.
 */
#ifndef DKM_SVC_CONFIG_H
#define DKM_SVC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

#ifndef DKM_SQL_DIR
#define DKM_SQL_DIR "/usr/local/share/dkm/sql"
#endif
#define SVC_DEFAULT_CONFIG "/etc/dkm/dkmd.conf"

struct svc_config {
    char *path;
    /* [service] */
    char *listen_host;
    uint16_t listen_port;
    unsigned workers;
    char *tls_cert;
    char *tls_key;
    char *admin_socket;
    unsigned admin_socket_mode;
    char *state_dir;
    char *tcti;
    char *sql_dir;
    int log_level;
    unsigned delegation_lifetime; /* seconds a response-signing delegation lasts */
    /* [database] */
    char *db_conninfo;
    unsigned db_pool_size;
    unsigned db_connect_timeout;  /* seconds */
    unsigned db_query_timeout;    /* seconds */
    unsigned db_reconnect_max_ms; /* backoff cap */
    unsigned db_queue_max;
    /* [limits] */
    size_t max_header_bytes;
    size_t max_body_bytes;
    unsigned request_timeout; /* seconds */
    unsigned max_connections;
    unsigned shutdown_timeout; /* seconds */
};

/*
 * Load and validate dkmd.conf. Unknown sections' keys are not checked;
 * unknown keys in [service], [database] and [limits] are errors. Errors
 * return DKM_E_CONFIG (or -ENOENT) with a detail naming file/section/key.
 */
DKM_MUSTCHECK int svc_config_load(const char *path, struct svc_config **ret);
/* Same, from text in memory (tests). */
DKM_MUSTCHECK int svc_config_load_string(const char *name, const char *text,
                                         struct svc_config **ret);
void svc_config_free(struct svc_config *cfg);

#endif
