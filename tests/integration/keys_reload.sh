#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# The state snapshot is swapped while fetches run: 8 keep-alive TLS
# clients (bench/fetch_load) fetch the current key while the group is
# rotated and the state reloaded over and over (NOTIFY dkm_changes); every
# fetch must answer 200 and the server must stay healthy. Under the
# sanitizer build this is the check of the snapshot's reference counting.
# Then the database goes away: fetches, refusals and the trust list are
# still answered from memory, and admin writes are 503.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_reload

LOAD_BIN=${DKM_BUILD_DIR:-$IT_SRC/build}/bench/fetch_load
[ -x "$LOAD_BIN" ] || it_fatal "fetch_load is not built at $LOAD_BIN"
keys_setup
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"hot","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
admin POST /v1/groups/hot/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "a first fetch" 200 "$(fetch_status n1 hot current)"

"$LOAD_BIN" 127.0.0.1 "$SVC_PORT" "$SVC_STATE/tls.crt" "${NODE_ID[n1]}" hot 8 4 \
    >"$IT_TMP/load.out" 2>&1 &
load_pid=$!
for i in 1 2 3 4 5 6; do
    admin POST /v1/groups/hot/rotate >/dev/null
    keys_notify
    keys_notify
    sleep 0.3
done
load_status=0
wait "$load_pid" || load_status=$?
cat "$IT_TMP/load.out"
it_check_eq "the load generator saw only 200s" 0 "$load_status"
it_check "it made fetches" grep -Eq 'clients 8, .* [1-9][0-9]* fetches' "$IT_TMP/load.out"
it_check_eq "six rotations happened under load" 7 \
    "$(admin GET /v1/groups/hot | jq -r .current_version)"
it_check_eq "the current key after the load is version 7" 7 \
    "$(fetch n1 hot current | sed -n 's/^version //p')"
it_check_eq "still healthy" ok "$(svc_curl /v1/health | jq -r .status)"

# The hot path needs no database: with PostgreSQL gone, fetches go on.
d7=$(key_digest n1 hot current)
it_pg_stop pg
it_check_eq "database down: the fetch still answers, same key" "$d7" \
    "$(key_digest n1 hot current)"
NODE_ID[nobody]=000b$(printf '%064d' 0)
NODE_TCTI[nobody]=${NODE_TCTI[n1]}
it_check_eq "database down: refusals still answer 403" 403 "$(fetch_status nobody hot current)"
admin POST /v1/groups/hot/rotate >/dev/null
it_check_eq "database down: an admin write is 503" 503 "$(admin_code)"
it_check_eq "database down: trust is still served" 1 "$(svc_curl /v1/trust | jq '.lists|length')"

it_stop_pid "$SVC_PID"
it_check_eq "dkmd stops cleanly" 0 "$?"
it_check "no sanitizer report in the log" sh -c \
    "! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' '$IT_TMP/dkmd.log'"

it_finish
