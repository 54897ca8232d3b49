#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# Key versions over time: the timer rotates a group whose active version
# is older than the policy's rotation period, an old version stays
# fetchable until its lifetime ends and is then refused with 410 and
# marked expired; and a dkmd killed with SIGKILL in the middle of a
# rotation (held inside its transaction by a table lock) leaves no
# half-written version behind.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_rotation

keys_setup
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
it_check_eq "authorize n1" 200 "$(admin_code)"

# --- timer rotation and expiry ----------------------------------------------
t0=$(date +%s)
admin POST /v1/groups '{"name":"short","rotation_period":2,"version_lifetime":5,"cache_ttl":1}' \
    >/dev/null
it_check_eq "create short" 200 "$(admin_code)"
admin POST /v1/groups/short/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
d1=$(key_digest n1 short 1)
it_check "version 1 is served" grep -Eqx '[0-9a-f]{64}' <<<"$d1"
rotated() {
    [ "$(admin GET /v1/groups/short | jq -r .current_version)" -ge 2 ]
}
it_check "the timer rotates the group within its period" dkm_wait_for 6 rotated
if [ $(($(date +%s) - t0)) -lt 4 ]; then
    it_check_eq "version 1 is still served before its lifetime ends" "$d1" \
        "$(key_digest n1 short 1)"
fi
it_check_ne "the current version is a new key" "$d1" "$(key_digest n1 short current)"
while [ $(($(date +%s) - t0)) -lt 6 ]; do sleep 0.2; done
it_check_eq "version 1 past its lifetime: 410" 410 "$(fetch_status n1 short 1)"
expired() {
    [ "$(admin GET /v1/groups/short | jq -r '.versions[0].state')" = expired ]
}
it_check "the timer marks version 1 expired" dkm_wait_for 5 expired
it_check "the expiry is audited" sh -c "curl -sS --unix-socket '$SVC_SOCK' \
    'http://localhost/v1/audit?limit=1000' | jq -e '[.records[] |
    select(.action == \"version.expire\" and .target == \"short/1\")] | length == 1'"
it_check "timer rotations are audited" sh -c "curl -sS --unix-socket '$SVC_SOCK' \
    'http://localhost/v1/audit?limit=1000' | jq -e '[.records[] |
    select(.action == \"group.rotate\" and .actor == \"timer\")] | length >= 1'"
admin PUT /v1/groups/short/policy '{"rotation_period":3600,"version_lifetime":7200}' >/dev/null
it_check_eq "slow the group down" 200 "$(admin_code)"

# A lifetime equal to the rotation period: the timer replaces the current
# version before it expires, so "current" is never an expired version.
admin POST /v1/groups '{"name":"tight","rotation_period":3,"version_lifetime":3,"cache_ttl":1}' \
    >/dev/null
it_check_eq "create tight (lifetime = rotation period)" 200 "$(admin_code)"
admin POST /v1/groups/tight/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
t1=$(date +%s)
codes=""
while [ $(($(date +%s) - t1)) -lt 8 ]; do
    codes+="$(svc_curl /v1/keys/fetch -o /dev/null -w '%{http_code} ' \
        -H 'Content-Type: application/json' --data-binary \
        "{\"group\":\"tight\",\"version\":\"current\",\"node_id\":\"${NODE_ID[n1]}\",\"nonce\":\"$(new_nonce)\"}")"
    sleep 0.1
done
it_check "8 s of fetches of tight's current version: never 410" \
    test -z "$(tr ' ' '\n' <<<"$codes" | grep -v '^200$' | grep -v '^$')"
it_check "tight rotated at least twice meanwhile" \
    test "$(admin GET /v1/groups/tight | jq -r .current_version)" -ge 3
admin PUT /v1/groups/tight/policy '{"rotation_period":3600,"version_lifetime":7200}' >/dev/null

# --- SIGKILL in the middle of a rotation --------------------------------------
admin POST /v1/groups '{"name":"crash","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
admin POST /v1/groups/crash/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
dc=$(key_digest n1 crash current)
it_check "crash: version 1 is served" grep -Eqx '[0-9a-f]{64}' <<<"$dc"
# A session that holds key_copies: the rotation's transaction gets as far as
# its key_versions rows and then waits for the lock.
it_daemon locker env PGAPPNAME=dkm-locker psql -X -h 127.0.0.1 -p "$PGPORT" -U postgres \
    -d postgres -c "BEGIN; LOCK TABLE key_copies IN EXCLUSIVE MODE; SELECT pg_sleep(120);"
locker_pid=$IT_PID
locked() {
    [ "$(svc_psql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE a.application_name = 'dkm-locker' AND l.mode = 'ExclusiveLock'
        AND l.granted")" -ge 1 ]
}
it_check "the locker holds key_copies" dkm_wait_for 10 locked
curl -sS --max-time 60 --unix-socket "$SVC_SOCK" -X POST \
    http://localhost/v1/groups/crash/rotate >"$IT_TMP/rotate.out" 2>&1 &
rotate_pid=$!
waiting() {
    [ "$(svc_psql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
        AND query LIKE 'INSERT INTO key_copies%'")" -ge 1 ]
}
it_check "the rotation is inside its transaction, waiting" dkm_wait_for 10 waiting
it_check_eq "inside the transaction: version 2 is written but not visible" 1 \
    "$(svc_psql "SELECT count(*) FROM key_versions WHERE group_name = 'crash'")"
kill -KILL "$SVC_PID"
it_stop_pid "$SVC_PID" || true
svc_psql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'dkm-locker'" >/dev/null
it_stop_pid "$locker_pid" || true
wait "$rotate_pid" 2>/dev/null || true
settled() {
    [ "$(svc_psql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO key_copies%'
        AND state <> 'idle'")" = 0 ]
}
it_check "the killed server's transaction ends" dkm_wait_for 10 settled
it_check_eq "no version 2 after the crash" 1 \
    "$(svc_psql "SELECT count(*) FROM key_versions WHERE group_name = 'crash'")"
it_check_eq "version 1 is still the active one" active \
    "$(svc_psql "SELECT state FROM key_versions WHERE group_name = 'crash' AND version = 1")"
it_check_eq "every version has its sealed copy (none half-written)" 0 \
    "$(svc_psql "SELECT count(*) FROM key_versions v WHERE NOT EXISTS
        (SELECT 1 FROM key_copies c WHERE c.group_name = v.group_name AND c.version = v.version)")"
svc_start dkmd2
it_check_eq "after the restart: the same current key" "$dc" "$(key_digest n1 crash current)"
it_check_eq "health: nothing refused" 0 "$(svc_curl /v1/health | jq -r .refused_rows)"
out=$(admin POST /v1/groups/crash/rotate)
it_check_eq "the rotation works after the crash: version 2" 2 "$(jq -r .version <<<"$out")"
it_check_ne "version 2 is a new key" "$dc" "$(key_digest n1 crash current)"

it_finish
