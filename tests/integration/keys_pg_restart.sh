#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# PostgreSQL restarted under load, in fast and in immediate mode, on the
# same port: dkmd answers fetches from memory throughout (4 keep-alive
# clients of a granted node, every answer 200), a node that is not granted
# is refused throughout (2 clients, every answer 403), admin writes answer
# 503 while the database is down and succeed once it is back, and no
# audit record of an acknowledged write is lost.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init keys_pg_restart

LOAD=${DKM_BUILD_DIR:?}/bench/fetch_load
[ -x "$LOAD" ] || it_fatal "fetch_load is not built"
keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
svc_start
keys_node n1
keys_node n2
for n in n1 n2; do
    admin POST /v1/nodes "{\"card\":\"${NODE_CARD[$n]}\"}" >/dev/null
done
admin POST /v1/groups '{"name":"g","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' >/dev/null
admin POST /v1/groups/g/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "n1 is granted g" 200 "$(admin_code)"

acked=0
for mode in fast immediate; do
    it_daemon "load-$mode" "$LOAD" 127.0.0.1 "$SVC_PORT" "$SVC_STATE/tls.crt" \
        "${NODE_ID[n1]}" g 4 60
    load=$IT_PID
    FETCH_LOAD_EXPECT=403 it_daemon "refused-$mode" "$LOAD" 127.0.0.1 "$SVC_PORT" \
        "$SVC_STATE/tls.crt" "${NODE_ID[n2]}" g 2 60
    refused=$IT_PID
    sleep 2
    it_check "[$mode] PostgreSQL shuts down" "$IT_SRC/scripts/pg.sh" halt "$IT_TMP/pg" "$mode"
    it_check "[$mode] PostgreSQL is down" sh -c "! psql -X -h 127.0.0.1 -p $PGPORT -U postgres -c 'select 1' >/dev/null 2>&1"
    admin POST /v1/groups/g/rotate >/dev/null
    it_check_eq "[$mode] an admin write while it is down answers 503" 503 "$(admin_code)"
    sleep 2
    it_check "[$mode] PostgreSQL starts again on its port" "$IT_SRC/scripts/pg.sh" resume "$IT_TMP/pg"
    rotated() {
        admin POST /v1/groups/g/rotate >/dev/null
        [ "$(admin_code)" = 200 ]
    }
    it_check "[$mode] once it is back, the admin write succeeds" dkm_wait_for 30 rotated
    acked=$((acked + 1))
    sleep 2
    it_stop_pid "$load" >/dev/null 2>&1
    it_stop_pid "$refused" >/dev/null 2>&1
    it_check "[$mode] every fetch of the granted node was answered 200" \
        grep -q 'errors 0$' "$IT_TMP/load-$mode.log"
    it_check "[$mode] ... and there were fetches" grep -qE ': [1-9][0-9]* fetches' \
        "$IT_TMP/load-$mode.log"
    it_check "[$mode] every fetch of the node not granted was refused (403)" \
        grep -q 'errors 0$' "$IT_TMP/refused-$mode.log"
done
it_check_eq "the group is at version 1 + the acknowledged rotations (none answered 503 was applied)" "$((1 + acked))" \
    "$(admin GET /v1/groups/g | jq -r '.current_version')"
audit_ok() {
    [ "$(svc_psql "SELECT count(*) FROM audit_log WHERE action = 'group.rotate' AND outcome = 'ok'")" = "$acked" ]
}
it_check "an audit record for every acknowledged rotation" dkm_wait_for 10 audit_ok
it_finish
