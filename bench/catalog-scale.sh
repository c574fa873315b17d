#!/bin/bash
# catalog-scale.sh — catalog at scale: a generic repository of 10,000 small
# qcow2 images across 200 VMs (50 points in time each, a full backup every
# 10th, incrementals backed by the previous one), then:
#   first scan (warm page cache, fresh catalog), unchanged rescan,
#   `list` of one VM (with its incremental rescan) and `list --no-scan`.
# Prints each figure next to its goal (issue 3).  Not part of meson test.
#
# usage: bench/catalog-scale.sh [BACKUPFS] [VMS] [PER_VM]
set -euo pipefail
B=${1:-${BACKUPFS:-$(dirname "$0")/../build/backupfs}}
VMS=${2:-200} PER=${3:-50}
command -v qemu-img >/dev/null && command -v python3 >/dev/null || {
  echo "needs qemu-img and python3"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-bench.XXXXXX")
[ -n "${KEEP:-}" ] && echo "keeping $T" || trap 'rm -rf "$T"' EXIT
R=$T/repo

# templates: a full image and an overlay whose backing name has the
# fixed-length form ../YYYY-MM-DDTHH:MM:SSZ/vda.qcow2, patched per copy
qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/full.qcow2" 64M
qemu-img create -q -f qcow2 -o cluster_size=4096 -u \
  -b ../2000-01-01T00:00:00Z/vda.qcow2 -F qcow2 "$T/inc.qcow2" 64M
python3 - "$T" "$R" "$VMS" "$PER" <<'PY'
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
cat $(find "$R" -type f) > /dev/null            # warm the page cache

# each figure is the median of 5 runs (the machine is shared: noisy)
median5() {   # median5 COMMAND...  -> milliseconds
  local i t0 t1 v=()
  for i in 1 2 3 4 5; do
    t0=$EPOCHREALTIME; "$@" > /dev/null; t1=$EPOCHREALTIME
    v+=("$(python3 -c "print((float('$t1') - float('$t0')) * 1000)")")
  done
  printf '%s\n' "${v[@]}" | sort -n | sed -n 3p | xargs printf '%.1f'
}
C=$T/catalog.db
t0=$EPOCHREALTIME; "$B" scan -q --catalog "$C" "$R"; t1=$EPOCHREALTIME
first=$(python3 -c "print('%.1f' % ((float('$t1') - float('$t0')) * 1000))")
s=$("$B" scan --json --catalog "$C" "$R")
rescan=$(median5 "$B" scan -q --catalog "$C" "$R")
list=$(median5 "$B" list --catalog "$C" "$R" vm0100)
listns=$(median5 "$B" list --no-scan --catalog "$C" "$R" vm0100)
rows=$(($("$B" list --catalog "$C" "$R" vm0100 | wc -l) - 1))

ips=$(python3 -c "print('%.0f' % ($n / ($first / 1000)))")
echo "images: $n  VMs: $VMS  catalog: $s"
printf '%-34s %12s %12s %8s\n' measure value goal ratio
printf '%-34s %12s %12s %8s\n' "first scan (images/s)" "$ips" ">= 2000" \
  "$(python3 -c "print('%.1fx' % ($ips / 2000))")"
printf '%-34s %12s %12s %8s\n' "first scan (ms)" "$first" "" ""
printf '%-34s %12s %12s %8s\n' "unchanged rescan (ms)" "$rescan" "< 500" \
  "$(python3 -c "print('%.1fx' % (500 / max($rescan, 0.1)))")"
printf '%-34s %12s %12s %8s\n' "list one VM, with rescan (ms)" "$list" "< 50" \
  "$(python3 -c "print('%.1fx' % (50 / max($list, 0.1)))")"
printf '%-34s %12s %12s %8s\n' "list one VM, --no-scan (ms)" "$listns" "< 50" \
  "$(python3 -c "print('%.1fx' % (50 / max($listns, 0.1)))")"
echo "(list printed $rows rows; ratio > 1x means better than the goal;"
echo " first scan is one run, the others the median of 5; load: $(cut -d' ' -f1-3 /proc/loadavg))"
