#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The layering of the tree, checked. Each layer below is a folder of
# sources (and its public headers) and may use only the layers it names:
#
#   includes  a source or header never includes a header of a layer it
#             may not use;
#   symbols   an object of a layer's static library never references a
#             function or variable defined in a library of such a layer;
#   cycles    no two objects of the project's libraries need each other,
#             directly or around a loop (X calls Y, Y calls X).
#
# Usage: tests/layers.sh SOURCE_DIR BUILD_DIR   check the tree
#        tests/layers.sh --self-test SOURCE_DIR prove each check fails
#                                               on a planted violation
# Prints one line per violation and exits 1 when there is any.
set -uo pipefail

# layer      library            folders (sources, public headers)           may use
LAYERS='
base       dkm_base           common/base:include/dkm/base                -
tpm        dkm_tpm            common/tpm:include/dkm/tpm                  base
trust      dkm_trust          common/trust:include/dkm/trust              tpm,base
data       dkm_data           common/data:include/dkm/data                base
client     dkm_client         common/client:include/dkm/client            trust,data,tpm,base
framework  dkmsvc_framework   service/framework                           base
keys       dkmsvc_keys        service/keys                                framework,trust,tpm,base
dkmd       -                  service/dkmd.c                              keys,framework,trust,tpm,base
provider   -                  provider                                    client,data,trust,tpm,base
tools      -                  tools                                       client,data,trust,tpm,base
'

# layer_of PATH: the layer a path (relative to the source root) is in.
layer_of() {
    local path=$1 name lib dirs uses d
    while read -r name lib dirs uses; do
        [ -n "$name" ] || continue
        for d in ${dirs//:/ }; do
            case $path in "$d" | "$d"/*) echo "$name"; return ;; esac
        done
    done <<<"$LAYERS"
}

# may_use A B: whether layer A may use layer B.
may_use() {
    local name lib dirs uses
    [ "$1" = "$2" ] && return 0
    while read -r name lib dirs uses; do
        [ "$name" = "$1" ] || continue
        [[ ,$uses, == *,"$2",* ]] && return 0
        return 1
    done <<<"$LAYERS"
    return 1
}

# resolve FROM INCLUDE: the file (relative to the root) a quoted include
# of FROM names: beside FROM, under include/, else any folder of a layer
# that has a file of that name (the include paths CMake hands out).
resolve() {
    local from=$1 inc=$2 d name lib dirs uses
    d=$(dirname "$from")
    if [ -f "$d/$inc" ]; then
        realpath -m --relative-to=. "$d/$inc"
        return
    fi
    if [ -f "include/$inc" ]; then
        echo "include/$inc"
        return
    fi
    while read -r name lib dirs uses; do
        for d in ${dirs//:/ }; do
            [ -d "$d" ] && [ -f "$d/$inc" ] && { echo "$d/$inc"; return; }
        done
    done <<<"$LAYERS"
}

# check_includes ROOT: prints every quoted include, in every file of a
# layer, of a header of a layer it may not use.
check_includes() {
    local root=$1 f inc target from_layer to_layer name lib dirs uses d
    cd "$root" || return 1
    while read -r name lib dirs uses; do
        [ -n "$name" ] || continue
        for d in ${dirs//:/ }; do
            [ -e "$d" ] && find "$d" -name '*.[ch]' -print
        done
    done <<<"$LAYERS" | sort -u | while read -r f; do
        from_layer=$(layer_of "$f")
        sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
            while read -r inc; do
                target=$(resolve "$f" "$inc")
                [ -n "$target" ] || continue
                to_layer=$(layer_of "$target")
                [ -n "$to_layer" ] || continue
                may_use "$from_layer" "$to_layer" ||
                    echo "layers: $f ($from_layer) includes $target ($to_layer)"
            done
    done
    cd - >/dev/null || return 1
}

# symbols_of LIB.a: "D lib obj symbol" for what it defines, "U lib obj
# symbol" for what it references.
symbols_of() {
    local a=$1 lib
    lib=$(basename "$a" .a)
    lib=${lib#lib}
    nm -A --defined-only "$a" 2>/dev/null |
        awk -v L="$lib" '$(NF-1) ~ /^[TDBRVW]$/ { n = split($1, p, ":"); print "D", L, p[n-1], $NF }'
    nm -A -u "$a" 2>/dev/null | awk -v L="$lib" '{ n = split($1, p, ":"); print "U", L, p[n-1], $NF }'
}

# check_symbols BUILD_DIR: the symbol and cycle checks on the libraries.
check_symbols() {
    local build=$1 table edges bad=0 name lib dirs uses a
    table=$(mktemp)
    edges=$(mktemp)
    while read -r name lib dirs uses; do
        [ -n "$name" ] && [ "$lib" != "-" ] || continue
        a=$(find "$build" -name "lib$lib.a" -print -quit)
        if [ -z "$a" ]; then
            echo "layers: no lib$lib.a under $build"
            bad=1
            continue
        fi
        symbols_of "$a"
    done <<<"$LAYERS" >"$table"
    # "user-lib user-obj definer-lib definer-obj symbol" for every
    # reference that another object of the project satisfies.
    awk '$1 == "D" { def[$4] = $2 " " $3; next }
         $1 == "U" && ($4 in def) { split(def[$4], d, " ");
             if (d[1] != $2 || d[2] != $3) print $2, $3, d[1], d[2], $4 }' \
        "$table" "$table" >"$edges"
    while read -r ulib uobj dlib dobj sym; do
        local ul dl
        ul=$(lib_layer "$ulib")
        dl=$(lib_layer "$dlib")
        if ! may_use "$ul" "$dl"; then
            echo "layers: $ulib/$uobj ($ul) uses $sym of $dlib/$dobj ($dl)"
            bad=1
        fi
    done <"$edges"
    # tsort names every loop on stderr and fails on one.
    if ! awk '{ print $1 "/" $2, $3 "/" $4 }' "$edges" | sort -u | tsort >/dev/null 2>"$table"; then
        echo "layers: objects that need each other (a loop, as tsort lists it):"
        sed 's/^tsort: /  /' "$table"
        bad=1
    fi
    rm -f "$table" "$edges"
    return $bad
}

lib_layer() {
    local name lib dirs uses
    while read -r name lib dirs uses; do
        [ "$lib" = "$1" ] && { echo "$name"; return; }
    done <<<"$LAYERS"
}

# self_test SOURCE_DIR: plant one violation of each kind in a copy and
# expect the check to name it; the unchanged copy must pass.
self_test() {
    local src=$1 tmp ok=1 out
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    mkdir -p "$tmp/tree"
    (cd "$src" && cp -r --parents common include service provider tools "$tmp/tree/")
    if [ -n "$(check_includes "$tmp/tree")" ]; then
        echo "self-test: the unchanged tree fails the include check"
        ok=0
    fi
    echo '#include "dkm/client/client.h"' >>"$tmp/tree/common/base/uri.c"
    out=$(check_includes "$tmp/tree")
    if [[ $out != *"common/base/uri.c (base) includes include/dkm/client/client.h (client)"* ]]; then
        echo "self-test: an include of client.h from base was not found: $out"
        ok=0
    fi
    echo '#include "http.h"' >>"$tmp/tree/common/tpm/tpm.c"
    out=$(check_includes "$tmp/tree")
    if [[ $out != *"common/tpm/tpm.c (tpm) includes service/framework/http.h (framework)"* ]]; then
        echo "self-test: an include of a service header from tpm was not found: $out"
        ok=0
    fi

    # Objects: base calls into client; two trust objects call each other.
    mkdir -p "$tmp/build"
    (
        cd "$tmp/build" || exit 1
        printf 'int client_fn(void);\nint base_fn(void) { return client_fn(); }\n' >b.c
        printf 'int client_fn(void) { return 1; }\n' >c.c
        printf 'int t2(void);\nint t1(void) { return t2(); }\n' >t1.c
        printf 'int t1(void);\nint t2(void) { return t1(); }\n' >t2.c
        for f in b c t1 t2; do cc -c "$f.c" -o "$f.o" || exit 1; done
        ar rc libdkm_base.a b.o && ar rc libdkm_client.a c.o && ar rc libdkm_trust.a t1.o t2.o
        for l in dkm_tpm dkm_data dkmsvc_framework dkmsvc_keys; do ar rc "lib$l.a"; done
    ) || { echo "self-test: could not build the planted objects"; return 1; }
    out=$(check_symbols "$tmp/build" 2>&1)
    if [[ $out != *"dkm_base/b.o (base) uses client_fn of dkm_client/c.o (client)"* ]]; then
        echo "self-test: base using a client symbol was not found: $out"
        ok=0
    fi
    if [[ $out != *"objects that need each other"*"dkm_trust/t1.o"* ]]; then
        echo "self-test: the loop t1.o <-> t2.o was not found: $out"
        ok=0
    fi
    [ "$ok" -eq 1 ] && echo "layers self-test: every planted violation was found"
    [ "$ok" -eq 1 ]
}

if [ "${1:-}" = "--self-test" ]; then
    self_test "${2:?usage: layers.sh --self-test SOURCE_DIR}"
    exit
fi
src=${1:?usage: layers.sh SOURCE_DIR BUILD_DIR}
build=$(cd "${2:?usage: layers.sh SOURCE_DIR BUILD_DIR}" && pwd)
failed=0
out=$(check_includes "$src")
if [ -n "$out" ]; then
    echo "$out"
    failed=1
fi
if ! out=$(check_symbols "$build"); then
    echo "$out"
    failed=1
fi
if [ "$failed" -eq 0 ]; then
    echo "layers: no include, symbol or loop against the layering"
fi
exit $failed
