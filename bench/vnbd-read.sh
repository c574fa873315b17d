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
set -euo pipefail
BUILD=${1:-$(dirname "$0")/../build}; BUILD=$(cd "$BUILD" && pwd)
SIZE=${2:-1024}
export SRCDIR=$(cd "$(dirname "$0")/.." && pwd) BUILDDIR=$BUILD
export BACKUPFS=$BUILD/backupfs
READ=$BUILD/tests/vnbd/vnbd-read
[ -x "$READ" ] || { echo "build first: ninja -C $BUILD"; exit 77; }
. "$SRCDIR/tests/recovery/lib.sh"
. "$SRCDIR/tests/lib/vm.sh"
set +e; set -uo pipefail
for p in virtnbdbackup virtnbdrestore; do
  command -v $p >/dev/null || skip "$p not installed (contrib/install-deps.sh)"
done
vm_prereqs
DOM=bfs-vnbd-bench-$$
VM_DOMS=$DOM
{ vm_init_head; cat <<'G'
echo BFS-GUEST-IDLE
n=0
while :; do
  n=$((n + 1))
  dd if=/dev/urandom of=/dev/vda bs=1M count=4 seek=$(( (n * 37) % 200 )) conv=notrunc 2>/dev/null
  sync
  echo "BFS-ROUND $n"
  sleep 2
done
G
} > "$T/init"
vm_guest "$T/init"
/usr/bin/python3 - "$T/base.raw" "$SIZE" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(mib << 20)
    for i in range(0, mib, 2):          # every other MiB: random
        f.seek(i << 20)
        f.write(os.urandom(1 << 20))
PY
qemu-img convert -O qcow2 "$T/base.raw" "$T/disk.qcow2"
rm -f "$T/base.raw"
vm_domain_xml "$DOM" "$T/disk.qcow2" qcow2 > "$T/dom.xml"
trap 'vm_stop; rc_cleanup' EXIT INT TERM
vm_libvirtd_start
virsh define "$T/dom.xml" > /dev/null || fail "virsh define"
virsh start "$DOM" > "$T/start.out" 2>&1 || skip "a VM cannot start here: $(cat "$T/start.out")"
vm_wait_console "BFS-ROUND 1" 300 || fail "guest did not come up"

cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1 || fail "$*"; t1=$(date +%s.%N)
         echo "$t1 - $t0" | bc -l; }
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
  cold; ours=$(secs "$READ" "$T/ours.raw" "${chain[@]}")
  rm -f "$T/ours.raw"
  rm -rf "$T/rs"; cold
  theirs=$(secs virtnbdrestore -U "$LIBVIRT_DEFAULT_URI" -i "$B" -o "$T/rs" --until virtnbdbackup.2)
  rm -rf "$T/rs"
  printf '%-8s disk %d MiB, streams %d MiB: vnbd-read %.2f s, virtnbdrestore %.2f s, ratio %.1fx\n' \
    "$mode" "$SIZE" "$stored" "$ours" "$theirs" "$(echo "$theirs / $ours" | bc -l)"
  # through the mount (layout-vnbd.c): the first mount scans and indexes
  # every stream into <catalog>.idx/; a disk open then loads the cached
  # index.  first-open: the index cache emptied after the scan, so the
  # open parses the three streams; cached-open: the blobs are there.
  M=$T/mnt-$mode
  cold; t_scan=$(secs bfs_mount "$B" "$M")
  last=$(ls -d "$M"/*/*/ | tail -1)
  rm -rf "$T/catalog-mnt-$mode.db.idx"
  cold; t_first=$(secs dd if="$last/disks/vda.img" of=/dev/null bs=4k count=1)
  cold; t_read=$(secs cp "$last/disks/vda.img" "$T/m.raw")
  rm -f "$T/m.raw"; bfs_umount "$M"
  cold; t_rescan=$(secs bfs_mount "$B" "$M")
  last=$(ls -d "$M"/*/*/ | tail -1)
  cold; t_cached=$(secs dd if="$last/disks/vda.img" of=/dev/null bs=4k count=1)
  bfs_umount "$M"
  printf '%-8s mount: scan+index %.2f s, rescan %.2f s, first-open %.3f s, cached-open %.3f s, read %.2f s (%.1fx virtnbdrestore)\n' \
    "$mode" "$t_scan" "$t_rescan" "$t_first" "$t_cached" "$t_read" "$(echo "$theirs / $t_read" | bc -l)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
