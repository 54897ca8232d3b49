#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# /v1/health tells live from ready, and each readiness check from the
# others: with everything up it is 200 with four passing checks (database,
# state, delegation, tpm) and their facts, and `dkmctl status` prints them
# and exits 0; the metrics carry the delegation's remaining lifetime, the
# time of the last state load and whether the TPM answers. A reload moves
# the load time. With PostgreSQL stopped only the database check fails
# (503, live still 200, dkmctl status exits 5); with the TPM gone the tpm
# check fails within one probe period, while fetches go on from memory.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_health

keys_setup
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"web","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
admin POST /v1/groups/web/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null

metric() {
    svc_curl /metrics | sed -n "s/^$1 //p"
}
status() {
    "$KEYS_DKMCTL" status --socket "$SVC_SOCK" "$@"
}

# --- everything up ---------------------------------------------------------------
h=$(svc_curl /v1/health)
now=$(date +%s)
it_check_eq "ready: 200" 200 "$(svc_code /v1/health)"
it_check_eq "ready, live, status ok" "true true ok" "$(jq -r '"\(.ready) \(.live) \(.status)"' <<<"$h")"
it_check_eq "all four checks pass" "true true true true" \
    "$(jq -r '[.checks.database.ok, .checks.state.ok, .checks.delegation.ok, .checks.tpm.ok] | join(" ")' <<<"$h")"
it_check "the state was loaded within the last minute" \
    test $((now - $(jq -r .checks.state.loaded_at <<<"$h"))) -le 60
it_check "the delegation has almost a day left" \
    test "$(jq -r .checks.delegation.remaining_s <<<"$h")" -gt 86000
it_check "the TPM answered within one probe period" \
    test "$(jq -r .checks.tpm.age_s <<<"$h")" -le 10
it_check_eq "the keeper's own connection is up" true \
    "$(jq -r .checks.database.keeper_connected <<<"$h")"
it_check_eq "/v1/health/ready is the same check" 200 "$(svc_code /v1/health/ready)"
it_check_eq "/v1/health/live: 200" 200 "$(svc_code /v1/health/live)"

out=$(status)
code=$?
it_check_eq "dkmctl status exits 0 when ready" 0 "$code"
it_check "and says ready" grep -q '^dkmd .*: ready$' <<<"$out"
it_check_eq "with four passing checks" 4 "$(grep -cE '^  (database|state|delegation|tpm) +ok ' <<<"$out")"
it_check "and the delegation's lifetime" grep -qE '^  delegation +ok +valid for 23h' <<<"$out"
it_check_eq "dkmctl status --json is dkmd's answer" true "$(status --json | jq -r .ready)"

it_check "metric: the delegation's remaining lifetime" \
    test "$(metric dkmd_delegation_remaining_seconds)" -gt 86000
loaded=$(metric dkmd_state_last_reload_timestamp_seconds)
it_check "metric: the time of the last state load" test $((now - loaded)) -le 60
it_check_eq "metric: the TPM answers" 1 "$(metric dkmd_tpm_up)"

# A reload (what any writer's NOTIFY causes) moves the load time.
sleep 1.1
keys_notify
reloaded() { [ "$(metric dkmd_state_last_reload_timestamp_seconds)" -gt "$loaded" ]; }
it_check "a reload moves dkmd_state_last_reload_timestamp_seconds" dkm_wait_for 5 reloaded

# --- the database goes away ------------------------------------------------------------
pg_bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
(cd / && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop) \
    >/dev/null || it_fatal "cannot stop PostgreSQL"
h=$(svc_curl /v1/health)
it_check_eq "database down: 503" 503 "$(svc_code /v1/health)"
it_check_eq "not ready, the detail names the database" "false the database is unavailable" \
    "$(jq -r '"\(.ready) \(.detail)"' <<<"$h")"
it_check_eq "only the database check fails" "false true true true" \
    "$(jq -r '[.checks.database.ok, .checks.state.ok, .checks.delegation.ok, .checks.tpm.ok] | join(" ")' <<<"$h")"
it_check_eq "but dkmd is live" 200 "$(svc_code /v1/health/live)"
out=$(status)
code=$?
it_check_eq "dkmctl status exits 5 when not ready" 5 "$code"
it_check "and prints the failing check" grep -qE '^  database +FAIL +the database is unavailable' <<<"$out"
it_check "the keeper notices its connection is gone" dkm_wait_for 5 sh -c \
    "curl -sS --cacert '$SVC_STATE/tls.crt' https://127.0.0.1:$SVC_PORT/v1/health |
     jq -e '.checks.database.keeper_connected == false' >/dev/null"
it_check_eq "fetches go on from memory" 200 "$(fetch_status n1 web current)"

# --- the TPM goes away ------------------------------------------------------------------
it_swtpm_stop server
tpm_failed() {
    svc_curl /v1/health | jq -e '.checks.tpm.ok == false' >/dev/null
}
it_check "TPM gone: the tpm check fails within a probe period" dkm_wait_for 15 tpm_failed
h=$(svc_curl /v1/health)
it_check "with the TPM's error as detail" test -n "$(jq -r .checks.tpm.detail <<<"$h")"
it_check_eq "metric: the TPM does not answer" 0 "$(metric dkmd_tpm_up)"
it_check "the log says so once" test "$(grep -c 'event=tpm.down' "$IT_TMP/dkmd.log")" = 1
it_check_eq "fetches still go on (no TPM on the hot path)" 200 "$(fetch_status n1 web current)"

it_stop_pid "$SVC_PID"
it_check_eq "dkmd stopped cleanly" 0 "$?"
it_finish
