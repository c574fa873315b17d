#!/bin/bash
# restore-disk.sh — backupfs restore disk --repo vs qemu-img convert -O raw
# (the peer) on the same two-layer chain, both writing a sparse raw file.
# Also the mounted path (restore disk BACKUP_DIR vs cp --sparse=always of
# the mounted disks/<disk>.img) when the mount works.  Caches dropped
# before each run, ROUNDS (default 3) alternating rounds, medians; "speed"
# is the peer's time over ours (> 1: backupfs is faster).  As root
# (BENCH_RT=1, the default then) every run is under `chrt -r 10`, as in
# image-read.sh, so a busy machine's scheduler weighs less; BENCH_RT=0 runs
# them as ordinary processes.  Not part of meson test.
#   usage: bench/restore-disk.sh [BUILD_DIR] [DATA_MIB]
set -euo pipefail
B=$(realpath "${1:-build}")/backupfs
MIB=${2:-512}
T=$(mktemp -d /tmp/bfs-bench.XXXXXX)
M=$T/mnt
trap 'mountpoint -q "$M" 2>/dev/null && fusermount3 -u "$M"; rm -rf "$T"' EXIT
R=$T/repo; mkdir -p "$R/vm/2026-10-01T030000Z" "$R/vm/2026-10-02T030000Z"
base=$R/vm/2026-10-01T030000Z/vda.qcow2 top=$R/vm/2026-10-02T030000Z/vda.qcow2
head -c $((MIB * 3 / 4))M /dev/urandom > "$T/fill"
qemu-img convert -f raw -O qcow2 "$T/fill" "$base"
qemu-img resize -q "$base" 4G
rm -f "$T/fill"
qemu-img create -q -f qcow2 -F qcow2 -b ../2026-10-01T030000Z/vda.qcow2 "$top"
args=()
for i in $(seq 0 $((MIB / 4 - 1))); do
  args+=(-c "write -P $((i % 250 + 1)) $((1024 + i * 8))M 1M")
done
qemu-io -f qcow2 "${args[@]}" "$top" >/dev/null
sync

PRIO=()
[ "${BENCH_RT:-$([ "$(id -u)" = 0 ] && echo 1 || echo 0)}" = 1 ] &&
  command -v chrt >/dev/null && PRIO=(chrt -r 10)
t() { local s e; s=$(date +%s.%N); "${PRIO[@]}" "$@" >/dev/null 2>&1 || return 1; e=$(date +%s.%N); echo "$e - $s" | awk '{ split($0, a, " - "); printf "%.2f", a[1] - a[2] }'; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# "speed": the peer's time over ours (> 1: backupfs is faster)
row() { printf "%-44s %7ss %7ss %6.2fx\n" "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { print b / a }')"; }
# convert + sync + compare as one command (chrt runs programs, not functions)
SAFE="qemu-img convert -O raw '$top' '$T/peer.raw' && sync '$T/peer.raw' &&
      qemu-img compare -q '$top' '$T/peer.raw'"

ROUNDS=${ROUNDS:-3}
echo "load: $(uptime)"
echo "prio: $([ ${#PRIO[@]} -gt 0 ] && echo "rt (chrt -r 10)" || echo normal)"
printf "%-44s %8s %8s %7s\n" "restore disk, $MIB MiB data, 4 GiB virtual" backupfs peer speed
O=() C=() S=()
for r in $(seq 1 "$ROUNDS"); do
  rm -f "$T/ours.raw" "$T/peer.raw"
  drop; o=$(t "$B" restore disk --repo "$R" --catalog "$T/c.db" vm@latest vda "$T/ours.raw") ||
    { echo "restore disk failed"; exit 1; }
  drop; c=$(t qemu-img convert -O raw "$top" "$T/peer.raw")
  cmp "$T/ours.raw" "$T/peer.raw" || { echo "results differ!"; exit 1; }
  rm -f "$T/peer.raw"
  drop; s=$(t bash -c "$SAFE")
  printf "  round %d: backupfs %ss, convert %ss, convert+sync+compare %ss\n" "$r" "$o" "$c" "$s"
  O+=("$o") C+=("$c") S+=("$s")
done
o=$(median "${O[@]}")
row "--repo vs qemu-img convert -O raw (median)" "$o" "$(median "${C[@]}")"
row "--repo vs convert + sync + compare (median)" "$o" "$(median "${S[@]}")"
echo "  (backupfs syncs the result and reads it back from storage to check it)"
rm -f "$T/ours.raw" "$T/peer.raw"

mkdir -p "$M"
if "$B" mount -o "catalog=$T/c.db" "$R" "$M" 2>/dev/null && sleep 1 &&
   [ -e "$M/vm/latest/disks/vda.img" ]; then
  O=() P=()
  for r in $(seq 1 "$ROUNDS"); do
    rm -f "$T/ours.raw" "$T/peer.raw"
    drop; O+=("$(t "$B" restore disk "$M/vm/latest" vda "$T/ours.raw")")
    drop; P+=("$(t cp --sparse=always "$M/vm/latest/disks/vda.img" "$T/peer.raw")")
    cmp "$T/ours.raw" "$T/peer.raw" || { echo "results differ!"; exit 1; }
  done
  row "mounted vs cp --sparse=always (median)" "$(median "${O[@]}")" "$(median "${P[@]}")"
else
  echo "mounted: skipped (mount not working here)"
fi
echo "load: $(uptime)"
