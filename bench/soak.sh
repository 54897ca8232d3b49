#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2119 # keys_setup takes no arguments here
#
# Soak: dkmd under steady fetch load (bench/fetch_load, 4 keep-alive TLS
# clients) with a rotation every 3 s, and one long-running provider
# process (tests/tools/dkm-soak-client) protecting and unprotecting in a
# loop, for MINUTES. Every 10 s it samples dkmd's and the provider
# process's resident memory and open file descriptors. The last line is
#   soak: dkmd rss +X% fds +N, provider rss +Y% fds +M, errors E
# growth from the first sample after a warm-up (30 s, or a quarter of a
# short run) to the last; errors counts failed fetches, failed round
# trips and failed rotations. Exits non-zero when a descriptor count grew,
# anything failed, more than 20 keys were held at the end (expired
# versions must leave memory), or the audit queue was not under 1,000
# within 10 s of the load's end (the writer fell behind for good); memory
# growth is reported, not judged
# (a short run measures allocator warm-up).
#
# Usage: bench/soak.sh [BUILD_DIR] MINUTES
# Starts its own PostgreSQL, swtpms and dkmd in a temporary directory and
# stops them by PID at the end (the integration tests' helpers).

BUILD=${1:-$(dirname "$0")/../build}
MINUTES=${2:-2}
[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [BUILD_DIR] MINUTES" >&2
    exit 2
}
DKM_BUILD_DIR=$(cd "$BUILD" && pwd)
export DKM_BUILD_DIR
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../tests/integration/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init soak

LOAD=$DKM_BUILD_DIR/bench/fetch_load
CLIENT=$DKM_BUILD_DIR/tests/tools/dkm-soak-client
[ -x "$LOAD" ] && [ -x "$CLIENT" ] || it_fatal "fetch_load or dkm-soak-client is not built"
SECONDS_TOTAL=$((MINUTES * 60))
WARMUP=$((SECONDS_TOTAL / 4 < 30 ? SECONDS_TOTAL / 4 : 30))

keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
# Versions expire 30 s after they are made (the timer rotates every 10 s
# too), so the state stays the same size however long the run; the cache
# TTL is short so that the provider process fetches again and again.
admin POST /v1/groups '{"name":"soak","rotation_period":10,"version_lifetime":30,"cache_ttl":5}' >/dev/null
admin POST /v1/groups/soak/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
[ "$(admin_code)" = 200 ] || it_fatal "granting the group failed"

keys_provider_conf "$IT_TMP/openssl.cnf" "${NODE_TCTI[n1]}" "$IT_TMP/cache"
export OPENSSL_CONF=$IT_TMP/openssl.cnf
unset DKM_SERVICE DKM_TRUST DKM_TCTI DKM_CACHE_DIR

it_daemon fetch_load "$LOAD" 127.0.0.1 "$SVC_PORT" "$SVC_STATE/tls.crt" "${NODE_ID[n1]}" soak 4 \
    "$((SECONDS_TOTAL + 600))"
load_pid=$IT_PID
it_daemon client "$CLIENT" dkm:soak "$((SECONDS_TOTAL + 600))"
client_pid=$IT_PID

# sample PID: "rss_kib fds"
sample() {
    local rss fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "${rss:-0} $fds"
}

rot_errors=0
start=$(date +%s)
next_sample=$start
next_rotate=$((start + 3))
first_dkmd='' first_client='' last_dkmd='' last_client=''
: >"$IT_TMP/samples"
while :; do
    now=$(date +%s)
    elapsed=$((now - start))
    [ "$elapsed" -ge "$SECONDS_TOTAL" ] && break
    if [ "$now" -ge "$next_rotate" ]; then
        admin POST /v1/groups/soak/rotate >/dev/null
        [ "$(admin_code)" = 200 ] || rot_errors=$((rot_errors + 1))
        next_rotate=$((now + 3))
    fi
    if [ "$now" -ge "$next_sample" ]; then
        last_dkmd=$(sample "$SVC_PID")
        last_client=$(sample "$client_pid")
        echo "$elapsed dkmd $last_dkmd client $last_client" >>"$IT_TMP/samples"
        if [ -z "$first_dkmd" ] && [ "$elapsed" -ge "$WARMUP" ]; then
            first_dkmd=$last_dkmd
            first_client=$last_client
        fi
        next_sample=$((next_sample + 10))
    fi
    sleep 0.5
done
last_dkmd=$(sample "$SVC_PID")
last_client=$(sample "$client_pid")
[ -n "$first_dkmd" ] || { first_dkmd=$last_dkmd; first_client=$last_client; }

metrics=$(svc_curl /metrics 2>/dev/null)
# Both print their counts when told to stop (SIGTERM).
it_stop_pid "$client_pid" >/dev/null 2>&1
it_stop_pid "$load_pid" >/dev/null 2>&1
# The writer must keep up: once the load stops, what is queued goes within
# seconds. (The queue at the end of the load itself depends on how much
# CPU the database got meanwhile; it is reported, not judged.)
drained() {
    [ "$(svc_curl /metrics 2>/dev/null | awk '/^dkmd_audit_queue / {print int($2)}')" -lt 1000 ]
}
drain_start=$(date +%s)
dkm_wait_for 10 drained
drain_s=$(($(date +%s) - drain_start))
queue_after=$(svc_curl /metrics 2>/dev/null | awk '/^dkmd_audit_queue / {print int($2)}')
wait_out=$(tail -n 1 "$IT_TMP/client.log")
client_errors=$(sed -n 's/^rounds [0-9]* errors \([0-9]*\)$/\1/p' <<<"$wait_out")
load_errors=$(grep -oE 'errors[: ]+[0-9]+' "$IT_TMP/fetch_load.log" | grep -oE '[0-9]+' | tail -n 1)

growth() { # growth "rss fds" "rss fds": "+X% fds +N"
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        printf "rss %+.1f%% fds %+d", (x[1] > 0 ? (y[1] - x[1]) * 100 / x[1] : 0), y[2] - x[2] }'
}
errors=$((rot_errors + ${client_errors:-1} + ${load_errors:-1}))
echo "samples (seconds, rss KiB and fds of dkmd and of the provider process):"
sed 's/^/  /' "$IT_TMP/samples"
echo "  fetch_load: $(tail -n 3 "$IT_TMP/fetch_load.log" | tr '\n' ' ')"
echo "  provider process: $wait_out; rotations refused: $rot_errors"
echo "  dkmd at the end: $(grep -E '^dkmd_(audit_queue|keys_held|import_blob_cache_bytes) ' <<<"$metrics" | tr '\n' ' ')"
dkmd_growth=$(growth "$first_dkmd" "$last_dkmd")
client_growth=$(growth "$first_client" "$last_client")
echo "soak: dkmd ${dkmd_growth/rss /rss }, provider ${client_growth}, errors $errors"
queue=$(awk '/^dkmd_audit_queue / {print int($2)}' <<<"$metrics")
echo "  audit queue: ${queue:-?} at the end of the load, ${queue_after:-?} ${drain_s} s later"
# Regression: a writer that falls behind the fetches for good (it loses
# records at 100,000) cannot drain within 10 s once they stop.
it_check "the audit writer keeps up (queue ${queue_after:-?} ${drain_s} s after the load)" \
    test "${queue_after:-999999}" -lt 1000 >/dev/null
# Versions live 30 s and come every 3 s or so: an expired version's key
# must leave memory (before, every version ever made stayed held).
held=$(awk '/^dkmd_keys_held / {print int($2)}' <<<"$metrics")
it_check "dkmd holds only versions in use (${held:-?} keys at the end)" test "${held:-999999}" -le 20 \
    >/dev/null
it_check_eq "no errors" 0 "$errors" >/dev/null
# A sample may fall while an admin request (a rotation) or a fetch holds
# a connection open: a leak shows in every sample, so the fewest
# descriptors of the last three samples are compared with the first.
low_dkmd=$(tail -n 3 "$IT_TMP/samples" | awk '{print $4}' | sort -n | head -n 1)
low_client=$(tail -n 3 "$IT_TMP/samples" | awk '{print $7}' | sort -n | head -n 1)
it_check "dkmd's descriptors did not grow (${first_dkmd#* } -> ${low_dkmd:-?})" \
    test "${low_dkmd:-999}" -le "${first_dkmd#* }" >/dev/null
it_check "the provider process's descriptors did not grow (${first_client#* } -> ${low_client:-?})" \
    test "${low_client:-999}" -le "${first_client#* }" >/dev/null
it_finish
