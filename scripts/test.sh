#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The whole test suite, as CI runs it: installs what is missing, builds
# twice (normal, and ASan+UBSan), checks formatting, runs every test of
# the normal build and the unit and TPM tests of the sanitizer build, runs
# every fuzz target for 20 s (bench/fuzz.sh, a clang build), and exits
# non-zero if anything failed. Build trees: build/, build-asan/ and
# build-fuzz/.
#
# Usage: scripts/test.sh [ctest arguments...]   e.g. -R uri
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
jobs=$(nproc 2>/dev/null || echo 2)

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
scripts/deps.sh || exit 1

step "build (normal)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build build -j"$jobs" || exit 1

step "build (ASan+UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDKM_SANITIZE=ON >/dev/null || exit 1
cmake --build build-asan -j"$jobs" || exit 1

failed=0
step "formatting"
if ! cmake --build build --target format-check; then
    echo "formatting differs from .clang-format (fix: cmake --build build --target format)"
    failed=1
fi

# LSan is on by default with ASan on x86_64; abort on any UBSan report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

total_pass=0
total_fail=0
# run_ctest DIR [ARGS...]: runs ctest, adds its counts to the totals.
run_ctest() {
    local dir=$1 log line
    shift
    log=$(mktemp)
    ctest --test-dir "$dir" -j"$jobs" --output-on-failure "$@" 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    rm -f "$log"
    if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
        total_fail=$((total_fail + BASH_REMATCH[1]))
        total_pass=$((total_pass + BASH_REMATCH[2] - BASH_REMATCH[1]))
    else
        failed=1 # no summary: ctest itself failed, or no test ran
    fi
}

step "tests (ASan+UBSan build: unit and tpm)"
run_ctest build-asan -L 'unit|tpm' "$@"

step "tests (normal build: all)"
run_ctest build "$@"

# Each fuzz target counts as one test: passed when it ran without a
# finding ("... 0 crashes"), failed when it crashed; a build that failed
# (no target ran) counts as one failure.
step "fuzzing (bench/fuzz.sh 20: every target for 20 s under ASan+UBSan)"
fuzzlog=$(mktemp)
bench/fuzz.sh 20 2>&1 | tee "$fuzzlog"
fuzz_status=${PIPESTATUS[0]}
fuzz_pass=$(grep -cE '^fuzz [a-z_]+: [0-9]+ execs, [0-9]+ cov, 0 crashes$' "$fuzzlog")
fuzz_fail=$(grep -cE '^fuzz [a-z_]+: CRASH ' "$fuzzlog")
rm -f "$fuzzlog"
if [ "$fuzz_status" -ne 0 ]; then
    failed=1
    [ "$fuzz_fail" -gt 0 ] || fuzz_fail=1
fi
total_pass=$((total_pass + fuzz_pass))
total_fail=$((total_fail + fuzz_fail))

[ "$total_fail" -eq 0 ] || failed=1
echo
echo "test.sh: $total_pass passed, $total_fail failed"
[ "$failed" -eq 0 ] || exit 1
