#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# The key service end to end with real TPMs (one swtpm for the server, one
# per node) and PostgreSQL: dkmd init (identity, server list v1, trust
# fingerprint), authorize a node from its card, create a group, grant,
# fetch over TLS and unseal on the node's TPM (same key twice), rotate
# (current moves, the old version stays fetchable), restart (same keys),
# and a pg_dump that holds no key bytes in any encoding.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_lifecycle

keys_setup
keys_init
it_check "init prints a 64-hex trust fingerprint" grep -Eqx '[0-9a-f]{64}' <<<"$KEYS_TRUST"
it_check "the signing key file exists" test -s "$SVC_STATE/signkey"
it_check_eq "one server list in the database" 1 "$(svc_psql 'SELECT count(*) FROM server_lists')"
it_check_eq "the server's own node entry, role server" server \
    "$(svc_psql 'SELECT role FROM nodes')"
it_check_fails "a second init is refused" "$SVC_BIN" init --config "$SVC_CONF"

svc_start
trust=$(svc_curl /v1/trust)
it_check_eq "trust: one list" 1 "$(jq '.lists|length' <<<"$trust")"
list_fpr=$(jq -r '.lists[0]' <<<"$trust" | tr -- '-_' '+/' |
    awk '{ l = length($0) % 4; if (l == 2) $0 = $0 "=="; else if (l == 3) $0 = $0 "="; print }' |
    base64 -d | sha256sum | cut -d' ' -f1)
it_check_eq "trust: list v1 has the printed fingerprint" "$KEYS_TRUST" "$list_fpr"
it_check_eq "trust is served on the admin socket too" "$trust" "$(admin GET /v1/trust)"

keys_node n1
out=$(admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\",\"role\":\"client\"}")
it_check_eq "authorize n1: 200" 200 "$(admin_code)"
it_check_eq "authorize n1: its node id" "${NODE_ID[n1]}" "$(jq -r .node_id <<<"$out")"
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
it_check_eq "authorizing n1 again: 409" 409 "$(admin_code)"
admin POST /v1/nodes '{"card":"AAAAAAAAAAAAAAAA"}' >/dev/null
it_check_eq "a garbage card: 400" 400 "$(admin_code)"
it_check_eq "nodes list: the server and n1" 2 "$(admin GET /v1/nodes | jq '.nodes|length')"
it_check "authorizing needs the admin socket" \
    test "$(svc_code /v1/nodes -X POST -H 'Content-Type: application/json' \
        --data-binary "{\"card\":\"${NODE_CARD[n1]}\"}")" = 403

out=$(admin POST /v1/groups \
    '{"name":"payments","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}')
it_check_eq "create payments: 200" 200 "$(admin_code)"
it_check_eq "create payments: version 1" 1 "$(jq -r .version <<<"$out")"
admin POST /v1/groups \
    '{"name":"payments","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' >/dev/null
it_check_eq "create payments again: 409" 409 "$(admin_code)"
admin POST /v1/groups \
    '{"name":"bad","rotation_period":3600,"version_lifetime":60,"cache_ttl":60}' >/dev/null
it_check_eq "a lifetime shorter than the rotation period: 400" 400 "$(admin_code)"
it_check_eq "one sealed copy per server, one version" 1 \
    "$(svc_psql "SELECT count(*) FROM key_copies WHERE group_name = 'payments'")"

it_check_eq "fetch before the grant: 403" 403 "$(fetch_status n1 payments current)"
admin POST /v1/groups/payments/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "grant: 200" 200 "$(admin_code)"
admin POST /v1/groups/payments/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "grant twice: 409" 409 "$(admin_code)"

out=$(fetch n1 payments current)
it_check_eq "fetch current: version 1" 1 "$(sed -n 's/^version //p' <<<"$out")"
d1=$(sed -n 's/^key-sha256 //p' <<<"$out")
it_check "fetch + unseal on n1's TPM gives a key" grep -Eqx '[0-9a-f]{64}' <<<"$d1"
it_check_eq "a second fetch gives the same key" "$d1" "$(key_digest n1 payments current)"
it_check_eq "fetch version 1 by number: same key" "$d1" "$(key_digest n1 payments 1)"
it_check_eq "an unknown version: 404" 404 "$(fetch_status n1 payments 7)"

# The answer is for n1's TPM only: another TPM cannot unseal it.
keys_node n2
svc_curl /v1/trust -o "$IT_TMP/trust.json"
nonce=$(new_nonce)
svc_curl /v1/keys/fetch -o "$IT_TMP/n1.json" -H 'Content-Type: application/json' \
    --data-binary "{\"group\":\"payments\",\"version\":\"current\",\"node_id\":\"${NODE_ID[n1]}\",\"nonce\":\"$nonce\"}"
it_check_fails "n2's TPM cannot use an answer made for n1" "$KEYS_FETCH_BIN" \
    --tcti "${NODE_TCTI[n2]}" --pin "$KEYS_TRUST" --trust "$IT_TMP/trust.json" \
    --response "$IT_TMP/n1.json" --group payments --version current --nonce "$nonce"
it_check_fails "a wrong pin is refused" "$KEYS_FETCH_BIN" \
    --tcti "${NODE_TCTI[n1]}" --pin "$(printf '%064d' 0)" --trust "$IT_TMP/trust.json" \
    --response "$IT_TMP/n1.json" --group payments --version current --nonce "$nonce"
it_check_fails "a replayed answer (other nonce) is refused" "$KEYS_FETCH_BIN" \
    --tcti "${NODE_TCTI[n1]}" --pin "$KEYS_TRUST" --trust "$IT_TMP/trust.json" \
    --response "$IT_TMP/n1.json" --group payments --version current --nonce "$(new_nonce)"
# Answers are built once per node and version and then reused: a second
# node must get a blob sealed to its own EK, not n1's, and the same key.
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n2]}\"}" >/dev/null
admin POST /v1/groups/payments/grant "{\"node_id\":\"${NODE_ID[n2]}\"}" >/dev/null
it_check_eq "n2 granted: the same key, unsealed by n2's TPM" "$d1" \
    "$(key_digest n2 payments current)"
it_check_eq "n1 again after n2: the same key" "$d1" "$(key_digest n1 payments current)"
it_check_eq "n2 again (reused answer): the same key" "$d1" "$(key_digest n2 payments 1)"

metrics=$(svc_curl /metrics)
metric() { sed -n "s/^$1 \([0-9.e+]*\)$/\1/p" <<<"$metrics"; }
it_check "metrics: the TPM unseal of the sealed copy was timed" \
    grep -Eq '^dkmd_tpm_operation_duration_seconds_count\{operation="unseal"\} [1-9]' \
    <<<"$metrics"
it_check "metrics: TPM signatures were timed" \
    grep -Eq '^dkmd_tpm_operation_duration_seconds_count\{operation="sign"\} [1-9]' \
    <<<"$metrics"
it_check "metrics: the delegation was timed" \
    grep -Eq '^dkmd_tpm_operation_duration_seconds_count\{operation="delegate"\} [1-9]' \
    <<<"$metrics"
it_check_eq "metrics: one group" 1 "$(metric dkmd_groups)"
it_check_eq "metrics: two nodes and the server's own entry" 3 "$(metric dkmd_nodes)"
it_check_eq "metrics: one key held" 1 "$(metric dkmd_keys_held)"
it_check_eq "metrics: one import blob per node since the last change" 2 \
    "$(metric dkmd_import_blob_cache_entries)"
it_check "metrics: blob bytes counted" test "$(metric dkmd_import_blob_cache_bytes)" -gt 200
it_check "metrics: audit queue gauge" grep -Eq '^dkmd_audit_queue [0-9]' <<<"$metrics"

out=$(admin POST /v1/groups/payments/rotate)
it_check_eq "rotate: version 2" 2 "$(jq -r .version <<<"$out")"
out=$(fetch n1 payments current)
it_check_eq "current is now version 2" 2 "$(sed -n 's/^version //p' <<<"$out")"
d2=$(sed -n 's/^key-sha256 //p' <<<"$out")
it_check "version 2 is a key" grep -Eqx '[0-9a-f]{64}' <<<"$d2"
it_check_ne "version 2 is another key" "$d1" "$d2"
it_check_eq "version 1 is still fetchable (decrypt-only)" "$d1" "$(key_digest n1 payments 1)"
show=$(admin GET /v1/groups/payments)
it_check_eq "show: v1 decrypt-only" decrypt-only "$(jq -r '.versions[0].state' <<<"$show")"
it_check_eq "show: v2 active" active "$(jq -r '.versions[1].state' <<<"$show")"
it_check_eq "show: n1 is a member" 1 \
    "$(jq --arg n "${NODE_ID[n1]}" '[.members[] | select(. == $n)] | length' <<<"$show")"
out=$(admin PUT /v1/groups/payments/policy '{"cache_ttl":30}')
it_check_eq "policy update: serial 2" 2 "$(jq -r .serial <<<"$out")"
it_check_eq "the new policy is served" 30 \
    "$(admin GET /v1/groups/payments | jq -r .policy.cache_ttl)"
it_check_eq "fetch still verifies with the new policy" "$d2" "$(key_digest n1 payments current)"

it_stop_pid "$SVC_PID"
svc_start dkmd2
it_check_eq "after a restart: version 1 is the same key" "$d1" "$(key_digest n1 payments 1)"
it_check_eq "after a restart: version 2 is the same key" "$d2" "$(key_digest n1 payments 2)"
it_check_eq "health: no refused rows" 0 "$(svc_curl /v1/health | jq -r .refused_rows)"

# The database holds keys only sealed to servers' TPMs.
pg_dump -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres >"$IT_TMP/dump.sql" ||
    it_fatal "pg_dump failed"
pg_dump -Fc -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres >"$IT_TMP/dump.bin" ||
    it_fatal "pg_dump -Fc failed"
it_check "the dump has the sealed copies" grep -q 'key_copies' "$IT_TMP/dump.sql"
for v in 1 2; do
    for f in dump.sql dump.bin; do
        it_check_eq "$f: no form of version $v's key" "key-in-file no" \
            "$(fetch n1 payments $v --search "$IT_TMP/$f" | grep '^key-in-file')"
    done
done
it_check_eq "control: the search finds each form of the key inside other bytes" \
    "search-control ok" \
    "$(fetch n1 payments 1 --search "$IT_TMP/dump.sql" | grep '^search-control')"

it_finish
