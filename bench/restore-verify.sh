#!/bin/bash
# restore-verify.sh — backupfs verify vs its peer pipeline doing the same
# work with qemu tools: qemu-img check of every image, a full read of every
# point in time (qemu-img convert -O raw to /dev/null... via -n onto a null
# target), and xxhsum -H2 of every file.  Not part of meson test.
#   usage: bench/restore-verify.sh [BUILD_DIR] [POINTS_IN_TIME]
set -euo pipefail
B=$(realpath "${1:-build}")/backupfs
N=${2:-6}
T=$(mktemp -d /tmp/bfs-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
R=$T/repo
prev=
for i in $(seq 1 "$N"); do
  d=$R/vm/2026-10-$(printf %02d "$i")T030000Z; mkdir -p "$d"
  if [ -z "$prev" ]; then
    qemu-img create -q -f qcow2 "$d/vda.qcow2" 2G
    qemu-io -f qcow2 -c 'write -P 0x11 0 256M' "$d/vda.qcow2" >/dev/null
  else
    qemu-img create -q -f qcow2 -F qcow2 -b "../$(basename "$prev")/vda.qcow2" "$d/vda.qcow2"
    qemu-io -f qcow2 -c "write -P $i $((i * 64))M 32M" "$d/vda.qcow2" >/dev/null
  fi
  prev=$d
done
sync

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }'; }
peer() {
  for f in "$R"/vm/*/vda.qcow2; do qemu-img check -q "$f"; xxhsum -H2 "$f"; done
  for f in "$R"/vm/*/vda.qcow2; do
    qemu-img convert -O raw "$f" "$T/pit.raw"; rm -f "$T/pit.raw"
  done
}
"$B" scan --catalog "$T/c.db" "$R" >/dev/null 2>&1
"$B" verify --catalog "$T/c.db" "$R" | tail -4
ours=$(t "$B" verify --catalog "$T/c.db" --reset-checksums "$R")
again=$(t "$B" verify --catalog "$T/c.db" "$R")
pt=$(t peer)
printf "%-46s %8s %8s %7s\n" "verify, $N points in time, 2 GiB virtual each" backupfs peer ratio
printf "%-46s %7ss %7ss %6.2fx\n" "first run (records checksums)" "$ours" "$pt" \
  "$(awk -v a="$ours" -v b="$pt" 'BEGIN { print a / b }')"
printf "%-46s %7ss %7ss %6.2fx\n" "second run (compares checksums)" "$again" "$pt" \
  "$(awk -v a="$again" -v b="$pt" 'BEGIN { print a / b }')"
echo "  peer: qemu-img check + xxhsum -H2 per file, qemu-img convert -O raw per point in time"
