#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# The upgrade to schema version 2 (sql/002_signed_access.sql): a database
# as a dkmd of schema version 1 left it (node entries of format 1 without
# serial or signed hostname, grants without a signed record, no state
# head; made here with dkm-test-legacy and the server's own signing key)
# is signed once by the first start: every node entry and grant that
# verifies gets its signed record of schema version 2, state head 1 is
# written, nodes keep their access (a revoked one stays revoked), nothing
# is refused. A second start signs nothing (idempotent); a grant row
# written without a record afterwards is refused, not signed, also by a
# server that lost its seen file, even when the state head was deleted
# as well; a format 1 entry put back is refused.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_upgrade

LEGACY=${DKM_BUILD_DIR:-$IT_SRC/build}/tests/tools/dkm-test-legacy
[ -x "$LEGACY" ] || it_fatal "dkm-test-legacy is not built at $LEGACY"

keys_setup
keys_init
svc_start dkmd1
for n in n1 n2 n3; do
    keys_node "$n"
    admin POST /v1/nodes "{\"card\":\"${NODE_CARD[$n]}\"}" >/dev/null
    it_check_eq "authorize $n" 200 "$(admin_code)"
done
admin POST /v1/groups '{"name":"pay","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
for n in n1 n2; do
    admin POST /v1/groups/pay/grant "{\"node_id\":\"${NODE_ID[$n]}\"}" >/dev/null
    it_check_eq "grant pay to $n" 200 "$(admin_code)"
done
admin POST "/v1/nodes/${NODE_ID[n2]}/revoke" >/dev/null
it_check_eq "revoke n2" 200 "$(admin_code)"
d1=$(key_digest n1 pay current)
it_check "n1 fetches pay" grep -Eqx '[0-9a-f]{64}' <<<"$d1"
it_stop_pid "$SVC_PID"

# --- the database as schema version 1 left it --------------------------------------
while read -r id entry sig; do
    out=$("$LEGACY" --tcti "$KEYS_SERVER_TCTI" --signkey "$SVC_STATE/signkey" "$entry" "$sig") ||
        it_fatal "dkm-test-legacy failed for $id"
    svc_psql "UPDATE nodes SET entry = '\\x${out% *}', signature = '\\x${out#* }'
              WHERE encode(node_id, 'hex') = '$id'"
done < <(svc_psql "SELECT encode(node_id, 'hex'), encode(entry, 'hex'), encode(signature, 'hex')
                   FROM nodes" | tr '|' ' ')
svc_psql "UPDATE group_access SET record = NULL, signature = NULL; DELETE FROM state_head"
rm -f "$SVC_STATE/seen"
it_check_eq "every node entry is of format 1 now" 0 \
    "$(svc_psql "SELECT count(*) FROM nodes WHERE get_byte(entry, 5) <> 1")"
old_n3=$(svc_psql "SELECT encode(entry, 'hex') || ' ' || encode(signature, 'hex') FROM nodes
                   WHERE encode(node_id, 'hex') = '${NODE_ID[n3]}'")

# --- the first start of the new version signs them once -----------------------------
svc_start dkmd2
it_check "the start signs the version 1 rows, and says so" grep -q \
    'event=upgrade.signed schema_version=2 nodes=4 grants=2 head=1' \
    "$IT_TMP/dkmd2.log"
it_check_eq "every node entry is of format 2" 0 \
    "$(svc_psql "SELECT count(*) FROM nodes WHERE get_byte(entry, 5) <> 2")"
it_check_eq "every grant has a signed record" 0 \
    "$(svc_psql "SELECT count(*) FROM group_access WHERE record IS NULL")"
it_check_eq "state head 1 was written" 1 "$(svc_psql "SELECT counter FROM state_head")"
it_check_eq "nothing is refused" 0 "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "n1 fetches the same key as before" "$d1" "$(key_digest n1 pay current)"
it_check_eq "n2 stays revoked" 403 "$(fetch_status n2 pay current)"
it_check_eq "n3 was never granted" 403 "$(fetch_status n3 pay current)"
it_check_ne "hostnames are signed now (shown from the entries)" "" \
    "$(admin GET /v1/nodes | jq -r --arg n "${NODE_ID[n1]}" '.nodes[] | select(.node_id == $n) | .hostname')"
it_stop_pid "$SVC_PID"

svc_start dkmd3
it_check_fails "a second start signs nothing" grep -q 'event=upgrade.signed' \
    "$IT_TMP/dkmd3.log"
it_check_eq "the head is still 1" 1 "$(svc_psql "SELECT counter FROM state_head")"

# --- what comes after the upgrade is not signed by it ---------------------------------
svc_psql "INSERT INTO group_access (group_name, node_id, granted_by)
          VALUES ('pay', '\\x${NODE_ID[n3]}', '\\x${NODE_ID[n1]}')"
svc_psql "UPDATE nodes SET entry = '\\x${old_n3% *}', signature = '\\x${old_n3#* }'
          WHERE encode(node_id, 'hex') = '${NODE_ID[n3]}'"
keys_notify
refused2() { [ "$(svc_curl /v1/health | jq -r .refused_rows)" = 2 ]; }
it_check "an unsigned grant and a format 1 entry written afterwards are refused" \
    dkm_wait_for 10 refused2
it_check "... the entry for its format" grep -q "event=state.refused kind=node which=${NODE_ID[n3]} reason=\"an entry of format 1" \
    "$IT_TMP/dkmd3.log"
it_check_eq "... and n3 is not served" 403 "$(fetch_status n3 pay current)"
it_stop_pid "$SVC_PID"
rm -f "$SVC_STATE/seen"
svc_start dkmd4
it_check_fails "a server without its seen file does not sign them either (the head exists)" \
    grep -q 'event=upgrade.signed' "$IT_TMP/dkmd4.log"
it_check_eq "... they stay refused" 2 "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "... n1 is served" "$d1" "$(key_digest n1 pay current)"
it_stop_pid "$SVC_PID"

# A writer who also deletes the state head, before a server without a seen
# file starts (one that just joined, or lost its state directory): the
# entries of format 2 still say the upgrade was done.
svc_psql "DELETE FROM state_head"
rm -f "$SVC_STATE/seen"
svc_start dkmd5
it_check_fails "with the head deleted too, a server without a seen file signs nothing" \
    grep -q 'event=upgrade.signed' "$IT_TMP/dkmd5.log"
it_check_eq "... the unsigned grant is still refused" 403 "$(fetch_status n3 pay current)"
it_check_eq "... as is the format 1 entry" 2 "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "... and no grant row gained a record" 1 \
    "$(svc_psql "SELECT count(*) FROM group_access WHERE record IS NULL")"

it_finish
