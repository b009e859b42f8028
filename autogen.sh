#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Regenerates the build system.  With arguments, also runs configure with
# them, in the current directory (so `../autogen.sh --enable-werror` from a
# build directory does a VPATH build).
set -e

srcdir=$(dirname "$0")
(cd "$srcdir" && autoreconf -fi)

if [ "$#" -gt 0 ]; then
        "$srcdir/configure" "$@"
else
        echo "Now run: $srcdir/configure && make"
fi
