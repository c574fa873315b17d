#!/bin/bash
# mount-generic.sh — mount a generic-layout repository and check the tree,
# every disk against qemu-img, backup.json, EROFS, SEEK_DATA/SEEK_HOLE,
# sparse copies and 8 threads of random reads.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
CHECK="python3 $SRCDIR/tests/fuse/fusecheck.py"

R=$T/repo
M=$T/mnt
mk_generic "$R"
bfs_mount "$R" "$M"

[ "$(ls "$M" | tr '\n' ' ')" = "db01 web01 " ] || fail "root lists: $(ls "$M")"
ok "root lists db01 web01"

latest=$(readlink "$M/web01/latest")
newest=$(ls "$M/web01" | grep -v '^latest$' | sort | tail -1)
[ -n "$latest" ] && [ "$latest" = "$newest" ] || fail "latest -> '$latest', newest '$newest'"
[ "$(ls "$M/web01" | grep -vc '^latest$')" = 3 ] || fail "web01 has $(ls "$M/web01")"
[ -f "$M/web01/latest/backup.json" ] || fail "latest/backup.json"
ok "latest -> $latest"

B=$M/web01/$latest
[ "$(ls "$B" | tr '\n' ' ')" != "" ] || fail "empty backup dir"
ls "$B/disks" | grep -qx root.img || fail "disks: $(ls "$B/disks")"
ls "$B/disks" | grep -qx data.img || fail "disks: $(ls "$B/disks")"
[ "$(stat -c %a "$B")" = 555 ] || fail "backup dir mode $(stat -c %a "$B")"
[ "$(stat -c %a "$B/disks/root.img")" = 444 ] || fail "disk mode"

# backup.json
J=$B/backup.json
[ "$(jget "$J" "j['vm']")" = web01 ] || fail "vm"
[ "$(jget "$J" "j['source']")" = generic ] || fail "source: $(jget "$J" "j['source']")"
[ "$(jget "$J" "j['status']")" = ok ] || fail "status"
jget "$J" "j['time']" | grep -q '^2026-10-03T03:00:00' || fail "time: $(jget "$J" "j['time']")"
root_i=$(jget "$J" "[d['name'] for d in j['disks']].index('root')")
D="j['disks'][$root_i]"
[ "$(jget "$J" "len($D['chain'])")" = 3 ] || fail "chain: $(jget "$J" "$D['chain']")"
[ "$(jget "$J" "$D['chain'][0] == $D['image']")" = True ] || fail "chain[0] != image"
[ "$(jget "$J" "$D['image']")" = "web01/$latest/root.qcow2" ] || fail "image: $(jget "$J" "$D['image']")"
[ "$(jget "$J" "$D['format']")" = qcow2 ] || fail "format"
[ "$(jget "$J" "$D['status']")" = ok ] || fail "disk status"
for k in virtual_size allocated compression; do
  jget "$J" "$D['$k']" >/dev/null || fail "no $k"
done
[ "$(jget "$J" "$D['virtual_size']")" = "$(stat -c %s "$B/disks/root.img")" ] ||
  fail "st_size != virtual_size"
[ "$(stat -c %s "$B/disks/root.img")" = $((64 << 20)) ] || fail "root.img size"
[ "$(stat -c %b "$B/disks/root.img")" -gt 0 ] || fail "st_blocks 0"
ok "backup.json fields"

n=$(compare_disks "$M" "$R")
[ "$n" = 5 ] || fail "compared $n disks, want 5"
ok "5 disks equal their qemu-img convert (sha256)"

# SEEK_DATA / SEEK_HOLE against the image core's extent map
for img in "web01/$latest/root.qcow2:$B/disks/root.img" \
           "db01/2026-10-01T040000Z/disk0.qcow2:$M/db01/latest/disks/disk0.img"; do
  "$BACKUPFS" image map "$R/${img%%:*}" > "$T/map"
  $CHECK seek "${img#*:}" "$T/map"
done
ok "SEEK_DATA/SEEK_HOLE"

# sparse copies: cp --sparse=always and qemu-img convert through the mount
oracle "$T/root.raw" "$R/web01/$latest/root.qcow2"
cp --sparse=always "$B/disks/root.img" "$T/copy.raw"
cmp "$T/copy.raw" "$T/root.raw" || fail "cp copy differs"
blocks=$(stat -c %b "$T/copy.raw")
[ $((blocks * 512)) -lt $((32 << 20)) ] || fail "cp copy not sparse ($blocks blocks)"
qemu-img convert -f raw -O raw "$B/disks/root.img" "$T/conv.raw"
cmp "$T/conv.raw" "$T/root.raw" || fail "qemu-img convert through the mount differs"
rm -f "$T/copy.raw" "$T/conv.raw"
ok "cp --sparse=always ($((blocks / 2)) KiB allocated of 64 MiB) and qemu-img convert"

# read-only everywhere
$CHECK erofs "$B" "$B/disks/root.img"
$CHECK erofs "$M/web01" "$B/backup.json"
touch "$B/new" 2>"$T/err" && fail "touch succeeded"
grep -q "Read-only file system" "$T/err" || fail "touch: $(cat "$T/err")"
(echo x > "$B/disks/root.img") 2>"$T/err" && fail "echo > succeeded"
grep -q "Read-only file system" "$T/err" || fail "echo >: $(cat "$T/err")"
mkdir "$M/x" 2>/dev/null && fail "mkdir succeeded"
rm -f "$B/backup.json" 2>/dev/null && fail "rm succeeded"
ok "EROFS"

# 8 threads of random reads over several images at once
pairs="$T/root.raw $B/disks/root.img"
for d in data:web01/$latest/data.raw disk0:db01/2026-10-01T040000Z/disk0.qcow2 \
         r1:web01/2026-10-01T030000Z/root.qcow2; do
  oracle "$T/${d%%:*}.raw" "$R/${d#*:}"
done
pairs="$pairs $T/data.raw $B/disks/data.img $T/disk0.raw $M/db01/latest/disks/disk0.img"
pairs="$pairs $T/r1.raw $M/web01/2026-10-01T030000Z/disks/root.img"
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
$CHECK threads 8 $pairs
ok "8 threads"

bfs_umount "$M"
mountpoint -q "$M" && fail "still mounted"
ok "unmounted"
