#!/bin/bash
# concurrency.sh — 16 threads reading random ranges of 20 images for
# ${BFS_STRESS_SECONDS:-60} s against the oracle; `ls -R` of the whole tree
# while backups are added (rescans); unmount while reads are in flight;
# kill -9 of the daemon and a clean remount.
. "$SRCDIR/tests/fuse/lib.sh"
R=$T/repo M=$T/mnt
secs=${BFS_STRESS_SECONDS:-60}
pairs=()
for i in $(seq 1 10); do
  t1=2026-10-01T030000Z t2=2026-10-02T030000Z
  mkdir -p "$R/vm$i/$t1" "$R/vm$i/$t2"
  qemu-img create -q -f qcow2 -o cluster_size=$((4096 << (i % 5))) "$R/vm$i/$t1/vda.qcow2" 24M
  qemu-io -f qcow2 -c "write -P $((i + 1)) 0 6M" -c "write -c -P $((i + 50)) 8M 2M" \
    -c "write -z 1M 512k" "$R/vm$i/$t1/vda.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -F qcow2 -b "../$t1/vda.qcow2" "$R/vm$i/$t2/vda.qcow2"
  qemu-io -f qcow2 -c "write -P $((i + 100)) 3M 4M" -c "write -z 9M 64k" \
    -c "write -c -P $((i + 150)) 20M 128k" "$R/vm$i/$t2/vda.qcow2" >/dev/null
  for t in $t1 $t2; do
    oracle "$T/o-$i-$t.raw" "$R/vm$i/$t/vda.qcow2"
    pairs+=("$T/o-$i-$t.raw" "$M/vm$i/$t/disks/vda.img")
  done
done
bfs_mount "$R" "$M"
python3 "$SRCDIR/tests/hardening/stress.py" "$secs" 16 "${pairs[@]}" || fail "stress"

# ls -R during rescans: add backups while listing (files/ is pruned: each
# point in time's guest files would start an appliance)
( for j in $(seq 1 20); do
    d="$R/vm1/2026-11-$(printf %02d "$j")T000000Z"; mkdir -p "$d"
    cp "$R/vm1/2026-10-01T030000Z/vda.qcow2" "$d/vda.qcow2"; sleep 0.1
  done ) &
adder=$!
for _ in $(seq 10); do
  find "$M" -name files -prune -o -print >/dev/null 2>"$T/lserr" ||
    { grep -v 'No such file' "$T/lserr" | grep . && fail "walk: $(cat "$T/lserr")"; }
done
wait $adder
wait_for test -d "$M/vm1/2026-11-20T000000Z" || fail "added backups did not appear"
ok "ls -R during rescans"

# unmount while reads are in flight
pid=$(pgrep -f "backupfs mount.*$M" | head -1)
[ -n "$pid" ] || fail "no daemon pid"
( for _ in $(seq 200); do cat "$M/vm2/latest/disks/vda.img" >/dev/null 2>&1; done ) &
reader=$!
sleep 0.5
fusermount3 -uz "$M" || fail "lazy unmount failed"
wait $reader || true
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "daemon still running 10 s after unmount"
ok "unmount with reads in flight: daemon exited"

# kill -9 and a clean remount
bfs_mount "$R" "$M"
pid=$(pgrep -f "backupfs mount.*$M" | head -1)
kill -9 "$pid"
sleep 1
# auto_unmount cleans up; if not, the start must report the stale mount
if mountpoint -q "$M" 2>/dev/null || ! ls "$M" >/dev/null 2>&1; then
  out=$("$BACKUPFS" mount -o "catalog=$T/catalog-mnt.db" "$R" "$M" 2>&1) && fail "mounted over a stale mount point"
  echo "$out" | grep -qi 'fusermount3 -u' || fail "stale mount not reported: $out"
  fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
fi
bfs_mount "$R" "$M"
cmp "$T/o-3-2026-10-02T030000Z.raw" "$M/vm3/latest/disks/vda.img" || fail "read after remount differs"
ok "kill -9 then a clean remount"
bfs_umount "$M"
