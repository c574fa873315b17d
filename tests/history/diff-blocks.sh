#!/bin/bash
# diff-blocks.sh — `backupfs diff --blocks` equals a byte comparison of the
# two points in time's flat images (qemu-img convert -O raw) in 64 KiB
# blocks, for every pair of three points in time of the restore suite's
# repository (qcow2 overlays, zero writes, zlib-compressed clusters) plus a
# third point in time that rewrites T1's bytes into its own clusters (same
# bytes, another layer: must compare equal) and adds a raw disk.
# No appliance, no mount.
. "$SRCDIR/tests/restore/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
"$BACKUPFS" diff --help >/dev/null 2>&1 || fail "no diff command"

R=$T/repo
make_repo "$R"
T3=2026-10-03T030000Z
mkdir -p "$R/web01/$T3"
qemu-img create -q -f qcow2 -F qcow2 -b "../$T2/vda.qcow2" "$R/web01/$T3/vda.qcow2"
# 0x11 at 0..4M is T1's (and T2's outside 1M..2M): rewritten, the same bytes
qemu-io -f qcow2 -c 'write -P 0x11 2M 1M' -c 'write -P 0x77 130M 100k' \
  -c 'write -z 200M 64k' "$R/web01/$T3/vda.qcow2" >/dev/null
qemu-img create -q -f qcow2 -F qcow2 -b "../$T2/vdb.qcow2" "$R/web01/$T3/vdb.qcow2"
head -c 3M /dev/urandom > "$R/web01/$T3/vdc.raw"
truncate -s 5M "$R/web01/$T3/vdc.raw"
touch -d '2026-10-03 03:00' "$R/web01/$T3"/*

C=$T/catalog.db
for t in $T1 $T2 $T3; do
  for d in vda vdb; do
    oracle "$R/web01/$t/$d.qcow2" "$T/$t-$d.raw"
  done
done
cp "$R/web01/$T3/vdc.raw" "$T/$T3-vdc.raw"

pair() {   # pair TA TB: diff --blocks TA TB against the oracle
  local a=$1 b=$2 want got
  want=$(for d in vda vdb vdc; do
           python3 "$SRCDIR/tests/history/blockcmp.py" $d \
             "$( [ -f "$T/$a-$d.raw" ] && echo "$T/$a-$d.raw" || echo -)" \
             "$( [ -f "$T/$b-$d.raw" ] && echo "$T/$b-$d.raw" || echo -)"
         done)
  local wbytes
  wbytes=$(grep '^bytes ' <<<"$want" | awk '{s += $2} END {print s}')
  set +e
  "$BACKUPFS" diff --blocks --catalog "$C" "$R" "web01@$a" "web01@$b" \
    > "$T/out" 2> "$T/err"
  local rc=$?
  set -e
  [ "$rc" = 1 ] || fail "diff --blocks $a $b: exit $rc: $(cat "$T/err")"
  got=$(grep -v '^total' "$T/out")
  [ "$got" = "$(grep -v '^bytes ' <<<"$want")" ] ||
    fail "diff --blocks $a $b:
--- backupfs
$got
--- oracle
$(grep -v '^bytes ' <<<"$want")"
  grep -q "^total	$wbytes	" "$T/out" || fail "total $a $b: $(grep total "$T/out"), want $wbytes"
  ok "diff --blocks $a $b: $(grep -c . <<<"$got") extents, $wbytes bytes, as the raw images"
}
set -e
pair $T1 $T2
pair $T2 $T3
pair $T1 $T3
pair $T3 $T1

# the same point in time: nothing differs, exit 0
"$BACKUPFS" diff --blocks --catalog "$C" "$R" "web01@$T2" web01@$T2 > "$T/out" ||
  fail "diff of a point in time with itself: exit $?"
[ "$(cat "$T/out")" = "total	0	0 extents, 2 disks" ] || fail "self diff: $(cat "$T/out")"
ok "a point in time against itself: no extents, exit 0"

# one disk, JSON, latest
"$BACKUPFS" diff --blocks --json --catalog "$C" "$R" "web01@$T1" web01@latest vda \
  > "$T/json" || [ $? = 1 ] || fail "diff --blocks --json"
python3 - "$T/json" "$T/$T1-vda.raw" "$T/$T3-vda.raw" <<'PY' || fail "diff --blocks --json"
import json, subprocess, sys, os
j = json.load(open(sys.argv[1]))
assert j["from"].endswith("2026-10-01T030000Z") and j["to"].endswith("2026-10-03T030000Z"), j
assert [d["disk"] for d in j["disks"]] == ["vda"], j
out = subprocess.run([sys.executable, os.environ["SRCDIR"] + "/tests/history/blockcmp.py",
                      "vda", sys.argv[2], sys.argv[3]], capture_output=True, text=True).stdout
want = [[int(l.split("\t")[1]), int(l.split("\t")[2])] for l in out.splitlines() if "\t" in l]
assert j["disks"][0]["extents"] == want, (j["disks"][0]["extents"], want)
assert j["bytes"] == sum(n for _, n in want), j["bytes"]
PY
ok "diff --blocks --json web01@$T1 web01@latest vda"

# fast: a 256 MiB disk whose overlays barely differ is not read whole
"$BACKUPFS" diff --blocks --catalog "$C" "$R" "web01@$T2" "web01@$T3" vdb > "$T/out" ||
  fail "unchanged vdb: exit $?"
[ "$(cat "$T/out")" = "total	0	0 extents, 1 disks" ] || fail "unchanged vdb: $(cat "$T/out")"
ok "an empty overlay: no extents"

# errors: no such disk, no such point in time
"$BACKUPFS" diff --blocks --catalog "$C" "$R" "web01@$T1" "web01@$T2" vdz 2> "$T/err" &&
  fail "diff of a missing disk succeeded"
grep -q "vdz" "$T/err" || fail "missing disk message: $(cat "$T/err")"
"$BACKUPFS" diff --blocks --catalog "$C" "$R" "web01@$T1" "web01@2020-01-01T000000Z" 2> "$T/err" &&
  fail "diff with a missing point in time succeeded"
grep -q "no such point in time" "$T/err" || fail "missing time message: $(cat "$T/err")"
ok "errors name the disk and the point in time"
