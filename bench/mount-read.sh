#!/bin/bash
# mount-read.sh — read the newest point in time of a depth-8 qcow2 chain
# (2 GiB virtual, ~1 GiB data) through backupfs and through
# qemu-storage-daemon's FUSE export of the same image, in the same run,
# alternated, each from a cold page cache (drop_caches; needs root):
#   sequential: dd bs=1M of the whole disk
#   random:     20,000 preads of 4 KiB at seeded offsets (POSIX_FADV_RANDOM),
#               and 4 processes of 5,000 such preads at once
#   floors:     qemu-img convert -O raw of the same image into a tmpfs file,
#               and cat of the chain's eight files (the cold-read floor)
# Prints times and ratios (peer time / ours: > 1 means backupfs is faster)
# and the peak RSS (VmHWM) of the backupfs daemon.  Not part of meson test.
#
# COMPRESS=zlib|zstd: instead of the chain, one compressed image of
# compressible data (files of /usr, 1 GiB virtual, 448 MiB data), made
# with qemu-img convert -c; then the CPU seconds per GiB read of both
# daemons are printed too.
#
# usage: bench/mount-read.sh [BACKUPFS] [WORKDIR]   (ROUNDS=N, default 3;
#        MIB=N: the chain's virtual size, default 2048)
set -eu
. "$(dirname "$0")/lib.sh"
BACKUPFS=${1:-${BACKUPFS:-build/backupfs}}
W=${2:-/var/tmp/bfs-bench}
ROUNDS=${ROUNDS:-3}
BACKUPFS=$(realpath "$BACKUPFS")
[ "$(id -u)" = 0 ] || { echo "needs root (drop_caches)"; exit 1; }
bench_need qemu-img qemu-io qemu-storage-daemon fusermount3 python3 bc
MIB=${MIB:-2048}

COMPRESS=${COMPRESS:-}
[ -n "$COMPRESS" ] && W=$W-$COMPRESS
[ "$MIB" = 2048 ] || W=$W-$MIB
R=$W/repo
TOP=$R/bench/2026-01-08T000000Z/vda.qcow2
mkdir -p "$W"

make_compressed() {
  rm -rf "$R"
  mkdir -p "$(dirname "$TOP")"
  bench_usr_data 448 "$W/data.bin"
  qemu-img create -q -f raw "$W/base.raw" 1G
  dd if="$W/data.bin" of="$W/base.raw" bs=1M seek=64 conv=notrunc status=none
  qemu-img convert -c -O qcow2 -o "compression_type=$COMPRESS" "$W/base.raw" "$TOP"
  rm -f "$W/base.raw" "$W/data.bin"
}

if [ -n "$COMPRESS" ]; then
  [ -f "$TOP" ] || { echo "creating a $COMPRESS-compressed image in $R ..."; make_compressed; }
else
  [ -f "$TOP" ] || { echo "creating the depth-8 chain in $R ..."; bench_qcow2_chain "$R" "$MIB"; }
fi

M1=$W/mnt-backupfs
M2=$W/mnt-qsd
mkdir -p "$M1"
touch "$M2"
QSD_PID=
cleanup() {
  fusermount3 -u "$M1" 2>/dev/null || true
  [ -n "$QSD_PID" ] && kill "$QSD_PID" 2>/dev/null && wait "$QSD_PID" 2>/dev/null || true
}
trap cleanup EXIT

"$BACKUPFS" mount -o "catalog=$W/catalog.db" "$R" "$M1"
OURS=$M1/bench/latest/disks/vda.img
for _ in $(seq 50); do [ -e "$OURS" ] && break; sleep 0.1; done
BFS_PID=$(pgrep -n -f "^$BACKUPFS mount -o catalog=$W/catalog.db") ||
  { echo "backupfs daemon not found"; exit 1; }

qemu-storage-daemon \
  --blockdev "driver=file,node-name=file0,filename=$TOP,read-only=on" \
  --blockdev "driver=qcow2,node-name=fmt0,file=file0,read-only=on" \
  --export "type=fuse,id=exp0,node-name=fmt0,mountpoint=$M2,writable=off" &
QSD_PID=$!
for _ in $(seq 50); do
  [ "$(stat -c %s "$M2")" = "$("$BACKUPFS" image info "$TOP" | awk '/virtual size/{print $3; exit}')" ] && break
  sleep 0.1
done
PEER=$M2

echo "data: $("$BACKUPFS" image map "$TOP" | awk '$3=="DATA"{s+=$2} END{printf "%.0f MiB", s/1048576}') of $(( $("$BACKUPFS" image info "$TOP" | awk '/virtual size/{print $3; exit}') >> 20 )) MiB, depth $("$BACKUPFS" image info "$TOP" | grep -c '^layer')"

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # clock ticks
seq_read() {            # seconds for dd of the whole file; CPU ticks of $2
  bench_cold
  local c0 c1
  c0=$(cpu_of "$2")
  bench_secs dd if="$1" of=/dev/null bs=1M status=none
  c1=$(cpu_of "$2")
  echo "$((c1 - c0))" >> "$W/cpu.$2"
}

rand_read() {
  bench_cold
  python3 - "$1" <<'PY'
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
rnd = random.Random(20000)
offs = [rnd.randrange(size // 4096) * 4096 for _ in range(20000)]
t0 = time.monotonic()
for o in offs:
    if len(os.pread(fd, 4096, o)) != 4096:
        sys.exit("short read")
print("%.3f" % (time.monotonic() - t0))
PY
}

rand_read4() {          # 4 jobs of 5,000 random reads at once: wall seconds
  bench_cold
  python3 - "$1" <<'PY'
import os, random, sys, time
from multiprocessing import Process
def job(seed):
    fd = os.open(sys.argv[1], os.O_RDONLY)
    size = os.fstat(fd).st_size
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    rnd = random.Random(seed)
    for _ in range(5000):
        if len(os.pread(fd, 4096, rnd.randrange(size // 4096) * 4096)) != 4096:
            sys.exit("short read")
ps = [Process(target=job, args=(40000 + k,)) for k in range(4)]
t0 = time.monotonic()
for p in ps: p.start()
for p in ps: p.join()
if any(p.exitcode for p in ps): sys.exit("a job failed")
print("%.3f" % (time.monotonic() - t0))
PY
}

convert_read() {        # seconds for qemu-img convert into tmpfs
  local out=/dev/shm/bfs-bench-convert.$$.raw
  bench_cold
  bench_secs qemu-img convert -O raw "$TOP" "$out"
  rm -f "$out"
}

cat_read() {            # seconds for cat of every file of the chain
  bench_cold
  bench_secs cat "$R"/bench/*/vda.qcow2
}

rm -f "$W/cpu.$BFS_PID" "$W/cpu.$QSD_PID"
declare -a s_ours s_peer r_ours r_peer s_conv s_cat q_ours q_peer
for i in $(seq "$ROUNDS"); do
  s_ours+=("$(seq_read "$OURS" "$BFS_PID")"); s_peer+=("$(seq_read "$PEER" "$QSD_PID")")
  s_conv+=("$(convert_read)"); s_cat+=("$(cat_read)")
  r_ours+=("$(rand_read "$OURS")"); r_peer+=("$(rand_read "$PEER")")
  q_ours+=("$(rand_read4 "$OURS")"); q_peer+=("$(rand_read4 "$PEER")")
  printf 'round %d: seq ours %.2fs peer %.2fs (%.2fx); random ours %.2fs peer %.2fs (%.2fx)\n' "$i" \
    "${s_ours[-1]}" "${s_peer[-1]}" "$(echo "${s_peer[-1]} / ${s_ours[-1]}" | bc -l)" \
    "${r_ours[-1]}" "${r_peer[-1]}" "$(echo "${r_peer[-1]} / ${r_ours[-1]}" | bc -l)"
done
so=$(printf '%s\n' "${s_ours[@]}" | bench_median); sp=$(printf '%s\n' "${s_peer[@]}" | bench_median)
ro=$(printf '%s\n' "${r_ours[@]}" | bench_median); rp=$(printf '%s\n' "${r_peer[@]}" | bench_median)
qo=$(printf '%s\n' "${q_ours[@]}" | bench_median); qp=$(printf '%s\n' "${q_peer[@]}" | bench_median)
sc=$(printf '%s\n' "${s_conv[@]}" | bench_median); sf=$(printf '%s\n' "${s_cat[@]}" | bench_median)
hwm=$(awk '/VmHWM/{print $2}' /proc/$BFS_PID/status)
printf '\nmedians of %d rounds; load average %s\n' "$ROUNDS" "$(bench_load)"
printf '%-28s %10s %10s %8s %6s\n' test backupfs qsd ratio goal
printf '%-28s %9.2fs %9.2fs %7.2fx %6s\n' "sequential 1 MiB${COMPRESS:+ ($COMPRESS)}" "$so" "$sp" "$(echo "$sp / $so" | bc -l)" "$( [ "$COMPRESS" = zstd ] && echo '>=2.5' || { [ "$COMPRESS" = zlib ] && echo '>=2' || echo '>=3'; })"
printf '%-28s %9.2fs %9.2fs %7.2fx %6s\n' "  vs qemu-img convert" "$so" "$sc" "$(echo "$sc / $so" | bc -l)" ">=1.0"
printf '%-28s %9.2fs %9.2fs %7.2fx %6s\n' "  vs cold cat of the files" "$so" "$sf" "$(echo "$sf / $so" | bc -l)" ">=0.9"
printf '%-28s %9.2fs %9.2fs %7.2fx %6s\n' "random 4 KiB x 20000" "$ro" "$rp" "$(echo "$rp / $ro" | bc -l)" ">=1.5"
printf '%-28s %9.2fs %9.2fs %7.2fx %6s\n' "random 4 KiB, 4 jobs x 5000" "$qo" "$qp" "$(echo "$qp / $qo" | bc -l)" ">=2"
gib=$(echo "$(stat -c %s "$OURS") / 1073741824" | bc -l)
hz=$(getconf CLK_TCK)
cpu_ours=$(awk -v hz="$hz" -v g="$gib" '{s+=$1} END{printf "%.2f", s/hz/NR/g}' "$W/cpu.$BFS_PID")
cpu_peer=$(awk -v hz="$hz" -v g="$gib" '{s+=$1} END{printf "%.2f", s/hz/NR/g}' "$W/cpu.$QSD_PID")
printf '%-28s %8ss %9ss %8s\n' "CPU s per GiB (sequential)" "$cpu_ours" "$cpu_peer" "(daemons)"
printf '%-28s %9s %10s %8s %6s\n' "peak RSS of backupfs" "$((hwm / 1024)) MiB" "" "" "<100"
