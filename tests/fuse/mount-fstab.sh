#!/bin/bash
# mount-fstab.sh — what the system runs: an fstab line of type fuse.backupfs
# mounted by `mount -a -T FSTAB` (mount(8) → mount.fuse3 → backupfs),
# fstab-only words ignored, the log= file written; and the Type=notify handshake: a
# foreground mount sends READY=1 to $NOTIFY_SOCKET only once the mount is up.
. "$SRCDIR/tests/fuse/lib.sh"

[ "$(id -u)" = 0 ] || skip "mount -a needs root"
command -v mount.fuse3 >/dev/null || [ -x /sbin/mount.fuse3 ] || skip "mount.fuse3 is missing"
R=$T/repo
M=$T/mnt
mkdir -p "$R/vm1/2026-01-01T000000Z" "$M"
qemu-img create -q -f qcow2 "$R/vm1/2026-01-01T000000Z/vda.qcow2" 1M

# fstab_mount LINE: mount -a -T with that one line; checks the mount
fstab_mount() {
  printf '# test fstab\n%s\n' "$1" > "$T/fstab"
  MOUNTS="$MOUNTS $M"
  mount -a -T "$T/fstab" 2>"$T/err" || fail "mount -a -T ($1): $(cat "$T/err")"
  wait_for mountpoint -q "$M" || fail "mount -a: not mounted"
  [ "$(findmnt -n -o FSTYPE "$M")" = fuse.backupfs ] || fail "fstype $(findmnt -n -o FSTYPE "$M")"
  [ "$(findmnt -n -o SOURCE "$M")" = "$R" ] || fail "source $(findmnt -n -o SOURCE "$M")"
  opts=$(findmnt -n -o OPTIONS "$M")
  for o in ro allow_other default_permissions; do
    echo ",$opts," | grep -q ",$o," || fail "mount -a: options '$opts' lack $o"
  done
  [ -e "$M/vm1/latest/disks/vda.img" ] || fail "mount -a: tree missing"
  wait_for grep -q "info: mounted $R at $M" "$T/fstab.log" || fail "fstab mount did not log"
  umount "$M" || fusermount3 -u "$M"
  ! mountpoint -q "$M" || fail "still mounted"
  rm -f "$T/fstab.log"
}
OPTS="allow_other,nofail,x-systemd.requires-mounts-for=$R,x-systemd.mount-timeout=15min,catalog=$T/c.db,log=$T/fstab.log"

# mount(8) runs mount.fuse3 with PATH=/sbin:/bin:/usr/sbin:/usr/bin: the
# `fuse` type with PROGRAM#REPO names a backupfs anywhere (a /usr/local
# install, this build) ...
fstab_mount "$BACKUPFS#$R  $M  fuse  $OPTS  0 0"
ok "mount -a -T: fuse $BACKUPFS#REPO: $opts"
# ... and `fuse.backupfs` (contrib/fstab.example) needs backupfs in that PATH
if [ "$(PATH=/sbin:/bin:/usr/sbin:/usr/bin command -v backupfs)" -ef "$BACKUPFS" ]; then
  fstab_mount "$R  $M  fuse.backupfs  $OPTS  0 0"
  ok "mount -a -T: fuse.backupfs: $opts"
else
  echo "note: this build is not the backupfs in /usr/bin or /sbin; fuse.backupfs line not mounted"
fi

# Type=notify: READY=1 arrives after the mount is up
python3 - "$T/notify.sock" "$M" "$BACKUPFS" "$R" "$T/c.db" <<'PY' || fail "sd_notify handshake"
import os, socket, subprocess, sys, time
sock, mp, exe, repo, cat = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
s.settimeout(30)
env = dict(os.environ, NOTIFY_SOCKET=sock)
p = subprocess.Popen([exe, "mount", "-f", "-o", "catalog=" + cat, repo, mp], env=env)
try:
    msg = s.recv(4096).decode()
    mounted = os.path.ismount(mp)
    print("notify:", msg.replace("\n", " | "))
    assert "READY=1" in msg, msg
    assert mounted, "READY=1 before the mount was up"
    assert os.path.exists(mp + "/vm1/latest/disks/vda.img")
finally:
    subprocess.call(["fusermount3", "-u", mp])
    p.wait(timeout=30)
    msg = s.recv(4096).decode()
    assert "STOPPING=1" in msg, msg
PY
ok "Type=notify: READY=1 once mounted, STOPPING=1 at unmount"
