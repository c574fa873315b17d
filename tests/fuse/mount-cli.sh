#!/bin/bash
# mount-cli.sh — the command line: --help, bad arguments, the mount.fuse3
# form, options reaching the kernel (ro,nosuid,nodev), a stale mount point
# reported with the fusermount3 hint, an unknown catalog path.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

"$BACKUPFS" mount --help | grep "fusermount3 -u" >/dev/null || fail "--help"
"$BACKUPFS" mount "$T" 2>"$T/err" && fail "one argument accepted"
grep -q "REPO and MOUNTPOINT" "$T/err" || fail "usage message: $(cat "$T/err")"
"$BACKUPFS" mount --bogus "$T" "$T" 2>/dev/null && fail "--bogus accepted"
"$BACKUPFS" mount "$T/nonexistent" "$T" 2>"$T/err" && fail "missing repo accepted"
grep -q nonexistent "$T/err" || fail "error does not name the repo: $(cat "$T/err")"
# -o values out of range or not numbers are refused, naming the key
for o in max_threads=1 max_threads= readahead_kb=-1 guest_idle=0 guest_timeout=5x; do
  "$BACKUPFS" mount -o "$o" "$T" "$T" 2>"$T/err" && fail "-o $o accepted"
  grep -q "^backupfs mount: ${o%%=*}: want " "$T/err" ||
    fail "-o $o: $(cat "$T/err")"
done
ok "usage errors"

R=$T/repo
mkdir -p "$R/vm1/2026-01-01T000000Z"
qemu-img create -q -f qcow2 "$R/vm1/2026-01-01T000000Z/vda.qcow2" 1M

# mount.fuse3 form, with fstab-only words that must be ignored
M=$T/mnt
mkdir -p "$M"
MOUNTS="$MOUNTS $M"
"$BACKUPFS" "$R" "$M" -o "rw,noauto,nofail,_netdev,x-systemd.automount,catalog=$T/c.db" ||
  fail "mount.fuse3 form failed"
wait_for mountpoint -q "$M" || fail "not mounted"
opts=$(findmnt -n -o OPTIONS "$M")
for o in ro nosuid nodev; do
  echo ",$opts," | grep -q ",$o," || fail "mount options '$opts' lack $o"
done
[ "$(findmnt -n -o FSTYPE "$M")" = fuse.backupfs ] || fail "fstype $(findmnt -n -o FSTYPE "$M")"
[ -e "$M/vm1/latest/disks/vda.img" ] || fail "tree missing"
ok "mount.fuse3 form: $opts"

# a stale mount point: kill the daemon and its auto_unmount helper
pid=$(pgrep -n -f "^$BACKUPFS $R $M") || fail "daemon not found"
helper=$(pgrep -f "^fusermount3 .*auto_unmount.* -- $M\$" || true)
[ -n "$helper" ] && kill -9 $helper
kill -9 "$pid"
wait_for sh -c "stat -f '$M' 2>&1 | grep -q 'not connected'" || true
if stat -f "$M" 2>&1 | grep -q "not connected"; then
  "$BACKUPFS" mount -o "catalog=$T/c.db" "$R" "$M" 2>"$T/err" && fail "mounted over a stale mount"
  grep -q "fusermount3 -u" "$T/err" || fail "no fusermount3 hint: $(cat "$T/err")"
  ok "stale mount point reported: $(head -1 "$T/err")"
  fusermount3 -u "$M" || fusermount3 -uz "$M"
else
  echo "note: auto_unmount cleaned up before the stale check; skipped it"
fi
! mountpoint -q "$M" || fail "still mounted"

# through mount.fuse3 itself (what an fstab line runs), with allow_other
if MF=$(command -v mount.fuse3 || ls /sbin/mount.fuse3 2>/dev/null); then
  mkdir -p "$T/bin"
  ln -sf "$BACKUPFS" "$T/bin/backupfs"
  PATH=$T/bin:$PATH "$MF" "$R" "$M" -t backupfs \
    -o "allow_other,nofail,_netdev,catalog=$T/c.db" || fail "mount.fuse3 failed"
  wait_for mountpoint -q "$M" || fail "mount.fuse3: not mounted"
  opts=$(findmnt -n -o OPTIONS "$M")
  for o in ro allow_other default_permissions; do
    echo ",$opts," | grep -q ",$o," || fail "mount.fuse3: options '$opts' lack $o"
  done
  [ -e "$M/vm1/latest/disks/vda.img" ] || fail "mount.fuse3: tree missing"
  fusermount3 -u "$M"
  ok "mount.fuse3 -t backupfs: $opts"
fi

# foreground mode: -f stays attached until unmounted
"$BACKUPFS" mount -f -o "catalog=$T/c.db" "$R" "$M" &
fg=$!
wait_for mountpoint -q "$M" || fail "-f did not mount"
kill -0 $fg || fail "-f exited"
fusermount3 -u "$M"
wait $fg || fail "-f exited with $?"
ok "-f"
