#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2119 # keys_setup takes no arguments here
#
# TPM commands per use of a dkm key, counted: the stock openssl (`openssl
# enc -DKM-AES-256-GCM` of a small file; for a second use in one process,
# tests/holdkey) with the dkm provider, a live dkmd, and the node's TPM
# behind the counting TCTI (libtss2-tcti-dkmcount.so), which logs every
# command's name and time. The node runs in a user namespace of its own,
# so its kernel keyring is the bench's, not the machine's. For each case
# it prints the commands, the wall time and the part of it spent in swtpm,
# and the latency model of docs/tpm-cost.md: the same commands at the
# per-command times of real TPM chips, plus the measured time outside the
# TPM. Cases, each in a new process unless said:
#
#   first-start   empty cache directory (the node's first process ever)
#   first-fetch   keyring and disk cache empty (the node's EK file kept)
#   warm-disk     keyring empty, disk cache valid, service up
#   warm-keyring  the key in the kernel keyring
#   hit           a second use in the same process
#
# and dkmd's own: at start (identity, delegation, first state load with
# its unseals), per rotation, per delegation renewal (the same signature
# as the delegation made at start). The last four lines are exactly
#   tpm commands: hit N / warm-keyring N / warm-disk N / first-fetch N
#
# Usage: bench/tpm_count.sh [BUILD_DIR]
# Starts its own PostgreSQL, swtpms and dkmd in a temporary directory and
# stops them by PID at the end (the integration tests' helpers).

BUILD=${1:-$(dirname "$0")/../build}
DKM_BUILD_DIR=$(cd "$BUILD" && pwd)
export DKM_BUILD_DIR
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../tests/integration/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init tpm_count

COUNT_TCTI=$DKM_BUILD_DIR/tcti/libtss2-tcti-dkmcount.so
HOLD=$DKM_BUILD_DIR/tests/dkm_holdkey
[ -f "$COUNT_TCTI" ] || it_fatal "no counting TCTI at $COUNT_TCTI"
export DKM_TCTI_COUNT_FILE=$IT_TMP/dkmd.count

keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
# dkmd's TPM behind the counting TCTI too (dkmd init above is not counted).
sed -i "s|^tcti = $KEYS_SERVER_TCTI\$|tcti = $COUNT_TCTI:$KEYS_SERVER_TCTI|" "$SVC_CONF"
: >"$DKM_TCTI_COUNT_FILE"
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"bench","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' \
    >/dev/null
admin POST /v1/groups/bench/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
[ "$(cat "$IT_TMP/admin.code")" = 200 ] || it_fatal "granting the group failed"

# The per-command figures of docs/tpm-cost.md, in ms: "low high" for a
# typical discrete TPM and for a firmware TPM, no resource manager.
model_table() {
    cat <<'TABLE'
StartAuthSession 35 160 8 30
PolicySecret 3 20 2 10
Import 40 180 10 35
Load 5 60 3 15
Unseal 3 15 2 10
FlushContext 2 10 1.5 10
ReadPublic 2 10 1.5 10
GetCapability 2 10 1.5 10
CreatePrimary 50 260 9 60
Sign 20 200 6 140
TABLE
}
# model FILE WALL_MS: "swtpm S ms; discrete TPM A-B ms; fTPM C-D ms" for
# the commands of FILE, plus the wall time outside swtpm.
model() {
    model_table | awk -v wall="$2" '
        NR == FNR { dl[$1] = $2; dh[$1] = $3; fl[$1] = $4; fh[$1] = $5; next }
        { us += $2; if ($1 in dl) { a += dl[$1]; b += dh[$1]; c += fl[$1]; d += fh[$1] }
          else { a += 2; b += 10; c += 1.5; d += 10 } }
        END { other = wall - us / 1000; if (other < 0) other = 0
              printf "%.1f ms in swtpm of %.1f ms; model: discrete TPM %.0f-%.0f ms, fTPM %.0f-%.0f ms",
                  us / 1000, wall, a + other, b + other, c + other, d + other }' - "$1"
}
# names FILE: the command names of a count file, with repeats, on one line.
names() {
    if [ -s "$1" ]; then
        awk '{n[$1]++; if (!($1 in seen)) {seen[$1] = 1; order[++k] = $1}}
             END {for (i = 1; i <= k; i++) printf "%s%s x%d", (i > 1 ? "," : ""), " " order[i], n[order[i]]}' "$1"
    else
        printf ' none'
    fi
}
# report CASE FILE [WALL_MS]: counts and names, and with a wall time the
# model's line.
report() {
    printf '  %-13s %3d TPM commands:%s\n' "$1" "$(wc -l <"$2")" "$(names "$2")"
    [ -n "${3:-}" ] && printf '  %-13s %s\n' "" "$(model "$2" "$3")"
    return 0
}

dkmd_start=$(wc -l <"$DKM_TCTI_COUNT_FILE")
cp "$DKM_TCTI_COUNT_FILE" "$IT_TMP/dkmd.start"
: >"$DKM_TCTI_COUNT_FILE"
admin POST /v1/groups/bench/rotate >/dev/null
admin POST /v1/groups/bench/rotate >/dev/null
cp "$DKM_TCTI_COUNT_FILE" "$IT_TMP/dkmd.rotate"

keys_provider_conf "$IT_TMP/openssl.cnf" "$COUNT_TCTI:${NODE_TCTI[n1]}" "$IT_TMP/cache"
export OPENSSL_CONF=$IT_TMP/openssl.cnf
unset DKM_SERVICE DKM_TRUST DKM_TCTI DKM_CACHE_DIR
export DKM_TCTI_COUNT_FILE=$IT_TMP/node.count
it_keyring_ns
head -c 100 /dev/urandom >"$IT_TMP/msg"
K=$("$KEYS_DKMCTL" uri-hex dkm:bench) || it_fatal "dkmctl uri-hex failed"
declare -A WALL

# one CASE: one openssl enc with dkm:bench in a new process; its count
# file is kept as $IT_TMP/CASE, its wall time in WALL[CASE] (ms).
one() {
    local t0 t1
    : >"$DKM_TCTI_COUNT_FILE"
    t0=$(date +%s%N)
    DKM_KEY_CACHE=keyring it_ns openssl enc -DKM-AES-256-GCM -K "$K" \
        -in "$IT_TMP/msg" -out "$IT_TMP/out" 2>"$IT_TMP/err" ||
        it_fatal "openssl enc failed ($1): $(cat "$IT_TMP/err")"
    t1=$(date +%s%N)
    WALL[$1]=$(awk -v n=$((t1 - t0)) 'BEGIN {printf "%.1f", n / 1e6}')
    cp "$DKM_TCTI_COUNT_FILE" "$IT_TMP/$1"
}
flush() {
    DKM_KEY_CACHE=keyring it_ns "$KEYS_DKMCTL" key flush --trust "$KEYS_TRUST" \
        --tcti "$COUNT_TCTI:${NODE_TCTI[n1]}" --cache-dir "$IT_TMP/cache" >/dev/null ||
        it_fatal "dkmctl key flush failed"
}

one first-start
one warm-keyring
flush
one warm-disk
flush
rm -f "$IT_TMP"/cache/*.dkc
one first-fetch

# hit: the commands between a process's first use and its second.
: >"$DKM_TCTI_COUNT_FILE"
coproc HOLDER { DKM_KEY_CACHE=process it_ns "$HOLD" dkm:bench 2>"$IT_TMP/hold.err"; }
hold_pid=$HOLDER_PID
read -r -t 30 line <&"${HOLDER[0]}" || it_fatal "the holder did not start: $(cat "$IT_TMP/hold.err")"
before=$(wc -l <"$DKM_TCTI_COUNT_FILE")
echo >&"${HOLDER[1]}"
read -r -t 30 line <&"${HOLDER[0]}"
[ "$line" = ok ] || it_fatal "the holder's second use failed: $line"
tail -n "+$((before + 1))" "$DKM_TCTI_COUNT_FILE" >"$IT_TMP/hit"
exec {HOLDER[1]}>&-
wait "$hold_pid" 2>/dev/null

echo "TPM commands per use of dkm:bench (openssl enc -DKM-AES-256-GCM, new processes)"
for c in first-start first-fetch warm-disk warm-keyring; do
    report "$c" "$IT_TMP/$c" "${WALL[$c]}"
done
report hit "$IT_TMP/hit"
echo "dkmd's TPM commands"
report "start" "$IT_TMP/dkmd.start"
printf '  %-13s %3d TPM commands per rotation (two rotations: %d):%s\n' "rotation" \
    "$(($(wc -l <"$IT_TMP/dkmd.rotate") / 2))" "$(wc -l <"$IT_TMP/dkmd.rotate")" \
    "$(names "$IT_TMP/dkmd.rotate")"
echo "  (dkmd start: $dkmd_start; a delegation renewal is one signing-key signature:"
echo "   Load, Sign and FlushContext of the signing key, as in the start's count)"
it_check_eq "the hit sent nothing to the TPM" 0 "$(wc -l <"$IT_TMP/hit")" >/dev/null
echo "tpm commands: first-start $(wc -l <"$IT_TMP/first-start")"
echo "tpm commands: hit $(wc -l <"$IT_TMP/hit")"
echo "tpm commands: warm-keyring $(wc -l <"$IT_TMP/warm-keyring")"
echo "tpm commands: warm-disk $(wc -l <"$IT_TMP/warm-disk")"
echo "tpm commands: first-fetch $(wc -l <"$IT_TMP/first-fetch")"
it_finish
