#!/bin/bash
# kboss-scale.sh — KBOSS at scale: VOLS volumes with PER images each over
# two secondary stores (chains of 8 as KBOSS makes them: a full, then
# incrementals whose backing names are /mnt/<pool>/backups/... of the other
# store), and a listBackups export naming every backup (end-of-chain ones
# by their primary-storage path, as CloudStack does).  Prints the first
# scan and the unchanged rescan without and with the export side by side,
# and the load average.  Not part of meson test.
#
# usage: bench/kboss-scale.sh [BACKUPFS] [VOLS] [PER]
set -euo pipefail
B=${1:-}; B=${B:-${BACKUPFS:-$(dirname "$0")/../build/backupfs}}
VOLS=${2:-200} PER=${3:-40}
command -v qemu-img >/dev/null && command -v python3 >/dev/null || {
  echo "needs qemu-img and python3"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-bench.XXXXXX")
[ -n "${KEEP:-}" ] && echo "keeping $T" || trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME=$T/cache

P=/mnt/00000000-0000-4000-8000-000000000000
OLD=$P/backups/2/00000000-0000-4000-8000-00000000000v/00000000-0000-4000-8000-00000000000u
qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/full.qcow2" 64M
qemu-img create -q -f qcow2 -o cluster_size=4096 -u -b "$OLD" -F qcow2 \
  "$T/inc.qcow2" 64M
python3 - "$T" "$VOLS" "$PER" "$OLD" <<'PY'
import json, os, sys
t, vols, per, old = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
full = open(f"{t}/full.qcow2", "rb").read()
inc = open(f"{t}/inc.qcow2", "rb").read()
assert inc.count(old) == 1
pools = ["/mnt/11111111-1111-4111-8111-111111111111",
         "/mnt/22222222-2222-4222-8222-222222222222"]
backups = []
for v in range(vols):
    vol = f"00000000-0000-4000-8000-{v:012d}"
    prev = None
    for i in range(per):
        u = f"{v:08d}-0000-4000-8000-{i:012d}"
        store = (v + i) % 2
        d = f"{t}/store{store + 1}/backups/2/{vol}"
        os.makedirs(d, exist_ok=True)
        if i % 8 == 0:
            data = full
        else:
            name = f"{pools[1 - store]}/backups/2/{vol}/{prev}".encode()
            assert len(name) == len(old)
            data = inc.replace(old, name)
        with open(f"{d}/{u}", "wb") as f:
            f.write(data)
        t0 = 1780000000 + i * 86400
        os.utime(f"{d}/{u}", (t0, t0))
        end = i % 8 == 7 or i == per - 1
        path = f"/mnt/primary/{vol}" if end else u
        backups.append({"id": f"b-{v}-{i}", "virtualmachineid": f"vm-{v}",
            "virtualmachinename": f"vm{v:04d}", "status": "BackedUp",
            "created": f"@{t0}", "type": "FULL" if i % 8 == 0 else "INCREMENTAL",
            "volumes": json.dumps([{"uuid": vol, "type": "ROOT", "deviceId": 0,
                                    "path": path}])})
        prev = u
import datetime
for b in backups:
    s = int(b["created"][1:])
    b["created"] = datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
json.dump({"listbackupsresponse": {"count": len(backups), "backup": backups}},
          open(f"{t}/lb.json", "w"))
PY
run() {   # run LABEL ARGS...: seconds of one scan
  local s e
  shift
  s=$(date +%s.%N)
  "$B" scan -q "$@" >/dev/null
  e=$(date +%s.%N)
  python3 -c "print(f'{$e - $s:.2f}')"
}
N=$((VOLS * PER))
a1=$(run plain --catalog "$T/a.db" "$T/store1" "$T/store2")
a2=$(run plain --catalog "$T/a.db" "$T/store1" "$T/store2")
b1=$(run export --catalog "$T/b.db" --cloudstack-backups "$T/lb.json" "$T/store1" "$T/store2")
b2=$(run export --catalog "$T/b.db" "$T/store1" "$T/store2")
named=$("$B" list --json --no-scan --catalog "$T/b.db" "$T/store1" |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(sum(len(v["backups"]) for v in j["vms"] if not v["name"].startswith("volume-")))')
printf '%-34s %10s %10s %8s\n' "$N images, 2 stores" "no export" "export" "ratio"
printf '%-34s %10s %10s %8s\n' "first scan (s)" "$a1" "$b1" \
  "$(python3 -c "print(f'{$b1 / max($a1, 0.01):.2f}')")"
printf '%-34s %10s %10s %8s\n' "unchanged rescan (s)" "$a2" "$b2" \
  "$(python3 -c "print(f'{$b2 / max($a2, 0.01):.2f}')")"
echo "backups named by the export: $named of $N"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
