#!/bin/bash
# repo-perms.sh — issue 10 item 4: with allow_other the tree carries the
# repository's owners and modes (write bits off), so default_permissions
# enforces what the repository enforces: a 0600 image in a 0700 VM
# directory stays unreadable for other users, root still reads it, and a
# world-readable VM stays readable.
. "$SRCDIR/tests/fuse/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to switch users"
command -v setpriv >/dev/null || skip "setpriv missing"
R=$T/repo M=$T/mnt t=2026-10-01T030000Z
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
for vm in secret public; do
  mkdir -p "$R/$vm/$t"
  qemu-img create -q -f qcow2 "$R/$vm/$t/vda.qcow2" 4M
  qemu-io -f qcow2 -c "write -P 0x53 0 1M" "$R/$vm/$t/vda.qcow2" >/dev/null
done
chmod 755 "$T" "$R"
chmod 700 "$R/secret" "$R/secret/$t"; chmod 600 "$R/secret/$t/vda.qcow2"
chmod 755 "$R/public" "$R/public/$t"; chmod 644 "$R/public/$t/vda.qcow2"
oracle "$T/o.raw" "$R/secret/$t/vda.qcow2"

bfs_mount "$R" "$M" -o allow_other
out=$(as_nobody head -c1 "$M/secret/$t/disks/vda.img" 2>&1) &&
  fail "another user read a 0600 image in a 0700 directory"
echo "$out" | grep -q "Permission denied" || fail "not EACCES: $out"
out=$(as_nobody ls "$M/secret" 2>&1) && fail "another user listed a 0700 VM directory"
echo "$out" | grep -q "Permission denied" || fail "listing: not EACCES: $out"
ok "other user: EACCES on the 0600 image and the 0700 directory"
cmp "$T/o.raw" "$M/secret/$t/disks/vda.img" || fail "root cannot read it"
as_nobody cmp -s "$T/o.raw" "$M/public/$t/disks/vda.img" 2>/dev/null ||
  as_nobody head -c1 "$M/public/$t/disks/vda.img" >/dev/null ||
  fail "another user cannot read a 0644 image"
ok "root reads the private image; others read the public one"
m() { stat -c '%a %u' "$1"; }
[ "$(m "$M/secret/$t/disks/vda.img")" = "400 0" ] || fail "image shows $(m "$M/secret/$t/disks/vda.img")"
[ "$(m "$M/secret")" = "500 0" ] || fail "VM dir shows $(m "$M/secret")"
[ "$(m "$M/secret/$t")" = "500 0" ] || fail "backup dir shows $(m "$M/secret/$t")"
[ "$(m "$M/secret/$t/backup.json")" = "400 0" ] || fail "backup.json shows $(m "$M/secret/$t/backup.json")"
[ "$(m "$M/public/$t/backup.json")" = "444 0" ] || fail "public backup.json shows $(m "$M/public/$t/backup.json")"
[ "$(m "$M/public/$t/disks/vda.img")" = "444 0" ] || fail "public image shows $(m "$M/public/$t/disks/vda.img")"
ok "modes: image 0400, dirs 0500, backup.json 0400 / public 0444"

# a chmod in the repository reaches the mount (IN_ATTRIB -> rescan)
chmod 600 "$R/public/$t/vda.qcow2"
ls "$M/public/$t" >/dev/null
wait_for sh -c "! setpriv --reuid=65534 --regid=65534 --clear-groups head -c1 '$M/public/$t/disks/vda.img'" ||
  fail "chmod 600 in the repository did not reach the mount"
ok "chmod in the repository reaches the mount"
bfs_umount "$M"
