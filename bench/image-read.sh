#!/bin/bash
# image-read.sh — read the newest point of a depth-8 chain (2 GiB virtual,
# ~1 GiB data, zlib/zstd-compressed and plain layers) with the image core
# (`backupfs image cat -o FILE`) and with `qemu-img convert -O raw` to a
# file, alternating, caches dropped before each run, 3 rounds.  Prints the
# times and the ratio qemu/ours (> 1: we are faster).
#
# usage: bench/image-read.sh [BACKUPFS]    (env BENCH_DIR: work dir, kept
#        between runs so the chain is built once; ROUNDS: default 3)
#
# On a shared, busy machine CPU-bound threads lose to everything else and
# the figures measure the scheduler.  As root, BENCH_RT=1 (the default when
# root) runs both readers under `chrt -r 10` so they see an otherwise idle
# machine; BENCH_RT=0 runs them as ordinary processes.  Both are printed
# as "prio: rt|normal".
set -euo pipefail
BFS=${1:-${BACKUPFS:-build/backupfs}}
BFS=$(realpath "$BFS")
W=${BENCH_DIR:-/var/tmp/bfs-bench-image}
ROUNDS=${ROUNDS:-3}
mkdir -p "$W"
cd "$W"

build_chain() {
  echo "building the chain in $W (once)..."
  rm -f l*.qcow2 base.raw src*.bin
  # realistic, partly compressible data: files from /usr
  find /usr/lib /usr/bin -type f -size +64k 2>/dev/null | sort | head -n 4000 |
    xargs cat 2>/dev/null | head -c $((448 << 20)) > data.bin || true
  for i in 0 1 2 3; do
    dd if=data.bin of=src$i.bin bs=1M count=1 skip=$((i * 37 + 5)) status=none
  done
  qemu-img create -q -f raw base.raw 2G
  dd if=data.bin of=base.raw bs=1M count=400 seek=100 conv=notrunc status=none
  qemu-img convert -c -O qcow2 -o compression_type=zlib base.raw l0.qcow2
  rm -f base.raw data.bin
  RANDOM=42
  for j in 1 2 3 4 5 6 7; do
    opts="compat=1.1,cluster_size=65536"
    [ $((j % 3)) = 1 ] && opts="$opts,compression_type=zstd"
    qemu-img create -q -f qcow2 -o "$opts" -b "l$((j - 1)).qcow2" -F qcow2 "l$j.qcow2"
    args=()
    used=" "
    for k in $(seq 1 90); do
      mb=$(( (RANDOM * 32768 + RANDOM) % 2047 ))
      case $used in *" $mb "*) continue ;; esac
      used="$used$mb "
      c=""
      [ $((j % 2)) = 1 ] && c="-c"        # odd layers compressed
      args+=(-c "write $c -s src$((k % 4)).bin $((mb << 20)) 1M")
    done
    qemu-io -f qcow2 "${args[@]}" "l$j.qcow2" >/dev/null
  done
  rm -f src*.bin
  touch .built
}
[ -f .built ] || build_chain

TOP=$W/l7.qcow2
echo "chain: $("$BFS" image info "$TOP" | grep -E 'depth|allocated|virtual size' | head -n 3 | tr -s ' \n' ' ')"

drop() {
  sync
  if ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    [ -z "${warned:-}" ] && echo "warning: cannot drop caches (not root?): warm-cache figures"
    warned=1
  fi
}
t() {  # prints seconds
  local s e
  s=$(date +%s.%N); "$@"; e=$(date +%s.%N)
  awk "BEGIN { print $e - $s }"
}

PRIO=()
if [ "${BENCH_RT:-$([ "$(id -u)" = 0 ] && echo 1 || echo 0)}" = 1 ] && command -v chrt >/dev/null; then
  PRIO=(chrt -r 10)
  echo "prio: rt (chrt -r 10 for both)"
else
  echo "prio: normal"
fi
ours_total=0 qemu_total=0
for r in $(seq 1 "$ROUNDS"); do
  rm -f out-ours.raw out-qemu.raw
  drop; o=$(t "${PRIO[@]}" "$BFS" image cat -o out-ours.raw "$TOP")
  rm -f out-ours.raw
  drop; q=$(t "${PRIO[@]}" qemu-img convert -O raw "$TOP" out-qemu.raw)
  rm -f out-qemu.raw
  printf 'round %d: backupfs image cat %6.2fs   qemu-img convert %6.2fs   ratio %.2f\n' \
    "$r" "$o" "$q" "$(awk "BEGIN { print $q / $o }")"
  ours_total=$(awk "BEGIN { print $ours_total + $o }")
  qemu_total=$(awk "BEGIN { print $qemu_total + $q }")
done
printf 'total:   backupfs image cat %6.2fs   qemu-img convert %6.2fs   ratio qemu/ours %.2f (>= 1 means at least as fast; goal >= 1.5)\n' \
  "$ours_total" "$qemu_total" "$(awk "BEGIN { print $qemu_total / $ours_total }")"
echo "load: $(uptime)"
