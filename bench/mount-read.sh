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
# usage: bench/mount-read.sh [BACKUPFS] [WORKDIR]   (ROUNDS=N, default 3)
set -eu
BACKUPFS=${1:-${BACKUPFS:-build/backupfs}}
W=${2:-/var/tmp/bfs-bench}
ROUNDS=${ROUNDS:-3}
BACKUPFS=$(realpath "$BACKUPFS")
[ "$(id -u)" = 0 ] || { echo "needs root (drop_caches)"; exit 1; }
for t in qemu-img qemu-io qemu-storage-daemon fusermount3 python3; do
  command -v $t >/dev/null || { echo "missing $t"; exit 1; }
done

COMPRESS=${COMPRESS:-}
[ -n "$COMPRESS" ] && W=$W-$COMPRESS
R=$W/repo
TOP=$R/bench/2026-01-08T000000Z/vda.qcow2
mkdir -p "$W"

make_compressed() {
  rm -rf "$R"
  mkdir -p "$(dirname "$TOP")"
  find /usr/lib /usr/bin -type f -size +64k 2>/dev/null | sort | head -n 4000 |
    xargs cat 2>/dev/null | head -c $((448 << 20)) > "$W/data.bin" || true
  qemu-img create -q -f raw "$W/base.raw" 1G
  dd if="$W/data.bin" of="$W/base.raw" bs=1M seek=64 conv=notrunc status=none
  qemu-img convert -c -O qcow2 -o "compression_type=$COMPRESS" "$W/base.raw" "$TOP"
  rm -f "$W/base.raw" "$W/data.bin"
}

make_chain() {
  rm -rf "$R"
  python3 - "$R" <<'PY'
import os, random, subprocess, sys
r = sys.argv[1]
rnd = random.Random(42)
prev = None
for i in range(1, 9):
    d = "%s/bench/2026-01-%02dT000000Z" % (r, i)
    os.makedirs(d)
    img = d + "/vda.qcow2"
    if prev is None:
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", img, "2G"])
        writes = [(o * 1048576, 1048576) for o in rnd.sample(range(2048), 680)]
    else:
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                               "-b", "../" + os.path.basename(prev) + "/vda.qcow2", img])
        writes = [(rnd.randrange(2048) * 1048576, 1048576) for _ in range(64)]
        writes += [(rnd.randrange(32768) * 65536, 65536) for _ in range(256)]
    cmds = []
    for off, ln in writes:
        cmds += ["-c", "write -P 0x%02x %d %d" % (rnd.randrange(1, 256), off, ln)]
    for k in range(0, len(cmds), 400):
        subprocess.check_call(["qemu-io", "-f", "qcow2"] + cmds[k:k + 400] + [img],
                              stdout=subprocess.DEVNULL)
    prev = d
PY
}
if [ -n "$COMPRESS" ]; then
  [ -f "$TOP" ] || { echo "creating a $COMPRESS-compressed image in $R ..."; make_compressed; }
else
  [ -f "$TOP" ] || { echo "creating the depth-8 chain in $R ..."; make_chain; }
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

cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # clock ticks
seq_read() {            # seconds for dd of the whole file; CPU ticks of $2
  cold
  local t0 t1 c0 c1
  c0=$(cpu_of "$2")
  t0=$(date +%s.%N)
  dd if="$1" of=/dev/null bs=1M status=none
  t1=$(date +%s.%N)
  c1=$(cpu_of "$2")
  echo "$((c1 - c0))" >> "$W/cpu.$2"
  echo "$t1 - $t0" | bc
}

rand_read() {
  cold
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
  cold
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
  cold
  local t0 t1 out=/dev/shm/bfs-bench-convert.$$.raw
  t0=$(date +%s.%N)
  qemu-img convert -O raw "$TOP" "$out"
  t1=$(date +%s.%N)
  rm -f "$out"
  echo "$t1 - $t0" | bc
}

cat_read() {            # seconds for cat of every file of the chain
  cold
  local t0 t1
  t0=$(date +%s.%N)
  cat "$R"/bench/*/vda.qcow2 > /dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

median() { sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
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
so=$(printf '%s\n' "${s_ours[@]}" | median); sp=$(printf '%s\n' "${s_peer[@]}" | median)
ro=$(printf '%s\n' "${r_ours[@]}" | median); rp=$(printf '%s\n' "${r_peer[@]}" | median)
qo=$(printf '%s\n' "${q_ours[@]}" | median); qp=$(printf '%s\n' "${q_peer[@]}" | median)
sc=$(printf '%s\n' "${s_conv[@]}" | median); sf=$(printf '%s\n' "${s_cat[@]}" | median)
hwm=$(awk '/VmHWM/{print $2}' /proc/$BFS_PID/status)
printf '\nmedians of %d rounds; load average %s\n' "$ROUNDS" "$(cut -d' ' -f1-3 /proc/loadavg)"
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
