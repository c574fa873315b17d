#!/bin/bash
# restore-disk.sh — backupfs restore disk --repo vs qemu-img convert -O raw
# (the peer) on the same two-layer chain, both writing a sparse raw file.
# Also the mounted path (restore disk BACKUP_DIR vs cp --sparse=always of
# the mounted disks/<disk>.img) when the mount works.  Not part of meson test.
#   usage: bench/restore-disk.sh [BUILD_DIR] [DATA_MIB]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
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

t() { printf '%.2f' "$(bench_secs "$@" 2>/dev/null)"; }

bench_cold; ours=$(t "$B" restore disk --repo "$R" --catalog "$T/c.db" vm@latest vda "$T/ours.raw")
bench_cold; peer=$(t qemu-img convert -O raw "$top" "$T/peer.raw")
cmp "$T/ours.raw" "$T/peer.raw" || { echo "results differ!"; exit 1; }
printf "%-44s %8s %8s %7s\n" "restore disk, $MIB MiB data, 4 GiB virtual" backupfs peer ratio
printf "%-44s %7ss %7ss %6.2fx\n" "--repo vs qemu-img convert -O raw" "$ours" "$peer" \
  "$(awk -v a="$ours" -v b="$peer" 'BEGIN { print a / b }')"
rm -f "$T/peer.raw"
safe() { qemu-img convert -O raw "$top" "$T/peer.raw" && sync "$T/peer.raw" &&
         qemu-img compare -q "$top" "$T/peer.raw"; }
bench_cold; peer=$(t safe)
printf "%-44s %7ss %7ss %6.2fx\n" "--repo vs convert + sync + qemu-img compare" "$ours" "$peer" \
  "$(awk -v a="$ours" -v b="$peer" 'BEGIN { print a / b }')"
echo "  (backupfs syncs the result and reads it back from storage to check it)"
rm -f "$T/ours.raw" "$T/peer.raw"

mkdir -p "$M"
if "$B" mount -o "catalog=$T/c.db" "$R" "$M" 2>/dev/null && sleep 1 &&
   [ -e "$M/vm/latest/disks/vda.img" ]; then
  bench_cold; ours=$(t "$B" restore disk "$M/vm/latest" vda "$T/ours.raw")
  bench_cold; peer=$(t cp --sparse=always "$M/vm/latest/disks/vda.img" "$T/peer.raw")
  cmp "$T/ours.raw" "$T/peer.raw" || { echo "results differ!"; exit 1; }
  printf "%-44s %7ss %7ss %6.2fx\n" "mounted vs cp --sparse=always" "$ours" "$peer" \
    "$(awk -v a="$ours" -v b="$peer" 'BEGIN { print a / b }')"
else
  echo "mounted: skipped (mount not working here)"
fi
