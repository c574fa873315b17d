#!/bin/bash
# mount-kboss.sh — a CloudStack KBOSS repository: qcow2 files without
# extension whose backing names are absolute paths of another host (resolved
# inside the repository), a zstd-compressed volume, VMs named by a
# listBackups export given as -o cloudstack_backups=FILE.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
CHECK="python3 $SRCDIR/tests/fuse/fusecheck.py"

R=$T/secondary
POOL=/mnt/5e1c7b4a-2f3d-4e5f-8a9b-0c1d2e3f4a5b
VA=3a9e1c2b-1111-4aaa-8bbb-000000000001
VB=3a9e1c2b-2222-4aaa-8bbb-000000000002
U1=7d0c1e2f-0000-4000-8000-000000000001
U2=7d0c1e2f-0000-4000-8000-000000000002
UB=7d0c1e2f-0000-4000-8000-0000000000b1
D=$R/backups/2
[ ! -e "$POOL" ] || skip "$POOL exists here"
mkdir -p "$D/$VA" "$D/$VB"
sparse_raw "$T/a.raw" $((32 << 20)) 5 0 12 30
qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/a.raw" "$D/$VA/$U1"
qemu-img create -q -f qcow2 -F qcow2 -b "$U1" "$D/$VA/$U2" 32M
qemu-io -f qcow2 -c "write -P 0x5a 12M 512k" -c "write -z 30M 64k" "$D/$VA/$U2" >/dev/null
# the oracle, while the backing name still resolves
oracle "$T/u2.raw" "$D/$VA/$U2"
qemu-img rebase -u -F qcow2 -b "$POOL/backups/2/$VA/$U1" "$D/$VA/$U2"
sparse_raw "$T/b.raw" $((8 << 20)) 6 1
qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/b.raw" "$D/$VB/$UB"
touch -d '2026-10-01 03:00:00 UTC' "$D/$VA/$U1" "$D/$VB/$UB"
touch -d '2026-10-02 03:00:00 UTC' "$D/$VA/$U2"

vols() {
  python3 -c 'import json,sys; print(json.dumps(json.dumps(json.loads(sys.argv[1]))))' "$1"
}
cat > "$T/listbackups.json" <<JSON
{ "listbackupsresponse": { "count": 2, "backup": [
  { "id": "b-1", "virtualmachineid": "vm-uuid-1", "virtualmachinename": "web01",
    "date": "2026-10-01T03:00:00+0000", "type": "FULL",
    "volumes": $(vols "[{\"uuid\": \"$VA\", \"type\": \"ROOT\", \"deviceid\": 0, \"path\": \"$POOL/backups/2/$VA/$U1\"},
                       {\"uuid\": \"$VB\", \"type\": \"DATADISK\", \"deviceid\": 1, \"path\": \"backups/2/$VB/$UB\"}]") },
  { "id": "b-2", "virtualmachineid": "vm-uuid-1", "virtualmachinename": "web01",
    "date": "2026-10-02T03:00:00+0000", "type": "INCREMENTAL",
    "volumes": $(vols "[{\"uuid\": \"$VA\", \"type\": \"ROOT\", \"path\": \"$U2\"}]") }
] } }
JSON

M=$T/mnt
bfs_mount "$R" "$M" -o "cloudstack_backups=$T/listbackups.json"
ls "$M" | grep -qx web01 || fail "root lists $(ls "$M")"
[ "$(readlink "$M/web01/latest")" = 2026-10-02T030000Z ] || fail "latest -> $(readlink "$M/web01/latest")"
J=$M/web01/latest/backup.json
[ "$(jget "$J" "j['source']")" = cloudstack-kboss ] || fail "source $(jget "$J" "j['source']")"
[ "$(jget "$J" "j['disks'][0]['chain']")" = "['backups/2/$VA/$U2', 'backups/2/$VA/$U1']" ] ||
  fail "chain $(jget "$J" "j['disks'][0]['chain']")"
ls "$M/web01/2026-10-01T030000Z/disks" | grep -qx "datadisk-$VB.img" ||
  fail "disks: $(ls "$M/web01/2026-10-01T030000Z/disks")"
ok "tree from the listBackups export: $(ls "$M/web01" | tr '\n' ' ')"

root=$(jget "$J" "j['disks'][0]['name']")
cmp "$M/web01/latest/disks/$root.img" "$T/u2.raw" || fail "incremental with absolute backing differs"
oracle "$T/u1.raw" "$D/$VA/$U1"
cmp "$M/web01/2026-10-01T030000Z/disks/$root.img" "$T/u1.raw" || fail "zstd base differs"
oracle "$T/ub.raw" "$D/$VB/$UB"
cmp "$M/web01/2026-10-01T030000Z/disks/datadisk-$VB.img" "$T/ub.raw" || fail "zstd data disk differs"
ok "3 disks (absolute backing resolved in the repository, zstd) equal qemu-img"

# every byte outside the data ranges the mount reports must be zero
$CHECK holes "$M/web01/latest/disks/$root.img" "$T/u2.raw" >/dev/null ||
  fail "SEEK_DATA/SEEK_HOLE"
ok "holes hold only zeros"
bfs_umount "$M"
