#!/bin/bash
# restic-mount.sh — the same raw image in a restic repository read three
# ways, side by side, cold page cache before each: through a backupfs mount
# (disks/vda.img), through `restic mount` (snapshots/latest/vda.img) and
# with `restic dump` into a file.  The repository is restic-read.sh's
# (1 GiB image, v2, compression auto; built once in BENCH_DIR).  Prints
# wall and CPU seconds, MiB/s, the ratios and the load average.  Not a
# test: on a shared machine the wall figures measure the scheduler too.
#
# usage: bench/restic-mount.sh [BACKUPFS]   (BENCH_DIR, ROUNDS: default 2)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BFS=$(realpath "${1:-build/backupfs}")
W=${BENCH_DIR:-/var/tmp/bfs-bench-restic}
ROUNDS=${ROUNDS:-2}
if [ ! -f "$W/.built" ]; then
  echo "building the repository with bench/restic-read.sh's recipe (ROUNDS=0)"
  ROUNDS=0 "$(dirname "$0")/restic-read.sh" "$(dirname "$BFS")/tests/restic/restic-read" >/dev/null || true
fi
cd "$W"
export RESTIC_PASSWORD_FILE=$W/pw RESTIC_CACHE_DIR=$W/cache
M1=$W/mnt-bfs M2=$W/mnt-restic
mkdir -p "$M1" "$M2"
rpid=
cleanup() {
  fusermount3 -u "$M1" 2>/dev/null || true
  fusermount3 -u "$M2" 2>/dev/null || true      # ends restic mount too
  if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; fi
}
trap cleanup EXIT
"$BFS" mount -o "catalog=$W/bfs.db,restic_password_file=$W/pw" repo "$M1"
restic -q -r repo mount "$M2" >/dev/null 2>&1 & rpid=$!
for _ in $(seq 100); do [ -e "$M2/snapshots/latest/vda.img" ] && break; sleep 0.2; done
B=$(ls -d "$M1"/vda/20* | tail -1)/disks/vda.img
size=$(stat -c %s "$B")
mib() { awk "BEGIN { printf \"%.0f\", $size / 1048576 / $1 }"; }
echo "image: $size bytes; load average: $(bench_load)"
for r in $(seq 1 "$ROUNDS"); do
  bench_cold; read -r a ac < <(bench_wall_cpu cp "$B" out.img); rm -f out.img
  bench_cold; read -r b bc < <(bench_wall_cpu cp "$M2/snapshots/latest/vda.img" out.img); rm -f out.img
  bench_cold; read -r c cc < <(bench_wall_cpu bash -c "restic -q -r repo dump latest /vda.img >out.img"); rm -f out.img
  printf 'round %d: backupfs %6.2fs %4s MiB/s (daemon cpu n/a)   restic mount %6.2fs %4s MiB/s   restic dump %6.2fs %4s MiB/s (cpu %.2fs)\n' \
    "$r" "$a" "$(mib "$a")" "$b" "$(mib "$b")" "$c" "$(mib "$c")" "$cc"
  printf '         ratios: restic mount / backupfs %.1fx   restic dump / backupfs %.2fx\n' \
    "$(awk "BEGIN { print $b / $a }")" "$(awk "BEGIN { print $c / $a }")"
done
echo "load average after: $(bench_load)"
