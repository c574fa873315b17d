# lib.sh — what the bench/*.sh scripts share (sourced; bash).
#
# Figures are only comparable when both sides are timed the same way, so
# the timing, the cold page cache, the median and the test data live here
# once instead of in a copy per script.
#   bench_need TOOL...       exit 1 ("missing TOOL") unless each is on PATH
#   bench_cold               sync and drop the page cache (warns once when
#                            it cannot: not root, the figures are warm)
#   bench_secs CMD...        wall seconds of CMD (its output discarded);
#                            CMD's exit status
#   bench_wall_cpu CMD...    "WALL CPU" seconds (CPU = user + sys of CMD)
#   bench_median             the median of the numbers on stdin, one a line
#   bench_div A B            A / B
#   bench_load               the load average ("0.45 0.49 0.21")
#   bench_usr_data MIB FILE  MIB of real, partly compressible bytes (files
#                            of /usr/lib and /usr/bin) into FILE
#   bench_half_random FILE MIB   a raw image of MIB MiB, every other MiB
#                            random, the rest a hole
#   bench_qcow2_chain REPO MIB   a depth-8 qcow2 chain, MIB MiB virtual (a
#                            third of it written in the base, small random
#                            writes in each overlay; seeded, so the same
#                            each time): REPO/bench/2026-01-0[1-8]T000000Z/
#                            vda.qcow2, each backed by the one before

bench_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing $t"; exit 1; }
  done
}

bench_cold() {
  sync
  if ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    [ -z "${BENCH_WARNED:-}" ] &&
      echo "warning: cannot drop caches (not root?): warm-cache figures" >&2
    BENCH_WARNED=1
  fi
  return 0
}

bench_secs() {
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" > /dev/null || rc=$?
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
  return $rc
}

bench_wall_cpu() {
  local TIMEFORMAT='%R %U %S' r
  r=$({ time "$@" > /dev/null 2>&1; } 2>&1)
  awk '{ printf "%.2f %.2f\n", $1, $2 + $3 }' <<<"$r"
}

bench_median() {
  sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}

bench_div() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }

bench_load() { cut -d' ' -f1-3 /proc/loadavg; }

bench_usr_data() {
  find /usr/lib /usr/bin -type f -size +64k 2>/dev/null | sort | head -n 4000 |
    xargs cat 2>/dev/null | head -c $(($1 << 20)) > "$2" || true
}

bench_half_random() {
  python3 - "$1" "$2" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(mib << 20)
    for i in range(0, mib, 2):
        f.seek(i << 20)
        f.write(os.urandom(1 << 20))
PY
}

bench_qcow2_chain() {
  rm -rf "$1"
  python3 - "$1" "$2" <<'PY'
import os, random, subprocess, sys
r, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
prev = None
for i in range(1, 9):
    d = "%s/bench/2026-01-%02dT000000Z" % (r, i)
    os.makedirs(d)
    img = d + "/vda.qcow2"
    if prev is None:
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", img,
                               "%dM" % mib])
        writes = [(o * 1048576, 1048576) for o in rnd.sample(range(mib), mib * 340 // 1024)]
    else:
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                               "-b", "../" + os.path.basename(prev) + "/vda.qcow2", img])
        writes = [(rnd.randrange(mib) * 1048576, 1048576) for _ in range(mib // 32)]
        writes += [(rnd.randrange(mib * 16) * 65536, 65536) for _ in range(mib // 8)]
    cmds = []
    for off, ln in writes:
        cmds += ["-c", "write -P 0x%02x %d %d" % (rnd.randrange(1, 256), off, ln)]
    for k in range(0, len(cmds), 400):
        subprocess.check_call(["qemu-io", "-f", "qcow2"] + cmds[k:k + 400] + [img],
                              stdout=subprocess.DEVNULL)
    prev = d
PY
}

# BENCH_RT=1 (default: 1 as root): PRIO=(chrt -r 10), for running both
# readers as if the shared machine were idle; prints which it is
bench_prio() {
  PRIO=()
  if [ "${BENCH_RT:-$1}" = 1 ] && command -v chrt >/dev/null; then
    PRIO=(chrt -r 10)
    echo "prio: rt (chrt -r 10 for both)"
  else
    echo "prio: normal"
  fi
}
