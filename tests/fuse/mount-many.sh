#!/bin/bash
# mount-many.sh — many disks read one after the other: every read is right,
# and the daemon closes idle chains (its open descriptors stay bounded
# instead of one per layer of every disk ever opened).
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

R=$T/repo
M=$T/mnt
N=90
name() { printf '2026-03-01T%02d%02d00Z' $(($1 / 60)) $(($1 % 60)); }
for i in $(seq 1 $N); do
  d=$R/vm/$(name $i)
  mkdir -p "$d"
  qemu-img create -q -f qcow2 "$d/vda.qcow2" 1M
  qio -c "write -P $i 0 64k" "$d/vda.qcow2"
done
bfs_mount "$R" "$M"
pid=$(pgrep -n -f "^$BACKUPFS mount -o catalog=$T/catalog-mnt.db") || fail "daemon not found"
for i in $(seq 1 $N); do
  od -An -tu1 -N1 "$M/vm/$(name $i)/disks/vda.img" | grep -qw "$i" ||
    fail "disk $i reads wrong"
done
fds=$(ls /proc/$pid/fd | wc -l)
[ "$fds" -lt $((N - 10)) ] || fail "$fds descriptors open after reading $N disks"
ok "$N disks read; the daemon holds $fds descriptors"
# a closed chain reopens (drop the page cache so the read reaches us)
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
cmp <(head -c 65536 "$M/vm/$(name 1)/disks/vda.img") <(head -c 65536 /dev/zero | tr '\0' '\001') ||
  fail "reopened chain reads wrong"
ok "an idle-closed chain reopens"
bfs_umount "$M"
