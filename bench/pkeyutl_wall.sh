#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2119 # keys_setup takes no arguments here
#
# Wall time of one `openssl pkeyutl -encrypt -inkey dkm:bench` in a new
# process each time (what a script pays per call), next to the same
# command with a software RSA-2048 key in a PEM file, measured alternately
# in the same run. Three dkm cases: the service up with a warm disk cache,
# the service stopped (the disk cache alone), and for scale a cold start
# (empty cache: fetch, verify, import + unseal).
#
# Usage: bench/pkeyutl_wall.sh [BUILD_DIR] [RUNS]
# Starts its own PostgreSQL, swtpms and dkmd in a temporary directory and
# stops them by PID at the end (the integration tests' helpers).

BUILD=${1:-$(dirname "$0")/../build}
RUNS=${2:-20}
DKM_BUILD_DIR=$(cd "$BUILD" && pwd)
export DKM_BUILD_DIR
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../tests/integration/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init pkeyutl_wall

keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"bench","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' \
    >/dev/null
admin POST /v1/groups/bench/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null

keys_provider_conf "$IT_TMP/openssl.cnf" "${NODE_TCTI[n1]}" "$IT_TMP/cache"
export OPENSSL_CONF=$IT_TMP/openssl.cnf
it_keyring_ns
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$IT_TMP/rsa.pem" 2>/dev/null
# RSA-2048 with PKCS#1 v1.5 takes at most 245 bytes: a 200-byte message.
head -c 200 /dev/urandom >"$IT_TMP/msg"

# one_run KEY: wall time of one pkeyutl -encrypt in milliseconds.
one_run() {
    local t0 t1
    t0=$(date +%s%N)
    it_ns openssl pkeyutl -encrypt -inkey "$1" -in "$IT_TMP/msg" -out "$IT_TMP/out" 2>"$IT_TMP/err" ||
        { cat "$IT_TMP/err" >&2; return 1; }
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
}

median_ms() {
    sort -n | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m / 1000}'
}

# measure LABEL: RUNS alternating runs of dkm:bench and the RSA key.
measure() {
    local i dkm=() rsa=() md mr
    for ((i = 0; i < RUNS; i++)); do
        dkm+=("$(one_run dkm:bench)") || it_fatal "dkm run failed"
        rsa+=("$(one_run "$IT_TMP/rsa.pem")") || it_fatal "RSA run failed"
    done
    md=$(printf '%s\n' "${dkm[@]}" | median_ms)
    mr=$(printf '%s\n' "${rsa[@]}" | median_ms)
    LAST_RATIO=$(awk -v a="$md" -v b="$mr" 'BEGIN {printf "%.2f", a / b}')
    printf '  %-44s %7s ms   software RSA key %7s ms   ratio %s\n' "$1" "$md" "$mr" \
        "$LAST_RATIO"
}

echo "openssl pkeyutl -encrypt, a new process per call, median of $RUNS each"
t0=$(date +%s%N)
one_run dkm:bench >/dev/null || it_fatal "the first fetch failed"
echo "  cold start (fetch, verify, import + unseal): $((($(date +%s%N) - t0) / 1000000)) ms"
it_check "the disk cache is warm" test -s "$IT_TMP/cache/bench.1.dkc"
export DKM_KEY_CACHE=keyring
one_run dkm:bench >/dev/null || it_fatal "the keyring's first fill failed"
measure "dkm:bench, key in the kernel keyring"
keyring_ratio=$LAST_RATIO
export DKM_KEY_CACHE=process
measure "dkm:bench, service up, warm disk cache"
it_stop_pid "$SVC_PID" >/dev/null
measure "dkm:bench, service stopped, disk cache"
echo "ratio warm-keyring $keyring_ratio"
it_finish
