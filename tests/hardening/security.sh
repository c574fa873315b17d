#!/bin/bash
# security.sh — without allow_other other users get EACCES; with it,
# default_permissions applies; the mount is nosuid,nodev; repository files
# are opened read-only (never written: see never-written.sh).
. "$SRCDIR/tests/fuse/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to switch users"
command -v setpriv >/dev/null || skip "setpriv missing"
R=$T/repo M=$T/mnt
mkdir -p "$R/vm/2026-10-01T030000Z"
qemu-img create -q -f qcow2 "$R/vm/2026-10-01T030000Z/vda.qcow2" 4M
chmod 755 "$T"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

bfs_mount "$R" "$M"
grep " $M " /proc/mounts | grep -q nosuid || fail "mount lacks nosuid: $(grep " $M " /proc/mounts)"
grep " $M " /proc/mounts | grep -q nodev || fail "mount lacks nodev"
out=$(as_nobody ls "$M" 2>&1) && fail "another user listed the mount: $out"
echo "$out" | grep -q 'Permission denied' || fail "another user: $out"
ok "without allow_other: EACCES for other users; nosuid,nodev"
bfs_umount "$M"

grep -q '^user_allow_other' /etc/fuse.conf 2>/dev/null || [ "$(id -u)" = 0 ] || skip "allow_other not permitted"
bfs_mount "$R" "$M" -o allow_other
grep " $M " /proc/mounts | grep -q default_permissions || fail "allow_other without default_permissions"
as_nobody ls "$M/vm" >/dev/null || fail "allow_other: other user cannot list"
mode=$(stat -c %a "$M/vm/latest/disks/vda.img")
if [ $((0$mode & 4)) = 0 ]; then
  as_nobody head -c1 "$M/vm/latest/disks/vda.img" >/dev/null 2>&1 && fail "mode $mode but readable by others"
fi
as_nobody sh -c "echo x > '$M/vm/latest/disks/vda.img'" 2>/dev/null && fail "other user wrote"
ok "allow_other: default_permissions applies (disk mode $mode)"
bfs_umount "$M"
