#!/bin/bash
# changed-under-mount.sh — images truncated or replaced while mounted and
# being read: reads fail with EIO (never zeros, never a crash), the rest of
# the tree keeps working, and after the rescan the backup says why; once the
# image is put back, the backup reads exactly again.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
CHECK="python3 $SRCDIR/tests/fuse/fusecheck.py"
R=$T/repo M=$T/mnt
t1=2026-10-01T030000Z t2=2026-10-02T030000Z
mk_pairs "$R" 64M "0 20M" "30M 20M" a b
# served ORACLE: after the rescans its lookups start, a/t2 reads as ORACLE
served() {
  for _ in $(seq 50); do
    ls "$M/a" "$M/a/$t2" >/dev/null 2>&1
    cmp -s "$1" "$M/a/$t2/disks/vda.img" && return 0
    sleep 0.2
  done
  return 1
}
cp "$R/a/$t2/vda.qcow2" "$T/saved.qcow2"
oracle "$T/o.raw" "$R/a/$t2/vda.qcow2"

bfs_mount "$R" "$M"
cmp "$T/o.raw" "$M/a/$t2/disks/vda.img" || fail "initial read differs"
# keep a descriptor open across the change, then cut the file short
exec 7<"$M/a/$t2/disks/vda.img"
truncate -s 1M "$R/a/$t2/vda.qcow2"
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
$CHECK eio "$M/a/$t2/disks/vda.img" $((40 << 20)) 65536 || fail "truncated image: read did not fail with EIO"
exec 7<&-
cmp "$T/o.raw" "$M/b/$t2/disks/vda.img" || fail "the other VM stopped reading correctly"
ok "truncated under a mount: EIO, other VMs unaffected"

# a rescan does not turn the bad data into zeros: still EIO
ls "$M/a" "$M/a/$t2" >/dev/null; sleep 1
$CHECK eio "$M/a/$t2/disks/vda.img" $((40 << 20)) 65536 || fail "after rescan: no EIO"
[ -f "$M/a/$t2/backup.json" ] || fail "backup dir gone after truncation"
ok "after rescan: still EIO, backup still listed"

# replaced by a different, valid image: new content is served, not the old cached map
qemu-img create -q -f qcow2 "$T/new.qcow2" 64M
qemu-io -f qcow2 -c "write -P 0x77 0 64M" "$T/new.qcow2" >/dev/null
cp "$T/new.qcow2" "$R/a/$t2/vda.qcow2.new" && mv "$R/a/$t2/vda.qcow2.new" "$R/a/$t2/vda.qcow2"
oracle "$T/o2.raw" "$R/a/$t2/vda.qcow2"
served "$T/o2.raw" || fail "replaced image not served after rescan"
ok "replaced image served after rescan"

# put the original back: reads exactly again
cp "$T/saved.qcow2" "$R/a/$t2/vda.qcow2.new" && mv "$R/a/$t2/vda.qcow2.new" "$R/a/$t2/vda.qcow2"
served "$T/o.raw" || fail "restored image does not read exactly after rescan"
ok "recovered after the image was put back"
bfs_umount "$M"
