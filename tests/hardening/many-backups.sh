#!/bin/bash
# many-backups.sh — 10,000 backups of one VM in one directory: scanned,
# listed in order, latest correct, any one of them readable.
. "$SRCDIR/tests/fuse/lib.sh"
R=$T/repo M=$T/mnt
qemu-img create -q -f qcow2 "$T/tpl.qcow2" 1M
qemu-io -f qcow2 -c "write -P 0x99 0 64k" "$T/tpl.qcow2" >/dev/null
python3 - "$R/vm" "$T/tpl.qcow2" <<'PY'
import os, shutil, sys, time
root, tpl = sys.argv[1], sys.argv[2]
data = open(tpl, "rb").read()
base = 1767225600  # 2026-01-01
for i in range(10000):
    d = os.path.join(root, time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime(base + i * 3600)))
    os.makedirs(d)
    with open(os.path.join(d, "vda.qcow2"), "wb") as f:
        f.write(data)
PY
bfs_mount "$R" "$M"
n=$(ls "$M/vm" | grep -c 'Z$')
[ "$n" = 10000 ] || fail "listed $n backups, want 10000"
last=$(ls "$M/vm" | grep 'Z$' | tail -1)
[ "$(readlink "$M/vm/latest")" = "$last" ] || fail "latest -> $(readlink "$M/vm/latest"), want $last"
[ "$last" = 2027-02-21T150000Z ] || fail "newest is $last"
oracle "$T/o.raw" "$T/tpl.qcow2"
cmp "$T/o.raw" "$M/vm/2026-06-01T000000Z/disks/vda.img" || fail "a backup in the middle reads wrong"
ok "10,000 backups of one VM: listed, latest=$last, read exactly"
bfs_umount "$M"
