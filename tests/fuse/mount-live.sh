#!/bin/bash
# mount-live.sh — backups added and removed while mounted appear and
# disappear without a remount (inotify; lookups alone must see them), and
# the kernel's cached entries for vanished ones are dropped.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

R=$T/repo
M=$T/mnt
t1=2026-09-01T010000Z t2=2026-09-02T010000Z t3=2026-09-03T010000Z
mkdir -p "$R/app/$t1" "$R/app/$t2"
for t in $t1 $t2; do
  qemu-img create -q -f qcow2 "$R/app/$t/sda.qcow2" 8M
  qio -c "write -P 0x${t:8:2} 0 1M" "$R/app/$t/sda.qcow2"
done
bfs_mount "$R" "$M"
[ "$(readlink "$M/app/latest")" = $t2 ] || fail "latest -> $(readlink "$M/app/latest")"
stat "$M/app/$t1/disks/sda.img" >/dev/null       # cache its dentries
exec 3< "$M/app/$t1/disks/sda.img"               # and keep it open

# a new backup: visible by lookup (no listing) once inotify fired
mkdir "$R/app/$t3"
qemu-img create -q -f qcow2 "$R/app/$t3/sda.qcow2" 8M
qio -c "write -P 0x42 2M 1M" "$R/app/$t3/sda.qcow2"
wait_for test -e "$M/app/$t3/disks/sda.img" || fail "$t3 did not appear"
wait_for test "$(readlink "$M/app/latest")" = $t3 || fail "latest -> $(readlink "$M/app/latest")"
oracle "$T/o.raw" "$R/app/$t3/sda.qcow2"
cmp "$M/app/latest/disks/sda.img" "$T/o.raw" || fail "new backup's disk differs"
ok "added backup appears, latest -> $t3"

# a new VM
mkdir -p "$R/newvm/$t1"
qemu-img create -q -f qcow2 "$R/newvm/$t1/vda.qcow2" 4M
wait_for test -e "$M/newvm/latest" || fail "newvm did not appear"
ls "$M" | grep -qx newvm || fail "root lists $(ls "$M")"
ok "added VM appears"

# removing a backup: gone from listings and lookups
rm -rf "${R:?}/app/$t1"
wait_for test ! -e "$M/app/$t1" || fail "$t1 still there"
ls "$M/app" | grep -qx $t1 && fail "$t1 still listed"
[ ! -e "$M/app/$t1/disks/sda.img" ] || fail "cached dentry of $t1 survived"
ok "removed backup disappears"

# the file opened before it vanished still reads (its chain stays open)
head -c 4096 <&3 | od -An -tx1 | head -1 | grep -q "${t1:8:2} ${t1:8:2}" ||
  fail "open handle of the vanished backup broke"
exec 3<&-
ok "open handle survives removal"

# remove a whole VM
rm -rf "${R:?}/newvm"
wait_for test ! -e "$M/newvm" || fail "newvm still there"
ok "removed VM disappears"
[ "$(ls "$M/app" | tr '\n' ' ')" = "$t2 $t3 latest " ] || fail "app lists $(ls "$M/app")"
bfs_umount "$M"

# without inotify: listing a VM directory rescans (rate-limited to 2 s)
M2=$T/mnt2
bfs_mount "$R" "$M2" -o noinotify
t4=2026-09-04T010000Z
mkdir "$R/app/$t4"
qemu-img create -q -f qcow2 "$R/app/$t4/sda.qcow2" 8M
sleep 2.1
ls "$M2/app" | grep -qx $t4 || fail "noinotify: $t4 not listed: $(ls "$M2/app")"
[ "$(readlink "$M2/app/latest")" = $t4 ] || fail "noinotify: latest -> $(readlink "$M2/app/latest")"
rm -rf "${R:?}/app/$t2"
sleep 2.1
ls "$M2/app" | grep -qx $t2 && fail "noinotify: $t2 still listed"
[ ! -e "$M2/app/$t2" ] || fail "noinotify: $t2 still found"
ok "noinotify: listing rescans"
bfs_umount "$M2"
