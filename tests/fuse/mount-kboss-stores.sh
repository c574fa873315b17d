#!/bin/bash
# mount-kboss-stores.sh — a KBOSS chain over two secondary stores (each
# backup picks a store; backing names are /mnt/<pool-uuid>/backups/... of
# the other one), a listBackups export with end-of-chain and isolated
# backups (their volume path is the primary-storage one), a Removed and an
# Error backup, a compressed file whose mtime is when compression finished
# (after the next backup); bytes against qemu-img convert -O raw.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
command -v jq >/dev/null || skip "jq is missing"
export XDG_CACHE_HOME=$T/cache

S1=$T/store1 S2=$T/store2
P1=/mnt/6a1f0c3e-1111-4f00-9000-00000000aaaa
P2=/mnt/6a1f0c3e-2222-4f00-9000-00000000bbbb
VA=3a9e1c2b-1111-4aaa-8bbb-000000000001   # ROOT
VB=3a9e1c2b-2222-4aaa-8bbb-000000000002   # DATADISK
U1=7d0c1e2f-0000-4000-8000-000000000001   # full, store 1
U2=7d0c1e2f-0000-4000-8000-000000000002   # incremental, store 2, compressed
U3=7d0c1e2f-0000-4000-8000-000000000003   # end of chain, store 1
U4=7d0c1e2f-0000-4000-8000-000000000004   # isolated full, store 2
U5=7d0c1e2f-0000-4000-8000-000000000005   # isolated full, store 1 (Error)
UB=7d0c1e2f-0000-4000-8000-0000000000b1   # isolated data disk, store 1
[ ! -e "$P1" ] && [ ! -e "$P2" ] || skip "$P1 or $P2 exists here"
A1=$S1/backups/2/$VA A2=$S2/backups/2/$VA
mkdir -p "$A1" "$A2" "$S1/backups/2/$VB"

sparse_raw "$T/a.raw" $((16 << 20)) 7 0 5 15
qemu-img convert -O qcow2 "$T/a.raw" "$A1/$U1"
qemu-img create -q -f qcow2 -F qcow2 -b "$A1/$U1" "$T/u2.tmp" 16M
qemu-io -f qcow2 -c "write -P 0x5a 5M 1M" -c "write -P 0x11 9M 64k" "$T/u2.tmp" >/dev/null
# the asynchronous compression: a compressed copy moved over the file
qemu-img convert -c -O qcow2 -F qcow2 -B "$A1/$U1" "$T/u2.tmp" "$A2/$U2.comp"
mv "$A2/$U2.comp" "$A2/$U2"
qemu-img create -q -f qcow2 -F qcow2 -b "$A2/$U2" "$A1/$U3" 16M
qemu-io -f qcow2 -c "write -P 0x77 0 128k" -c "write -z 5M 64k" "$A1/$U3" >/dev/null
sparse_raw "$T/d.raw" $((16 << 20)) 8 2 12
qemu-img convert -O qcow2 "$T/d.raw" "$A2/$U4"
sparse_raw "$T/e.raw" $((16 << 20)) 9 1
qemu-img convert -O qcow2 "$T/e.raw" "$A1/$U5"
sparse_raw "$T/b.raw" $((8 << 20)) 10 3
qemu-img convert -O qcow2 "$T/b.raw" "$S1/backups/2/$VB/$UB"
# oracles while the backing names still resolve, then the names CloudStack
# writes: absolute paths on the host, in the other store
oracle "$T/u3.raw" "$A1/$U3"
oracle "$T/u4.raw" "$A2/$U4"
oracle "$T/ub.raw" "$S1/backups/2/$VB/$UB"
qemu-img rebase -u -F qcow2 -b "$P1/backups/2/$VA/$U1" "$A2/$U2"
qemu-img rebase -u -F qcow2 -b "$P2/backups/2/$VA/$U2" "$A1/$U3"
touch -d '2026-10-01 03:00:00 UTC' "$A1/$U1" "$S1/backups/2/$VB/$UB"
touch -d '2026-10-03 03:00:00 UTC' "$A1/$U3"
touch -d '2026-10-04 03:00:00 UTC' "$A2/$U4"
touch -d '2026-10-05 03:00:00 UTC' "$A1/$U5"
touch -d '2026-10-06 09:00:00 UTC' "$A2/$U2"       # compression finished late
n=0
check() { [ "$2" == "$3" ] || fail "$1: expected [$2] got [$3]"; n=$((n + 1)); }
bk() { jq -c --arg vm "$1" --arg b "$2" \
  '.vms[] | select(.name == $vm) | .backups[] | select(.name == $b)' <<<"$J"; }

# one store alone: the end of the chain's parent is in the other one
J=$("$BACKUPFS" list --json --catalog "$T/one.db" "$S1")
check_st=$(jq -r --arg u "$U3" '.vms[].backups[] | select(.disks[0].image | endswith($u)) | .status' <<<"$J")
[[ "$check_st" == *"not found"* ]] || fail "one store: status [$check_st]"

# both stores, no export: volume entries, times from mtime inside the chain
J=$("$BACKUPFS" list --json --catalog "$T/two.db" "$S1" "$S2")
check "volume entry over two stores" \
  "2026-10-01T030000Z 2026-10-03T025959Z 2026-10-03T030000Z 2026-10-04T030000Z 2026-10-05T030000Z" \
  "$(jq -r --arg v "volume-2-$VA" '[.vms[] | select(.name == $v) | .backups[].name] | join(" ")' <<<"$J")"
B=$(bk "volume-2-$VA" 2026-10-03T030000Z)
check "chain across stores" "backups/2/$VA/$U3 .root1/backups/2/$VA/$U2 backups/2/$VA/$U1 ok" \
  "$(jq -r '"\(.disks[0].chain | join(" ")) \(.status)"' <<<"$B")"
check "compressed file: time bounded by its child, not its mtime" "chain-bounded mtime" \
  "$(jq -r '"\(.time_source) "' <<<"$(bk "volume-2-$VA" 2026-10-03T025959Z)")$(jq -r .time_source <<<"$B")"

# the export: end-of-chain (b-3) and isolated (b-1's data disk, b-4, b-5)
# backups name primary-storage paths; b-2 is Removed, b-5 Error
pv() { jq -cn --arg u "$1" --arg t "$2" --argjson d "$3" --arg p "$4" \
  '{uuid: $u, type: $t, deviceId: $d, path: $p, size: 16777216}'; }
vols() { jq -sc 'tojson' <<<"$*"; }
cat > "$T/lb.json" <<JSON
{ "listbackupsresponse": { "count": 5, "backup": [
 { "id": "b-1", "virtualmachineid": "vm-1", "virtualmachinename": "web01",
   "externalid": "x", "type": "FULL", "status": "BackedUp",
   "created": "2026-10-01T03:00:00+0000",
   "volumes": $(vols "$(pv $VB DATADISK 1 /mnt/primary/vb-disk)" "$(pv $VA ROOT 0 $U1)") },
 { "id": "b-2", "virtualmachineid": "vm-1", "virtualmachinename": "web01",
   "type": "INCREMENTAL", "status": "Removed", "created": "2026-10-02T03:00:00+0000",
   "volumes": $(vols "$(pv $VA ROOT 0 $U2)") },
 { "id": "b-3", "virtualmachineid": "vm-1", "virtualmachinename": "web01",
   "type": "INCREMENTAL", "status": "BackedUp", "date": "2026-10-03T05:00:00+0200",
   "volumes": $(vols "$(pv $VA ROOT 0 /mnt/primary/va-disk)") },
 { "id": "b-4", "virtualmachineid": "vm-1", "virtualmachinename": "web01",
   "type": "FULL", "status": "BackedUp", "created": "2026-10-04T02:59:00+0000",
   "volumes": $(vols "$(pv $VA ROOT 0 /mnt/primary/va-disk)") },
 { "id": "b-5", "virtualmachineid": "vm-1", "virtualmachinename": "web01",
   "type": "FULL", "status": "Error", "created": "2026-10-05T02:59:00+0000",
   "volumes": $(vols "$(pv $VA ROOT 0 /mnt/primary/va-disk)") }
] } }
JSON
J=$("$BACKUPFS" list --json --catalog "$T/ex.db" --cloudstack-backups "$T/lb.json" "$S1" "$S2")
check "VMs with the export" "web01" "$(jq -r '[.vms[].name] | join(" ")' <<<"$J")"
check "Removed and Error hidden, times from the export" \
  "2026-10-01T030000Z 2026-10-03T030000Z 2026-10-04T025900Z" \
  "$(jq -r '[.vms[0].backups[].name] | join(" ")' <<<"$J")"
B=$(bk web01 2026-10-03T030000Z)
check "end-of-chain backup" "b-3 export backups/2/$VA/$U3 3" \
  "$(jq -r '"\(.backup_id) \(.time_source) \(.disks[0].image) \(.disks[0].chain | length)"' <<<"$B")"
check "isolated backups" "b-4 .root1/backups/2/$VA/$U4" \
  "$(jq -r '"\(.backup_id) \(.disks[0].image)"' <<<"$(bk web01 2026-10-04T025900Z)")"
check "isolated data disk, deviceId order" "root datadisk-$VB backups/2/$VB/$UB" \
  "$(jq -r '"\([.disks[].name] | join(" ")) \(.disks[1].image)"' <<<"$(bk web01 2026-10-01T030000Z)")"
J=$("$BACKUPFS" list --json --no-scan --catalog "$T/ex.db" "$S1")
check "stores and export remembered" "3 $S2" "$(jq -r '"\(.vms[0].backups | length) \(.stores | join(" "))"' <<<"$J")"
J=$("$BACKUPFS" list --json --show-removed --catalog "$T/ex.db" "$S1")
check "--show-removed: flagged, the compressed file at the export's date" \
  "2026-10-02T030000Z Removed true export|2026-10-05T025900Z Error true export" \
  "$("$BACKUPFS" list --json --show-removed --catalog "$T/ex.db" "$S1" |
     jq -r '[.vms[0].backups[] | select(.removed) | "\(.name) \(.cloudstack_status) \(.removed) \(.time_source)"] | join("|")')"
"$BACKUPFS" verify --catalog "$T/ex.db" --no-checksum "$S1" web01 >"$T/verify.out" 2>&1 ||
  fail "verify over remembered stores: $(cat "$T/verify.out")"
"$BACKUPFS" verify --catalog "$T/v2.db" --no-checksum "$S1" "$S2" web01 >"$T/verify.out" 2>&1 &&
  fail "verify without the export found web01"
"$BACKUPFS" verify --catalog "$T/v2.db" "$S1" "$S2" "volume-2-$VA@2026-10-03T030000Z" \
  >"$T/verify.out" 2>&1 || fail "verify over two stores: $(cat "$T/verify.out")"
"$BACKUPFS" restore disk --repo "$S1" --repo "$S2" --catalog "$T/r.db" \
  "volume-2-$VA@2026-10-03T030000Z" "$VA" "$T/restored.raw" >/dev/null ||
  fail "restore disk over two stores"
cmp "$T/restored.raw" "$T/u3.raw" || fail "restored chain over two stores differs"

# the same export names NAS backups: externalid is <instance>/<stamp>
N=$T/nas
mk_nas "$N"
jq '.listbackupsresponse.backup += [
  { id: "n-1", virtualmachineid: "vm-17", virtualmachinename: "db-display",
    externalid: "i-2-17-VM/2026.10.01.02.00.00", status: "BackedUp",
    created: "2026-10-01T04:00:00+0200", volumes: "[]" },
  { id: "n-2", virtualmachineid: "vm-17", virtualmachinename: "db-display",
    externalid: "i-2-17-VM/2026.10.02.02.00.00", status: "Removed",
    created: "2026-10-02T02:00:00+0000", volumes: "[]" } ]' "$T/lb.json" > "$T/lbn.json"
J=$("$BACKUPFS" list --json --catalog "$T/nas.db" --cloudstack-backups "$T/lbn.json" "$N")
check "NAS: the export's name, id and date; Removed hidden" \
  "2026-10-01T020000Z db-display n-1 export" \
  "$(jq -r '[.vms[] | select(.name == "i-2-17-VM") | .backups[] | "\(.name) \(.vm_name) \(.backup_id) \(.time_source)"] | join("|")' <<<"$J")"
"$BACKUPFS" list --show-removed --catalog "$T/ex.db" "$S1" | grep -q "2026-10-02T030000Z .*ok (CloudStack: Removed)" ||
  fail "list table does not flag the Removed backup"
ok "catalog: $n checks"

# the mount: both stores, removed shown, bytes against qemu-img
M=$T/mnt
MORE_REPOS=$S2 bfs_mount "$S1" "$M" -o "cloudstack_backups=$T/lb.json,show_removed"
ls "$M/web01" | grep -qx 2026-10-02T030000Z || fail "show_removed: $(ls "$M/web01")"
cmp "$M/web01/2026-10-03T030000Z/disks/root.img" "$T/u3.raw" ||
  fail "chain over two stores differs from qemu-img"
cmp "$M/web01/2026-10-04T025900Z/disks/root.img" "$T/u4.raw" ||
  fail "isolated backup in store 2 differs"
cmp "$M/web01/2026-10-01T030000Z/disks/datadisk-$VB.img" "$T/ub.raw" ||
  fail "isolated data disk differs"
[ "$(jget "$M/web01/2026-10-02T030000Z/backup.json" "j['removed']")" = True ] ||
  fail "removed not flagged in backup.json"
[ "$(readlink "$M/by-name/web01")" = ../web01 ] || fail "by-name/web01 -> $(readlink "$M/by-name/web01")"
ok "mount over two stores: 3 disks equal qemu-img"
bfs_umount "$M"

# NAS: by-name/<display name> is a link to the instance directory
M2=$T/mnt2
bfs_mount "$N" "$M2" -o "cloudstack_backups=$T/lbn.json"
[ "$(readlink "$M2/by-name/db-display")" = ../i-2-17-VM ] ||
  fail "by-name: $(ls -l "$M2/by-name" 2>&1)"
[ "$(ls "$M2/by-name/db-display/")" = "$(printf '2026-10-01T020000Z\nlatest')" ] ||
  fail "by-name/db-display/: $(ls "$M2/by-name/db-display/")"
[ "$(ls "$M2")" = "$(printf 'by-name\ni-2-17-VM')" ] || fail "root: $(ls "$M2")"
ok "by-name links"
bfs_umount "$M2"
