#!/bin/bash
# catalog-scale.sh — catalog at scale: a generic repository of 10,000 small
# qcow2 images across 200 VMs (50 points in time each, a full backup every
# 10th, incrementals backed by the previous one), then:
#   first scan (warm page cache, fresh catalog), unchanged rescan,
#   `list` of one VM (with its incremental rescan) and `list --no-scan`.
# Prints each figure next to its goal (issue 3).  Not part of meson test.
#
# usage: bench/catalog-scale.sh [BACKUPFS] [VMS] [PER_VM]
#        (100,000 images: bench/catalog-scale.sh "" 2000 50)
# REPO=DIR keeps the generated repository in DIR and reuses it when DIR
# exists (generating 100,000 images takes longer than scanning them).
set -euo pipefail
B=${1:-}; B=${B:-${BACKUPFS:-$(dirname "$0")/../build/backupfs}}
VMS=${2:-200} PER=${3:-50}
command -v qemu-img >/dev/null && command -v python3 >/dev/null || {
  echo "needs qemu-img and python3"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-bench.XXXXXX")
[ -n "${KEEP:-}" ] && echo "keeping $T" || trap 'rm -rf "$T"' EXIT
R=${REPO:-$T/repo}

# templates: a full image and an overlay whose backing name has the
# fixed-length form ../YYYY-MM-DDTHH:MM:SSZ/vda.qcow2, patched per copy
qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/full.qcow2" 64M
qemu-img create -q -f qcow2 -o cluster_size=4096 -u \
  -b ../2000-01-01T00:00:00Z/vda.qcow2 -F qcow2 "$T/inc.qcow2" 64M
[ -d "$R" ] || python3 - "$T" "$R" "$VMS" "$PER" <<'PY'
import os, sys, datetime
t, repo, vms, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
full = open(f"{t}/full.qcow2", "rb").read()
inc = open(f"{t}/inc.qcow2", "rb").read()
old = b"2000-01-01T00:00:00Z"
assert inc.count(old) == 1
base = datetime.datetime(2026, 1, 1, 3, 0, 0)
for v in range(vms):
    prev = None
    for i in range(per):
        stamp = (base + datetime.timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        d = f"{repo}/vm{v:04d}/{stamp}"
        os.makedirs(d)
        data = full if i % 10 == 0 else inc.replace(old, prev.encode())
        with open(f"{d}/vda.qcow2", "wb") as f:
            f.write(data)
        prev = stamp
PY
n=$(find "$R" -type f | wc -l)
du -sh "$R" | sed 's/^/repository: /'
find "$R" -type f -print0 | xargs -0 cat > /dev/null   # warm the page cache (any count)

# Each figure: wall and CPU (user+sys) milliseconds, and the child's peak RSS.  The machine is
# shared, so wall time includes waiting for a CPU; CPU time does not.
# Rescan and list figures are the median of 5 runs.
run() {   # run COMMAND... -> "wall_ms cpu_ms" (getrusage of the child)
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
w = time.perf_counter() - t
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
print("%.1f %.1f %d" % (w * 1000, cpu * 1000, r1.ru_maxrss // 1024))
PY
}
median5() {
  local i
  for i in 1 2 3 4 5; do run "$@"; done | sort -n | sed -n 3p
}
C=$T/catalog.db
read first firstcpu firstrss < <(run "$B" scan -q --catalog "$C" "$R")
s=$("$B" scan --json --catalog "$C" "$R")
read rescan rescancpu _ < <(median5 "$B" scan -q --catalog "$C" "$R")
read list listcpu _ < <(median5 "$B" list --catalog "$C" "$R" vm0100)
read listns listnscpu _ < <(median5 "$B" list --no-scan --catalog "$C" "$R" vm0100)
rows=$(($("$B" list --catalog "$C" "$R" vm0100 | wc -l) - 1))

ratio() { python3 -c "print('%.1fx' % ($1))"; }
echo "images: $n  VMs: $VMS  catalog: $s"
printf '%-32s %10s %10s %10s %12s\n' measure wall cpu goal "ratio (wall/cpu)"
printf '%-32s %10s %10s %10s %6s %6s\n' "first scan (images/s)" \
  "$(python3 -c "print('%.0f' % ($n / ($first / 1000)))")" \
  "$(python3 -c "print('%.0f' % ($n / max($firstcpu, 1) * 1000))")" ">= 2000" \
  "$(ratio "$n / ($first / 1000) / 2000")" "$(ratio "$n / max($firstcpu, 1) * 1000 / 2000")"
printf '%-32s %10s %10s %10s\n' "first scan (ms)" "$first" "$firstcpu" "< 5000 at 100k"
printf '%-32s %10s %10s %10s\n' "first scan peak RSS (MiB)" "$firstrss" "" "< 150"
for m in "unchanged rescan (ms)|$rescan|$rescancpu|500" \
         "list one VM, with rescan (ms)|$list|$listcpu|50" \
         "list one VM, --no-scan (ms)|$listns|$listnscpu|50"; do
  IFS='|' read name w c g <<<"$m"
  printf '%-32s %10s %10s %10s %6s %6s\n' "$name" "$w" "$c" "< $g" \
    "$(ratio "$g / max($w, 0.1)")" "$(ratio "$g / max($c, 0.1)")"
done
echo "(list printed $rows rows; ratio > 1x is better than the goal; load average"
echo " $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs)"
