#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# The Debian packages, built and used the way docs/operations.md
# ("Installing from the packages") says, all inside this test's temp dir:
# a fresh tree configured for /usr without the tests, `cpack`, then the
# three packages' contents (dpkg-deb -c), control data, lintian without
# errors, and the packages extracted into a temp root instead of
# installed (dpkg-deb -x; the machine's own system is never touched). The
# sysusers.d entry creates the dkmd user in that root (systemd-sysusers
# --root). Then the packaged programs run: dkmd with the packaged
# dkmd.conf (only its paths and database pointed at this test's
# PostgreSQL and swtpm) and the packaged migrations, `dkmd init`, the
# service, `dkmctl status`, and on a node the stock openssl loading the
# packaged dkm.so through the packaged openssl.cnf snippet included from
# a copy of the system's openssl.cnf, protecting and unprotecting a
# message with a group key.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
it_init package

SRC=${DKM_SOURCE_DIR:-$IT_SRC}
MODULESDIR=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
[ -n "$MODULESDIR" ] || it_fatal "openssl version -m names no MODULESDIR"
for tool in cpack dpkg-deb lintian systemd-sysusers; do
    command -v "$tool" >/dev/null || it_fatal "$tool is missing (scripts/deps.sh installs it)"
done

# --- build the packages -------------------------------------------------------------
B=$IT_TMP/build
OUT=$IT_TMP/debs
cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DDKM_BUILD_TESTS=OFF >"$IT_TMP/cmake.log" 2>&1 ||
    it_fatal "cmake failed: $(tail -n 20 "$IT_TMP/cmake.log")"
cmake --build "$B" -j"$(nproc)" >"$IT_TMP/build.log" 2>&1 ||
    it_fatal "the build failed: $(tail -n 20 "$IT_TMP/build.log")"
(cd "$B" && cpack -B "$OUT") >"$IT_TMP/cpack.log" 2>&1 ||
    it_fatal "cpack failed: $(tail -n 20 "$IT_TMP/cpack.log")"
version=$(sed -n 's/^project(dkm VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
arch=$(dpkg --print-architecture)
PROV=$OUT/dkm-provider_${version}_$arch.deb
DKMD=$OUT/dkmd_${version}_$arch.deb
CTLP=$OUT/dkmctl_${version}_$arch.deb
for p in "$PROV" "$DKMD" "$CTLP"; do
    it_check "cpack made ${p##*/}" test -s "$p"
done

# --- contents ---------------------------------------------------------------------------
# has PACKAGE PATH...: every PATH is a file in PACKAGE.
has() {
    local pkg=$1 list path
    shift
    list=$(dpkg-deb -c "$pkg" | awk '{ print $6 }')
    for path in "$@"; do
        grep -qxF ".$path" <<<"$list" || {
            echo "${pkg##*/} has no $path"
            return 1
        }
    done
}
it_check "dkm-provider: dkm.so in OpenSSL's MODULESDIR, the snippet, dkm(7)" has "$PROV" \
    "$MODULESDIR/dkm.so" /etc/ssl/openssl.cnf.d/dkm.cnf /usr/share/man/man7/dkm.7.gz \
    /usr/share/doc/dkm-provider/copyright /usr/share/doc/dkm-provider/changelog.gz
it_check "dkmd: the daemon, migrations, unit, sysusers entry, config, man pages" has "$DKMD" \
    /usr/sbin/dkmd /usr/share/dkm/sql/001_initial.sql /usr/share/dkm/sql/002_signed_access.sql \
    /lib/systemd/system/dkmd.service \
    /usr/lib/sysusers.d/dkmd.conf /etc/dkm/dkmd.conf /usr/share/man/man8/dkmd.8.gz \
    /usr/share/man/man5/dkmd.conf.5.gz /usr/share/doc/dkmd/copyright
it_check "dkmctl: the CLI and dkmctl(1)" has "$CTLP" \
    /usr/bin/dkmctl /usr/share/man/man1/dkmctl.1.gz /usr/share/doc/dkmctl/copyright
it_check_eq "no test module, test tool or build path in any package" "" \
    "$(for p in "$PROV" "$DKMD" "$CTLP"; do dpkg-deb -c "$p"; done |
        grep -E 'testkeys|dkm-test|dkmcount|/usr/local/' || true)"
it_check "the binaries are stripped" sh -c "dpkg-deb --fsys-tarfile '$DKMD' |
    tar -xO ./usr/sbin/dkmd | file - | grep -q ', stripped'"

field() { dpkg-deb -f "$1" "$2"; }
it_check "dkm-provider depends on libssl3 and tpm-udev" sh -c \
    "dpkg-deb -f '$PROV' Depends | grep -q libssl3 && dpkg-deb -f '$PROV' Depends | grep -q tpm-udev"
it_check "dkmd depends on libsystemd0, libpq5 and tpm-udev" sh -c \
    "d=\$(dpkg-deb -f '$DKMD' Depends); case \$d in *libsystemd0*libpq5*|*libpq5*libsystemd0*) ;; *) exit 1;; esac
     echo \"\$d\" | grep -q tpm-udev"
it_check_eq "dkm-provider and dkmctl suggest tpm2-openssl (TLS keys held in the TPM)" \
    "tpm2-openssl tpm2-openssl" "$(field "$PROV" Suggests) $(field "$CTLP" Suggests)"
it_check_eq "dkmd's conffiles" /etc/dkm/dkmd.conf "$(dpkg-deb -I "$DKMD" conffiles)"
it_check_eq "dkm-provider's conffiles" /etc/ssl/openssl.cnf.d/dkm.cnf \
    "$(dpkg-deb -I "$PROV" conffiles)"
postinst=$(dpkg-deb -I "$DKMD" postinst)
it_check "dkmd's postinst creates the user from the sysusers entry" \
    grep -q '^ *systemd-sysusers dkmd.conf$' <<<"$postinst"
it_check "and the state directory, owned by dkmd, mode 0700" \
    grep -q 'install -d -o dkmd -g dkmd -m 0700 /var/lib/dkm' <<<"$postinst"
it_check "and enables or starts nothing" sh -c "! grep -Eq 'systemctl .*(enable|start)' <<'X'
$postinst
X"
it_check_eq "version $version, architecture $arch" "$version $arch" \
    "$(field "$DKMD" Version) $(field "$DKMD" Architecture)"

lintian --tag-display-limit 0 "$PROV" "$DKMD" "$CTLP" >"$IT_TMP/lintian.out" 2>&1
echo "# lintian: $(grep -c '^E: ' "$IT_TMP/lintian.out") error(s), $(grep -c '^W: ' \
    "$IT_TMP/lintian.out") warning(s)"
sed -n 's/^/# /p' "$IT_TMP/lintian.out" | grep -v 'root privileges' || true
it_check_eq "lintian reports no error" 0 "$(grep -c '^E: ' "$IT_TMP/lintian.out")"

# --- "install": extract into a temp root ----------------------------------------------------
R=$IT_TMP/root
mkdir -p "$R/etc"
for p in "$PROV" "$DKMD" "$CTLP"; do
    dpkg-deb -x "$p" "$R" || it_fatal "dpkg-deb -x ${p##*/} failed"
done
# What the postinst does, in the temp root: the user, in group tss.
systemd-sysusers --root="$R" "$R/usr/lib/sysusers.d/dkmd.conf" >"$IT_TMP/sysusers.log" 2>&1
it_check "systemd-sysusers makes the dkmd user from the entry" \
    grep -q '^dkmd:x:[0-9]*:[0-9]*:dkm key service:/var/lib/dkm:' "$R/etc/passwd"
it_check "and puts it in group tss" grep -Eq '^tss:x:[0-9]+:(.*,)?dkmd(,|$)' "$R/etc/group"

it_check_eq "the packaged dkmd runs" "dkmd $version" "$("$R/usr/sbin/dkmd" --version)"
it_check_eq "the packaged dkmctl runs" "dkmctl $version" "$("$R/usr/bin/dkmctl" --version)"
it_check "dkmd looks for migrations in /usr/share/dkm/sql" sh -c \
    "strings '$R/usr/sbin/dkmd' | grep -qxF /usr/share/dkm/sql"
sed "s|^ExecStart=/usr/sbin/dkmd |ExecStart=$R/usr/sbin/dkmd |" \
    "$R/lib/systemd/system/dkmd.service" >"$IT_TMP/dkmd.service"
it_check "the packaged unit passes systemd-analyze verify" sh -c \
    "cd '$IT_TMP' && out=\$(systemd-analyze verify --man=no ./dkmd.service 2>&1) && [ -z \"\$out\" ]"

# --- the server, from the packaged files ---------------------------------------------------------
it_pg_start pg
it_swtpm_start server
SERVER_TCTI=$SWTPM_TCTI
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c 'CREATE ROLE dkmd LOGIN' -c 'CREATE DATABASE dkm OWNER dkmd' >/dev/null ||
    it_fatal "cannot create the role and database"
SVC_PORT=$(dkm_pick_ports 1) || it_fatal "no free port"
SVC_STATE=$IT_TMP/state
SVC_SOCK=$IT_TMP/dkmd.sock
CONF=$IT_TMP/dkmd.conf
# The packaged file with its paths and database pointed into this test.
sed -e "s|^listen = .*|listen = 127.0.0.1:$SVC_PORT|" \
    -e "s|^state_dir = .*|state_dir = $SVC_STATE|" \
    -e "s|^admin_socket = .*|admin_socket = $SVC_SOCK|" \
    -e "s|^tcti = .*|tcti = $SERVER_TCTI\nsql_dir = $R/usr/share/dkm/sql|" \
    -e "s|^conninfo = .*|conninfo = host=127.0.0.1 port=$PGPORT dbname=dkm user=dkmd|" \
    "$R/etc/dkm/dkmd.conf" >"$CONF"
it_check_eq "only those lines changed" 6 "$(diff "$R/etc/dkm/dkmd.conf" "$CONF" | grep -c '^>')"
out=$("$R/usr/sbin/dkmd" init --config "$CONF" 2>"$IT_TMP/init.err")
it_check "dkmd init with the packaged migrations" grep -q '^schema version 2$' <<<"$out"
TRUST=$(sed -n 's/^trust fingerprint //p' <<<"$out")
it_check "and prints the trust fingerprint" test ${#TRUST} -eq 64
it_daemon dkmd "$R/usr/sbin/dkmd" --config "$CONF"
DKMD_PID=$IT_PID
CTL=("$R/usr/bin/dkmctl")
ready() { "${CTL[@]}" status --socket "$SVC_SOCK" >/dev/null 2>&1; }
it_check "dkmctl status: ready" dkm_wait_for 20 ready
"${CTL[@]}" status --socket "$SVC_SOCK" >"$IT_TMP/status.out" 2>&1
it_check_eq "with four passing checks" 4 "$(grep -cE '^  [a-z]+ +ok ' "$IT_TMP/status.out")"

# --- a node: the packaged provider through the packaged snippet ----------------------------------
it_swtpm_start node
NODE_TCTI=$SWTPM_TCTI
node_id=$("${CTL[@]}" node init --tcti "$NODE_TCTI" --out "$IT_TMP/node.card") ||
    it_fatal "dkmctl node init failed"
adm() { "${CTL[@]}" "$@" --socket "$SVC_SOCK"; }
it_check "authorize the node" adm node authorize "$IT_TMP/node.card"
it_check "create a group" adm group create pkg --ttl 1m
it_check "grant it to the node" adm group grant pkg "$node_id"

SNIPPET=$IT_TMP/dkm.cnf
sed -e "s|^# service = .*|service = https://127.0.0.1:$SVC_PORT|" \
    -e "s|^# trust = .*|trust = $TRUST|" \
    -e "s|^# tcti = .*|tcti = $NODE_TCTI|" \
    -e "s|^# cache_dir = .*|cache_dir = $IT_TMP/cache|" \
    "$R/etc/ssl/openssl.cnf.d/dkm.cnf" >"$SNIPPET"
# The documented step: append the .include line to openssl.cnf.
cp /etc/ssl/openssl.cnf "$IT_TMP/openssl.cnf"
echo ".include $SNIPPET" >>"$IT_TMP/openssl.cnf"
node() {
    env -u DKM_SERVICE -u DKM_TRUST -u DKM_TCTI -u DKM_CACHE_DIR -u DKM_KEYSOURCE \
        OPENSSL_CONF="$IT_TMP/openssl.cnf" OPENSSL_MODULES="$R$MODULESDIR" "$@"
}
it_check "openssl list -providers: dkm and default, both active" sh -c \
    "out=\$(env OPENSSL_CONF='$IT_TMP/openssl.cnf' OPENSSL_MODULES='$R$MODULESDIR' \
        openssl list -providers); echo \"\$out\"; echo \"\$out\" | grep -q '^  dkm\$' &&
     echo \"\$out\" | grep -q '^  default\$' && [ \$(echo \"\$out\" | grep -c 'status: active') = 2 ]"
head -c 3000 /dev/urandom >"$IT_TMP/msg"
it_check "pkeyutl -encrypt with dkm:pkg" \
    node openssl pkeyutl -encrypt -inkey dkm://pkg -in "$IT_TMP/msg" -out "$IT_TMP/msg.dkm"
it_check "pkeyutl -decrypt gives it back" \
    node openssl pkeyutl -decrypt -inkey dkm://pkg -in "$IT_TMP/msg.dkm" -out "$IT_TMP/msg.out"
it_check "byte for byte" cmp "$IT_TMP/msg" "$IT_TMP/msg.out"

it_stop_pid "$DKMD_PID"
it_check_eq "the packaged dkmd stops cleanly" 0 "$?"
it_finish
