#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs every fuzz target of tests/fuzz/ (docs/fuzzing.md) for SECONDS
# each, as many at once as there are cores, under ASan+UBSan with
# libFuzzer. Configures
# and builds a clang tree for them first (build-fuzz/, or
# DKM_FUZZ_BUILD_DIR). Each target starts from a fresh copy of its seeds,
# tests/fuzz/corpus/<name>/, under the build tree: the committed corpus is
# never written. Prints one line per target,
#     fuzz <name>: <execs> execs, <cov> cov, 0 crashes
# or, when the target crashed, leaked, hung or ran out of memory,
#     fuzz <name>: CRASH <artifact>
# (the input that did it; the log is beside it), and exits non-zero if
# any target failed or the build did.
#
# Usage: bench/fuzz.sh SECONDS [NAME...]   (all targets when no NAME)
set -uo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 SECONDS [NAME...]" >&2
    exit 2
fi
secs=$1
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DKM_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$build" || exit 1
build=$(cd "$build" && pwd)
buildlog=$build/fuzz-build.log

if ! CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDKM_FUZZ=ON -DDKM_SANITIZE=ON >"$buildlog" 2>&1 ||
    ! cmake --build "$build" -j"$jobs" --target fuzz >>"$buildlog" 2>&1; then
    echo "fuzz: the clang build failed; see $buildlog" >&2
    exit 1
fi

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for d in "$root"/tests/fuzz/corpus/*/; do
        names+=("$(basename "$d")")
    done
fi

# Leaks count as findings; UBSan stops at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# fuzz_one NAME: one target's run; its line goes to fuzz-run/NAME/result.
fuzz_one() {
    local name=$1 bin seeds run scratch rc execs cov artifact
    bin=$build/tests/fuzz/fuzz_$name
    seeds=$root/tests/fuzz/corpus/$name
    run=$build/fuzz-run/$name
    rm -rf "$run"
    mkdir -p "$run/corpus" "$run/artifacts" || return 1
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "fuzz $name: CRASH no such target (fuzz_$name or corpus/$name missing)" \
            >"$run/result"
        return 1
    fi
    cp "$seeds"/* "$run/corpus/"
    # The targets whose product function reads a file (diskcache, trust)
    # write each input to a scratch directory: on tmpfs when there is one
    # (twenty times the executions of a disk), else under the run's folder.
    scratch=$(mktemp -d /dev/shm/dkm-fuzz.XXXXXX 2>/dev/null) ||
        scratch=$(mktemp -d "$run/tmp.XXXXXX") || return 1
    TMPDIR=$scratch "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$run/artifacts/" "$run/corpus" \
        >"$run/log" 2>&1
    rc=$?
    rm -rf "$scratch"
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$run/log" |
        tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$run/log" | tail -n 1 | sed 's/cov: //')
    artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$run/log" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ -z "$artifact" ] && [ -n "$execs" ]; then
        echo "fuzz $name: $execs execs, ${cov:-0} cov, 0 crashes" >"$run/result"
    else
        echo "fuzz $name: CRASH ${artifact:-(no input saved; see $run/log)}" >"$run/result"
        return 1
    fi
}

# As many targets at once as there are cores; the lines come in name order.
running=0
for name in "${names[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    fuzz_one "$name" &
    running=$((running + 1))
done
wait
failed=0
for name in "${names[@]}"; do
    line=$(cat "$build/fuzz-run/$name/result" 2>/dev/null) ||
        line="fuzz $name: CRASH (the run left no result)"
    echo "$line"
    [[ $line == *" 0 crashes" ]] || failed=1
done
exit "$failed"
