#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# check-example.sh README PKG_CONFIG_DIR [SYSROOT] - compiles the README's
# API example (the C block after the "api-example" marker) against the
# installed library found through pkg-config, runs it, and checks its
# output.  `make installcheck` runs it on the installed tree; .ci/run also
# runs it on a `make install DESTDIR=...` tree with SYSROOT set.
set -eu
readme=$1
pcdir=$2
sysroot=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk '/<!-- api-example/ { f = 1; next }
     f && /^```c/ { p = 1; next }
     p && /^```/ { exit }
     p' "$readme" > "$tmp/example.c"
test -s "$tmp/example.c" || { echo "check-example: no example in $readme" >&2; exit 1; }

pc() { PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$sysroot pkg-config "$@" sigillo; }
libdir=$sysroot$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir sigillo)
${CC:-cc} -Wall -Wextra -Werror -o "$tmp/example" "$tmp/example.c" $(pc --cflags) $(pc --libs)
# the example must have linked the installed library, not a build tree's
LD_LIBRARY_PATH=$libdir ldd "$tmp/example" | grep -q "$libdir/libsigillo.so" ||
        { echo "check-example: not linked against $libdir" >&2; exit 1; }
out=$(LD_LIBRARY_PATH=$libdir "$tmp/example")
test "$out" = 'reader got "hello, sealed world"' ||
        { echo "check-example: unexpected output: $out" >&2; exit 1; }
echo "check-example: the README's example works against $libdir"
