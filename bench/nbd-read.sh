#!/bin/bash
# nbd-read.sh — a point in time of a depth-8 qcow2 chain (1 GiB virtual,
# ~512 MiB data) copied out through `backupfs serve`'s NBD export with
# nbdcopy, against qemu-img convert of the repository's chain itself (and
# qemu-img convert from the export, for the client's share), each from a
# cold page cache (drop_caches; needs root), alternated, into a file.
# Prints times, ratios (peer time / ours: > 1 means the export is faster)
# and the load average (the machine may be shared: figures are noisy).
# Not part of meson test.
#
# usage: bench/nbd-read.sh [BACKUPFS] [WORKDIR]   (ROUNDS=N, default 3;
#        MIB=N: the chain's virtual size, default 1024)
set -eu
. "$(dirname "$0")/lib.sh"
BACKUPFS=${1:-${BACKUPFS:-build/backupfs}}
W=${2:-/var/tmp/bfs-bench-nbd}
ROUNDS=${ROUNDS:-3}
BACKUPFS=$(realpath "$BACKUPFS")
[ "$(id -u)" = 0 ] || { echo "needs root (drop_caches)"; exit 1; }
bench_need qemu-img qemu-io nbdcopy nbdkit nbdinfo python3 bc
MIB=${MIB:-1024}
[ "$MIB" = 1024 ] || W=$W-$MIB

R=$W/repo
TOP=$R/bench/2026-01-08T000000Z/vda.qcow2
mkdir -p "$W"
[ -f "$TOP" ] || { echo "creating the depth-8 chain in $R ..."; bench_qcow2_chain "$R" "$MIB"; }

SOCK=$W/nbd.sock
PIDF=$W/serve.pid
rm -f "$SOCK" "$PIDF"
cleanup() { [ -f "$PIDF" ] && kill "$(cat "$PIDF")" 2>/dev/null || true; }
trap cleanup EXIT
"$BACKUPFS" serve --catalog "$W/catalog.db" --socket "$SOCK" --pidfile "$PIDF" "$R" >/dev/null
URI="nbd+unix:///bench@latest/vda?socket=$SOCK"
nbdinfo --size "$URI" >/dev/null
echo "data: $("$BACKUPFS" image map "$TOP" | awk '$3=="DATA"{s+=$2} END{printf "%.0f MiB", s/1048576}') of $MIB MiB, depth 8"

OUT=$W/out.raw
timed() { rm -f "$OUT"; bench_cold; bench_secs "$@"; }
qemu-img convert -O raw "$TOP" "$W/oracle.raw"
nbdcopy "$URI" "$OUT"
cmp "$OUT" "$W/oracle.raw" || { echo "nbdcopy of the export differs from qemu-img convert"; exit 1; }
rm -f "$W/oracle.raw"

declare -a a b c
for i in $(seq "$ROUNDS"); do
  a+=("$(timed nbdcopy "$URI" "$OUT")")
  b+=("$(timed qemu-img convert -O raw "$TOP" "$OUT")")
  c+=("$(timed qemu-img convert -O raw "$URI" "$OUT")")
  printf 'round %d: nbdcopy export %.2fs, qemu-img chain %.2fs (%.2fx), qemu-img export %.2fs\n' \
    "$i" "${a[-1]}" "${b[-1]}" "$(echo "${b[-1]} / ${a[-1]}" | bc -l)" "${c[-1]}"
done
ma=$(printf '%s\n' "${a[@]}" | bench_median); mb=$(printf '%s\n' "${b[@]}" | bench_median)
mc=$(printf '%s\n' "${c[@]}" | bench_median)
rm -f "$OUT"
printf '\nmedians of %d rounds; load average %s\n' "$ROUNDS" "$(bench_load)"
printf '%-36s %9s %8s\n' test time ratio
printf '%-36s %8.2fs %8s\n' "nbdcopy from the export" "$ma" "1.00x"
printf '%-36s %8.2fs %7.2fx\n' "qemu-img convert of the chain" "$mb" "$(echo "$mb / $ma" | bc -l)"
printf '%-36s %8.2fs %7.2fx\n' "qemu-img convert from the export" "$mc" "$(echo "$mc / $ma" | bc -l)"
