#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# Two dkmd on one database, each with its own TPM: server A is initialised,
# authorizes a node and makes a group; server B joins (`dkmd init --join`,
# which checks the pin against the database and writes nothing there),
# refuses to start until `dkmctl server add` on A has signed list v2 and
# sealed every live key to B's EK; then B serves the node the same keys as
# A, a rotation on either server is sealed to both and reaches the other
# through NOTIFY, a node following the chain from the pinned v1 verifies
# B's answers, and bad additions (twice, an altered card) are refused. At
# the end a tampered list v2 is refused by both servers on reload, and B,
# no longer on a verified list, is not trusted by the node and cannot
# start.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_servers

# --- server A -----------------------------------------------------------------
keys_setup
keys_init
A_PORT=$SVC_PORT A_STATE=$SVC_STATE A_SOCK=$SVC_SOCK A_CONF=$SVC_CONF
svc_start dkmdA
A_PID=$SVC_PID

# Point the svc_*/admin/fetch helpers at one server.
use() {
    if [ "$1" = A ]; then
        SVC_PORT=$A_PORT SVC_STATE=$A_STATE SVC_SOCK=$A_SOCK SVC_CONF=$A_CONF
    else
        SVC_PORT=$B_PORT SVC_STATE=$B_STATE SVC_SOCK=$B_SOCK SVC_CONF=$B_CONF
    fi
}

keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
it_check_eq "A: authorize n1" 200 "$(admin_code)"
admin POST /v1/groups '{"name":"pay","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
it_check_eq "A: create pay" 200 "$(admin_code)"
admin POST /v1/groups/pay/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "A: grant pay to n1" 200 "$(admin_code)"
admin POST /v1/groups/pay/rotate >/dev/null
it_check_eq "A: rotate pay to version 2" 200 "$(admin_code)"
a1=$(key_digest n1 pay 1)
a2=$(key_digest n1 pay 2)
it_check "A serves version 1" grep -Eqx '[0-9a-f]{64}' <<<"$a1"
it_check "A serves version 2" grep -Eqx '[0-9a-f]{64}' <<<"$a2"

# --- server B joins -------------------------------------------------------------
it_swtpm_start serverB
B_TCTI=$SWTPM_TCTI
B_PORT=$(dkm_pick_ports 1) || it_fatal "no free port"
B_STATE=$IT_TMP/stateB B_SOCK=$IT_TMP/adminB.sock B_CONF=$IT_TMP/dkmdB.conf
sed -e "s|^listen = .*|listen = 127.0.0.1:$B_PORT|" -e "s|^state_dir = .*|state_dir = $B_STATE|" \
    -e "s|^admin_socket = .*|admin_socket = $B_SOCK|" -e "s|^tcti = .*|tcti = $B_TCTI|" \
    "$A_CONF" >"$B_CONF"

lists_before=$(svc_psql 'SELECT count(*) FROM server_lists')
nodes_before=$(svc_psql 'SELECT count(*) FROM nodes')
wrong=$(printf '%064d' 0)
it_check_fails "join with a fingerprint that is not the database's list v1" \
    "$SVC_BIN" init --join --trust "$wrong" --config "$B_CONF"
"$SVC_BIN" init --join --trust "$wrong" --config "$B_CONF" >/dev/null 2>"$IT_TMP/join.err"
it_check "... and the message says so" grep -q 'not the one given with --trust' \
    "$IT_TMP/join.err"
it_check_fails "... and no signing key was made" test -e "$B_STATE/signkey"
it_check_fails "join without --trust is a usage error" \
    "$SVC_BIN" init --join --config "$B_CONF"

out=$("$SVC_BIN" init --join --trust "$KEYS_TRUST" --config "$B_CONF" 2>"$IT_TMP/join.err") ||
    it_fatal "dkmd init --join failed: $(cat "$IT_TMP/join.err")"
B_ID=$(sed -n 's/^node id //p' <<<"$out")
it_check "join prints B's node id" grep -Eqx '000b[0-9a-f]{64}' <<<"$B_ID"
it_check_eq "join prints the card's path" "$B_STATE/server.card" \
    "$(sed -n 's/^server card //p' <<<"$out")"
it_check "the card is armored" grep -qx -- '-----BEGIN DKM SERVER CARD-----' "$B_STATE/server.card"
it_check "B's signing key and trust pin exist" test -s "$B_STATE/signkey" -a -s "$B_STATE/trust"
it_check_eq "join wrote no server list" "$lists_before" "$(svc_psql 'SELECT count(*) FROM server_lists')"
it_check_eq "join wrote no node" "$nodes_before" "$(svc_psql 'SELECT count(*) FROM nodes')"
it_check_fails "a second join is refused" \
    "$SVC_BIN" init --join --trust "$KEYS_TRUST" --config "$B_CONF"

it_check_fails "B refuses to start before it is added" \
    timeout 30 "$SVC_BIN" --config "$B_CONF"
timeout 30 "$SVC_BIN" --config "$B_CONF" >"$IT_TMP/b-early.log" 2>&1
it_check "... telling the operator to run dkmctl server add" \
    grep -q 'not on the authorized server list.*dkmctl server add' "$IT_TMP/b-early.log"

# --- A adds B -----------------------------------------------------------------
use A
card_json=$(jq -Rs '{card: .}' "$B_STATE/server.card")
flip() { # flip the last byte of the creation time: only the signature notices
    python3 - "$1" <<'PY'
import base64, sys
lines = open(sys.argv[1]).read().split("\n")
body = "".join(l for l in lines if l and not l.startswith("-----"))
b = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
p = 8 + int.from_bytes(b[6:8], "big") + 65
p += 1 + b[p] + 7
b[p] ^= 1
t = base64.urlsafe_b64encode(bytes(b)).decode().rstrip("=")
print("-----BEGIN DKM SERVER CARD-----")
for i in range(0, len(t), 64):
    print(t[i:i + 64])
print("-----END DKM SERVER CARD-----")
PY
}
flip "$B_STATE/server.card" >"$IT_TMP/flipped.card"
admin POST /v1/servers "$(jq -Rs '{card: .}' "$IT_TMP/flipped.card")" >"$IT_TMP/flipped.out"
it_check_eq "a card with a flipped byte: 400" 400 "$(admin_code)"
it_check "... naming the signature" grep -q 'signature does not verify' "$IT_TMP/flipped.out"
it_check_fails "dkmctl refuses the flipped card too" \
    "$KEYS_DKMCTL" server add "$IT_TMP/flipped.card" --socket "$A_SOCK"
admin POST /v1/servers '{"card":"-----BEGIN DKM NODE CARD-----\nAAAA\n-----END DKM NODE CARD-----\n"}' \
    >/dev/null
it_check_eq "a node card is not a server card: 400" 400 "$(admin_code)"

out=$("$KEYS_DKMCTL" server add "$B_STATE/server.card" --socket "$A_SOCK" 2>&1)
it_check_eq "dkmctl server add on A: exit 0" 0 "$?"
it_check "... prints list v2 and two sealed copies" \
    grep -q "server $B_ID .* added: server list v2, 2 sealed copies" <<<"$out"
it_check_eq "list v2 is in the database" 2 "$(svc_psql 'SELECT max(version) FROM server_lists')"
it_check_eq "B's node entry, role server" server \
    "$(svc_psql "SELECT role FROM nodes WHERE encode(node_id, 'hex') = '$B_ID'")"
it_check_eq "a sealed copy of each version for B" 2 \
    "$(svc_psql "SELECT count(*) FROM key_copies WHERE encode(server_id, 'hex') = '$B_ID'")"
it_check "the addition is audited" sh -c "curl -sS --unix-socket '$A_SOCK' \
    'http://localhost/v1/audit?limit=1000' | jq -e '[.records[] | select(.action ==
    \"server.add\" and .outcome == \"ok\" and .target == \"$B_ID\")] | length == 1'"
admin POST /v1/servers "$card_json" >/dev/null
it_check_eq "adding B twice: 409" 409 "$(admin_code)"
"$KEYS_DKMCTL" server add "$B_STATE/server.card" --socket "$A_SOCK" >/dev/null 2>&1
it_check_eq "dkmctl: adding B twice exits 1" 1 "$?"
a_list() { [ "$(admin GET /v1/servers | jq -r .list_version)" = 2 ]; }
it_check "A's list is v2" a_list
it_check_eq "A's list names A (self) and B" "false $B_ID" \
    "$(admin GET /v1/servers | jq -r '.servers[1] | "\(.self) \(.node_id)"')"

# --- B serves ------------------------------------------------------------------
use B
svc_start dkmdB
B_PID=$SVC_PID
it_check_eq "B serves version 1: the same key as A" "$a1" "$(key_digest n1 pay 1)"
it_check_eq "B serves version 2: the same key as A" "$a2" "$(key_digest n1 pay 2)"
it_check_eq "B serves current = version 2" "$a2" "$(key_digest n1 pay current)"
it_check_eq "B's trust: lists v1 and v2" 2 "$(svc_curl /v1/trust | jq '.lists|length')"
it_check "B's list shows itself" sh -c "curl -sS --unix-socket '$B_SOCK' \
    http://localhost/v1/servers | jq -e '.servers[] | select(.self) | .node_id == \"$B_ID\"'"
"$KEYS_DKMCTL" server list --socket "$B_SOCK" >"$IT_TMP/list.out" 2>&1
it_check "dkmctl server list: v2, B marked" grep -q "^\* $B_ID" "$IT_TMP/list.out"
it_check "dkmctl server list: the header" grep -q '^server list v2' "$IT_TMP/list.out"
it_check "health on B: nothing refused" \
    test "$(svc_curl /v1/health | jq -r .refused_rows)" = 0
# A node that knows only list v1 (not v2, where B is) cannot verify B.
nonce=$(new_nonce)
svc_curl /v1/keys/fetch -o "$IT_TMP/fetchB.json" -H 'Content-Type: application/json' \
    --data-binary "{\"group\":\"pay\",\"version\":\"1\",\"node_id\":\"${NODE_ID[n1]}\",\"nonce\":\"$nonce\"}"
svc_curl /v1/trust | jq '{lists: [.lists[0]]}' >"$IT_TMP/trust-v1.json"
it_check_fails "an answer from B does not verify against list v1 alone" \
    "$KEYS_FETCH_BIN" --tcti "${NODE_TCTI[n1]}" --pin "$KEYS_TRUST" \
    --trust "$IT_TMP/trust-v1.json" --response "$IT_TMP/fetchB.json" --group pay \
    --version 1 --nonce "$nonce"
svc_curl /v1/trust >"$IT_TMP/trust-all.json"
it_check "... and does with the chain v1 -> v2 from the pin" \
    "$KEYS_FETCH_BIN" --tcti "${NODE_TCTI[n1]}" --pin "$KEYS_TRUST" \
    --trust "$IT_TMP/trust-all.json" --response "$IT_TMP/fetchB.json" --group pay \
    --version 1 --nonce "$nonce"

# --- rotations on either server reach both -----------------------------------
out=$(admin POST /v1/groups/pay/rotate)
it_check_eq "rotate on B: version 3" 3 "$(jq -r .version <<<"$out")"
it_check_eq "version 3 is sealed to both servers" 2 \
    "$(svc_psql "SELECT count(*) FROM key_copies WHERE group_name = 'pay' AND version = 3")"
b3=$(key_digest n1 pay 3)
it_check "B serves version 3" grep -Eqx '[0-9a-f]{64}' <<<"$b3"
use A
a_has() { [ "$(fetch_status n1 pay "$1")" = 200 ]; }
it_check "B's NOTIFY makes A reload: A serves version 3" dkm_wait_for 10 a_has 3
it_check_eq "A gives the same key for version 3" "$b3" "$(key_digest n1 pay 3)"
out=$(admin POST /v1/groups/pay/rotate)
it_check_eq "rotate on A: version 4" 4 "$(jq -r .version <<<"$out")"
a4=$(key_digest n1 pay 4)
use B
b_has() { [ "$(fetch_status n1 pay "$1")" = 200 ]; }
it_check "A's NOTIFY makes B reload: B serves version 4" dkm_wait_for 10 b_has 4
it_check_eq "B gives the same key for version 4" "$a4" "$(key_digest n1 pay 4)"
it_check_eq "B's current is version 4" "$a4" "$(key_digest n1 pay current)"
admin POST /v1/groups '{"name":"fromb","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
it_check_eq "B creates a group" 200 "$(admin_code)"
admin POST /v1/groups/fromb/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "... and grants it to n1 (A's node entry verifies on B)" 200 "$(admin_code)"
bf=$(key_digest n1 fromb 1)
use A
af() { [ "$(key_digest n1 fromb 1)" = "$bf" ]; }
it_check "A serves B's new group with the same key" dkm_wait_for 10 af

# --- B is removed ------------------------------------------------------------------
use B
# The node's own client fetches version 4 from B: its disk cache then holds
# an entry B signed, and its kept chain ends at v2.
CACHE=$IT_TMP/cache-n1
fetch_b() {
    "$KEYS_DKMCTL" key fetch --tcti "${NODE_TCTI[n1]}" --trust "$KEYS_TRUST" \
        --cache-dir "$CACHE" --service "https://127.0.0.1:$B_PORT" "$@"
}
it_check_eq "n1's client fetches pay/4 from B" service \
    "$(fetch_b pay/4 | sed -n 's/^source //p')"
nonce=$(new_nonce)
svc_curl /v1/keys/fetch -o "$IT_TMP/fetchB4.json" -H 'Content-Type: application/json' \
    --data-binary "{\"group\":\"pay\",\"version\":\"4\",\"node_id\":\"${NODE_ID[n1]}\",\"nonce\":\"$nonce\"}"
svc_curl /v1/trust >"$IT_TMP/trust-v2.json"
use A
copies_b=$(svc_psql "SELECT count(*) FROM key_copies WHERE encode(server_id, 'hex') = '$B_ID'")
out=$("$KEYS_DKMCTL" server remove "$B_ID" --socket "$A_SOCK" 2>&1)
it_check_eq "dkmctl server remove B on A: exit 0" 0 "$?"
it_check "... prints list v3 and the copies deleted" \
    grep -q "server $B_ID removed: server list v3, $copies_b sealed copies deleted" <<<"$out"
it_check_eq "nothing B signed is left in force" 0 "$(svc_psql "SELECT
    (SELECT count(*) FROM nodes WHERE encode(authorized_by, 'hex') = '$B_ID') +
    (SELECT count(*) FROM groups WHERE encode(signer, 'hex') = '$B_ID') +
    (SELECT count(*) FROM group_access WHERE encode(granted_by, 'hex') = '$B_ID')")"
it_check_eq "... and A refuses nothing" 0 "$(svc_curl /v1/health | jq -r .refused_rows)"
it_check_eq "list v3 is in the database" 3 "$(svc_psql 'SELECT max(version) FROM server_lists')"
it_check_eq "B's sealed copies are gone with it" 0 \
    "$(svc_psql "SELECT count(*) FROM key_copies WHERE encode(server_id, 'hex') = '$B_ID'")"
it_check_eq "A's list v3 holds A alone" "3 1" \
    "$(admin GET /v1/servers | jq -r '"\(.list_version) \(.servers|length)"')"
it_check "the removal is audited" sh -c "curl -sS --unix-socket '$A_SOCK' \
    'http://localhost/v1/audit?limit=1000' | jq -e '[.records[] | select(.action ==
    \"server.remove\" and .outcome == \"ok\" and .target == \"$B_ID\")] | length == 1'"
use B
b_503() { [ "$(fetch_status n1 pay current)" = 503 ]; }
it_check "B, removed, answers fetches 503 once it sees list v3" dkm_wait_for 10 b_503
it_check "... and says why" grep -q 'event=state.not_listed' \
    "$IT_TMP/dkmdB.log"
it_check_eq "... B no longer holds any key" 0 \
    "$(curl -sS --cacert "$B_STATE/tls.crt" "https://127.0.0.1:$B_PORT/metrics" |
        sed -n 's/^dkmd_keys_held //p')"
use A
svc_curl /v1/trust >"$IT_TMP/trust-v3.json"
it_check_eq "A hands out the chain v1..v3" 3 "$(jq '.lists|length' "$IT_TMP/trust-v3.json")"
it_check "B's answer made before the removal verifies with the chain to v2" \
    "$KEYS_FETCH_BIN" --tcti "${NODE_TCTI[n1]}" --pin "$KEYS_TRUST" \
    --trust "$IT_TMP/trust-v2.json" --response "$IT_TMP/fetchB4.json" --group pay \
    --version 4 --nonce "$nonce"
it_check_fails "... and is refused by a node that has followed the chain to v3" \
    "$KEYS_FETCH_BIN" --tcti "${NODE_TCTI[n1]}" --pin "$KEYS_TRUST" \
    --trust "$IT_TMP/trust-v3.json" --response "$IT_TMP/fetchB4.json" --group pay \
    --version 4 --nonce "$nonce"
it_check_eq "A alone still serves pay/1" "$a1" "$(key_digest n1 pay 1)"
it_check_eq "A alone still serves pay/2" "$a2" "$(key_digest n1 pay 2)"
it_check_eq "A alone still serves pay/3, which B had sealed and signed" "$b3" \
    "$(key_digest n1 pay 3)"
it_check_eq "A alone still serves pay/4" "$a4" "$(key_digest n1 pay 4)"
it_check_eq "A serves B's group too" "$bf" "$(key_digest n1 fromb 1)"
# The node's client learns v3: its kept chain is refreshed once it is old.
touch -d '-1 hour' "$CACHE/trust.lists"
fetch_a() {
    "$KEYS_DKMCTL" key fetch --tcti "${NODE_TCTI[n1]}" --trust "$KEYS_TRUST" \
        --cache-dir "$CACHE" "$@"
}
it_check_eq "n1's client fetches pay/3 from A (and refreshes its old chain)" service \
    "$(fetch_a --service "https://127.0.0.1:$A_PORT" pay/3 | sed -n 's/^source //p')"
it_check_eq "... its kept chain now ends at v3" 3 \
    "$(python3 -c "import sys; b = open(sys.argv[1], 'rb').read(); print(int.from_bytes(b[6:8], 'big'))" \
        "$CACHE/trust.lists")"
it_check "offline, n1's client uses A's cached pay/3" sh -c \
    "'$KEYS_DKMCTL' key fetch --tcti '${NODE_TCTI[n1]}' --trust '$KEYS_TRUST' \
     --cache-dir '$CACHE' --service https://127.0.0.1:1 pay/3 | grep -q '^source disk cache'"
it_check_fails "... but refuses the pay/4 entry that B signed" \
    "$KEYS_DKMCTL" key fetch --tcti "${NODE_TCTI[n1]}" --trust "$KEYS_TRUST" \
    --cache-dir "$CACHE" --service https://127.0.0.1:1 pay/4
admin DELETE "/v1/servers/$B_ID" >/dev/null
it_check_eq "removing B again: 404" 404 "$(admin_code)"
A_ID=$(admin GET /v1/servers | jq -r '.servers[0].node_id')
admin DELETE "/v1/servers/$A_ID" >"$IT_TMP/last.out"
it_check_eq "the last server cannot be removed: 409" 409 "$(admin_code)"
it_check "... and the answer says so" grep -q 'last one on the list' "$IT_TMP/last.out"
"$KEYS_DKMCTL" server remove "$A_ID" --socket "$A_SOCK" >/dev/null 2>&1
it_check_eq "dkmctl: removing the last server exits 1" 1 "$?"
it_check_eq "still list v3" 3 "$(svc_psql 'SELECT max(version) FROM server_lists')"

# --- a tampered list ----------------------------------------------------------------
svc_psql "ALTER TABLE server_lists DISABLE TRIGGER server_lists_no_update_delete;
          UPDATE server_lists SET body = set_byte(body, 20, get_byte(body, 20) # 1)
              WHERE version = 3;
          ALTER TABLE server_lists ENABLE TRIGGER server_lists_no_update_delete"
keys_notify
failing() { svc_curl /v1/health | jq -e .checks.state.reload_failing >/dev/null; }
it_check "A, which has seen v3, refuses the tampered list: its reload fails" \
    dkm_wait_for 10 failing
it_check "A's log names the list and the rollback" grep -q 'event=state.refused kind=server_list which=v3 ' \
    "$IT_TMP/dkmdA.log"
it_check "... and that the chain now ends below what A has seen" grep -q \
    'rollback: the verified server lists end at v2, but this server has seen v3' \
    "$IT_TMP/dkmdA.log"
it_check_eq "A keeps serving the state it verified (list v3)" 3 \
    "$(admin GET /v1/servers | jq -r .list_version)"
it_check_eq "A still serves n1" "$a4" "$(key_digest n1 pay 4)"
it_stop_pid "$B_PID"
it_check_fails "B, removed, cannot start" timeout 30 "$SVC_BIN" --config "$B_CONF"
admin POST /v1/servers "$card_json" >/dev/null
it_check_eq "adding a server while the list in the database is refused: 409" 409 \
    "$(admin_code)"

it_finish
