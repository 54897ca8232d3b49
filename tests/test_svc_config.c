/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd.conf loading: defaults, every key read into the config
 * struct, and errors that name the file, section and key for unknown
 * keys, bad values and a missing database conninfo.
 */
#include <errno.h>
#include <string.h>

#include "dkm/base/log.h"
#include "config.h"
#include "unit.h"

static void expect_error(const char *text, const char *part)
{
    struct svc_config *cfg = NULL;
    int r = svc_config_load_string("dkmd.conf", text, &cfg);

    CU_ASSERT_EQUAL(r, DKM_E_CONFIG);
    CU_ASSERT_PTR_NULL(cfg);
    if (strstr(dkm_error_detail(), part) == NULL) {
        fprintf(stderr, "\n  detail \"%s\" lacks \"%s\"\n", dkm_error_detail(), part);
        CU_FAIL("error detail does not name the key");
    }
    svc_config_free(cfg);
}

static void test_svc_config_defaults(void)
{
    struct svc_config *cfg = NULL;

    CU_ASSERT_EQUAL_FATAL(
        svc_config_load_string("dkmd.conf", "[database]\nconninfo = dbname=dkm\n", &cfg),
        0);
    CU_ASSERT_STRING_EQUAL(cfg->listen_host, "127.0.0.1");
    CU_ASSERT_EQUAL(cfg->listen_port, 8443);
    CU_ASSERT_EQUAL(cfg->workers, 2);
    CU_ASSERT_STRING_EQUAL(cfg->state_dir, "/var/lib/dkm");
    CU_ASSERT_STRING_EQUAL(cfg->tls_cert, "/var/lib/dkm/tls.crt");
    CU_ASSERT_STRING_EQUAL(cfg->tls_key, "/var/lib/dkm/tls.key");
    CU_ASSERT_STRING_EQUAL(cfg->admin_socket, "/run/dkm/dkmd.sock");
    CU_ASSERT_EQUAL(cfg->admin_socket_mode, 0600);
    CU_ASSERT_STRING_EQUAL(cfg->db_conninfo, "dbname=dkm");
    CU_ASSERT_EQUAL(cfg->db_pool_size, 2);
    CU_ASSERT_EQUAL(cfg->max_header_bytes, 8192);
    CU_ASSERT_EQUAL(cfg->max_body_bytes, 65536);
    CU_ASSERT_EQUAL(cfg->request_timeout, 10);
    CU_ASSERT_EQUAL(cfg->max_connections, 1024);
    CU_ASSERT_EQUAL(cfg->log_level, DKM_LOG_INFO);
    CU_ASSERT_EQUAL(cfg->log_format, DKM_LOG_TEXT);
    svc_config_free(cfg);
}

static void test_svc_config_all_keys(void)
{
    static const char text[] = "[service]\n"
                               "listen = [::1]:9443\n"
                               "workers = 4\n"
                               "state_dir = /srv/dkm\n"
                               "tls_cert = /etc/dkm/c.pem\n"
                               "admin_socket = /srv/dkm/admin.sock\n"
                               "admin_socket_mode = 0660\n"
                               "tcti = swtpm:host=127.0.0.1,port=2321\n"
                               "sql_dir = /usr/share/dkm/sql\n"
                               "log_level = debug\n"
                               "log_format = json\n"
                               "[database]\n"
                               "conninfo = host=db port=5432\n"
                               "pool_size = 3\n"
                               "connect_timeout = 2\n"
                               "query_timeout = 1m\n"
                               "reconnect_max = 7\n"
                               "queue_max = 10\n"
                               "[limits]\n"
                               "max_header_bytes = 4096\n"
                               "max_body_bytes = 2048\n"
                               "request_timeout = 3\n"
                               "max_connections = 5\n"
                               "shutdown_timeout = 4\n";
    struct svc_config *cfg = NULL;

    CU_ASSERT_EQUAL_FATAL(svc_config_load_string("dkmd.conf", text, &cfg), 0);
    CU_ASSERT_STRING_EQUAL(cfg->listen_host, "::1");
    CU_ASSERT_EQUAL(cfg->listen_port, 9443);
    CU_ASSERT_EQUAL(cfg->workers, 4);
    CU_ASSERT_STRING_EQUAL(cfg->tls_cert, "/etc/dkm/c.pem");
    CU_ASSERT_STRING_EQUAL(cfg->tls_key, "/srv/dkm/tls.key");
    CU_ASSERT_EQUAL(cfg->admin_socket_mode, 0660);
    CU_ASSERT_STRING_EQUAL(cfg->tcti, "swtpm:host=127.0.0.1,port=2321");
    CU_ASSERT_STRING_EQUAL(cfg->sql_dir, "/usr/share/dkm/sql");
    CU_ASSERT_EQUAL(cfg->log_level, DKM_LOG_DEBUG);
    CU_ASSERT_EQUAL(cfg->log_format, DKM_LOG_JSON);
    CU_ASSERT_EQUAL(cfg->db_pool_size, 3);
    CU_ASSERT_EQUAL(cfg->db_connect_timeout, 2);
    CU_ASSERT_EQUAL(cfg->db_query_timeout, 60);
    CU_ASSERT_EQUAL(cfg->db_reconnect_max_ms, 7000);
    CU_ASSERT_EQUAL(cfg->db_queue_max, 10);
    CU_ASSERT_EQUAL(cfg->max_header_bytes, 4096);
    CU_ASSERT_EQUAL(cfg->max_body_bytes, 2048);
    CU_ASSERT_EQUAL(cfg->request_timeout, 3);
    CU_ASSERT_EQUAL(cfg->max_connections, 5);
    CU_ASSERT_EQUAL(cfg->shutdown_timeout, 4);
    svc_config_free(cfg);
}

static void test_svc_config_errors_name_the_key(void)
{
    expect_error("[service]\nlisten = 1.2.3.4:1\n", "[database] conninfo");
    expect_error("[service]\nlisen = x\n[database]\nconninfo=x\n", "lisen");
    expect_error("[database]\nconninfo=x\npool = 3\n", "pool");
    expect_error("[limits]\nmax_conections = 3\n[database]\nconninfo=x\n",
                 "max_conections");
    expect_error("[service]\nlisten = 127.0.0.1\n[database]\nconninfo=x\n",
                 "[service] listen");
    expect_error("[service]\nlisten = 127.0.0.1:0\n[database]\nconninfo=x\n",
                 "[service] listen");
    expect_error("[service]\nlisten = 127.0.0.1:70000\n[database]\nconninfo=x\n",
                 "[service] listen");
    expect_error("[service]\nlisten = [::1:80\n[database]\nconninfo=x\n",
                 "[service] listen");
    expect_error("[service]\nworkers = 0\n[database]\nconninfo=x\n", "workers");
    expect_error("[service]\nworkers = 65\n[database]\nconninfo=x\n", "workers");
    expect_error("[service]\nlog_level = loud\n[database]\nconninfo=x\n", "log_level");
    expect_error("[service]\nlog_format = logfmt\n[database]\nconninfo=x\n",
                 "[service] log_format: expected text or json");
    expect_error("[service]\nadmin_socket_mode = 0400\n[database]\nconninfo=x\n",
                 "admin_socket_mode");
    expect_error("[service]\nadmin_socket_mode = 999\n[database]\nconninfo=x\n",
                 "admin_socket_mode");
    expect_error("[service]\nstate_dir = relative\n[database]\nconninfo=x\n",
                 "state_dir");
    expect_error("[service]\nadmin_socket = rel.sock\n[database]\nconninfo=x\n",
                 "admin_socket");
    expect_error("[limits]\nmax_body_bytes = 10\n[database]\nconninfo=x\n",
                 "max_body_bytes");
    expect_error("[limits]\nrequest_timeout = 0\n[database]\nconninfo=x\n",
                 "request_timeout");
    expect_error("[database]\nconninfo=x\nquery_timeout = 5w\n", "query_timeout");
}

static void test_svc_config_missing_file(void)
{
    struct svc_config *cfg = NULL;

    CU_ASSERT_EQUAL(svc_config_load("/nonexistent/dkmd.conf", &cfg), -ENOENT);
    CU_ASSERT_PTR_NULL(cfg);
    svc_config_free(NULL);
}

static CU_TestInfo config_tests[] = {
    {"test_svc_config_defaults", test_svc_config_defaults},
    {"test_svc_config_all_keys", test_svc_config_all_keys},
    {"test_svc_config_errors_name_the_key", test_svc_config_errors_name_the_key},
    {"test_svc_config_missing_file", test_svc_config_missing_file},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_config", NULL, NULL, NULL, NULL, config_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
