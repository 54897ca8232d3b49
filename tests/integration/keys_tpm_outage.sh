#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# The server's TPM taken away and given back while dkmd runs, with a
# short delegation lifetime (60 s: renewed when 15 s are left) so that a
# renewal falls inside the outage:
#  - fetches keep working (no TPM on the hot path);
#  - a rotation fails with a reason, the TPM is reported down (metric
#    dkmd_tpm_up 0, /v1/health's tpm check), a log line names it;
#  - the delegation's renewal fails while the TPM is gone, and fetches go
#    on while the old delegation lasts;
#  - when the TPM is back (same port), dkmd opens it again by itself:
#    dkmd_tpm_up 1, rotations work, the delegation is renewed.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init keys_tpm_outage

keys_setup
sed -i 's/^log_level = debug$/log_level = info/' "$SVC_CONF"
sed -i "s|^\[service\]\$|[service]\ndelegation_lifetime = 60|" "$SVC_CONF"
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"g","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' >/dev/null
admin POST /v1/groups/g/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "the group is granted" 200 "$(admin_code)"
it_check_eq "a fetch works" 200 "$(fetch_status n1 g current)"

metric() { svc_curl /metrics | awk -v m="$1" '$1 == m {print $2}'; }
remaining() { metric dkmd_delegation_remaining_seconds | cut -d. -f1; }
tpm_up() { [ "$(metric dkmd_tpm_up)" = "$1" ]; }
it_check "the TPM is up" tpm_up 1

server_port=$(sed -n 's/^SWTPM_PORT=//p' "$IT_TMP/server/env")
it_swtpm_stop server
it_check "without the TPM, fetches keep working" test "$(fetch_status n1 g current)" = 200
admin POST /v1/groups/g/rotate >/dev/null
it_check_ne "a rotation fails" 200 "$(admin_code)"
cp "$IT_TMP/admin.out" "$IT_TMP/rotate.out"
it_check "... naming the TPM" grep -qi 'tpm' "$IT_TMP/rotate.out"
it_check "the TPM is reported down (within the 10 s probe)" dkm_wait_for 15 tpm_up 0
health_tpm=$(svc_curl /v1/health | jq -r '.checks.tpm.ok // .tpm // empty' 2>/dev/null)
it_check_ne "... /v1/health's tpm check is not ok" true "$health_tpm"
it_check "... and the log says so" grep -q 'the TPM does not answer' "$IT_TMP/dkmd.log"

# The renewal point (15 s left) comes while the TPM is gone.
renewal_due() { [ "$(remaining)" -le 13 ]; }
it_check "the delegation reaches its renewal point" dkm_wait_for 60 renewal_due
sleep 2
it_check "the renewal failed and was logged" grep -q 'delegation renewal failed' "$IT_TMP/dkmd.log"
it_check_eq "fetches still work on the old delegation" 200 "$(fetch_status n1 g current)"

DKM_SWTPM_PORT=$server_port it_swtpm_start server
it_check "the TPM back on its port: dkmd opens it again" dkm_wait_for 20 tpm_up 1
it_check "... and says so" grep -q 'opened the TPM again' "$IT_TMP/dkmd.log"
renewed() { [ "$(remaining)" -gt 30 ]; }
it_check "the delegation is renewed" dkm_wait_for 20 renewed
admin POST /v1/groups/g/rotate >/dev/null
it_check_eq "a rotation works" 200 "$(admin_code)"
it_check_eq "the new version is fetched" 200 "$(fetch_status n1 g 2)"
it_check_eq "and current" 200 "$(fetch_status n1 g current)"
it_finish
