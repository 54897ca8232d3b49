#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs every Debian package that building, testing and the demo need.
# Idempotent and non-interactive: packages already present are left alone,
# and apt-get runs only when something is missing.
set -euo pipefail

packages=(
    build-essential cmake pkg-config clang clang-format
    libclang-rt-14-dev # libFuzzer and the sanitizer runtimes of clang (bench/fuzz.sh)
    libssl-dev openssl libssl-doc
    libtss2-dev tpm2-tools tpm2-openssl
    libevent-dev
    libpq-dev postgresql-15 postgresql-client-15
    libcunit1-dev libjansson-dev
    swtpm swtpm-tools
    libkeyutils-dev keyutils
    libsystemd-dev systemd
    scdoc man-db groff-base
    dpkg-dev fakeroot lintian file
    curl procps gdb jq python3 python3-cryptography time
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages (${missing[*]}); run as root to install" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
