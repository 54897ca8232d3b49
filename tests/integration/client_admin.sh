#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# dkmctl's service commands against a real dkmd (swtpm for the server and
# for each node, PostgreSQL): node authorize from a card file, node list
# and revoke, group create/list/show/rotate/policy/grant/revoke, audit,
# the documented exit codes (not found, denied, unavailable, usage), the
# JSON output, and `dkmctl key fetch`, which runs the node's whole fetch
# path (pinned trust, signed answer, TPM unseal, disk cache).

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init client_admin

CTL=$KEYS_DKMCTL
keys_setup
keys_init
svc_start

# dkmctl finds the socket through --config; key fetch its service and trust.
CONF=$IT_TMP/dkmctl.cnf
cat >"$CONF" <<CNF
[dkmctl]
admin_socket = $SVC_SOCK
service = https://127.0.0.1:$SVC_PORT
trust = $KEYS_TRUST
CNF
ctl() {
    "$CTL" --config "$CONF" "$@"
}
code() {
    "$@" >/dev/null 2>&1
    echo $?
}

keys_node n1
keys_node n2
out=$(ctl node authorize "$IT_TMP/n1.card")
it_check_eq "node authorize prints the node id" "${NODE_ID[n1]}" "$out"
it_check_eq "authorizing twice fails (409)" 1 "$(code ctl node authorize "$IT_TMP/n1.card")"
it_check_eq "authorize --role admin" "${NODE_ID[n2]}" \
    "$(ctl node authorize --role admin "$IT_TMP/n2.card")"
echo garbage >"$IT_TMP/bad.card"
it_check_fails "a file that is not a card is refused" ctl node authorize "$IT_TMP/bad.card"
it_check_eq "a bad role is a usage error" 2 \
    "$(code ctl node authorize --role root "$IT_TMP/n1.card")"
list=$(ctl node list)
it_check "node list shows n1 as client" grep -q "^${NODE_ID[n1]} client" <<<"$list"
it_check "node list shows n2 as admin" grep -q "^${NODE_ID[n2]} admin" <<<"$list"
it_check_eq "node list --json: three nodes (server, n1, n2)" 3 \
    "$(ctl --json node list | jq '.nodes|length')"

out=$(ctl group create payments --rotate 1h --lifetime 2h --ttl 1m)
it_check_eq "group create" "group payments created, version 1 is current" "$out"
it_check_eq "group create twice fails" 1 "$(code ctl group create payments)"
it_check_eq "an invalid group name is a usage error" 2 "$(code ctl group create 'a/b')"
it_check_eq "a bad duration is a usage error" 2 \
    "$(code ctl group create other --ttl 5x)"
it_check_eq "lifetime shorter than rotation: refused by dkmd (400)" 2 \
    "$(code ctl group create other --rotate 2h --lifetime 1h)"
it_check "group list shows payments" grep -Eq '^payments +1 +1 +1h +2h +1m$' \
    <<<"$(ctl group list)"
it_check_eq "group show of an unknown group: not found (7)" 7 \
    "$(code ctl group show nosuch)"
it_check_eq "group grant" "group payments: node ${NODE_ID[n1]} granted" \
    "$(ctl group grant payments "${NODE_ID[n1]}")"
it_check "group show lists the member" grep -q "^  ${NODE_ID[n1]}\$" \
    <<<"$(ctl group show payments)"
it_check_eq "group show --json: policy ttl" 60 \
    "$(ctl group show payments --json | jq .policy.cache_ttl)"
it_check_eq "group rotate" "group payments: version 2 is current" \
    "$(ctl group rotate payments)"
it_check_eq "group policy --ttl" "group payments: policy serial 2" \
    "$(ctl group policy payments --ttl 30s)"
it_check_eq "group policy with nothing to change: usage" 2 \
    "$(code ctl group policy payments)"

# The node side: fetch through the client (trust, verify, unseal, cache).
fetch_ctl() {
    local name=$1
    shift
    "$CTL" --config "$CONF" key fetch --tcti "${NODE_TCTI[$name]}" \
        --cache-dir "$IT_TMP/cache-$name" "$@"
}
out=$(fetch_ctl n1 payments)
it_check_eq "key fetch current: version 2" 2 "$(sed -n 's/^version //p' <<<"$out")"
it_check_eq "key fetch: from the service" service "$(sed -n 's/^source //p' <<<"$out")"
id2=$(sed -n 's/^key-id //p' <<<"$out")
it_check "key fetch: a key id" grep -Eqx '[0-9a-f]{16}' <<<"$id2"
it_check_eq "key fetch 2 by number: same key" "$id2" \
    "$(fetch_ctl n1 payments/2 | sed -n 's/^key-id //p')"
id1=$(fetch_ctl n1 dkm:payments/1 | sed -n 's/^key-id //p')
it_check_ne "version 1 is another key" "$id2" "$id1"
it_check_eq "key fetch --json" '2 false' \
    "$(fetch_ctl n1 payments --json | jq -r '"\(.version) \(.from_cache)"')"
it_check "the disk cache holds the entries" test -s "$IT_TMP/cache-n1/payments.2.dkc"
it_check "the verified server lists are kept" test -s "$IT_TMP/cache-n1/trust.lists"
it_check_eq "n2 is not granted: denied (6)" 6 "$(code fetch_ctl n2 payments)"
it_check_eq "an unknown version: not found (7)" 7 "$(code fetch_ctl n1 payments/9)"
err=$(fetch_ctl n1 payments --trust "$(printf '%064d' 0)" 2>&1 >/dev/null)
it_check "a wrong pin is refused, and says so" grep -q "pinned" <<<"$err"

# Failover: the first URL is dead, the second answers.
ctl group create ops --ttl 1m >/dev/null || it_fatal "group create ops failed"
ctl group grant ops "${NODE_ID[n1]}" >/dev/null || it_fatal "grant ops failed"
dead=$(dkm_pick_ports 1) || it_fatal "no free port"
out=$(fetch_ctl n1 ops --service "https://127.0.0.1:$dead,https://127.0.0.1:$SVC_PORT")
it_check_eq "failover: a dead first URL, the second answers" "1 service" \
    "$(sed -n 's/^version //p; s/^source //p' <<<"$out" | paste -sd' ')"
it_check "no URL answers, nothing cached in a fresh cache: the URL is named" \
    grep -q "https://127.0.0.1:$dead: cannot connect" <<<"$(fetch_ctl n2 ops \
        --service "https://127.0.0.1:$dead" 2>&1 >/dev/null)"
it_check "no URL answers: n1 uses its cached key and says so" \
    test "$(fetch_ctl n1 ops --service "https://127.0.0.1:$dead" | sed -n 's/^source //p')" \
    = "disk cache (service unreachable)"

# Keys sealed to PCR 16 (all zeros on a fresh TPM): unsealed while the PCR
# matches, refused by the TPM (exit 4) when the policy names other values.
zeros=$(printf '%064d' 0)
it_check "group create --pcr 16 with the PCR's value" \
    ctl group create sealed --pcr 16 --pcr-values "$zeros"
it_check "group show: the PCR mask" grep -q "PCR mask 0x010000" <<<"$(ctl group show sealed)"
it_check_eq "--pcr without --pcr-values: usage" 2 "$(code ctl group create other2 --pcr 16)"
it_check_eq "--pcr-values of the wrong length: usage" 2 \
    "$(code ctl group create other2 --pcr 16,17 --pcr-values "$zeros")"
ctl group grant sealed "${NODE_ID[n1]}" >/dev/null || it_fail "grant sealed"
it_check_eq "a key sealed to the node's PCR 16 value unseals" 1 \
    "$(fetch_ctl n1 sealed | sed -n 's/^version //p')"
ctl group policy sealed --pcr 16 --pcr-values "$(printf 'f%.0s' $(seq 64))" >/dev/null ||
    it_fail "policy --pcr-values"
ctl group rotate sealed >/dev/null || it_fail "rotate sealed"
it_check_eq "a key sealed to other PCR values: refused by the TPM (4)" 4 \
    "$(code fetch_ctl n1 sealed)"

# TLS below 1.2 is refused, whatever the server offers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=old \
    -keyout "$IT_TMP/old.key" -out "$IT_TMP/old.crt" -days 1 2>/dev/null ||
    it_fatal "cannot make a certificate"
old=$(dkm_pick_ports 1) || it_fatal "no free port"
it_daemon old-tls openssl s_server -accept "127.0.0.1:$old" -tls1_1 \
    -cipher 'DEFAULT@SECLEVEL=0' -cert "$IT_TMP/old.crt" -key "$IT_TMP/old.key" -www
old_pid=$IT_PID
dkm_wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$old" 2>/dev/null ||
    it_fatal "s_server did not start"
err=$(fetch_ctl n2 ops --service "https://127.0.0.1:$old" 2>&1 >/dev/null)
it_check_eq "a TLS 1.1 server: unavailable (5)" 5 \
    "$(code fetch_ctl n2 ops --service "https://127.0.0.1:$old")"
it_check "a TLS 1.1 server: the handshake is refused" grep -qi "handshake\|protocol" <<<"$err"
it_stop_pid "$old_pid" >/dev/null

it_check_eq "group revoke" "group payments: node ${NODE_ID[n1]} no longer granted" \
    "$(ctl group revoke payments "${NODE_ID[n1]}")"
it_check_eq "after the revoke, fetch is denied (6)" 6 "$(code fetch_ctl n1 payments)"
it_check_eq "node revoke" "node ${NODE_ID[n2]} revoked" \
    "$(ctl node revoke "${NODE_ID[n2]}")"
it_check "node list shows the revocation time" \
    grep -Eq "^${NODE_ID[n2]} admin .*Z +[0-9-]+ [0-9:]+Z" <<<"$(ctl node list)"
it_check_eq "node revoke of an unknown node: not found (7)" 7 \
    "$(code ctl node revoke "000b$(printf '%064d' 0)")"
it_check_eq "a malformed node id: usage (2)" 2 "$(code ctl node revoke abc)"

audit=$(ctl audit)
it_check "audit shows the grant" grep -q "grant" <<<"$audit"
it_check_eq "audit --limit 2: two records" 2 "$(ctl --json audit --limit 2 | jq '.records|length')"
first=$(ctl --json audit --limit 1 | jq '.records[0].id')
it_check "audit --after skips older records" \
    test "$(ctl --json audit --after "$first" --limit 1 | jq '.records[0].id')" -gt "$first"

for c in "group --help" "group create --help" "node authorize --help" "audit --help" \
    "key fetch --help"; do
    # shellcheck disable=SC2086
    it_check "dkmctl $c" "$CTL" $c
done

it_check_eq "no dkmd at the socket: unavailable (5)" 5 \
    "$(code "$CTL" group list --socket "$IT_TMP/nothing.sock")"

it_finish
