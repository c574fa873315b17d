#!/bin/bash
# mount-writable.sh — -o writable: writes to disks/<disk>.img (aligned,
# unaligned, across blocks and past the end) land in a scratch directory;
# the repository's files never change; reads merge scratch over the backup;
# SEEK_DATA/SEEK_HOLE cover both; the scratch survives a remount; all other
# changes stay EROFS; a scratch directory inside the repository is refused.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
CHECK="python3 $SRCDIR/tests/fuse/fusecheck.py"

R=$T/repo
M=$T/mnt
S=$T/scratch
t1=2026-05-01T000000Z t2=2026-05-02T000000Z
mkdir -p "$R/vm/$t1" "$R/vm/$t2"
qemu-img create -q -f qcow2 "$R/vm/$t1/vda.qcow2" 16M
qio -c "write -P 0x41 0 4M" -c "write -P 0x42 8M 1M" "$R/vm/$t1/vda.qcow2"
qemu-img create -q -f qcow2 -F qcow2 -b "../$t1/vda.qcow2" "$R/vm/$t2/vda.qcow2"
qio -c "write -P 0x43 1M 64k" "$R/vm/$t2/vda.qcow2"
before=$(cat "$R"/vm/*/vda.qcow2 | sha256sum)

mkdir -p "$M"
"$BACKUPFS" mount -o "writable,scratch=$R/scratch,catalog=$T/c.db" "$R" "$M" 2>"$T/err" &&
  { fusermount3 -u "$M"; fail "scratch inside the repository accepted"; }
grep -q "inside the repository" "$T/err" || fail "error: $(cat "$T/err")"
"$BACKUPFS" mount -o "writable,catalog=$T/c.db" "$R" "$M" 2>/dev/null &&
  { fusermount3 -u "$M"; fail "writable without scratch accepted"; }
ok "scratch inside the repository / missing: refused"

bfs_mount "$R" "$M" -o writable --scratch "$S"
D=$M/vm/latest/disks/vda.img
[ "$(stat -c %a "$D")" = 644 ] || fail "mode $(stat -c %a "$D")"
oracle "$T/want.raw" "$R/vm/$t2/vda.qcow2"
# the same writes on the oracle and through the mount
python3 - "$D" "$T/want.raw" <<'PY'
import os, sys
writes = [(0, b"A" * 4096), (100, b"hello"), (5000, b"x" * 10000),
          (4 * 1048576 - 3, b"edge!!"), (12 * 1048576, b"\x00" * 8192),
          (16 * 1048576 - 3, b"end")]
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDWR)
    for off, data in writes:
        assert os.pwrite(fd, data, off) == len(data), path
    os.fsync(fd)
    os.close(fd)
PY
python3 -c 'import os,sys; fd=os.open(sys.argv[1],os.O_WRONLY); os.pwrite(fd,b"past",16<<20)' "$D" 2>/dev/null &&
  fail "write past the end accepted"
cmp "$D" "$T/want.raw" || fail "read back differs from the oracle with the same writes"
[ "$(cat "$R"/vm/*/vda.qcow2 | sha256sum)" = "$before" ] || fail "the repository changed"
[ -f "$S/vm/$t2/vda.img" ] || fail "no scratch file: $(find "$S")"
ok "writes land in $S/vm/$t2/vda.img; repository unchanged"

# the older backup is untouched by writes to the newer one
oracle "$T/t1.raw" "$R/vm/$t1/vda.qcow2"
cmp "$M/vm/$t1/disks/vda.img" "$T/t1.raw" || fail "$t1 changed"

# SEEK_DATA/SEEK_HOLE: nothing but zeros outside the data ranges, and the
# written range at 12 MiB (zeros, but written) counts as data
$CHECK holes "$D" "$T/want.raw" $((12 << 20)) $(((16 << 20) - 1)) >/dev/null ||
  fail "SEEK_DATA/SEEK_HOLE"
ok "SEEK_DATA/SEEK_HOLE over scratch and backup"

$CHECK erofs "$M/vm/$t2" "$M/vm/$t2/backup.json"
truncate -s 1M "$D" 2>/dev/null && fail "truncate of a disk accepted"
ok "everything else stays read-only"

bfs_umount "$M"
bfs_mount "$R" "$M" -o "writable,scratch=$S"
cmp "$D" "$T/want.raw" || fail "scratch lost across remount"
bfs_umount "$M"
bfs_mount "$R" "$M"
cmp "$M/vm/latest/disks/vda.img" <(qemu-img convert -O raw "$R/vm/$t2/vda.qcow2" "$T/o2.raw"; cat "$T/o2.raw") ||
  fail "read-only mount shows scratch data"
ok "scratch survives a remount; read-only mounts ignore it"
bfs_umount "$M"
