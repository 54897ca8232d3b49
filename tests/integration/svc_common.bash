# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Helpers shared by the dkmd integration tests (tests/integration/svc_*.sh).
# Not a test itself (hence .bash, which the test glob skips). Source it
# after lib.sh and it_init.
#
#   svc_setup [LIMITS...]   PostgreSQL in $IT_TMP/pg, a free port in SVC_PORT,
#                           $SVC_CONF written with extra [limits] lines,
#                           state in $SVC_STATE, admin socket $SVC_SOCK
#   svc_init                dkmd init; the fingerprint it printed in SVC_FPR
#   svc_start [NAME]        runs dkmd in the background (PID in SVC_PID) and
#                           waits until it is live and reaches the database
#                           (a server without a key-service identity is
#                           never ready: /v1/health stays 503)
#   svc_curl PATH ARGS...   curl over TLS, verifying against the server's cert
#   svc_code PATH ARGS...   prints only the HTTP status of such a request
#   svc_psql SQL            runs SQL on the test database, prints rows
#   now_ms                  milliseconds since the epoch

SVC_BIN=${DKM_BUILD_DIR:-$IT_SRC/build}/service/dkmd

now_ms() {
    date +%s%3N
}

svc_write_conf() {
    local extra
    {
        echo "[service]"
        echo "listen = 127.0.0.1:$SVC_PORT"
        echo "workers = 2"
        echo "state_dir = $SVC_STATE"
        echo "admin_socket = $SVC_SOCK"
        echo "admin_socket_mode = 0666"
        echo "sql_dir = ${SVC_SQL_DIR:-$IT_SRC/sql}"
        echo "log_level = debug"
        echo "[database]"
        echo "conninfo = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
        echo "reconnect_max = 1"
        echo "[limits]"
        for extra in "${SVC_LIMITS[@]}"; do
            echo "$extra"
        done
    } >"$SVC_CONF"
}

svc_setup() {
    [ -x "$SVC_BIN" ] || it_fatal "dkmd is not built at $SVC_BIN (set DKM_BUILD_DIR)"
    it_pg_start pg
    SVC_PORT=$(dkm_pick_ports 1) || it_fatal "no free port"
    SVC_STATE=$IT_TMP/state
    SVC_SOCK=$IT_TMP/admin.sock
    SVC_CONF=$IT_TMP/dkmd.conf
    SVC_LIMITS=("$@")
    svc_write_conf
}

svc_init() {
    local out
    out=$("$SVC_BIN" init --config "$SVC_CONF" 2>"$IT_TMP/init.err") ||
        it_fatal "dkmd init failed: $(cat "$IT_TMP/init.err")"
    SVC_FPR=$(sed -n 's/^TLS fingerprint SHA256 //p' <<<"$out")
    [ -n "$SVC_FPR" ] || it_fatal "dkmd init printed no fingerprint: $out"
}

svc_curl() {
    local path=$1
    shift
    curl -sS --max-time 10 --cacert "$SVC_STATE/tls.crt" "$@" "https://127.0.0.1:$SVC_PORT$path"
}

svc_code() {
    local path=$1
    shift
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$SVC_STATE/tls.crt" "$@" \
        "https://127.0.0.1:$SVC_PORT$path" 2>/dev/null
}

_svc_healthy() {
    [ "$(svc_code /v1/health/live)" = 200 ] &&
        [ "$(svc_curl /v1/health 2>/dev/null | jq -r .database)" = true ]
}

svc_start() {
    it_daemon "${1:-dkmd}" "$SVC_BIN" --config "$SVC_CONF"
    SVC_PID=$IT_PID
    if ! dkm_wait_for 20 _svc_healthy; then
        cat "$IT_TMP/${1:-dkmd}.log" >&2
        it_fatal "dkmd did not become healthy"
    fi
}

svc_psql() {
    psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atc "$1"
}
