#!/bin/bash
# mount-broken.sh — a backup whose base is missing keeps its directory,
# backup.json says why, opening its disk fails with EIO; a data cluster
# past the end of its file reads as EIO; everything else keeps working.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
CHECK="python3 $SRCDIR/tests/fuse/fusecheck.py"

R=$T/repo
M=$T/mnt
t1=2026-08-01T000000Z t2=2026-08-02T000000Z t3=2026-08-03T000000Z
mkdir -p "$R/good/$t1" "$R/bad/$t1" "$R/bad/$t2" "$R/bad/$t3"
qemu-img create -q -f qcow2 "$R/good/$t1/vda.qcow2" 8M
qio -c "write -P 0x61 0 3M" "$R/good/$t1/vda.qcow2"
qemu-img create -q -f qcow2 "$R/bad/$t1/vda.qcow2" 8M
qio -c "write -P 0x62 1M 1M" "$R/bad/$t1/vda.qcow2"
# t2: backing file that does not exist
qemu-img create -q -f qcow2 -F qcow2 -u -b "../2026-07-01T000000Z/vda.qcow2" \
  "$R/bad/$t2/vda.qcow2" 8M
# t3: standalone, last data cluster cut off the file (second L2 table)
qemu-img create -q -f qcow2 "$R/bad/$t3/vda.qcow2" 1G
qio -c "write -P 0x63 0 1M" -c "write -P 0x64 700M 1M" "$R/bad/$t3/vda.qcow2"
size=$(stat -c %s "$R/bad/$t3/vda.qcow2")
truncate -s $((size - 65536)) "$R/bad/$t3/vda.qcow2"

bfs_mount "$R" "$M"
[ "$(ls "$M/bad" | tr '\n' ' ')" = "$t1 $t2 $t3 latest " ] || fail "bad lists $(ls "$M/bad")"
[ -f "$M/bad/$t2/backup.json" ] || fail "$t2 has no backup.json"
status=$(jget "$M/bad/$t2/backup.json" "j['status']")
[ -n "$status" ] && [ "$status" != ok ] || fail "$t2 status '$status'"
dstatus=$(jget "$M/bad/$t2/backup.json" "j['disks'][0]['status']")
[ "$dstatus" != ok ] || fail "$t2 disk status ok"
ok "broken backup keeps its dir; status: $status"

$CHECK openeio "$M/bad/$t2/disks/vda.img"
cat "$M/bad/$t2/disks/vda.img" >/dev/null 2>"$T/err" && fail "cat succeeded"
grep -q "Input/output error" "$T/err" || fail "cat: $(cat "$T/err")"
ok "open of the broken disk: EIO"

$CHECK eio "$M/bad/$t3/disks/vda.img" $((701 * 1048576 - 4096)) 4096
# the intact part reads correctly, or (if the image core refuses the whole
# image) fails: never silent zeros
if head -c 1048576 "$M/bad/$t3/disks/vda.img" > "$T/part" 2>/dev/null; then
  cmp "$T/part" <(head -c 1048576 /dev/zero | tr '\0' 'c') || fail "readable part of $t3 differs"
  ok "cluster past EOF: EIO, the rest reads"
else
  ok "cluster past EOF: EIO (the whole disk refuses reads)"
fi

n=$(SKIP_CMP="$M/bad/$t3" compare_disks "$M" "$R")
[ "$n" -ge 2 ] || fail "compared only $n healthy disks"
stat "$M/good/latest/disks/vda.img" >/dev/null || fail "mount went down"
ok "$n healthy disks still equal qemu-img; mount alive"
bfs_umount "$M"
