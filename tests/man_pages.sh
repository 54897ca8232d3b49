#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The man pages (docs/man/*.scd, built into BUILD/docs/man) against the
# programs they describe: each renders with `man -l` without a warning
# from man or groff; every option that `dkmd --help`, `dkmctl --help` and
# each dkmctl command's --help prints is in its page; every dkmd.conf key
# that service/framework/config.c accepts is in dkmd.conf(5); every
# provider setting (provider/names.h) and environment variable
# (provider/config.c) is in dkm(7). The last check runs the matcher on an
# option no page has, so a matcher that finds everything cannot pass.
#
# Usage: tests/man_pages.sh SOURCE_DIR BUILD_DIR
set -uo pipefail

src=$1
build=$2
man_dir=$build/docs/man
passed=0
failed=0

ok() {
    passed=$((passed + 1))
    echo "ok - $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    [ -n "${2:-}" ] && sed 's/^/    /' <<<"$2"
}

# page_text PAGE: the page as plain ASCII text, no hyphenation or justification.
page_text() {
    LC_ALL=C MANWIDTH=200 man --nh --nj -l "$man_dir/$1" 2>/dev/null | col -b
}

# options_of: the options in help text on stdin: --long ones anywhere, and
# short ones where a help line lists them ("-c, --config").
options_of() {
    grep -oE '(^|[][ ,|(])--[a-z][a-z0-9-]*' | sed 's/^[][ ,|(]*//'
    grep -oE '^ +-[A-Za-z],' <<<"$help_text" | tr -d ' ,'
}

# missing PAGE_TEXT WORD...: prints the words not in the page. An option
# (-x, --name) must appear whole: --tls is not found in --tls-cert.
missing() {
    local text=$1 w
    shift
    for w in "$@"; do
        if [[ $w =~ ^--?[A-Za-z0-9][A-Za-z0-9-]*$ ]]; then
            grep -qE -- "(^|[^A-Za-z0-9_-])$w([^A-Za-z0-9_-]|\$)" <<<"$text" || echo "$w"
        else
            grep -qF -- "$w" <<<"$text" || echo "$w"
        fi
    done
}

check_words() {
    local desc=$1 page=$2 miss
    shift 2
    miss=$(missing "$page" "$@")
    if [ -z "$miss" ]; then
        ok "$desc ($# names)"
    else
        fail "$desc" "not in the page: $(tr '\n' ' ' <<<"$miss")"
    fi
}

command -v man >/dev/null || {
    fail "man is installed (scripts/deps.sh installs man-db and groff-base)"
    echo "man_pages: $passed passed, $failed failed"
    exit 1
}

for p in dkmd.8 dkmd.conf.5 dkmctl.1 dkm.7; do
    if [ ! -s "$man_dir/$p" ]; then
        fail "$p is built (scdoc; scripts/deps.sh installs it)"
        continue
    fi
    warn=$(MANWIDTH=80 man --warnings -l "$man_dir/$p" 2>&1 >/dev/null)
    if [ -z "$warn" ]; then
        ok "$p renders without warnings"
    else
        fail "$p renders without warnings" "$warn"
    fi
    if [ -s "$man_dir/$p.gz" ] && zcmp -s "$man_dir/$p.gz" "$man_dir/$p"; then
        ok "$p.gz (installed) is the same page"
    else
        fail "$p.gz (installed) is the same page"
    fi
done

dkmd=$build/service/dkmd
dkmctl=$build/tools/dkmctl

help_text=$("$dkmd" --help)
mapfile -t opts < <(options_of <<<"$help_text" | sort -u)
check_words "dkmd(8) has every option of dkmd --help" "$(page_text dkmd.8)" "${opts[@]}"

ctl_page=$(page_text dkmctl.1)
for cmd in "" "node" "node authorize" "group" "server" "audit" "key" "uri-hex" "status"; do
    # shellcheck disable=SC2086 # the command's words
    help_text=$("$dkmctl" $cmd --help 2>&1)
    mapfile -t opts < <(options_of <<<"$help_text" | sort -u)
    if [ "${#opts[@]}" -eq 0 ] && [ -n "$cmd" ] && [ "$cmd" != uri-hex ]; then
        fail "dkmctl $cmd --help lists options" "$help_text"
        continue
    fi
    check_words "dkmctl(1) has every option of dkmctl ${cmd:+$cmd }--help" "$ctl_page" \
        "${opts[@]}"
done
# Every subcommand the families' usage lines show ("dkmctl server remove
# SERVER") is in the page as "server remove".
mapfile -t subs < <(for cmd in node "node authorize" group server audit key status; do
    # shellcheck disable=SC2086 # the command's words
    "$dkmctl" $cmd --help 2>&1
done | sed -nE 's/^(Usage:)? +dkmctl ([a-z][a-z-]*) ([a-z][a-z-]*).*/\2 \3/p' | sort -u)
if [ "${#subs[@]}" -ge 10 ]; then
    check_words "dkmctl(1) has every subcommand of the usage lines" "$ctl_page" "${subs[@]}"
else
    fail "the usage lines' subcommands are found (${#subs[@]})"
fi
# Every command family dkmctl.c dispatches is in the page.
mapfile -t cmds < <(sed -n 's/^ *if (strcmp(cmd, "\([a-z-]*\)") == 0.*/\1/p' \
    "$src/tools/dkmctl.c" | sort -u)
check_words "dkmctl(1) names every command family of dkmctl.c" "$ctl_page" "${cmds[@]}"

# dkmd.conf keys: the three lists in config.c.
mapfile -t keys < <(sed -n '/^static const char \*const [a-z]*_keys\[\] = {/,/};/p' \
    "$src/service/framework/config.c" | grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
if [ "${#keys[@]}" -ge 20 ]; then
    check_words "dkmd.conf(5) has every key of config.c" "$(page_text dkmd.conf.5)" \
        "${keys[@]}"
else
    fail "config.c's key lists are found (${#keys[@]} keys)"
fi

# Provider settings and environment (the test-build-only ones aside).
mapfile -t pkeys < <(sed -n 's/^#define DKM_CONF_\([A-Z_]*\) "\([a-z_]*\)"$/\1 \2/p' \
    "$src/provider/names.h" | grep -v '^TEST_' | cut -d' ' -f2)
mapfile -t penv < <(grep -oE '"DKM_[A-Z_]+"' "$src/provider/config.c" | tr -d '"' |
    grep -v '^DKM_TEST_' | sort -u)
dkm_page=$(page_text dkm.7)
check_words "dkm(7) has every provider setting" "$dkm_page" "${pkeys[@]}"
check_words "dkm(7) has every provider environment variable" "$dkm_page" "${penv[@]}"
check_words "dkm(7) names the supported openssl commands" "$dkm_page" \
    "openssl storeutl" "openssl pkey" "openssl pkeyutl" "openssl enc" "openssl list" \
    "dkm-aad" "-DKM-AES-256-GCM" "-skeymgmt" ".include"

# The matcher itself: an option no page has must be reported, and so must
# one that the page has only as the start of a longer option.
if [ "$(missing "$ctl_page" --no-such-option)" = --no-such-option ]; then
    ok "the matcher reports an option missing from a page"
else
    fail "the matcher reports an option missing from a page"
fi
if [ "$(missing "$ctl_page" --tls-ce)" = --tls-ce ] && [ -z "$(missing "$ctl_page" --tls-cert)" ]; then
    ok "the matcher does not take the start of an option for the option"
else
    fail "the matcher does not take the start of an option for the option"
fi

echo "man_pages: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
