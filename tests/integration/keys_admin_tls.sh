#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# Remote administration over TLS: a node authorized with the admin role
# and a bound TLS client key may use the admin endpoints on the TLS port;
# everyone else gets 403 there (no certificate, an unbound key, the key of
# a client node, a revoked admin), the audit log names the admin node, a
# key cannot be bound to two nodes, and a new key can be bound to a node.
# The same through dkmctl with --tls-cert/--tls-key/--tls-ca.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_admin_tls

# A self-signed client certificate for NAME (key and cert in $IT_TMP).
client_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$1" -keyout "$IT_TMP/$1.key" -out "$IT_TMP/$1.crt" 2>/dev/null ||
        it_fatal "cannot make a certificate for $1"
}

# curl to the TLS port as NAME (its client certificate); prints the status.
tls_as() {
    local who=$1 method=$2 path=$3 body=${4:-}
    local args=(-sS --max-time 30 -o "$IT_TMP/tls.out" -w '%{http_code}' -X "$method")
    [ "$who" != none ] && args+=(--cert "$IT_TMP/$who.crt" --key "$IT_TMP/$who.key")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    svc_curl "$path" "${args[@]}"
}

json_str() { jq -Rs . <"$1"; }

keys_setup
keys_init
svc_start
keys_node boss
keys_node worker
keys_node other
client_cert boss
client_cert worker
client_cert stranger
client_cert boss2

admin POST /v1/nodes "{\"card\":\"${NODE_CARD[boss]}\",\"role\":\"admin\",\"tls_cert\":$(json_str "$IT_TMP/boss.crt")}" \
    >"$IT_TMP/auth.json"
it_check_eq "authorize an admin node with its TLS certificate" 200 "$(admin_code)"
# The key id of a certificate: SHA-256 of its DER SubjectPublicKeyInfo.
key_id() {
    openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
        sha256sum | cut -d' ' -f1
}
boss_key=$(key_id "$IT_TMP/boss.crt")
it_check_eq "the answer names the bound key (SHA-256 of its SubjectPublicKeyInfo)" \
    "$boss_key" "$(jq -r .tls_key "$IT_TMP/auth.json")"
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[worker]}\",\"tls_cert\":$(json_str "$IT_TMP/worker.crt")}" \
    >/dev/null
it_check_eq "authorize a client node with a TLS certificate" 200 "$(admin_code)"
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[other]}\",\"tls_cert\":$(json_str "$IT_TMP/boss.crt")}" \
    >/dev/null
it_check_eq "a key bound to another node: 409" 409 "$(admin_code)"
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[other]}\",\"tls_cert\":\"not a certificate\"}" \
    >/dev/null
it_check_eq "tls_cert that is not PEM: 400" 400 "$(admin_code)"
it_check "the 400 names the field" grep -q 'tls_cert' "$IT_TMP/admin.out"
cat "$IT_TMP/boss.crt" "$IT_TMP/worker.crt" >"$IT_TMP/two.crt"
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[other]}\",\"tls_cert\":$(json_str "$IT_TMP/two.crt")}" \
    >/dev/null
it_check_eq "two certificates in tls_cert: 400" 400 "$(admin_code)"
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[other]}\"}" >/dev/null
it_check_eq "authorize a node without a TLS certificate" 200 "$(admin_code)"
it_check_eq "the node list shows the bound key" "$boss_key" \
    "$(admin GET /v1/nodes | jq -r --arg n "${NODE_ID[boss]}" '.nodes[] | select(.node_id == $n) | .tls_key')"
it_check_eq "a node without a key: null" null \
    "$(admin GET /v1/nodes | jq -r --arg n "${NODE_ID[other]}" '.nodes[] | select(.node_id == $n) | .tls_key')"

# --- who may use the admin endpoints on the TLS port -------------------------
it_check_eq "admin node over TLS: list groups 200" 200 "$(tls_as boss GET /v1/groups)"
it_check_eq "admin node over TLS: create a group 200" 200 \
    "$(tls_as boss POST /v1/groups '{"name":"remote","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}')"
it_check_eq "admin node over TLS: grant 200" 200 \
    "$(tls_as boss POST /v1/groups/remote/grant "{\"node_id\":\"${NODE_ID[worker]}\"}")"
it_check_eq "the group exists (seen on the admin socket)" remote \
    "$(admin GET /v1/groups/remote | jq -r .name)"
it_check_eq "no client certificate: 403" 403 "$(tls_as none GET /v1/groups)"
it_check "the 403 says what is needed" grep -q 'admin role' "$IT_TMP/tls.out"
it_check_eq "an unbound key: 403" 403 "$(tls_as stranger GET /v1/groups)"
it_check_eq "the key of a client node: 403" 403 "$(tls_as worker POST /v1/groups/remote/rotate)"
it_check_eq "the client node rotated nothing" 1 \
    "$(admin GET /v1/groups/remote | jq '.versions | length')"
it_check_eq "non-admin endpoints still need no certificate" 200 "$(tls_as none GET /v1/health)"
it_check_eq "and accept any certificate" 200 "$(tls_as stranger GET /v1/health)"

keys_flush_audit() {
    # The audit writer runs in batches: wait for the record to land.
    local i
    for i in $(seq 1 50); do
        [ "$(svc_psql "SELECT count(*) FROM audit_log WHERE action = '$1' AND actor = '$2'")" -ge 1 ] &&
            return 0
        sleep 0.1
    done
    return 1
}
it_check "the audit log names the admin node as the actor" \
    keys_flush_audit group.create "node:${NODE_ID[boss]}"

# --- binding a new key --------------------------------------------------------
admin PUT "/v1/nodes/${NODE_ID[boss]}/tls" "{\"tls_cert\":$(json_str "$IT_TMP/worker.crt")}" \
    >/dev/null
it_check_eq "binding a key of another node: 409" 409 "$(admin_code)"
admin PUT "/v1/nodes/${NODE_ID[boss]}/tls" "{\"tls_cert\":$(json_str "$IT_TMP/boss2.crt")}" \
    >/dev/null
it_check_eq "binding a new key: 200" 200 "$(admin_code)"
it_check_eq "the old key no longer works" 403 "$(tls_as boss GET /v1/groups)"
it_check_eq "the new key works" 200 "$(tls_as boss2 GET /v1/groups)"
admin PUT "/v1/nodes/$(printf '%068d' 0)/tls" "{\"tls_cert\":$(json_str "$IT_TMP/boss.crt")}" \
    >/dev/null
it_check_eq "binding for an unknown node: 404" 404 "$(admin_code)"
it_stop_pid "$SVC_PID"
svc_start dkmd2
it_check_eq "after a restart the old key is still refused" 403 "$(tls_as boss GET /v1/groups)"
it_check_eq "after a restart the bound key works" 200 "$(tls_as boss2 GET /v1/groups)"

# --- the same through dkmctl -------------------------------------------------
CTL=$KEYS_DKMCTL
URL=https://127.0.0.1:$SVC_PORT
as_boss=(--service "$URL" --tls-cert "$IT_TMP/boss2.crt" --tls-key "$IT_TMP/boss2.key")
it_check "dkmctl over TLS as the admin node: group list" \
    "$CTL" group list "${as_boss[@]}" --tls-ca "$SVC_STATE/tls.crt"
out=$("$CTL" group rotate remote "${as_boss[@]}" --tls-ca "$SVC_STATE/tls.crt" --json)
it_check_eq "dkmctl over TLS: rotate gives version 2" 2 "$(jq -r .version <<<"$out")"
"$CTL" group list "${as_boss[@]}" >/dev/null 2>"$IT_TMP/err"
it_check_eq "without --tls-ca: configuration error (exit 3)" 3 "$?"
it_check "the error says why --tls-ca is needed" grep -q 'tls-ca' "$IT_TMP/err"
"$CTL" group list "${as_boss[@]}" --tls-ca "$IT_TMP/worker.crt" >/dev/null 2>"$IT_TMP/err"
it_check_eq "a --tls-ca that is not the service's: unavailable (exit 5)" 5 "$?"
it_check "the error names the certificate check" grep -qi 'certificate' "$IT_TMP/err"
"$CTL" group list --service "$URL" --tls-cert "$IT_TMP/worker.crt" \
    --tls-key "$IT_TMP/worker.key" --tls-ca "$SVC_STATE/tls.crt" >/dev/null 2>"$IT_TMP/err"
it_check_eq "a client node's certificate: not authorized (exit 6)" 6 "$?"
"$CTL" group list --tls-cert "$IT_TMP/boss2.crt" >/dev/null 2>&1
it_check_eq "--tls-cert without --tls-key: exit 3" 3 "$?"
"$CTL" node tls "${NODE_ID[worker]}" "$IT_TMP/stranger.crt" \
    --socket "$SVC_SOCK" >/dev/null
it_check_eq "dkmctl node tls over the admin socket" 0 "$?"
it_check_eq "the worker's new key is listed" \
    "$(key_id "$IT_TMP/stranger.crt")" \
    "$("$CTL" node list --socket "$SVC_SOCK" --json |
        jq -r --arg n "${NODE_ID[worker]}" '.nodes[] | select(.node_id == $n) | .tls_key')"
"$CTL" node tls "${NODE_ID[worker]}" "$IT_TMP/auth.json" --socket "$SVC_SOCK" \
    >/dev/null 2>&1
it_check_eq "dkmctl node tls with a file that is no certificate: exit 2" 2 "$?"
# --- a node lists its own groups (GET /v1/keys/groups) -----------------------
it_check_eq "a node lists its groups with its bound key" 200 "$(tls_as stranger GET /v1/keys/groups)"
it_check_eq "the list names the node" "${NODE_ID[worker]}" "$(jq -r .node_id "$IT_TMP/tls.out")"
it_check_eq "the list has the granted group and its current version" "remote 2" \
    "$(jq -r '.groups[] | "\(.name) \(.current)"' "$IT_TMP/tls.out")"
it_check_eq "the admin node (granted nothing) lists no group" 0 \
    "$(tls_as boss2 GET /v1/keys/groups >/dev/null; jq '.groups | length' "$IT_TMP/tls.out")"
it_check_eq "no client certificate: 403" 403 "$(tls_as none GET /v1/keys/groups)"
it_check_eq "a key no longer bound: 403" 403 "$(tls_as worker GET /v1/keys/groups)"
it_check "the 403 says the key is not bound" grep -q 'not bound' "$IT_TMP/tls.out"

keys_node late
client_cert late
"$CTL" node authorize "$IT_TMP/late.card" --role admin --node-tls-cert "$IT_TMP/late.crt" \
    --socket "$SVC_SOCK" >/dev/null
it_check_eq "dkmctl node authorize --node-tls-cert" 0 "$?"
it_check "the new admin node administers over TLS at once" \
    "$CTL" audit --limit 1 --service "$URL" --tls-cert "$IT_TMP/late.crt" \
    --tls-key "$IT_TMP/late.key" --tls-ca "$SVC_STATE/tls.crt"

# --- revocation ---------------------------------------------------------------
admin POST "/v1/nodes/${NODE_ID[boss]}/revoke" >/dev/null
it_check_eq "revoke the admin node" 200 "$(admin_code)"
it_check_eq "a revoked admin node: 403" 403 "$(tls_as boss2 GET /v1/groups)"
it_check_eq "a revoked node cannot list its groups" 403 "$(tls_as boss2 GET /v1/keys/groups)"
admin PUT "/v1/nodes/${NODE_ID[boss]}/tls" "{\"tls_cert\":$(json_str "$IT_TMP/boss.crt")}" \
    >/dev/null
it_check_eq "binding a key to a revoked node: 409" 409 "$(admin_code)"

it_finish
