#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# What the key service refuses: a node that is unknown, revoked, or not
# granted the group gets 403 and leaves an audit record each (written by
# the batch writer, and flushed on a graceful stop; one record the
# database refuses does not hold up the others); a database row whose
# signed record was altered (one byte of a sealed copy, one byte of a
# policy) is refused, never served, and counted in /v1/health.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_refusals

keys_setup
keys_init
svc_start
keys_node good
keys_node stranger
keys_node gone
keys_node outsider
for n in good gone outsider; do
    admin POST /v1/nodes "{\"card\":\"${NODE_CARD[$n]}\"}" >/dev/null
    it_check_eq "authorize $n" 200 "$(admin_code)"
done
policy='"rotation_period":3600,"version_lifetime":7200,"cache_ttl":60'
for g in alpha beta; do
    admin POST /v1/groups "{\"name\":\"$g\",$policy}" >/dev/null
    it_check_eq "create $g" 200 "$(admin_code)"
    for n in good gone; do
        admin POST "/v1/groups/$g/grant" "{\"node_id\":\"${NODE_ID[$n]}\"}" >/dev/null
        it_check_eq "grant $g to $n" 200 "$(admin_code)"
    done
done
it_check_eq "the granted node fetches" 200 "$(fetch_status good alpha current)"
it_check_eq "a revoked node fetched before its revocation" 200 "$(fetch_status gone alpha current)"

admin POST "/v1/nodes/${NODE_ID[gone]}/revoke" >/dev/null
it_check_eq "revoke gone" 200 "$(admin_code)"
admin POST "/v1/nodes/000b$(printf '%064d' 0)/revoke" >/dev/null
it_check_eq "revoking an unknown node: 404" 404 "$(admin_code)"
it_check_eq "nodes list shows the revocation" true \
    "$(admin GET /v1/nodes | jq --arg id "${NODE_ID[gone]}" \
        '.nodes[] | select(.node_id == $id) | has("revoked_at")')"

it_check_eq "unknown node: 403" 403 "$(fetch_status stranger alpha current)"
it_check_eq "revoked node: 403" 403 "$(fetch_status gone alpha current)"
it_check_eq "node not granted: 403" 403 "$(fetch_status outsider alpha current)"
it_check_eq "unknown group, as for a group not granted: 403" 403 \
    "$(fetch_status good nosuchgroup current)"
it_check_eq "a bad body: 400" 400 "$(svc_code /v1/keys/fetch -H 'Content-Type: application/json' \
    --data-binary '{"group":"alpha","version":"0","node_id":"x","nonce":"AAAA"}')"
it_check_eq "revoked stays revoked: authorizing its card again is 409" 409 \
    "$(admin POST /v1/nodes "{\"card\":\"${NODE_CARD[gone]}\"}" >/dev/null; admin_code)"

denied() {
    admin GET '/v1/audit?limit=1000' |
        jq -r --arg id "$1" --arg why "$2" \
            '[.records[] | select(.action == "key.fetch" and .outcome == "denied"
              and .actor == $id and .detail == $why)] | length'
}
sleep 1
it_check_eq "audit: the unknown node" 1 "$(denied "${NODE_ID[stranger]}" "unknown node")"
it_check_eq "audit: the revoked node" 1 "$(denied "${NODE_ID[gone]}" "revoked node")"
it_check_eq "audit: the node not granted" 1 \
    "$(denied "${NODE_ID[outsider]}" "not granted this group")"
it_check_eq "audit: both successful fetches, each with its version" 2 \
    "$(admin GET '/v1/audit?limit=1000' | jq --arg g "${NODE_ID[good]}" --arg r "${NODE_ID[gone]}" \
        '[.records[] | select(.action == "key.fetch" and .outcome == "ok"
          and (.actor == $g or .actor == $r) and .target == "group:alpha/1")] | length')"
it_check_eq "audit: a fetch of a version that does not exist" 1 \
    "$(fetch_status good alpha 99 >/dev/null; sleep 1; denied "${NODE_ID[good]}" "no such version")"
it_check_eq "audit: the admin writes" 4 \
    "$(admin GET '/v1/audit?limit=1000' | jq '[.records[] | select(.action == "group.grant")] | length')"
admin GET '/v1/audit?limit=0' >/dev/null
it_check_eq "audit: limit 0 is a bad request" 400 "$(admin_code)"

# Records queued while the keeper writes a batch are not lost: four clients
# keep the queue growing during the inserts, then a graceful stop.
burst() {
    local i
    for i in $(seq 1 40); do
        svc_curl /v1/keys/fetch -o /dev/null -w '%{http_code}\n' \
            -H 'Content-Type: application/json' --data-binary \
            "{\"group\":\"beta\",\"version\":\"current\",\"node_id\":\"${NODE_ID[stranger]}\",\"nonce\":\"$(new_nonce)\"}"
    done >"$IT_TMP/burst.$1"
}
pids=()
for c in 1 2 3 4; do
    burst $c &
    pids+=($!)
done
wait "${pids[@]}"
it_check_eq "160 refused fetches during batch writes" 160 "$(cat "$IT_TMP"/burst.* | grep -c '^403$')"

# Audit records queued just before a graceful stop are written, none lost.
codes=""
for i in 1 2 3 4 5; do codes+="$(fetch_status stranger alpha current) "; done
it_check_eq "five more fetches by the unknown node, each refused" \
    "403 403 403 403 403 " "$codes"
it_stop_pid "$SVC_PID"
it_check_eq "all denials are in the database after a stop" 6 \
    "$(svc_psql "SELECT count(*) FROM audit_log WHERE actor = '${NODE_ID[stranger]}'
                 AND target = 'group:alpha'")"
it_check_eq "... and every one of the 160 made during batch writes" 160 \
    "$(svc_psql "SELECT count(*) FROM audit_log WHERE actor = '${NODE_ID[stranger]}'
                 AND target = 'group:beta'")"
svc_start dkmd2

# --- altered rows ----------------------------------------------------------
it_check_eq "health: no refused rows yet" 0 "$(svc_curl /v1/health | jq -r .refused_rows)"
d_beta=$(key_digest good beta current)
svc_psql "UPDATE key_copies SET sealed = set_byte(sealed, 60, get_byte(sealed, 60) # 1)
          WHERE group_name = 'alpha'"
keys_notify
dkm_wait_for 10 sh -c "[ \"\$(curl -sS --cacert '$SVC_STATE/tls.crt' \
    https://127.0.0.1:$SVC_PORT/v1/health | jq -r .refused_rows)\" = 1 ]"
it_check_eq "health: the altered sealed copy is refused" 1 \
    "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "the version whose copy was altered is not served" 503 \
    "$(fetch_status good alpha current)"
it_check_eq "another group is still served" "$d_beta" "$(key_digest good beta current)"
it_check "the log names the refused row" grep -q 'event=state.refused kind=sealed_copy which=alpha/1 ' \
    "$IT_TMP/dkmd2.log"

svc_psql "UPDATE groups SET policy = set_byte(policy, 20, get_byte(policy, 20) # 1)
          WHERE name = 'beta'"
keys_notify
dkm_wait_for 10 sh -c "[ \"\$(curl -sS --cacert '$SVC_STATE/tls.crt' \
    https://127.0.0.1:$SVC_PORT/v1/health | jq -r .refused_rows)\" = 2 ]"
it_check_eq "health: the altered policy is refused too" 2 \
    "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "a group whose policy was altered is not served" 403 \
    "$(fetch_status good beta current)"
it_check "the log names the refused policy" grep -q 'event=state.refused kind=group_policy which=beta ' \
    "$IT_TMP/dkmd2.log"

it_stop_pid "$SVC_PID"
svc_start dkmd3
it_check_eq "after a restart the altered rows are still refused" 2 \
    "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "... and still not served" 503 "$(fetch_status good alpha current)"

# One record the database refuses does not hold up the others.
svc_psql "ALTER TABLE audit_log ADD CONSTRAINT test_poison
          CHECK (detail IS DISTINCT FROM 'revoked node') NOT VALID"
fetch_status gone alpha current >/dev/null
fetch_status stranger alpha current >/dev/null
it_stop_pid "$SVC_PID"
it_check_eq "a refused audit record does not block the next one" 167 \
    "$(svc_psql "SELECT count(*) FROM audit_log WHERE actor = '${NODE_ID[stranger]}'")"
it_check "the refused record is logged" grep -q 'event=audit.dropped action=key.fetch ' \
    "$IT_TMP/dkmd3.log"

it_finish
