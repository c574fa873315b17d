#!/bin/bash
# restore disk from a point-in-time directory.  The command reads
# BACKUP_DIR/backup.json and BACKUP_DIR/disks/<disk>.img with
# SEEK_DATA/SEEK_HOLE, so a directory made here with a sparse raw image
# stands in for the mount (restore-mount.sh does the same through a real
# mount).  Result equals the oracle, stays sparse, qcow2 output, no
# overwrite, and --bandwidth holds the rate down.
. "$SRCDIR/tests/restore/lib.sh"

B=$T/web01/$T2
mkdir -p "$B/disks"
qemu-img create -q -f qcow2 "$T/src.qcow2" 512M
qemu-io -f qcow2 -c 'write -P 0x11 0 3M' -c 'write -P 0x22 100M 1M' \
  -c 'write -P 0x33 300M 60M' -c 'write -P 0x44 511M 1M' "$T/src.qcow2" >/dev/null
oracle "$T/src.qcow2" "$B/disks/vda.img"          # sparse raw
cat > "$B/backup.json" <<J
{"vm":"web01","time":"2026-10-02T03:00:00Z","source":"generic",
 "disks":[{"name":"vda","image":"web01/$T2/vda.qcow2","chain":["web01/$T2/vda.qcow2"],
 "virtual_size":536870912,"allocated":0,"format":"qcow2","compression":"none","status":"ok"}]}
J
ln -s "$T2" "$T/web01/latest"

# raw, sparse, equal to the oracle; through the latest link
"$BACKUPFS" restore disk "$T/web01/latest" vda "$T/out.raw" || fail "restore disk raw"
cmp "$B/disks/vda.img" "$T/out.raw" || fail "raw result differs from the oracle"
[ "$(stat -c %s "$T/out.raw")" = 536870912 ] || fail "wrong size"
used=$(du -k "$T/out.raw" | cut -f1)
[ "$used" -lt 131072 ] || fail "not sparse: $used KiB used of 512 MiB"
ok "raw restore equals the oracle, $used KiB used"

# never overwrite; --force does
"$BACKUPFS" restore disk "$B" vda "$T/out.raw" 2>/dev/null && fail "overwrote"
"$BACKUPFS" restore disk --force "$B" vda "$T/out.raw" || fail "--force"
cmp "$B/disks/vda.img" "$T/out.raw" || fail "--force result differs"
ok "no overwrite without --force"

# DEST a directory: DEST/<disk>.raw
mkdir "$T/dir"
"$BACKUPFS" restore disk "$B" vda "$T/dir" >/dev/null || fail "restore into a directory"
cmp "$B/disks/vda.img" "$T/dir/vda.raw" || fail "DEST/vda.raw differs"
rm -rf "$T/dir"
ok "DEST directory"

# the read-back: O_DIRECT where the size allows, buffered edges (a disk of
# an odd size), and a destination on tmpfs
O=$T/odd/$T2
mkdir -p "$O/disks"
head -c 3000000 /dev/urandom > "$O/disks/vda.img"
printf 'tail' >> "$O/disks/vda.img"               # 3000004 bytes
sed -e 's/"virtual_size":536870912/"virtual_size":3000004/' "$B/backup.json" \
  > "$O/backup.json"
"$BACKUPFS" restore disk "$O" vda "$T/odd.raw" >/dev/null || fail "odd size"
cmp "$O/disks/vda.img" "$T/odd.raw" || fail "odd-size result differs"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  S=$(mktemp /dev/shm/bfs-restore.XXXXXX) && rm -f "$S"
  "$BACKUPFS" restore disk "$O" vda "$S" >/dev/null; rc=$?
  cmp "$O/disks/vda.img" "$S"; same=$?
  rm -f "$S"
  [ $rc = 0 ] && [ $same = 0 ] || fail "restore onto tmpfs"
fi
rm -rf "$T/odd" "$T/odd.raw"
ok "odd-size disk read back exactly (and onto tmpfs)"

# qcow2 output, plain and compressed
"$BACKUPFS" restore disk --format qcow2 "$B" vda "$T/out.qcow2" || fail "qcow2"
oracle "$T/out.qcow2" "$T/out2.raw"
cmp "$B/disks/vda.img" "$T/out2.raw" || fail "qcow2 result differs"
qemu-img info "$T/out.qcow2" | grep -q 'file format: qcow2' || fail "not qcow2"
"$BACKUPFS" restore disk --format qcow2 --compress "$B" vda "$T/outc.qcow2" || fail "qcow2 -c"
rm -f "$T/out2.raw"; oracle "$T/outc.qcow2" "$T/out2.raw"
cmp "$B/disks/vda.img" "$T/out2.raw" || fail "compressed qcow2 result differs"
[ "$(stat -c %s "$T/outc.qcow2")" -lt "$(stat -c %s "$T/out.qcow2")" ] || fail "--compress did not compress"
ok "qcow2 and compressed qcow2 outputs equal the oracle"

# the bandwidth limit: 65 MiB of data (copied, then read back to check it)
# at 20 MiB/s takes at least ~3 s (the lower bound is the feature)
start=$(date +%s.%N)
"$BACKUPFS" restore disk --bandwidth 20 "$B" vda "$T/slow.raw" || fail "--bandwidth"
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
cmp "$B/disks/vda.img" "$T/slow.raw" || fail "--bandwidth result differs"
awk -v s="$secs" 'BEGIN { exit !(s >= 3.0) }' || fail "--bandwidth 20: 65 MiB took only $secs s"
ok "--bandwidth 20 took $secs s for 65 MiB"

# interrupted: no partial file is left under the final name
"$BACKUPFS" restore disk --bandwidth 10 "$B" vda "$T/int.raw" 2>/dev/null &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid && fail "an interrupted restore reported success"
[ ! -e "$T/int.raw" ] || fail "an interrupted restore left $T/int.raw"
ok "interrupted restore removes its partial file"

# onto a block device (--force): holes are zeroed over old contents
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
  truncate -s 520M "$T/lo.img"
  if LO=$(losetup -f --show "$T/lo.img" 2>/dev/null); then
    dd if=/dev/urandom of="$LO" bs=1M count=520 status=none
    "$BACKUPFS" restore disk "$B" vda "$LO" 2>/dev/null && { losetup -d "$LO"; fail "wrote a device without --force"; }
    "$BACKUPFS" restore disk --force "$B" vda "$LO" >/dev/null; rc=$?
    cmp -n 536870912 "$LO" "$B/disks/vda.img"; same=$?
    losetup -d "$LO"
    [ $rc = 0 ] && [ $same = 0 ] || fail "restore onto a block device"
    ok "restore onto a block device"
  else
    echo "note: no loop device here; block device restore not tested"
  fi
  rm -f "$T/lo.img"
fi

# errors name the thing and exit non-zero
"$BACKUPFS" restore disk "$B" vdz "$T/nope.raw" 2>"$T/err" && fail "unknown disk accepted"
grep -q vdz "$T/err" || fail "message does not name the disk"
[ ! -e "$T/nope.raw" ] || fail "left a file behind"
"$BACKUPFS" restore disk "$T" vda "$T/nope.raw" 2>/dev/null && fail "non-backup dir accepted"
"$BACKUPFS" restore disk --compress "$B" vda "$T/nope.raw" 2>/dev/null && fail "--compress with raw"
"$BACKUPFS" restore disk --bandwidth -3 "$B" vda "$T/nope.raw" 2>/dev/null && fail "negative bandwidth"
"$BACKUPFS" restore disk --help | grep bandwidth >/dev/null || fail "--help"
ok "errors"
exit 0
