#!/bin/bash
# forged-header.sh — a raw disk's bytes never decide anything (issue 10
# item 1).  vmA's generic disk.raw holds, as its own guest data, a qcow2
# header naming ../../vmB/<time>/disk.raw as its backing file.  The scan,
# the mount, `restore disk` and `verify` must all read vmA's disk as its own
# raw bytes, never vmB's data; and a .qcow2 overlay whose backing file is a
# raw-named disk recorded as qcow2 is a broken chain, not a probe.
. "$SRCDIR/tests/fuse/lib.sh"
R=$T/repo M=$T/mnt
ta=2026-10-01T030000Z
A=$R/vmA/$ta/disk.raw B=$R/vmB/$ta/disk.raw
mkdir -p "${A%/*}" "${B%/*}" "$R/vmC/$ta"
# vmB: a secret only vmB's disk holds
python3 -c 'import sys; open(sys.argv[1], "wb").write(b"vmB-SECRET" * 104858)' "$B"
# vmA: the guest wrote a qcow2 image with vmB's disk as backing onto its
# raw disk (both with and without a recorded backing format), then data
qemu-img create -q -f qcow2 -u -b "../../vmB/$ta/disk.raw" -F raw "$A" 1M
qemu-img create -q -f qcow2 -u -b "../../vmB/$ta/disk.raw" -F raw "$T/nofmt.qcow2" 1M
python3 - "$T/nofmt.qcow2" <<'EOF'     # drop the backing format extension
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = b.index(bytes.fromhex("e2792aca"), 72)
b[i:i + 4] = bytes.fromhex("7fffff01")   # an unknown (ignored) extension
open(p, "wb").write(b)
EOF
mkdir -p "$R/vmA/2026-10-02T030000Z"
cp "$T/nofmt.qcow2" "$R/vmA/2026-10-02T030000Z/disk.img"
for f in "$A" "$R/vmA/2026-10-02T030000Z/disk.img"; do
  truncate -s 1M "$f"
  qemu-io -f raw -c "write -P 0x41 512k 64k" "$f" >/dev/null
done
# vmC: a real qcow2 overlay that records a raw-named disk as qcow2
qemu-img create -q -f qcow2 -u -b "../../vmB/$ta/disk.raw" -F qcow2 \
  "$R/vmC/$ta/vda.qcow2" 1M
export XDG_CACHE_HOME=$T/cache
CAT=$T/catalog.db

"$BACKUPFS" list --json --catalog "$CAT" "$R" > "$T/list.json" || fail "list"
for t in $ta 2026-10-02T030000Z; do
  got=$(jget "$T/list.json" "[(d['format'], len(d['chain']), d['virtual_size'], d['status']) for v in j['vms'] if v['name'] == 'vmA' for b in v['backups'] if b['name'] == '$t' for d in b['disks']]")
  [ "$got" = "[('raw', 1, 1048576, 'ok')]" ] || fail "scan of vmA@$t: $got"
done
ok "scan: vmA's .raw and .img disks are raw, one layer, their own size"
got=$(jget "$T/list.json" "[b['status'] for v in j['vms'] if v['name'] == 'vmC' for b in v['backups']]")
case $got in *"recorded as qcow2"*raw*) ;; *) fail "vmC (qcow2 backing recorded on a .raw): $got" ;; esac
ok "a .qcow2 recording a .raw disk as its qcow2 backing is broken: $got"

bfs_mount "$R" "$M"
cmp "$M/vmA/$ta/disks/disk.img" "$A" || fail "mount: vmA@$ta is not its own bytes"
cmp "$M/vmA/2026-10-02T030000Z/disks/disk.img" "$R/vmA/2026-10-02T030000Z/disk.img" ||
  fail "mount: vmA's .img is not its own bytes"
grep -q vmB-SECRET "$M/vmA/$ta/disks/disk.img" && fail "mount: vmA shows vmB's data"
bfs_umount "$M"
ok "mount: vmA's disks read as their own raw bytes"

"$BACKUPFS" restore disk --catalog "$CAT" --repo "$R" "vmA@$ta" disk "$T/out.raw" \
  >/dev/null 2>"$T/restore.err" || fail "restore disk: $(cat "$T/restore.err")"
cmp "$T/out.raw" "$A" || fail "restore disk: not vmA's own bytes"
ok "restore disk: vmA's own bytes"

"$BACKUPFS" verify --json --no-checksum --catalog "$CAT" "$R" vmA > "$T/verify.json" ||
  fail "verify vmA: $(cat "$T/verify.json")"
python3 - "$T/verify.json" <<'EOF' || fail "verify: $(cat "$T/verify.json")"
import json, sys
j = json.load(open(sys.argv[1]))
rows = j["results"]
assert len(rows) == 2, rows
for r in rows:
    assert r["layers"] == 1 and r["ok"], r
EOF
ok "verify: vmA's disks pass as one raw layer each"
