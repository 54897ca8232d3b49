#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# dkmd killed with SIGKILL at random moments, 20 rounds, while 8 clients
# fetch (6 of a granted node, 2 of a node that is never granted) and an
# admin loop rotates a group, grants and revokes a node, changes a policy
# and authorizes new nodes. After each restart:
#  - every acknowledged version is there and served, the versions have no
#    gap, and nothing was refused at load (nothing half-written);
#  - the grant, the policy and the authorized nodes are what the last
#    acknowledged write made them (or what the one write in flight at the
#    kill made them: it may have committed without an answer);
#  - an audit record is there for every acknowledged write, and none for
#    a write that was never tried;
#  - over the whole run, the node that is never granted got no key (every
#    answer 403) and the granted node no refusal: answers other than 200
#    were broken connections or 503 while dkmd was starting.
# After each kill the server TPM's transient objects and sessions are
# flushed, as the kernel's resource manager does for a process that dies.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init keys_kill_load

ROUNDS=${DKM_KILL_ROUNDS:-20}
POOL=4 # nodes authorized during the run
LOAD=${DKM_BUILD_DIR:?}/bench/fetch_load
[ -x "$LOAD" ] || it_fatal "fetch_load is not built"
keys_setup
sed -i 's/^log_level = debug$/log_level = info/' "$SVC_CONF"
keys_init
svc_start dkmd-0
for n in n1 n2 n3; do
    keys_node "$n"
    admin POST /v1/nodes "{\"card\":\"${NODE_CARD[$n]}\"}" >/dev/null
done
for ((i = 1; i <= POOL; i++)); do
    keys_node "p$i"
done
admin POST /v1/groups '{"name":"g","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' >/dev/null
admin POST /v1/groups '{"name":"g2","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' >/dev/null
admin POST /v1/groups/g/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "n1 is granted g" 200 "$(admin_code)"

# The fetch clients run through every kill and restart.
FETCH_LOAD_RECONNECT=1 it_daemon load "$LOAD" 127.0.0.1 "$SVC_PORT" "$SVC_STATE/tls.crt" \
    "${NODE_ID[n1]}" g 6 3600
LOAD_PID=$IT_PID
FETCH_LOAD_RECONNECT=1 FETCH_LOAD_EXPECT=403 it_daemon refused "$LOAD" 127.0.0.1 \
    "$SVC_PORT" "$SVC_STATE/tls.crt" "${NODE_ID[n2]}" g 2 3600
REFUSED_PID=$IT_PID

OPS=$IT_TMP/ops.log # "try OP ARGS" before a request, "ack OP ARGS" after its 200
: >"$OPS"

# One admin request of the loop; fails (ending the loop) on anything but
# the answers listed as acceptable.
op() {
    local what=$1 method=$2 path=$3 body=${4:-} code
    echo "try $what" >>"$OPS"
    admin "$method" "$path" "$body" >"$IT_TMP/op.out"
    code=$(admin_code)
    if [ "$code" = 200 ]; then
        echo "ack $what" >>"$OPS"
        return 0
    fi
    echo "fail $what $code" >>"$OPS"
    return 1
}

# The admin loop: until a request fails (dkmd killed), rotate g, toggle
# n3's grant on g2, set g2's cache_ttl, and authorize the next pool node.
admin_loop() {
    local ttl granted=$1 next=$2
    while :; do
        op "rotate g" POST /v1/groups/g/rotate || return 0
        if [ "$granted" = 1 ]; then
            op "revoke g2" POST /v1/groups/g2/revoke "{\"node_id\":\"${NODE_ID[n3]}\"}" || return 0
            granted=0
        else
            op "grant g2" POST /v1/groups/g2/grant "{\"node_id\":\"${NODE_ID[n3]}\"}" || return 0
            granted=1
        fi
        ttl=$((600 + RANDOM % 1000))
        op "policy g2 $ttl" PUT /v1/groups/g2/policy "{\"cache_ttl\":$ttl}" || return 0
        if [ "$next" -le "$POOL" ]; then
            op "authorize p$next" POST /v1/nodes "{\"card\":\"${NODE_CARD[p$next]}\"}" || return 0
            next=$((next + 1))
        fi
    done
}

# What the log says of OP (a basic regular expression): the last
# acknowledged one, and the one the kill cut off if it was OP: the loop's
# last request, which got no 200 but may have committed ("" otherwise).
last_ack() { grep "^ack \($1\)" "$OPS" | tail -n1 | cut -d' ' -f2-; }
in_flight() {
    tail -n1 "$OPS" | grep "^fail \($1\)" | cut -d' ' -f2- | sed 's/ [0-9]*$//'
}
count_ops() { grep -c "^$1 $2" "$OPS" || true; }
audit_ok() { svc_psql "SELECT count(*) FROM audit_log WHERE action = '$1' AND target = '$2' AND outcome = 'ok'"; }
in_range() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

granted=0
next=1
bad_rounds=0
for ((round = 1; round <= ROUNDS; round++)); do
    admin_loop "$granted" "$next" &
    loop_pid=$!
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.2 + (r % 2500) / 1000 }')"
    kill -KILL "$SVC_PID"
    wait "$SVC_PID" 2>/dev/null
    # dkmd talks to swtpm directly; on a server, /dev/tpmrm0 (the kernel's
    # resource manager) flushes what a dead process had loaded. Do the same.
    for kind in -t -l -s; do
        TPM2TOOLS_TCTI=$KEYS_SERVER_TCTI tpm2_flushcontext "$kind" >/dev/null 2>&1 ||
            it_fatal "cannot flush the server TPM's handles ($kind)"
    done
    wait "$loop_pid"
    svc_start "dkmd-$round"

    fail=()
    # Versions: every acknowledged rotation is there, served, and no gap.
    groupj=$(admin GET /v1/groups/g)
    current=$(jq -r '.current_version' <<<"$groupj")
    acked_v=$(count_ops ack "rotate g")
    tried_v=$(count_ops try "rotate g")
    in_range "$current" $((1 + acked_v)) $((1 + tried_v)) ||
        fail+=("current version $current, acknowledged $((1 + acked_v)), tried $((1 + tried_v))")
    [ "$(jq -r '[.versions[].version] | sort | . == [range(1; length + 1)]' <<<"$groupj")" = true ] ||
        fail+=("versions with a gap: $(jq -c '[.versions[].version]' <<<"$groupj")")
    [ "$(fetch_status n1 g "$((1 + acked_v))")" = 200 ] ||
        fail+=("acknowledged version $((1 + acked_v)) not served")
    grep -q 'event=state.refused' "$IT_TMP/dkmd-$round.log" &&
        fail+=("a row refused at load: $(grep 'event=state.refused' "$IT_TMP/dkmd-$round.log" | head -n1)")

    # The grant: what the last acknowledged write made it, or the write in flight.
    case "$(last_ack 'grant g2\|revoke g2')" in
    "grant g2") want=200 ;;
    *) want=403 ;;
    esac
    got=$(fetch_status n3 g2 current)
    flight=$(in_flight 'grant g2\|revoke g2')
    if [ "$got" != "$want" ]; then
        case "$flight:$got" in
        "grant g2:200" | "revoke g2:403") ;;
        *) fail+=("n3 on g2 answered $got, want $want (in flight: ${flight:-none})") ;;
        esac
    fi
    [ "$got" = 200 ] && granted=1 || granted=0

    # The policy.
    ttl=$(admin GET /v1/groups/g2 | jq -r '.policy.cache_ttl // .cache_ttl')
    want_ttl=$(last_ack "policy g2" | awk '{print $3}')
    flight_ttl=$(in_flight "policy g2" | awk '{print $3}')
    if [ -n "$want_ttl" ] && [ "$ttl" != "$want_ttl" ] && [ "$ttl" != "$flight_ttl" ]; then
        fail+=("g2's cache_ttl is $ttl, acknowledged $want_ttl (in flight: ${flight_ttl:-none});" \
            "policy audit: $(svc_psql "SELECT string_agg(detail, ',' ORDER BY id) FROM audit_log WHERE action = 'group.policy' AND outcome = 'ok'")")
    fi

    # Authorized nodes: every acknowledged one is listed.
    nodes=$(admin GET /v1/nodes)
    for p in $(grep '^ack authorize ' "$OPS" | awk '{print $3}'); do
        jq -e --arg id "${NODE_ID[$p]}" 'any(.nodes[]; .node_id == $id)' <<<"$nodes" >/dev/null ||
            fail+=("authorized node $p is missing")
    done
    # The next pool node: the in-flight one may have been authorized.
    while [ "$next" -le "$POOL" ] &&
        jq -e --arg id "${NODE_ID[p$next]}" 'any(.nodes[]; .node_id == $id)' <<<"$nodes" >/dev/null; do
        next=$((next + 1))
    done

    # Audit: one record per acknowledged write, none beyond what was tried.
    a=$(audit_ok group.rotate group:g)
    in_range "$a" "$acked_v" "$tried_v" ||
        fail+=("audit: $a rotations, acknowledged $acked_v, tried $tried_v")
    a=$(($(audit_ok group.grant group:g2) + $(audit_ok group.revoke group:g2)))
    acked=$(($(count_ops ack "grant g2") + $(count_ops ack "revoke g2")))
    tried=$(($(count_ops try "grant g2") + $(count_ops try "revoke g2")))
    in_range "$a" "$acked" "$tried" ||
        fail+=("audit: $a grants and revokes, acknowledged $acked, tried $tried")
    a=$(audit_ok group.policy group:g2)
    in_range "$a" "$(count_ops ack "policy g2")" "$(count_ops try "policy g2")" ||
        fail+=("audit: $a policy changes, acknowledged $(count_ops ack "policy g2")")
    a=$(svc_psql "SELECT count(*) FROM audit_log WHERE action = 'node.authorize' AND outcome = 'ok'")
    in_range "$a" $((3 + $(count_ops ack authorize))) $((3 + $(count_ops try authorize))) ||
        fail+=("audit: $a authorizations, acknowledged $((3 + $(count_ops ack authorize)))")

    if [ "${#fail[@]}" -gt 0 ]; then
        bad_rounds=$((bad_rounds + 1))
        printf '    round %d: %s\n' "$round" "${fail[@]}" >&2
    fi
done

it_check_eq "every round: acknowledged writes and their audit records there, nothing half-written" \
    0 "$bad_rounds"
# A kill can come before a round's first answer; half the rounds is plenty.
it_check "the admin loop got writes acknowledged" test "$(count_ops ack "rotate g")" -ge $((ROUNDS / 2))
it_check "... and pool nodes authorized" grep -q '^ack authorize ' "$OPS"
it_check "... and grants and revokes" grep -q '^ack revoke g2' "$OPS"
it_stop_pid "$LOAD_PID" >/dev/null 2>&1
it_stop_pid "$REFUSED_PID" >/dev/null 2>&1
it_check "the granted node: no wrong answer over all the kills" grep -q 'errors 0$' "$IT_TMP/load.log"
it_check "... and it fetched" grep -qE ': [1-9][0-9]* fetches' "$IT_TMP/load.log"
it_check "... and saw the kills (broken connections)" grep -qE '^broken [1-9]' "$IT_TMP/load.log"
it_check "the node never granted: never a key (every answer 403)" grep -q 'errors 0$' \
    "$IT_TMP/refused.log"
it_check "... and it asked" grep -qE ': [1-9][0-9]* fetches' "$IT_TMP/refused.log"
cat "$IT_TMP/load.log" "$IT_TMP/refused.log" | grep -v latency | sed 's/^/    /'
it_finish
