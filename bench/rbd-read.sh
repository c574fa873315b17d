#!/bin/bash
# rbd-read.sh — sequential read of one RBD snapshot through a backupfs mount
# (dd of disks/<image>.img, 4 MiB blocks, to /dev/null) against
# `rbd export IMAGE@SNAP /dev/null`, on a single-node Ceph cluster
# (tests/lib/ceph.sh: one mon, one memstore OSD) the script starts.  The
# image has SIZE MiB (default 64; memstore holds it in RAM: keep it small),
# all of it random data written with `rbd import`.  A fresh mount per run
# (no backupfs cache), three times each, the dd timed apart from the mount
# and its scan; prints wall seconds, MB/s, the ratio and
# the load average (the machine is shared: figures are noisy).  Not a test.
#
# usage: bench/rbd-read.sh [BUILDDIR] [SIZE_MiB]
set -euo pipefail
BUILD=${1:-$(dirname "$0")/../build}; BUILD=$(cd "$BUILD" && pwd)
SIZE=${2:-64}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
BACKUPFS=$BUILD/backupfs
[ -x "$BACKUPFS" ] || { echo "build first: ninja -C $BUILD"; exit 77; }
. "$SRCDIR/tests/lib/ceph.sh"
T=$(mktemp -d /tmp/bfs-rbd-bench.XXXXXX)
export XDG_CACHE_HOME=$T/cache
M=$T/m
cleanup() {
  mountpoint -q "$M" 2>/dev/null && fusermount3 -u "$M"
  ceph_stop
  rm -rf "$T"
}
trap cleanup EXIT
ceph_start "$T/ceph" || { echo "SKIP: Ceph did not start"; exit 77; }
ceph_pool bench
head -c $((SIZE << 20)) /dev/urandom > "$T/img.raw"
rbd -c "$CEPH_CONF" import "$T/img.raw" bench/img >/dev/null 2>&1
rbd -c "$CEPH_CONF" snap create bench/img@s1 >/dev/null 2>&1
rm -f "$T/img.raw"
mkdir -p "$M"

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
         echo "$t1 - $t0" | bc -l; }
f=
mnt() { "$BACKUPFS" mount rbd:bench "$M" -o "ceph_conf=$CEPH_CONF"
        f=$(ls -d "$M"/img/*/disks/img.img | head -1); }
mine=() theirs=() mounts=()
for run in 1 2 3; do
  theirs+=("$(secs rbd -c "$CEPH_CONF" export bench/img@s1 /dev/null)")
  t0=$(date +%s.%N); mnt; mounts+=("$(echo "$(date +%s.%N) - $t0" | bc -l)")
  mine+=("$(secs dd if="$f" of=/dev/null bs=4M)")
  fusermount3 -u "$M"
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
b=$(best "${mine[@]}") e=$(best "${theirs[@]}")
printf 'rbd snapshot, %d MiB, sequential read (best of 3)\n' "$SIZE"
printf '  backupfs dd of the mounted image: %6.2f s  %7.1f MB/s  (runs: %s; mount + scan: %s s)\n' \
  "$b" "$(echo "$SIZE * 1.048576 / $b" | bc -l)" "${mine[*]}" "${mounts[*]}"
printf '  rbd export /dev/null:             %6.2f s  %7.1f MB/s  (runs: %s)\n' \
  "$e" "$(echo "$SIZE * 1.048576 / $e" | bc -l)" "${theirs[*]}"
printf '  ratio export/backupfs: %.2f (>1: backupfs faster)\n' "$(echo "$e / $b" | bc -l)"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
