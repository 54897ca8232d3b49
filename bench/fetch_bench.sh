#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2119 # keys_setup takes no arguments here
#
# Key fetches per second and their latency through dkmd (TLS, 16
# keep-alive clients, bench/fetch_load.c) next to the database's own
# ceiling in the same run: pgbench -S (select-only, prepared, 16 clients)
# against the same PostgreSQL. A fetch makes no database round trip, so
# it is not bounded by that ceiling; the comparison shows by how much.
#
# Usage: bench/fetch_bench.sh [BUILD_DIR] [SECONDS]
# Starts its own PostgreSQL, swtpms and dkmd in a temporary directory and
# stops them by PID at the end (the integration tests' helpers).

BUILD=${1:-$(dirname "$0")/../build}
SECONDS_RUN=${2:-5}
DKM_BUILD_DIR=$(cd "$BUILD" && pwd)
export DKM_BUILD_DIR
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../tests/integration/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init fetch_bench

keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"bench","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
admin POST /v1/groups/bench/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "a fetch works before the run" 200 "$(fetch_status n1 bench current)"

echo "== dkmd key fetch: $(nproc) cores, $(sed -n "s/^workers = //p" "$SVC_CONF") workers"
"$DKM_BUILD_DIR/bench/fetch_load" 127.0.0.1 "$SVC_PORT" "$SVC_STATE/tls.crt" \
    "${NODE_ID[n1]}" bench 16 "$SECONDS_RUN" | tee "$IT_TMP/fetch.out"
it_check "every fetch answered 200" grep -q 'errors 0$' "$IT_TMP/fetch.out"

echo "== pgbench -S (select-only, prepared, 16 clients, TCP) on the same database"
pgbench -i -q -h 127.0.0.1 -p "$PGPORT" -U postgres postgres >/dev/null 2>&1 ||
    it_fatal "pgbench -i failed"
pgbench -S -M prepared -c 16 -j 2 -T "$SECONDS_RUN" -h 127.0.0.1 -p "$PGPORT" -U postgres \
    postgres 2>/dev/null | grep -E 'latency average|tps' | tee "$IT_TMP/pgbench.out"

fetch_rate=$(sed -n 's/.* \([0-9]*\) fetches\/s.*/\1/p' "$IT_TMP/fetch.out")
pg_rate=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$IT_TMP/pgbench.out" | head -1)
if [ -n "$fetch_rate" ] && [ -n "$pg_rate" ] && [ "$pg_rate" -gt 0 ]; then
    echo "== ratio: fetches/s / pgbench select tps = $(awk -v a="$fetch_rate" -v b="$pg_rate" \
        'BEGIN { printf "%.2f", a / b }')"
fi
it_finish
