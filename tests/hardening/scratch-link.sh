#!/bin/bash
# scratch-link.sh — issue 10 item 6: -o writable,scratch=LINK/dir where
# LINK points into the repository is refused before anything is created;
# nothing is ever created inside the repository.
. "$SRCDIR/tests/fuse/lib.sh"
R=$T/repo M=$T/mnt t=2026-10-01T030000Z
mkdir -p "$R/vm/$t" "$M"
qemu-img create -q -f qcow2 "$R/vm/$t/vda.qcow2" 4M
ln -s "$R/vm" "$T/link"
ln -s "$R" "$T/rlink"
before=$(find "$R" | sort)
for s in "$T/link/scratch" "$T/link/$t/scratch" "$T/rlink" "$T/rlink/new"; do
  rc=0; out=$("$BACKUPFS" mount -f -o "catalog=$T/c.db,writable,scratch=$s" "$R" "$M" 2>&1) || rc=$?
  mountpoint -q "$M" && { fusermount3 -u "$M"; fail "scratch=$s: mounted"; }
  [ $rc != 0 ] || fail "scratch=$s accepted"
  echo "$out" | grep -q "inside the repository" || fail "scratch=$s: $out"
  [ "$(find "$R" | sort)" = "$before" ] || fail "scratch=$s: created in the repository: $(find "$R" -newer "$R/vm/$t/vda.qcow2")"
done
ok "scratch through a symlink into the repository: refused, nothing created"
# a scratch outside still works
bfs_mount "$R" "$M" -o "writable,scratch=$T/scr"
[ -d "$T/scr" ] || fail "scratch outside the repository not created"
bfs_umount "$M"
ok "a scratch directory outside the repository is created and used"
