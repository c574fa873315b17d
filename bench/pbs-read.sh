#!/bin/bash
# pbs-read.sh — read throughput of a PBS snapshot's disk through blk/'s pbs
# driver (chunk files read, CRC-checked, zstd-decoded, SHA-256-verified),
# cold: the chunk files' page cache dropped (dd iflag=nocache) and a fresh
# chunk store; then a second snapshot of the same disk with one 4 MiB
# chunk in ten rewritten (it shares 90% of its chunks with the first),
# read through the same store, to show what chunk sharing saves.  Each
# round reads: snap1 cold, snap2 after snap1 with a cache that holds the
# disk (shared chunks come from the cache: its chunk loads are the 10%
# it does not share, its cache hits the rest), and snap2 cold alone
# (every distinct chunk loaded).
#
# usage: bench/pbs-read.sh [BUILDDIR]   (env BENCH_DIR: work dir, kept so
#        the datastore is built once; SIZE_MIB: default 1024; ROUNDS: 3)
set -euo pipefail
B=$(realpath "${1:-build}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
T="$B/tests/pve/test-pve"
W=${BENCH_DIR:-/var/tmp/bfs-bench-pbs}
SIZE=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
[ -x "$T" ] || { echo "build first: $T missing" >&2; exit 1; }
command -v zstd >/dev/null || { echo "needs zstd" >&2; exit 1; }
mkdir -p "$W"
cd "$W"
if [ ! -d ds/vm/100 ] || [ "$(cat size 2>/dev/null)" != "$SIZE-share90" ]; then
  echo "building a $SIZE MiB datastore in $W (once)..."
  rm -rf ds a.raw b.raw
  # partly compressible data (files from /usr), with holes
  truncate -s $((SIZE << 20)) a.raw
  find /usr/lib /usr/bin -type f -size +64k 2>/dev/null | sort | head -n 4000 |
    xargs cat 2>/dev/null | head -c $((SIZE * 3 / 4 << 20)) |
    dd of=a.raw conv=notrunc status=none || true
  cp --sparse=always a.raw b.raw
  for i in $(seq 0 40 $((SIZE - 1))); do       # 1 chunk in 10 for snap2
    head -c 1048576 /dev/urandom | dd of=b.raw bs=1M seek="$i" conv=notrunc status=none
  done
  python3 "$SRC/tests/pve/gen-pve.py" pbs ds --vm 100 --time 2026-01-01T00:00:00Z \
    --drive scsi0=a.raw --compress
  python3 "$SRC/tests/pve/gen-pve.py" pbs ds --vm 100 --time 2026-01-02T00:00:00Z \
    --drive scsi0=b.raw --compress
  echo "$SIZE-share90" > size
fi
S1=ds/vm/100/2026-01-01T00:00:00Z/drive-scsi0.img.fidx
S2=ds/vm/100/2026-01-02T00:00:00Z/drive-scsi0.img.fidx
drop() { find ds/.chunks -type f -exec dd if={} iflag=nocache count=0 status=none \; ; }
echo "datastore: $(du -sh ds/.chunks | cut -f1) of chunks, $(find ds/.chunks -type f | wc -l) files, 4 MiB chunks"
python3 - "$S1" "$S2" <<'PY'
import sys
def digests(p):
    b = open(p, "rb").read()[4096:]
    return [b[i:i + 32] for i in range(0, len(b), 32)]
a, b = digests(sys.argv[1]), digests(sys.argv[2])
same = sum(x == y for x, y in zip(a, b))
print(f"snap2: {len(b)} chunks, {same} ({100 * same / len(b):.0f}%) the same as snap1's, "
      f"{len(set(b))} distinct, {len(set(b) - set(a))} not in snap1")
PY
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  drop
  "$T" bench-read ds $((SIZE + 64)) "$S1" "$S2" | sed 's/^/  snap1 then snap2, shared cache: /'
  drop
  "$T" bench-read ds 64 "$S2" | sed 's/^/  snap2 alone, cold:            /'
done
# through the mount (layout-pbs.c + the disk service's shared chunk store):
# snap1's disk, cold, then snap2's after it (shared chunks from the store)
BFS=$B/backupfs
if [ -x "$BFS" ] && [ -c /dev/fuse ]; then
  M=$W/mnt
  mkdir -p "$M"
  rm -f "$W"/mount-cat.db*
  "$BFS" mount -o "catalog=$W/mount-cat.db" "$W/ds" "$M"
  trap 'fusermount3 -u "$M" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do mountpoint -q "$M" && break; sleep 0.1; done
  rd() { local t0 t1; t0=$(date +%s.%N); dd if="$1" of=/dev/null bs=4M status=none
         t1=$(date +%s.%N); echo "$SIZE / ($t1 - $t0)" | bc -l; }
  drop
  printf '  mount: snap1 cold %.0f MiB/s, ' "$(rd "$M/100/2026-01-01T000000Z/disks/scsi0.img")"
  printf 'snap2 after snap1 %.0f MiB/s\n' "$(rd "$M/100/2026-01-02T000000Z/disks/scsi0.img")"
  fusermount3 -u "$M"
fi
# vzdump: the same disk as a .vma, through the mount: the extent index
# built on open (first-open: the index cache emptied after the scan) vs
# loaded from <catalog>.idx/ (cached-open, a remount); cold page cache
# where we may drop it (root), else warm
if [ -x "$BFS" ] && [ -c /dev/fuse ]; then
  V=$W/vma
  if [ ! -f "$V/dump/vzdump-qemu-100-2026_01_01-00_00_00.vma" ] ||
     [ "$(cat "$V/size" 2>/dev/null)" != "$SIZE" ]; then
    rm -rf "$V"; mkdir -p "$V/dump"
    python3 "$SRC/tests/pve/gen-pve.py" vma "$V/dump/vzdump-qemu-100-2026_01_01-00_00_00.vma" \
      --dev drive-scsi0=a.raw
    echo "$SIZE" > "$V/size"
  fi
  cold() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
  mnt() { rm -rf "$W"/vma-cat.db "$W"/vma-cat.db-* "$W"/vma-cat.db.idx; "$BFS" mount -o "catalog=$W/vma-cat.db" "$V" "$M"
          for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done; }
  open1() { local t0 t1; t0=$(date +%s.%N)
            dd if="$M/100/2026-01-01T000000Z/disks/scsi0.img" of=/dev/null bs=4k count=1 status=none
            t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
  for r in $(seq "$ROUNDS"); do
    t0=$(date +%s.%N); mnt; t1=$(date +%s.%N)
    rm -rf "$W/vma-cat.db.idx"; cold; first=$(open1); fusermount3 -u "$M"
    # remount over the same catalog: the scan finds nothing changed and
    # the open loads the cached index (the scan does not rebuild it)
    "$BFS" mount -o "catalog=$W/vma-cat.db" "$V" "$M"
    for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
    cold; cached=$(open1); fusermount3 -u "$M"
    printf '  vma %d MiB: mount+scan+index %.2f s, first-open %.3f s, cached-open %.3f s (%.0fx)\n' \
      "$SIZE" "$(echo "$t1 - $t0" | bc -l)" "$first" "$cached" "$(echo "$first / $cached" | bc -l)"
  done
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
