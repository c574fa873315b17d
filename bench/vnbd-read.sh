#!/bin/bash
# vnbd-read.sh — reading a virtnbdbackup chain (full + 2 incrementals)
# through our reader (tests/vnbd/vnbd-read: blk/vnbd*, flat raw to a file)
# against Debian's `virtnbdrestore --until virtnbdbackup.2` to a file, plain
# and --compress, with a cold page cache before each run (drop_caches).
# The streams come from a running TCG VM under a libvirtd the script starts
# (tests/lib/vm.sh); the disk has SIZE MiB, half of it random data.
# Prints wall seconds of each and the ratio.  Not part of meson test.
#
# usage: bench/vnbd-read.sh [BUILDDIR] [SIZE_MiB]   (root; default 1024)
#        NO_VM=1 bench/vnbd-read.sh ...: generated streams, no VM, no root
set -euo pipefail
BUILD=${1:-$(dirname "$0")/../build}; BUILD=$(cd "$BUILD" && pwd)
SIZE=${2:-1024}
export SRCDIR=$(cd "$(dirname "$0")/.." && pwd) BUILDDIR=$BUILD
export BACKUPFS=$BUILD/backupfs
READ=$BUILD/tests/vnbd/vnbd-read
[ -x "$READ" ] || { echo "build first: ninja -C $BUILD"; exit 77; }
. "$SRCDIR/tests/recovery/lib.sh"
. "$SRCDIR/tests/lib/vm.sh"
. "$SRCDIR/bench/lib.sh"
set +e; set -uo pipefail
secs() { bench_secs "$@" 2>/dev/null || fail "$*"; }
if [ "${NO_VM:-0}" = 1 ]; then
  # without a VM: a full + 2 incrementals written by tests/vnbd/gen-vnbd.py
  # (virtnbdbackup 1.9's uncompressed stream format) from SIZE MiB of half
  # random data; the mount's scan+index, first-open (index cache emptied)
  # vs cached-open (remount), and a mount read vs vnbd-read into a file
  G=$SRCDIR/tests/vnbd/gen-vnbd.py
  bench_half_random "$T/r0.raw" "$SIZE"
  cp "$T/r0.raw" "$T/r1.raw"; dd if=/dev/urandom of="$T/r1.raw" bs=1M count=16 seek=3 conv=notrunc status=none
  cp "$T/r1.raw" "$T/r2.raw"; dd if=/dev/urandom of="$T/r2.raw" bs=1M count=16 seek=40 conv=notrunc status=none
  B=$T/repo/bench
  python3 "$G" full "$B" bench vda="$T/r0.raw"
  python3 "$G" inc "$B" bench 1 vda="$T/r0.raw:$T/r1.raw" --time 1790003600
  python3 "$G" inc "$B" bench 2 vda="$T/r1.raw:$T/r2.raw" --time 1790007200
  rm -f "$T/r0.raw" "$T/r1.raw"
  chain=("$B/vda.full.data" "$B/vda.inc.virtnbdbackup.1.data" "$B/vda.inc.virtnbdbackup.2.data")
  bench_cold; ours=$(secs "$READ" "$T/ours.raw" "${chain[@]}"); rm -f "$T/ours.raw"
  M=$T/mnt
  bench_cold; t_scan=$(secs bfs_mount "$T/repo" "$M")
  last=$M/bench/2026-09-21T161320Z
  rm -rf "$T/catalog-mnt.db.idx"
  bench_cold; t_first=$(secs dd if="$last/disks/vda.img" of=/dev/null bs=4k count=1)
  bench_cold; t_read=$(secs cp "$last/disks/vda.img" "$T/m.raw")
  cmp "$T/m.raw" "$T/r2.raw" || fail "mount read differs"
  rm -f "$T/m.raw"; bfs_umount "$M"
  bench_cold; t_rescan=$(secs bfs_mount "$T/repo" "$M")
  bench_cold; t_cached=$(secs dd if="$last/disks/vda.img" of=/dev/null bs=4k count=1)
  bfs_umount "$M"
  printf 'no-vm disk %d MiB: vnbd-read %.2f s; mount: scan+index %.2f s, rescan %.2f s, first-open %.3f s, cached-open %.3f s, read %.2f s\n' \
    "$SIZE" "$ours" "$t_scan" "$t_rescan" "$t_first" "$t_cached" "$t_read"
  echo "load average: $(bench_load)"
  exit 0
fi
for p in virtnbdbackup virtnbdrestore; do
  command -v $p >/dev/null || skip "$p not installed (contrib/install-deps.sh)"
done
vm_prereqs
DOM=bfs-vnbd-bench-$$
VM_DOMS=$DOM
vm_writer_guest 1M 4 200 2
bench_half_random "$T/base.raw" "$SIZE"
qemu-img convert -O qcow2 "$T/base.raw" "$T/disk.qcow2"
rm -f "$T/base.raw"
vm_run "$DOM" "$T/disk.qcow2" qcow2

for mode in plain compress; do
  B=$T/bk-$mode args=()
  [ $mode = compress ] && args=(--compress)
  for level in full inc inc; do
    sleep 5
    virtnbdbackup -U "$LIBVIRT_DEFAULT_URI" -d "$DOM" -l $level -o "$B" "${args[@]}" \
      > "$T/backup.log" 2>&1 || fail "virtnbdbackup: $(tail -3 "$T/backup.log")"
  done
  chain=("$B/vda.full.data" "$B/vda.inc.virtnbdbackup.1.data" "$B/vda.inc.virtnbdbackup.2.data")
  stored=$(du -cm "${chain[@]}" | tail -1 | cut -f1)
  bench_cold; ours=$(secs "$READ" "$T/ours.raw" "${chain[@]}")
  rm -f "$T/ours.raw"
  rm -rf "$T/rs"; bench_cold
  theirs=$(secs virtnbdrestore -U "$LIBVIRT_DEFAULT_URI" -i "$B" -o "$T/rs" --until virtnbdbackup.2)
  rm -rf "$T/rs"
  printf '%-8s disk %d MiB, streams %d MiB: vnbd-read %.2f s, virtnbdrestore %.2f s, ratio %.1fx\n' \
    "$mode" "$SIZE" "$stored" "$ours" "$theirs" "$(echo "$theirs / $ours" | bc -l)"
  # through the mount (layout-vnbd.c): the first mount scans and indexes
  # every stream into <catalog>.idx/; a disk open then loads the cached
  # index.  first-open: the index cache emptied after the scan, so the
  # open parses the three streams; cached-open: the blobs are there.
  M=$T/mnt-$mode
  bench_cold; t_scan=$(secs bfs_mount "$B" "$M")
  last=$(ls -d "$M"/*/*/ | tail -1)
  rm -rf "$T/catalog-mnt-$mode.db.idx"
  bench_cold; t_first=$(secs dd if="$last/disks/vda.img" of=/dev/null bs=4k count=1)
  bench_cold; t_read=$(secs cp "$last/disks/vda.img" "$T/m.raw")
  rm -f "$T/m.raw"; bfs_umount "$M"
  bench_cold; t_rescan=$(secs bfs_mount "$B" "$M")
  last=$(ls -d "$M"/*/*/ | tail -1)
  bench_cold; t_cached=$(secs dd if="$last/disks/vda.img" of=/dev/null bs=4k count=1)
  bfs_umount "$M"
  printf '%-8s mount: scan+index %.2f s, rescan %.2f s, first-open %.3f s, cached-open %.3f s, read %.2f s (%.1fx virtnbdrestore)\n' \
    "$mode" "$t_scan" "$t_rescan" "$t_first" "$t_cached" "$t_read" "$(echo "$theirs / $t_read" | bc -l)"
done
echo "load average: $(bench_load)"
