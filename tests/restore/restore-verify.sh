#!/bin/bash
# verify: passes clean repositories, records xxh3-128 checksums on the first
# run (the same as `xxhsum -H2`) and finds each corruption of the
# corrupt-input set with a non-zero exit: truncated image, L1 table past the
# end of the file, corrupt compressed cluster, missing backing file, backing
# loop, and content changed since the first verification (bit rot that
# keeps the structure valid).
. "$SRCDIR/tests/restore/lib.sh"
need_catalog
command -v python3 >/dev/null || skip "python3 not installed"
CORRUPT="python3 $SRCDIR/tests/restore/qcow2-corrupt.py"

make_repo "$T/clean"

# run verify on a copy: v NAME [args...]; output in $T/NAME.out, status in $rc
v() {
  local name=$1; shift
  "$BACKUPFS" verify --catalog "$T/$name.db" "$@" >"$T/$name.out" 2>&1
  rc=$?
}
copy() { rm -rf "$T/$1"; cp -a "$T/clean" "$T/$1"; }
expect_fault() {   # name pattern-of-the-faulty-row
  [ "$rc" != 0 ] || fail "$1: verify passed: $(cat "$T/$1.out")"
  grep -E "$2" "$T/$1.out" | grep -q FAULT || fail "$1: no FAULT row matching '$2': $(cat "$T/$1.out")"
}

v clean "$T/clean"
[ "$rc" = 0 ] || fail "clean repository: $(cat "$T/clean.out")"
[ "$(grep -c ' ok$' "$T/clean.out")" = 4 ] || fail "expected 4 ok rows: $(cat "$T/clean.out")"
grep -q "4 recorded now" "$T/clean.out" || fail "checksums not recorded"
state=$(ls "$T"/verify-*.json) || fail "no checksum state next to the catalog"
if command -v xxhsum >/dev/null; then
  want=$(xxhsum -H2 "$T/clean/web01/$T1/vda.qcow2" | cut -d' ' -f1)
  grep -q "$want" "$state" || fail "recorded checksum is not xxhsum -H2's $want"
fi
v clean "$T/clean"
[ "$rc" = 0 ] && ! grep -q "recorded now" "$T/clean.out" || fail "second clean run: $(cat "$T/clean.out")"
grep -q "not read twice" "$T/clean.out" || fail "shared layers read again: $(tail -1 "$T/clean.out")"
v clean --reread "$T/clean"
[ "$rc" = 0 ] && ! grep -q "not read twice" "$T/clean.out" || fail "--reread: $(cat "$T/clean.out")"
v clean "$T/clean" web01@$T1
[ "$rc" = 0 ] && [ "$(grep -c ' ok$' "$T/clean.out")" = 2 ] && ! grep -q "$T2" "$T/clean.out" \
  || fail "web01@$T1 selection: $(cat "$T/clean.out")"
v clean "$T/clean" web01@latest
[ "$rc" = 0 ] && grep -q "$T2" "$T/clean.out" && ! grep -q "$T1" "$T/clean.out" || fail "web01@latest"
v clean "$T/clean" web01@1999-01-01T000000Z
[ "$rc" != 0 ] || fail "unknown point in time accepted"
ok "clean repository passes, checksums recorded"

copy trunc
truncate -s 1M "$T/trunc/web01/$T1/vda.qcow2"
v trunc "$T/trunc"
expect_fault trunc "$T1  vda"
expect_fault trunc "$T2  vda"
grep -E "$T1  vdb" "$T/trunc.out" | grep -q ' ok$' || fail "trunc: the healthy disk is not ok"
"$BACKUPFS" verify --json --catalog "$T/trunc.db" "$T/trunc" > "$T/trunc.json" && fail "--json: exit 0"
python3 - "$T/trunc.json" <<'PY' || fail "--json: $(cat "$T/trunc.json")"
import json, sys
j = json.load(open(sys.argv[1]))
bad = sorted((r["time"], r["disk"]) for r in j["results"] if not r["ok"])
assert j["faults"] == 2 and len(j["results"]) == 4, j
assert bad == [("2026-10-01T030000Z", "vda"), ("2026-10-02T030000Z", "vda")], bad
assert all(r["checked_bytes"] > 0 for r in j["results"] if r["ok"])
PY
ok "truncated image found (table and --json)"

# the verdicts are in the catalog: list STATUS and backup.json (list --json)
"$BACKUPFS" list --no-scan --catalog "$T/trunc.db" "$T/trunc" web01 > "$T/trunc.list" ||
  fail "list after verify: $(cat "$T/trunc.list")"
cat "$T/trunc.list"
grep "$T1" "$T/trunc.list" | grep -q "FAULT (verify 20[0-9-]*T[0-9:]*Z): vda: " ||
  fail "list STATUS of the truncated point in time: $(grep "$T1" "$T/trunc.list")"
"$BACKUPFS" list --no-scan --catalog "$T/clean.db" "$T/clean" web01 > "$T/clean.list"
grep "$T2" "$T/clean.list" | grep -q "ok (verified 20[0-9-]*T[0-9:]*Z)" ||
  fail "list STATUS of a verified point in time: $(cat "$T/clean.list")"
"$BACKUPFS" list --json --no-scan --catalog "$T/trunc.db" "$T/trunc" web01 |
  jq -e --arg t "$T1" --arg u "$T2" '[.vms[].backups[] | select(.name == $t or .name == $u)] |
    length == 2 and all(.verify.ok == false and (.verify.result | startswith("vda: ")) and
                        (.verify.at | test("^20[0-9-]+T[0-9:]+Z$")))' >/dev/null ||
  fail "list --json verify: $("$BACKUPFS" list --json --no-scan --catalog "$T/trunc.db" "$T/trunc" web01)"
# a new catalog knows no verdict: null
"$BACKUPFS" list --json --catalog "$T/never.db" "$T/clean" web01 |
  jq -e '[.vms[].backups[]] | length > 0 and all(.verify == null)' >/dev/null || fail "unverified backups: verify is not null"
ok "verify verdicts in list and backup.json"

copy l1
$CORRUPT l1-past-eof "$T/l1/web01/$T2/vda.qcow2"
v l1 "$T/l1"
expect_fault l1 "$T2  vda"
grep -E "$T1  vda" "$T/l1.out" | grep -q ' ok$' || fail "l1: the base is not ok"
ok "L1 table past EOF found"

copy comp
$CORRUPT compressed "$T/comp/web01/$T1/vdb.qcow2" || fail "no compressed cluster in the fixture"
v comp "$T/comp"
expect_fault comp "$T1  vdb"
ok "corrupt compressed cluster found"

copy miss
rm "$T/miss/web01/$T1/vda.qcow2"
v miss "$T/miss"
expect_fault miss "$T2  vda"
ok "missing backing file found"

copy loop
L=$T/loop/loop01
mkdir -p "$L/$T1" "$L/$T2"
qemu-img create -q -f qcow2 -u -F qcow2 -b "../$T2/vda.qcow2" "$L/$T1/vda.qcow2" 64M
qemu-img create -q -f qcow2 -u -F qcow2 -b "../$T1/vda.qcow2" "$L/$T2/vda.qcow2" 64M
v loop "$T/loop"
[ "$rc" != 0 ] || fail "backing loop: verify passed: $(cat "$T/loop.out")"
grep loop01 "$T/loop.out" | grep -q FAULT || fail "backing loop: no FAULT row: $(cat "$T/loop.out")"
ok "backing loop found"

# bit rot: structure intact, content changed after the first verification
copy rot
v rot "$T/rot"
[ "$rc" = 0 ] || fail "rot: first run"
f=$T/rot/web01/$T1/vda.qcow2
touch -r "$f" "$T/stamp"
$CORRUPT data "$f" || fail "no data cluster"
touch -r "$T/stamp" "$f"
v rot "$T/rot"
expect_fault rot "$T1  vda"
grep -q "content changed" "$T/rot.out" || fail "rot: no 'content changed' message"
v rot --reset-checksums "$T/rot"
[ "$rc" = 0 ] || fail "rot: --reset-checksums: $(cat "$T/rot.out")"
v rot "$T/rot"
[ "$rc" = 0 ] || fail "rot: after reset"
ok "changed content found by checksum; --reset-checksums records anew"

# a LUKS-encrypted image: header and checksum checked, data not readable
mkdir -p "$T/luks/sec01/$T1"
"$SRCDIR/tests/lib/qemu-img-retry" create -q --object secret,id=s0,data=pw -f qcow2 \
  -o encrypt.format=luks,encrypt.key-secret=s0 "$T/luks/sec01/$T1/vda.qcow2" 16M
v luks "$T/luks"
[ "$rc" = 0 ] && grep -q "ok (encrypted" "$T/luks.out" || fail "encrypted: $(cat "$T/luks.out")"
ok "encrypted image: header and checksum only"

# defaults: catalog and checksum record together under $XDG_CACHE_HOME
XDG_CACHE_HOME=$T/cache "$BACKUPFS" verify "$T/clean" >/dev/null || fail "default catalog"
ls "$T"/cache/backupfs/*.db >/dev/null && ls "$T"/cache/backupfs/verify-*.json >/dev/null \
  || fail "catalog and checksums not together: $(ls -R "$T/cache")"

v clean "$T/clean" nosuchvm
[ "$rc" != 0 ] && grep -q nosuchvm "$T/clean.out" || fail "unknown VM accepted"
mkdir "$T/empty"
v empty "$T/empty"
[ "$rc" != 0 ] || fail "an empty repository verified as fine"
"$BACKUPFS" verify --help | grep reset-checksums >/dev/null || fail "--help"
"$BACKUPFS" verify "$T/does-not-exist" >/dev/null 2>&1 && fail "missing repository accepted"
exit 0
