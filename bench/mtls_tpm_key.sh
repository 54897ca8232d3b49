#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The handshake cost of a TLS client key held in the TPM, next to a file
# key, in one run: starts a swtpm, makes a key in it with `dkmctl node
# init --tls` (tpm2-openssl, under the SRK), runs build/bench/mtls_tpm_key
# (file key, TPM key, TPM key resumed; ROUNDS each, default 50), and stops
# the swtpm by its PID. swtpm answers a TPM2_Sign in well under a
# millisecond; a real TPM chip takes 30-550 ms per private-key operation
# (docs/tpm-cost.md), which is why the client resumes sessions.
#
# Usage: bench/mtls_tpm_key.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rounds=${2:-50}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dkm-bench-tls.XXXXXXXX")
cleanup() {
    "$root/scripts/swtpm.sh" stop "$tmp/tpm" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
eval "$("$root/scripts/swtpm.sh" start "$tmp/tpm")"
"$build/tools/dkmctl" node init --tcti "$SWTPM_TCTI" --out "$tmp/node.card" --tls \
    --tls-key "$tmp/tls.key" --tls-cert "$tmp/tls.crt" >/dev/null
"$build/bench/mtls_tpm_key" "$SWTPM_TCTI" "$tmp/tls.key" "$tmp/tls.crt" "$rounds"
