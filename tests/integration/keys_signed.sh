#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# What a writer of the database cannot do without a server's signature:
# a grant inserted or altered with psql (no record, another node's record,
# one flipped byte) is refused, counted in /v1/health by kind, logged once
# and never honoured, while genuine grants go on working and a grant made
# through dkmd replaces the forged row; an altered hostname column is
# refused (the signed hostname is shown); and each older signed record put
# back (a revoked node's earlier entry, a revoked grant, an older policy)
# is refused after the reload its NOTIFY causes and after a restart, as is
# a whole older state head (dkmd then refuses to start until its seen
# file is removed).

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_signed

keys_setup
keys_init
svc_start dkmd1
for n in good other gone; do
    keys_node "$n"
    admin POST /v1/nodes "{\"card\":\"${NODE_CARD[$n]}\"}" >/dev/null
    it_check_eq "authorize $n" 200 "$(admin_code)"
done
policy='"rotation_period":3600,"version_lifetime":7200,"cache_ttl":60'
for g in alpha beta; do
    admin POST /v1/groups "{\"name\":\"$g\",$policy}" >/dev/null
    it_check_eq "create $g" 200 "$(admin_code)"
done
for gn in alpha:good beta:good alpha:gone; do
    admin POST "/v1/groups/${gn%%:*}/grant" "{\"node_id\":\"${NODE_ID[${gn#*:}]}\"}" >/dev/null
    it_check_eq "grant ${gn%%:*} to ${gn#*:}" 200 "$(admin_code)"
done
it_check_eq "the granted node fetches alpha" 200 "$(fetch_status good alpha current)"
it_check_eq "a node not granted gets 403" 403 "$(fetch_status other alpha current)"
it_check_eq "every grant row carries a signed record" 0 \
    "$(svc_psql "SELECT count(*) FROM group_access WHERE record IS NULL")"
it_check_eq "a state head was written with the writes" t \
    "$(svc_psql "SELECT counter > 1 FROM state_head")"

# refused_of KIND: the current count of refused rows of that kind.
refused_of() {
    svc_curl /v1/health | jq -r ".refused.$1"
}
# wait_refused KIND N: until /v1/health counts N refused rows of KIND.
wait_refused() {
    dkm_wait_for 10 sh -c "[ \"\$(curl -sS --cacert '$SVC_STATE/tls.crt' \
        https://127.0.0.1:$SVC_PORT/v1/health | jq -r .refused.$1)\" = $2 ]"
}
hexid() {
    echo "'\\x$1'::bytea"
}
good=$(hexid "${NODE_ID[good]}")
other=$(hexid "${NODE_ID[other]}")
gone=$(hexid "${NODE_ID[gone]}")

# --- forged grants -------------------------------------------------------------
svc_psql "INSERT INTO group_access (group_name, node_id, granted_by)
          VALUES ('alpha', $other, $good)"
keys_notify
it_check "an unsigned grant inserted with psql is refused" wait_refused grant 1
it_check_eq "... and not honoured: the node still gets 403" 403 "$(fetch_status other alpha current)"
it_check_eq "... the genuine grant still works" 200 "$(fetch_status good alpha current)"
it_check "... the log names it" grep -q "event=state.refused kind=grant which=alpha/${NODE_ID[other]} reason=\"no signed grant" \
    "$IT_TMP/dkmd1.log"
it_check_eq "... and counts it in refused_rows" 1 "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check "... and in the metrics" sh -c "curl -sS --cacert '$SVC_STATE/tls.crt' \
    https://127.0.0.1:$SVC_PORT/metrics | grep -qx 'dkmd_refused_rows 1'"
keys_notify
keys_notify
sleep 1
it_check_eq "a refusal is logged once, not at every reload" 1 \
    "$(grep -c "event=state.refused kind=grant which=alpha/${NODE_ID[other]} " "$IT_TMP/dkmd1.log")"

# Another node's genuine record under the other node's key.
svc_psql "UPDATE group_access SET (record, signature) = (SELECT record, signature
          FROM group_access WHERE group_name = 'alpha' AND node_id = $good)
          WHERE group_name = 'alpha' AND node_id = $other"
keys_notify
it_check "a grant record copied onto another node's row is refused" wait_refused grant 1
it_check "... because it names another node" grep -q \
    "event=state.refused kind=grant which=alpha/${NODE_ID[other]} reason=\"the grant record is for another group or node" \
    "$IT_TMP/dkmd1.log"
it_check_eq "... not honoured" 403 "$(fetch_status other alpha current)"
# A flipped byte of a genuine record (its state byte: granted <-> revoked).
saved=$(svc_psql "SELECT encode(record, 'hex') FROM group_access
                  WHERE group_name = 'beta' AND node_id = $good")
svc_psql "UPDATE group_access SET record = set_byte(record, 6 + 1 + 4 + 34,
          get_byte(record, 6 + 1 + 4 + 34) # 3) WHERE group_name = 'beta' AND node_id = $good"
keys_notify
it_check "a flipped grant record is refused" wait_refused grant 2
it_check_eq "... and the grant it was is not honoured either" 403 \
    "$(fetch_status good beta current)"
svc_psql "UPDATE group_access SET record = '\\x$saved' WHERE group_name = 'beta'
          AND node_id = $good"
keys_notify
it_check "put back as it was, it verifies again" wait_refused grant 1
it_check_eq "... and is honoured" 200 "$(fetch_status good beta current)"
# A grant through dkmd replaces the forged row with a signed record.
admin POST /v1/groups/alpha/grant "{\"node_id\":\"${NODE_ID[other]}\"}" >/dev/null
it_check_eq "a genuine grant over the forged row" 200 "$(admin_code)"
it_check "no grant is refused any more" wait_refused grant 0
it_check_eq "the node now fetches" 200 "$(fetch_status other alpha current)"

# --- hostnames ------------------------------------------------------------------
host=$(admin GET /v1/nodes | jq -r --arg id "${NODE_ID[good]}" \
    '.nodes[] | select(.node_id == $id) | .hostname')
it_check_ne "the node list shows the card's hostname" "" "$host"
svc_psql "UPDATE nodes SET hostname = 'evil.example' WHERE node_id = $good"
keys_notify
it_check "an altered hostname column is refused" wait_refused node 1
it_check_eq "... the signed hostname is what the list shows" "$host" \
    "$(admin GET /v1/nodes | jq -r --arg id "${NODE_ID[good]}" \
        '.nodes[] | select(.node_id == $id) | .hostname')"
it_check "... the log says so" grep -q "event=state.refused kind=node_hostname which=${NODE_ID[good]} " \
    "$IT_TMP/dkmd1.log"
it_check_eq "... and the node, whose entry is genuine, still fetches" 200 \
    "$(fetch_status good alpha current)"
svc_psql "UPDATE nodes SET hostname = '$host' WHERE node_id = $good"
keys_notify
it_check "put back, nothing is refused" wait_refused node 0

# --- rollbacks --------------------------------------------------------------------
# A revoked node's earlier entry.
old_entry=$(svc_psql "SELECT encode(entry, 'hex') || ' ' || encode(signature, 'hex')
                      FROM nodes WHERE node_id = $gone")
it_check_eq "the node to be revoked fetches" 200 "$(fetch_status gone alpha current)"
admin POST "/v1/nodes/${NODE_ID[gone]}/revoke" >/dev/null
it_check_eq "revoke it" 200 "$(admin_code)"
it_check_eq "revoked: 403" 403 "$(fetch_status gone alpha current)"
svc_psql "UPDATE nodes SET entry = '\\x${old_entry% *}', signature = '\\x${old_entry#* }',
          revoked_at = NULL WHERE node_id = $gone"
keys_notify
it_check "the earlier entry put back is refused" wait_refused node 1
it_check_eq "... as a rollback" 1 "$(svc_curl /v1/health | jq -r .refused.rollbacks)"
it_check_eq "... the node stays refused" 403 "$(fetch_status gone alpha current)"

# A revoked grant's earlier record.
old_grant=$(svc_psql "SELECT encode(record, 'hex') || ' ' || encode(signature, 'hex')
                      FROM group_access WHERE group_name = 'beta' AND node_id = $good")
admin POST /v1/groups/beta/revoke "{\"node_id\":\"${NODE_ID[good]}\"}" >/dev/null
it_check_eq "revoke the grant of beta" 200 "$(admin_code)"
it_check_eq "the revocation is a signed record kept in the row" 1 \
    "$(svc_psql "SELECT count(*) FROM group_access WHERE group_name = 'beta'
                 AND node_id = $good AND record IS NOT NULL")"
it_check_eq "revoked grant: 403" 403 "$(fetch_status good beta current)"
svc_psql "UPDATE group_access SET record = '\\x${old_grant% *}', signature = '\\x${old_grant#* }'
          WHERE group_name = 'beta' AND node_id = $good"
keys_notify
it_check "the earlier grant put back is refused" wait_refused grant 1
it_check_eq "... the grant stays revoked" 403 "$(fetch_status good beta current)"

# An older policy.
old_policy=$(svc_psql "SELECT encode(policy, 'hex') || ' ' || encode(signature, 'hex')
                       FROM groups WHERE name = 'alpha'")
admin PUT /v1/groups/alpha/policy '{"cache_ttl":30}' >/dev/null
it_check_eq "a new policy for alpha" 200 "$(admin_code)"
svc_psql "UPDATE groups SET policy = '\\x${old_policy% *}', signature = '\\x${old_policy#* }'
          WHERE name = 'alpha'"
keys_notify
it_check "the older policy put back is refused" wait_refused policy 1
it_check_eq "... and the group is not served with it" 403 "$(fetch_status good alpha current)"
it_check_eq "three rollbacks counted" 3 "$(svc_curl /v1/health | jq -r .refused.rollbacks)"

it_stop_pid "$SVC_PID"
it_check "the seen file is kept in the state directory" test -s "$SVC_STATE/seen"
svc_start dkmd2
it_check_eq "after a restart: the revoked node's earlier entry is refused" 1 "$(refused_of node)"
it_check_eq "... the revoked grant's earlier record" 1 "$(refused_of grant)"
it_check_eq "... the older policy" 1 "$(refused_of policy)"
it_check_eq "... all three as rollbacks" 3 "$(svc_curl /v1/health | jq -r .refused.rollbacks)"
it_check_eq "... and none is honoured: revoked node" 403 "$(fetch_status gone alpha current)"
it_check_eq "... revoked grant" 403 "$(fetch_status good beta current)"
it_check_eq "... old policy" 403 "$(fetch_status good alpha current)"
it_check "the restarted server logs each once" sh -c \
    "[ \"\$(grep -c 'rollback: serial' '$IT_TMP/dkmd2.log')\" = 3 ]"

# --- the whole state head put back -------------------------------------------------
old_head=$(svc_psql "SELECT counter || ' ' || encode(body, 'hex') || ' ' ||
                     encode(signature, 'hex') FROM state_head")
admin PUT /v1/groups/alpha/policy '{"cache_ttl":20}' >/dev/null
it_check_eq "a partial policy for a group whose policy was refused: 400" 400 "$(admin_code)"
admin PUT /v1/groups/alpha/policy "{$policy}" >/dev/null
it_check_eq "a whole new policy repairs alpha" 200 "$(admin_code)"
it_check_eq "alpha is served again" 200 "$(fetch_status good alpha current)"
read -r c b s <<<"$old_head"
svc_psql "UPDATE state_head SET counter = $c, body = '\\x$b', signature = '\\x$s'"
keys_notify
it_check "an older state head put back fails the reload" dkm_wait_for 10 sh -c \
    "curl -sS --cacert '$SVC_STATE/tls.crt' https://127.0.0.1:$SVC_PORT/v1/health |
     jq -e '.checks.state.reload_failing' >/dev/null"
it_check "... and says why" grep -q "rollback: the database's state head is $c" \
    "$IT_TMP/dkmd2.log"
it_check_eq "... the state loaded before goes on being served" 200 \
    "$(fetch_status good alpha current)"
it_stop_pid "$SVC_PID"
status=0
"$SVC_BIN" --config "$SVC_CONF" >"$IT_TMP/refused-start.log" 2>&1 || status=$?
it_check_eq "dkmd refuses to start on a database older than it has seen" 1 "$status"
it_check "... saying why" grep -q "rollback: the database's state head is $c" \
    "$IT_TMP/refused-start.log"
rm "$SVC_STATE/seen"
svc_start dkmd3
it_check_eq "without its seen file (after checking the database) it starts again" 200 \
    "$(fetch_status good alpha current)"

it_finish
