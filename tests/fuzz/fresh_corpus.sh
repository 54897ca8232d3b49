#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# ctest fuzz_corpus_fresh: the seed generator still writes seeds that
# every target accepts. Generates a corpus into OUTDIR (emptied first) and
# replays each target's part of it with its replay runner, which lives in
# DKM_FUZZ_BIN_DIR.
#
# Usage: fresh_corpus.sh GENERATOR OUTDIR TARGET...
set -euo pipefail

gen=$1 out=$2
shift 2
rm -rf "$out"
"$gen" "$out" >/dev/null
status=0
for name in "$@"; do
    if ! "$DKM_FUZZ_BIN_DIR/fuzz_replay_$name" "$out/$name" >/dev/null; then
        echo "fresh seeds of $name: not all accepted" >&2
        status=1
    fi
done
exit "$status"
