#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-units.sh - `systemd-analyze verify` must accept every shipped unit
# (units/): no error, no warning, nothing printed.  The services' ExecStart
# points at the sigillod just built, which verify insists exists.  A unit
# with a deliberate mistake must be refused first, so that a verify that
# silently accepts everything cannot pass this test.
set -u
srcdir=${srcdir:-.}
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: no systemd-analyze"; exit 77; }
bindir=$(dirname "${SIGILLOD:-$PWD/tools/sigillod/sigillod}")
case $bindir in /*) ;; *) bindir=$PWD/$bindir ;; esac
[ -x "$bindir/sigillod" ] || { echo "test-units: $bindir/sigillod not built" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# verify of a --user unit resolves %t from $XDG_RUNTIME_DIR
XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$tmp}
export XDG_RUNTIME_DIR
fails=0

# verify MODE DIR: 0 iff systemd-analyze exits 0 and prints nothing about
# our units (it may grumble about the host's own units; those are not ours)
verify() {
        out=$(cd "$2" && systemd-analyze $1 verify --man=no \
                "$2/sigillod.socket" "$2/sigillod.service" 2>&1)
        rc=$?
        ours=$(printf '%s\n' "$out" | grep -i -e sigillod -e "$2" || :)
        if [ "$rc" -ne 0 ] || [ -n "$ours" ]; then
                printf '%s\n' "$out"
                return 1
        fi
        return 0
}

for kind in system user; do
        d=$tmp/$kind
        mkdir -p "$d"
        cp "$srcdir/units/$kind/sigillod.socket" "$d/"
        sed "s|@sbindir@|$bindir|g" "$srcdir/units/$kind/sigillod.service.in" > "$d/sigillod.service"
        if grep -q "@[A-Za-z_]*@" "$d/sigillod.service"; then
                echo "FAIL: units/$kind/sigillod.service: unsubstituted @VAR@"
                fails=$((fails + 1))
        fi
        mode=; [ "$kind" = user ] && mode=--user

        # the negative control: an unknown directive and a missing binary
        mkdir -p "$d.bad"
        cp "$d/sigillod.socket" "$d.bad/"
        sed -e 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/sigillod|' \
            -e 's|^\[Service\]|&\nNoSuchDirective=yes|' "$d/sigillod.service" > "$d.bad/sigillod.service"
        if verify "$mode" "$d.bad" >/dev/null; then
                echo "FAIL: $kind: systemd-analyze verify accepted a broken unit; this test proves nothing"
                fails=$((fails + 1))
        fi

        if verify "$mode" "$d"; then
                echo "PASS: units/$kind: systemd-analyze ${mode:+$mode }verify"
        else
                echo "FAIL: units/$kind: systemd-analyze ${mode:+$mode }verify"
                fails=$((fails + 1))
        fi
done
[ "$fails" -eq 0 ]
