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
# usage: bench/nbd-read.sh [BACKUPFS] [WORKDIR]   (ROUNDS=N, default 3)
set -eu
BACKUPFS=${1:-${BACKUPFS:-build/backupfs}}
W=${2:-/var/tmp/bfs-bench-nbd}
ROUNDS=${ROUNDS:-3}
BACKUPFS=$(realpath "$BACKUPFS")
[ "$(id -u)" = 0 ] || { echo "needs root (drop_caches)"; exit 1; }
for t in qemu-img qemu-io nbdcopy nbdkit nbdinfo python3 bc; do
  command -v $t >/dev/null || { echo "missing $t"; exit 1; }
done

R=$W/repo
TOP=$R/bench/2026-01-08T000000Z/vda.qcow2
mkdir -p "$W"
if [ ! -f "$TOP" ]; then
  echo "creating the depth-8 chain in $R ..."
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
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", img, "1G"])
        writes = [(o * 1048576, 1048576) for o in rnd.sample(range(1024), 340)]
    else:
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                               "-b", "../" + os.path.basename(prev) + "/vda.qcow2", img])
        writes = [(rnd.randrange(1024) * 1048576, 1048576) for _ in range(32)]
        writes += [(rnd.randrange(16384) * 65536, 65536) for _ in range(128)]
    cmds = []
    for off, ln in writes:
        cmds += ["-c", "write -P 0x%02x %d %d" % (rnd.randrange(1, 256), off, ln)]
    for k in range(0, len(cmds), 400):
        subprocess.check_call(["qemu-io", "-f", "qcow2"] + cmds[k:k + 400] + [img],
                              stdout=subprocess.DEVNULL)
    prev = d
PY
fi

SOCK=$W/nbd.sock
PIDF=$W/serve.pid
rm -f "$SOCK" "$PIDF"
cleanup() { [ -f "$PIDF" ] && kill "$(cat "$PIDF")" 2>/dev/null || true; }
trap cleanup EXIT
"$BACKUPFS" serve --catalog "$W/catalog.db" --socket "$SOCK" --pidfile "$PIDF" "$R" >/dev/null
URI="nbd+unix:///bench@latest/vda?socket=$SOCK"
nbdinfo --size "$URI" >/dev/null
echo "data: $("$BACKUPFS" image map "$TOP" | awk '$3=="DATA"{s+=$2} END{printf "%.0f MiB", s/1048576}') of 1 GiB, depth 8"

OUT=$W/out.raw
cold() { rm -f "$OUT"; sync; echo 3 > /proc/sys/vm/drop_caches; }
timed() {
  cold
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
qemu-img convert -O raw "$TOP" "$W/oracle.raw"
nbdcopy "$URI" "$OUT"
cmp "$OUT" "$W/oracle.raw" || { echo "nbdcopy of the export differs from qemu-img convert"; exit 1; }
rm -f "$W/oracle.raw"

median() { sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
declare -a a b c
for i in $(seq "$ROUNDS"); do
  a+=("$(timed nbdcopy "$URI" "$OUT")")
  b+=("$(timed qemu-img convert -O raw "$TOP" "$OUT")")
  c+=("$(timed qemu-img convert -O raw "$URI" "$OUT")")
  printf 'round %d: nbdcopy export %.2fs, qemu-img chain %.2fs (%.2fx), qemu-img export %.2fs\n' \
    "$i" "${a[-1]}" "${b[-1]}" "$(echo "${b[-1]} / ${a[-1]}" | bc -l)" "${c[-1]}"
done
ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
mc=$(printf '%s\n' "${c[@]}" | median)
rm -f "$OUT"
printf '\nmedians of %d rounds; load average %s\n' "$ROUNDS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-36s %9s %8s\n' test time ratio
printf '%-36s %8.2fs %8s\n' "nbdcopy from the export" "$ma" "1.00x"
printf '%-36s %8.2fs %7.2fx\n' "qemu-img convert of the chain" "$mb" "$(echo "$mb / $ma" | bc -l)"
printf '%-36s %8.2fs %7.2fx\n' "qemu-img convert from the export" "$mc" "$(echo "$mc / $ma" | bc -l)"
