#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The soak of bench/soak.sh for 2 minutes: dkmd under steady fetch load
# with rotations every 3 s and a provider process protecting and
# unprotecting in a loop; fails on any error or any growth of open file
# descriptors (memory growth is printed, not judged, in so short a run).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec bash "$root/bench/soak.sh" "${DKM_BUILD_DIR:?}" 2
