#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-bench.sh - the benchmark's CI smoke: sigillo-bench --quick runs every
# scenario and every transport once with few iterations; every row must be
# there, every message must have verified (sequence and checksum of every
# byte), and iceoryx rows either ran or say skipped.  No timing thresholds:
# CI machines are noisy.
set -u
BENCH=${SIGILLO_BENCH:-./tools/bench/sigillo-bench}
out=$(mktemp "${TMPDIR:-/tmp}/test-bench.XXXXXX") || exit 99
trap 'rm -f "$out"' EXIT
fail() {
        echo "test-bench: FAIL: $1" >&2
        cat "$out" >&2
        exit 1
}

# `sigillo bench` reaches the same program
SIGILLO=${SIGILLO:-./tools/sigillo}
"$SIGILLO" bench --help > "$out" 2>&1 || fail "sigillo bench --help failed"
grep -q '^Usage: sigillo-bench' "$out" || fail "sigillo bench did not run sigillo-bench"
"$BENCH" --only=no-such-scenario > "$out" 2>&1
[ $? -eq 2 ] || fail "an unknown scenario is not a usage error"

"$BENCH" --quick > "$out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || fail "sigillo-bench --quick exited $rc"
grep -q '^verification: all messages verified$' "$out" || fail "verification line missing"
grep -q 'FAILED\|BAD' "$out" && fail "a measurement failed or a message did not verify"

# every scenario, size and transport has its row
row() {
        grep -q "^$1 *$2 " "$out" || fail "no row for $3 $1 $2"
}
for s in lat-trusted tput-trusted lat-strict tput-strict fanout-strict commit-readers; do
        grep -q "^== $s:" "$out" || fail "scenario $s missing"
done
for t in sigillo-trusted ring-busy iceoryx unix-stream unix-seqpacket pipe; do
        row 64B "$t" lat-trusted
done
for z in 64B 4K 64K 1M 16M; do
        for t in sigillo-trusted ring-futex iceoryx; do
                row "$z" "$t" tput-trusted
        done
        for t in sigillo-strict sealed-memfd unix-stream unix-seqpacket pipe; do
                [ "$(grep -c "^$z *$t " "$out")" -ge 2 ] || fail "rows for $z $t missing"
        done
done
for t in sigillo-strict sealed-memfd unix-stream; do
        row 1M "$t" fanout-strict
done
for t in "sigillo-strict 1r" "sigillo-strict 16r" "sigillo-trusted 1r" "sigillo-trusted 16r"; do
        row 64B "$t" commit-readers
done
# iceoryx: measured, or skipped with the reason (not installed, or another
# iox-roudi owns the machine's iceoryx shared memory)
if grep -q '^64B *iceoryx .*skipped: iceoryx' "$out"; then
        echo "ok - $(grep -m1 -o 'skipped: iceoryx.*' "$out")"
else
        grep -q '^64B *iceoryx .* ok [0-9]' "$out" || fail "iceoryx neither ran nor was skipped"
fi
grep -q '^== goals' "$out" || fail "goal table missing"

# the machine-readable form: one verified line per transport
"$BENCH" --quick --tsv --only=fanout-strict > "$out" 2>&1 || fail "--tsv exited $?"
[ "$(grep -c '^fanout-strict	1048576	[a-z-]*	4	[^	]*	ok	' "$out")" -eq 3 ] ||
        fail "--tsv rows missing"
echo "ok - sigillo-bench --quick: every row present, every message verified"
