#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-tool.sh - the sigillo subcommands against a real sigillod on a
# temporary socket: put/get round trips (empty, 1 byte, 3 MiB of random
# bytes), replacement, cat and cat --follow, ls and stat, gc and rm, and one
# clear stderr line and the right exit status for each kind of bad input.
set -u
SIGILLO=${SIGILLO:-./tools/sigillo}
SIGILLOD=${SIGILLOD:-./tools/sigillod/sigillod}
dir=$(mktemp -d "${TMPDIR:-/tmp}/test-tool.XXXXXX") || exit 99
chmod 755 "$dir"
mkdir "$dir/policy.d"
dpid=
fpid=
cleanup() {
        [ -n "$fpid" ] && kill "$fpid" 2>/dev/null
        [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
        rm -rf "$dir"
}
trap cleanup EXIT
fail() {
        echo "test-tool: FAIL: $1" >&2
        [ -f "$dir/err" ] && sed 's/^/  stderr: /' "$dir/err" >&2
        echo "---- sigillod log ----" >&2
        cat "$dir/log" >&2
        exit 1
}
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }

"$SIGILLOD" --socket "$dir/socket" --policy "$dir/policy.d" 2>"$dir/log" &
dpid=$!
i=0
while ! [ -S "$dir/socket" ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "sigillod did not start"
        sleep 0.05
done
SIGILLO_SOCKET=$dir/socket
export SIGILLO_SOCKET
S=$SIGILLO

# expect_fail STATUS PATTERN CMD...: exits STATUS with one stderr line
# matching PATTERN and nothing on stdout
expect_fail() {
        want=$1 pat=$2
        shift 2
        "$@" >"$dir/out" 2>"$dir/err"
        rc=$?
        [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want"
        [ "$(wc -l <"$dir/err")" -eq 1 ] || fail "'$*' printed not exactly one line on stderr"
        grep -q -- "$pat" "$dir/err" || fail "'$*': stderr does not say '$pat'"
        [ -s "$dir/out" ] && fail "'$*' printed on stdout"
        ok "$* -> $rc: $(cat "$dir/err")"
}

# ------------------------------------------------------------ round trips
: >"$dir/empty"
printf 'x' >"$dir/one"
head -c 3145728 /dev/urandom >"$dir/big"
head -c 70000 /dev/urandom >"$dir/mid"
for f in empty one big mid; do
        $S put blob --key 7 "$dir/$f" 2>"$dir/err" || fail "put $f"
        $S get blob --key 7 >"$dir/got" 2>"$dir/err" || fail "get $f"
        cmp -s "$dir/$f" "$dir/got" || fail "get $f: bytes differ"
        ok "put/get $f ($(wc -c <"$dir/$f") bytes) round-trips"
done
# from standard input, and with --trusted
$S put blob --key 8 - <"$dir/big" 2>"$dir/err" || fail "put from stdin"
$S get blob --key 8 --trusted >"$dir/got" 2>"$dir/err" || fail "get --trusted"
cmp -s "$dir/big" "$dir/got" || fail "put from stdin: bytes differ"
ok "put from standard input, get --trusted"

# a second put of the same key replaces it
printf 'first' | $S put kv --key 1 2>"$dir/err" || fail "put first"
printf 'second' | $S put kv --key 1 2>"$dir/err" || fail "put second"
[ "$($S get kv --key 1)" = second ] || fail "second put did not replace the first"
ok "a second put of the same key replaces it"

# anonymous id: printed, and readable under it
id=$(printf 'anon' | $S put kv 2>"$dir/err") || fail "anonymous put"
[ -n "$id" ] || fail "anonymous put printed no id"
[ "$($S get kv --key "$id")" = anon ] || fail "anonymous chunk $id not found"
ok "anonymous put prints id $id"

# a TTL: expired chunks are not served
printf 'soon gone' | $S put kv --key 2 --ttl 200ms 2>"$dir/err" || fail "put --ttl"
sleep 0.5
expect_fail 1 "no chunk 2 in kv" $S get kv --key 2

# ------------------------------------------------------------------- cat
$S cat kv >"$dir/got" 2>"$dir/err" || fail "cat"
[ "$(cat "$dir/got")" = "secondanon" ] || fail "cat printed '$(cat "$dir/got")'"
$S cat -v kv >/dev/null 2>"$dir/err" || fail "cat -v"
[ "$(grep -c '^chunk id' "$dir/err")" -eq 2 ] || fail "cat -v: not one header per chunk"
ok "cat prints the live chunks in log order"

# --follow: prints what is committed later; ends on SIGTERM
$S cat --follow kv >"$dir/follow" 2>"$dir/ferr" &
fpid=$!
i=0
until [ "$(cat "$dir/follow")" = "secondanon" ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "cat --follow printed '$(cat "$dir/follow")'"
        sleep 0.05
done
printf 'later' | $S put kv --key 3 2>"$dir/err" || fail "put while following"
i=0
until [ "$(cat "$dir/follow")" = "secondanonlater" ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "cat --follow missed the later chunk: '$(cat "$dir/follow")'"
        sleep 0.05
done
kill -TERM "$fpid"
wait "$fpid"
rc=$?
fpid=
[ "$rc" -eq 0 ] || fail "cat --follow exited $rc on SIGTERM"
ok "cat --follow prints a chunk committed later, exits 0 on SIGTERM"

# ------------------------------------------------------------- ls, stat
$S ls >"$dir/out" 2>"$dir/err" || fail "ls"
head -n 1 "$dir/out" | grep -q '^NAME *OWNER *MODE *SEGMENTS *USED *LIVE *WRITER *READERS$' || fail "ls header"
grep -q '^kv  *[^ ]*  *0400 ' "$dir/out" || fail "ls does not show kv"
grep -q '^blob ' "$dir/out" || fail "ls does not show blob"
$S ls --json >"$dir/out" 2>"$dir/err" || fail "ls --json"
grep -q '"name": "kv"' "$dir/out" || fail "ls --json does not show kv"
ok "ls shows the areas"
$S stat kv >"$dir/out" 2>"$dir/err" || fail "stat"
grep -q '^name: *kv$' "$dir/out" || fail "stat name"
grep -q '^persist: *yes$' "$dir/out" || fail "stat persist"
grep -q ' sealed  *SHRINK|GROW|WRITE|SEAL' "$dir/out" || fail "stat segments"
$S stat --json kv >"$dir/out" 2>"$dir/err" || fail "stat --json"
grep -q '"event": "sealed"' "$dir/out" || fail "stat --json segments"
ok "stat shows the area and its sealed segments"

# --------------------------------------------------------------- gc, rm
before=$($S stat kv | sed -n 's/^segments: *//p')
$S gc kv >"$dir/out" 2>"$dir/err" || fail "gc"
grep -q '^kv: retired [0-9]* segment' "$dir/out" || fail "gc output: $(cat "$dir/out")"
after=$($S stat kv | sed -n 's/^segments: *//p')
[ "$after" -lt "$before" ] || fail "gc: $before segments before, $after after"
[ "$($S get kv --key 1)" = second ] || fail "gc lost chunk 1"
[ "$($S get kv --key 3)" = later ] || fail "gc lost chunk 3"
ok "gc compacts ($before -> $after segments) and keeps the live chunks"

# cat --follow ends by itself when the area is removed
$S cat --follow kv >"$dir/follow" 2>"$dir/ferr" &
fpid=$!
sleep 0.3
$S rm kv 2>"$dir/err" || fail "rm"
i=0
while kill -0 "$fpid" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "cat --follow did not end when the area was removed"
        sleep 0.05
done
wait "$fpid"
rc=$?
fpid=
[ "$rc" -eq 0 ] || fail "cat --follow exited $rc when the area was removed"
ok "rm removes the area; cat --follow then ends with 0"
expect_fail 1 "no area kv" $S get kv --key 1
expect_fail 1 "no area kv" $S rm kv
expect_fail 1 "no area kv" $S stat kv

# ------------------------------------------------------------ bad input
expect_fail 1 "no area nosuch" $S get nosuch --key 1
expect_fail 1 "no area nosuch" $S cat nosuch
expect_fail 1 "no chunk 99 in blob" $S get blob --key 99
expect_fail 2 "invalid key 'abc'" $S get blob --key abc
expect_fail 2 "invalid key '0'" $S get blob --key 0
expect_fail 2 "invalid key '-1'" $S put blob --key -1
expect_fail 2 "invalid key '99999999999999999999'" $S get blob --key 99999999999999999999
expect_fail 2 "invalid key '9223372036854775808'" $S put blob --key 9223372036854775808
expect_fail 2 "--key ID is required" $S get blob
for d in 5x 10 0s -5s 1.5s s 5 ms 99999999999999999999d; do
        expect_fail 2 "invalid duration '$d'" $S put blob --ttl "$d" "$dir/one"
done
expect_fail 2 "invalid area name" $S get "a/b" --key 1
expect_fail 2 "invalid area name" $S put ".hidden" "$dir/one"
expect_fail 2 "invalid mode" $S put blob --mode 0644 "$dir/one"
expect_fail 2 "bad option '--bogus'" $S ls --bogus
expect_fail 2 "bad option '--key'" $S get blob --key
expect_fail 2 "bad option '-z'" $S cat -z blob
expect_fail 2 "expects one NAME" $S stat
expect_fail 2 "unknown command" $S frobnicate
expect_fail 1 "cannot read $dir/nofile" $S put blob "$dir/nofile"
for c in "ls" "stat blob" "get blob --key 1" "cat blob" "rm blob" "gc blob"; do
        # shellcheck disable=SC2086
        expect_fail 1 "cannot reach sigillod at $dir/nosock" $S $c --socket "$dir/nosock"
done
expect_fail 1 "cannot reach sigillod at $dir/nosock" $S put blob --socket "$dir/nosock" "$dir/one"
expect_fail 1 "cannot reach sigillod at $dir/nosock" env SIGILLO_SOCKET="$dir/nosock" $S ls
for c in put get cat ls stat rm gc; do
        $S $c --help >"$dir/out" 2>&1 || fail "$c --help exited non-zero"
        grep -q "^Usage: sigillo $c" "$dir/out" || fail "$c --help"
done
ok "every subcommand has --help"

# permission denied: another uid may not read a 0400 area (needs root)
if [ "$(id -u)" -eq 0 ] && setpriv --reuid 65534 --regid 65534 --clear-groups true 2>/dev/null &&
   setpriv --reuid 65534 --regid 65534 --clear-groups test -x "$S"; then
        nobody="setpriv --reuid 65534 --regid 65534 --clear-groups"
        expect_fail 1 "permission denied: you may not read area blob" $nobody $S get blob --key 7
        expect_fail 1 "permission denied: you may not read area blob" $nobody $S cat blob
        expect_fail 1 "permission denied: you may not read area blob" $nobody $S stat blob
        expect_fail 1 "area blob belongs to another user" $nobody $S put blob "$dir/one"
        expect_fail 1 "permission denied: you may not read area blob" $nobody $S rm blob
        $nobody $S ls >"$dir/out" 2>"$dir/err" || fail "ls as nobody"
        grep -q '^blob ' "$dir/out" && fail "ls as nobody shows an area it may not read"
        ok "ls as another uid hides the 0400 area"
        printf 'open' | $S put pub --key 1 --mode 0444 2>"$dir/err" || fail "put --mode 0444"
        [ "$($nobody $S get pub --key 1 2>"$dir/err")" = open ] || fail "get of a 0444 area as nobody"
        ok "another uid reads a 0444 area"
else
        echo "# skipped the permission checks (not root, or no setpriv)"
fi

# the demo still works next to all this
$S demo >/dev/null 2>"$dir/err" || fail "demo"
echo "PASS: sigillo tool ($n checks)"
