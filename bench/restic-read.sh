#!/bin/bash
# restic-read.sh — sequential read of a 1 GiB raw image stored in a restic
# repository (v2, compression auto: ~400 MiB of files from /usr, 200 MiB of
# random data, the rest never written) through our reader
# (tests/restic/restic-read cat, 1 MiB reads, one thread) and through
# `restic dump` into a file, alternating, page cache dropped before each
# run (restic keeps its own metadata cache warm), ROUNDS rounds.  Checks
# both outputs are identical once, then prints wall and CPU (user + sys)
# times and the ratios restic/ours (> 1: we are faster).  On a loaded
# machine the wall times measure the scheduler; the CPU times do not.
#
# usage: bench/restic-read.sh [RESTIC_READ]   (env BENCH_DIR: work dir, kept
#        between runs so the repository is built once; ROUNDS: default 3;
#        BENCH_RT=1: both under `chrt -r 10`, for a busy shared machine)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
RR=${1:-build/tests/restic/restic-read}
RR=$(realpath "$RR")
W=${BENCH_DIR:-/var/tmp/bfs-bench-restic}
ROUNDS=${ROUNDS:-3}
bench_need restic qemu-img
mkdir -p "$W"
cd "$W"
export RESTIC_PASSWORD_FILE=$W/pw RESTIC_CACHE_DIR=$W/cache
[ -f pw ] || echo bench-password >pw

build_repo() {
  echo "building the repository in $W (once)..."
  rm -rf repo vda.img
  bench_usr_data 400 data.bin
  qemu-img create -q -f raw vda.img 1G
  dd if=data.bin of=vda.img bs=1M seek=64 conv=notrunc status=none
  dd if=/dev/urandom of=vda.img bs=1M seek=600 count=200 conv=notrunc status=none
  rm -f data.bin
  restic -q init -r repo --repository-version 2 >/dev/null
  restic -q -r repo backup --stdin --stdin-filename vda.img <vda.img >/dev/null
  rm -f vda.img
  touch .built
}
[ -f .built ] || build_repo
echo "repository: $(du -sh repo | cut -f1), image $("$RR" ls repo pw latest | awk '{print $3}') bytes"

dump() { restic -q -r repo dump latest /vda.img >"$1"; }

bench_prio 0

"$RR" cat repo pw latest /vda.img out-ours.img
dump out-restic.img
cmp out-ours.img out-restic.img || { echo "outputs differ"; exit 1; }
echo "outputs identical ($(stat -c %s out-ours.img) bytes)"
rm -f out-ours.img out-restic.img

ow=0 oc=0 rw=0 rc=0
for r in $(seq 1 "$ROUNDS"); do
  bench_cold; read -r o oo < <(bench_wall_cpu "${PRIO[@]}" "$RR" cat repo pw latest /vda.img out-ours.img)
  rm -f out-ours.img
  bench_cold; read -r q qq < <(bench_wall_cpu "${PRIO[@]}" bash -c "$(declare -f dump); dump out-restic.img")
  rm -f out-restic.img
  printf 'round %d: restic-read cat %6.2fs (cpu %5.2fs)   restic dump %6.2fs (cpu %5.2fs)   ratio %.2f (cpu %.2f)\n' \
    "$r" "$o" "$oo" "$q" "$qq" "$(awk "BEGIN { print $q / $o }")" "$(awk "BEGIN { print $qq / $oo }")"
  ow=$(awk "BEGIN { print $ow + $o }"); oc=$(awk "BEGIN { print $oc + $oo }")
  rw=$(awk "BEGIN { print $rw + $q }"); rc=$(awk "BEGIN { print $rc + $qq }")
done
printf 'total:   restic-read cat %6.2fs (cpu %5.2fs)   restic dump %6.2fs (cpu %5.2fs)\n' "$ow" "$oc" "$rw" "$rc"
printf 'ratio restic/ours: wall %.2f, cpu %.2f (> 1: we are faster; load average %s)\n' \
  "$(awk "BEGIN { print $rw / $ow }")" "$(awk "BEGIN { print $rc / $oc }")" \
  "$(bench_load)"
