#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-demo.sh - the quick start's main job: `sigillo demo` must succeed and
# show what it promises: both readers see the batch, are woken by the update,
# see the deletion, and the kernel refuses every write to committed data.
set -u
out=$(${SIGILLO:-./tools/sigillo} demo 2>&1)
rc=$?
fail() { printf '%s\n' "$out"; echo "test-demo: $1" >&2; exit 1; }
[ "$rc" -eq 0 ] || fail "sigillo demo exited $rc"
for r in 1 2; do
        printf '%s\n' "$out" | grep -q "reader $r: id 3  version 3  \"scratch\"" || fail "reader $r missed the batch"
        printf '%s\n' "$out" | grep -q "reader $r: id 1  version 4  \"hello, sealed world\"" || fail "reader $r missed the update"
        printf '%s\n' "$out" | grep -q "reader $r: id 3 is deleted" || fail "reader $r missed the deletion"
        printf '%s\n' "$out" | grep -q "reader $r: mprotect(PROT_WRITE) on the chunk it holds -> Permission denied" || fail "reader $r could write"
done
n=$(printf '%s\n' "$out" | grep -c -- '-> Operation not permitted')
[ "$n" -eq 4 ] || fail "expected 4 refused writer attempts, saw $n"
printf '%s\n' "$out" | grep -q '^demo: ok' || fail "no success line"
echo "PASS: sigillo demo"
