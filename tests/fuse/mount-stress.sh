#!/bin/bash
# mount-stress.sh — 15 s of backups appearing and vanishing (inotify
# rescans, invalidations, nodes freed) while readers list the tree (not
# files/, which would start appliances) and read
# every disk; the daemon must stay up and the stable backups read right.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

R=$T/repo
M=$T/mnt
for i in 1 2 3; do
  d=$R/vm/2026-01-0${i}T000000Z
  mkdir -p "$d"
  qemu-img create -q -f qcow2 "$d/vda.qcow2" 16M
  qio -c "write -P 0x1$i 0 4M" "$d/vda.qcow2"
done
oracle "$T/o1.raw" "$R/vm/2026-01-01T000000Z/vda.qcow2"
bfs_mount "$R" "$M"
pid=$(pgrep -n -f "^$BACKUPFS mount -o catalog=$T/catalog-mnt.db") || fail "daemon not found"

end=$((SECONDS + 15))
(
  while [ $SECONDS -lt $end ]; do
    for i in 4 5 6 7; do
      d=$R/vm/2026-01-0${i}T000000Z
      mkdir -p "$d"
      qemu-img create -q -f qcow2 -F qcow2 -b ../2026-01-03T000000Z/vda.qcow2 "$d/vda.qcow2"
      sleep 0.2
    done
    rm -rf "$R"/vm/2026-01-0[4-7]T000000Z
    sleep 0.2
  done
) &
writer=$!
readers=""
for r in 1 2 3 4; do
  (
    while [ $SECONDS -lt $end ]; do
      for f in "$M"/vm/*/disks/vda.img; do cat "$f" > /dev/null 2>&1 || true; done
      find "$M" -name files -prune -o -ls > /dev/null 2>&1 || true
      cat "$M/vm/latest/backup.json" > /dev/null 2>&1 || true
    done
  ) &
  readers="$readers $!"
done
wait $writer $readers
kill -0 "$pid" || fail "the daemon died"
wait_for sh -c "[ \$(ls '$M/vm' | wc -l) = 4 ]" || fail "after the churn: $(ls "$M/vm")"
cmp "$M/vm/2026-01-01T000000Z/disks/vda.img" "$T/o1.raw" || fail "stable backup reads wrong"
[ "$(readlink "$M/vm/latest")" = 2026-01-03T000000Z ] || fail "latest -> $(readlink "$M/vm/latest")"
ok "15 s of churn under 4 readers: daemon up, tree settled, data right"
bfs_umount "$M"
