#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-man.sh - the manual pages: every function exported in
# src/libsigillo.sym has a page in man/ (its own or a `.so` alias to a page
# whose NAME lists it), and groff (and man, if installed) format every page
# without a single warning.  Skipped (77) without groff.
set -u
top=${srcdir:-.}
top=$(cd "$top" && pwd) || exit 99
man_dir=$top/man
sym=$top/src/libsigillo.sym
fails=0
fail() { echo "test-man: $*" >&2; fails=$((fails + 1)); }

[ -r "$sym" ] || { echo "test-man: no $sym" >&2; exit 99; }
[ -d "$man_dir" ] || { echo "test-man: no $man_dir" >&2; exit 99; }

# 1. every exported symbol has a page
syms=$(sed -n 's/^[[:space:]]*\(sgl_[A-Za-z0-9_]*\);.*/\1/p' "$sym")
[ -n "$syms" ] || { echo "test-man: no symbols in $sym" >&2; exit 99; }
n=0
for s in $syms; do
        n=$((n + 1))
        page=$man_dir/$s.3
        if [ ! -f "$page" ]; then
                fail "$s has no man page (man/$s.3)"
                continue
        fi
        target=$(sed -n '1s/^\.so[[:space:]]*man3\/\(.*\)$/\1/p' "$page")
        if [ -n "$target" ]; then
                [ "$(wc -l < "$page")" -eq 1 ] || fail "man/$s.3: an alias page must be one .so line"
                page=$man_dir/$target
                [ -f "$page" ] || { fail "man/$s.3: .so target man/$target does not exist"; continue; }
                ! grep -q '^\.so' "$page" || fail "man/$s.3: .so target man/$target is an alias itself"
        fi
        # the NAME section (up to SYNOPSIS) must name the function
        sed -n '/^\.SH NAME/,/^\.SH SYNOPSIS/p' "$page" | grep -qw "$s" ||
                fail "$(basename "$page") documents $s but its NAME section does not list it"
        # and its SYNOPSIS must show it
        sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$page" | grep -q "$s" ||
                fail "$(basename "$page") documents $s but its SYNOPSIS does not show it"
done

# 2. every page formats without warnings
if ! command -v groff >/dev/null 2>&1; then
        [ "$fails" -eq 0 ] || exit 1
        echo "SKIP: groff is not installed (checked $n symbols)"
        exit 77
fi
# .so lines are relative to the root of the manual: give them one
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
for sec in 1 3 5 8; do
        mkdir "$tmp/man$sec" || exit 99
done
pages=0
for f in "$man_dir"/*.[1-8]; do
        [ -f "$f" ] || continue
        b=$(basename "$f")
        sec=${b##*.}
        cp "$f" "$tmp/man$sec/$b" || exit 99
done
have_man=0
command -v man >/dev/null 2>&1 && man --help 2>/dev/null | grep -q -- '--warnings' && have_man=1
cd "$tmp" || exit 99
for f in man?/*; do
        pages=$((pages + 1))
        out=$(LC_ALL=C.UTF-8 groff -t -man -ww -z -Tutf8 "$f" 2>&1)
        [ -z "$out" ] || fail "groff warns on $f:
$out"
        if [ "$have_man" -eq 1 ]; then
                out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
                [ -z "$out" ] || fail "man warns on $f:
$out"
        fi
done
[ "$pages" -gt 0 ] || fail "no pages in $man_dir"
[ "$fails" -eq 0 ] || exit 1
echo "PASS: $n symbols documented, $pages pages format cleanly"
