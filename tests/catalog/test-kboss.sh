#!/bin/bash
# CloudStack KBOSS layout: backups/<account>/<volume>/<uuid> with absolute
# backing paths from the host that wrote them (another mount point), an
# interrupted compression (*.comp), times from mtime; then grouped into VMs
# by a listBackups export.
. "$(dirname "$0")/lib.sh"
R=$T/secondary
POOL=/mnt/5e1c7b4a-2f3d-4e5f-8a9b-0c1d2e3f4a5b
VA=3a9e1c2b-1111-4aaa-8bbb-000000000001   # root volume
VB=3a9e1c2b-2222-4aaa-8bbb-000000000002   # data volume
U1=7d0c1e2f-0000-4000-8000-000000000001
U2=7d0c1e2f-0000-4000-8000-000000000002
U3=7d0c1e2f-0000-4000-8000-000000000003
UB=7d0c1e2f-0000-4000-8000-0000000000b1
D=$R/backups/2
qcow2 "$D/$VA/$U1" 4G
qcow2 "$D/$VA/$U2" 4G "$POOL/backups/2/$VA/$U1"
qcow2 "$D/$VA/$U3" 4G "$POOL/backups/2/$VA/$U2"
qemu-img create -q -f raw "$T/src.raw" 1M
qemu-io -f raw -c 'write -P 0x5a 0 512k' "$T/src.raw" >/dev/null
mkdir -p "$D/$VB"
qemu-img convert -q -c -O qcow2 -o compression_type=zstd "$T/src.raw" "$D/$VB/$UB"
cp "$D/$VA/$U3" "$D/$VA/$U3.comp"                # interrupted compression
echo stray > "$D/$VA/README"                     # not qcow2: not a backup
touch -d '2026-10-01 03:00:00 UTC' "$D/$VA/$U1" "$D/$VB/$UB"
touch -d '2026-10-02 03:00:00 UTC' "$D/$VA/$U2"
touch -d '2026-10-03 03:00:00 UTC' "$D/$VA/$U3"
# the recorded backing names really are dangling here
! qemu-img info --backing-chain "$D/$VA/$U3" >/dev/null 2>&1 || { echo "SKIP: $POOL exists"; exit 77; }

J=$(listj --catalog "$T/a.db" "$R")
check "one VM entry per volume" "volume-2-$VA volume-2-$VB" "$(q '[.vms[].name] | join(" ")')"
check "points in time from mtime (.comp ignored)" \
  "2026-10-01T030000Z 2026-10-02T030000Z 2026-10-03T030000Z" \
  "$(q '[.vms[0].backups[].name] | join(" ")')"
B=$(backup volume-2-$VA 2026-10-03T030000Z)
check "absolute backing paths resolved by suffix" \
  "backups/2/$VA/$U3 backups/2/$VA/$U2 backups/2/$VA/$U1" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$B")"
check "source, status, disk" "cloudstack-kboss ok $VA 2 $VA" \
  "$(jq -r '"\(.source) \(.status) \(.disks[0].name) \(.account) \(.volume)"' <<<"$B")"
check "zstd volume" "zstd" \
  "$(jq -r '.disks[0].compression' <<<"$(backup volume-2-$VB 2026-10-01T030000Z)")"

# listBackups export (as `cmk list backups` prints it; volumes is a string)
vols() { jq -cn --arg a "$1" '$a | fromjson | tojson'; }
cat > "$T/listbackups.json" <<JSON
{ "listbackupsresponse": { "count": 3, "backup": [
  { "id": "b-1", "virtualmachineid": "vm-uuid-1", "virtualmachinename": "web01",
    "date": "2026-10-01T03:00:00+0000", "type": "FULL", "status": "BackedUp",
    "volumes": $(jq -n --arg p1 "$POOL/backups/2/$VA/$U1" --arg pb "backups/2/$VB/$UB" --arg va $VA --arg vb $VB \
      '[{uuid: $vb, type: "DATADISK", deviceid: 1, path: $pb}, {uuid: $va, type: "ROOT", deviceid: 0, path: $p1}] | tojson') },
  { "id": "b-2", "virtualmachineid": "vm-uuid-1", "virtualmachinename": "web01",
    "date": "2026-10-02T05:00:00+0200", "type": "INCREMENTAL",
    "volumes": $(jq -n --arg p "$U2" --arg va $VA '[{uuid: $va, type: "ROOT", path: $p}] | tojson') },
  { "id": "b-9", "virtualmachinename": "gone", "date": "2026-09-01T00:00:00Z",
    "volumes": "[{\"uuid\":\"x\",\"type\":\"ROOT\",\"path\":\"backups/2/x/nothere\"}]" }
] } }
JSON
J=$(listj --catalog "$T/b.db" --cloudstack-backups "$T/listbackups.json" "$R")
check "VMs with the export" "volume-2-$VA web01" "$(q '[.vms[].name] | join(" ")')"
check "web01 times from the export" "2026-10-01T030000Z 2026-10-02T030000Z" \
  "$(q '[.vms[] | select(.name=="web01") | .backups[].name] | join(" ")')"
B=$(backup web01 2026-10-01T030000Z)
check "disk order: ROOT first" "root:backups/2/$VA/$U1 datadisk-$VB:backups/2/$VB/$UB" \
  "$(jq -r '[.disks[] | "\(.name):\(.image)"] | join(" ")' <<<"$B")"
check "backup id kept" "b-1 vm-uuid-1" "$(jq -r '"\(.backup_id) \(.vm_id)"' <<<"$B")"
check "incremental chain" "backups/2/$VA/$U2 backups/2/$VA/$U1" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$(backup web01 2026-10-02T030000Z)")"
check "unlisted image stays a volume entry" "2026-10-03T030000Z" \
  "$(q '[.vms[] | select(.name=="volume-2-'$VA'") | .backups[].name] | join(" ")')"
# remembered by the catalog
J=$(listj --catalog "$T/b.db" "$R")
check "export remembered" "volume-2-$VA web01" "$(q '[.vms[].name] | join(" ")')"

# without the wrapper, and as a bare list
jq .listbackupsresponse "$T/listbackups.json" > "$T/lb2.json"
check "export without wrapper" "volume-2-$VA web01" \
  "$(listj --catalog "$T/e.db" --cloudstack-backups "$T/lb2.json" "$R" | jq -r '[.vms[].name] | join(" ")')"
jq .listbackupsresponse.backup "$T/listbackups.json" > "$T/lb3.json"
check "export as a bare list" "volume-2-$VA web01" \
  "$(listj --catalog "$T/f.db" --cloudstack-backups "$T/lb3.json" "$R" | jq -r '[.vms[].name] | join(" ")')"

# the repository given as the backups directory itself
J=$(listj --catalog "$T/c.db" "$R/backups")
check "repo = backups/: chain" "2/$VA/$U3 2/$VA/$U2 2/$VA/$U1" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$(backup volume-2-$VA 2026-10-03T030000Z)")"

# a broken export is reported and ignored
echo '{ "listbackupsresponse": {' > "$T/bad.json"
out=$("$BACKUPFS" scan --catalog "$T/d.db" --cloudstack-backups "$T/bad.json" "$R" 2>&1)
check_match "bad export named in a warning" "bad.json.*(JSON|json)" "$out"
check_match "and the volumes still listed" "2 VMs, 4 backups" "$out"

# a display name two VMs share (tenants choose them): neither gets it alone
jq '.listbackupsresponse.backup += [{ id: "b-3", virtualmachineid: "vm-uuid-2",
  virtualmachinename: "web01", date: "2026-10-03T03:00:00Z",
  volumes: ([{uuid: "'$VA'", type: "ROOT", deviceId: 0, path: "'$U3'"}] | tojson) }]' \
  "$T/listbackups.json" > "$T/lb-shared.json"
J=$(listj --catalog "$T/s.db" --cloudstack-backups "$T/lb-shared.json" "$R")
check "a shared display name: <name>-<vm id> each" \
  "web01-vm-uuid-1:2 web01-vm-uuid-2:1" \
  "$(q '[.vms[] | "\(.name):\(.backups | length)"] | join(" ")')"
check "vm_name keeps the display name" "web01 web01" \
  "$(q '[.vms[].backups[-1].vm_name] | join(" ")')"

# backing names that loop (a hostile store): both visible, broken, dated
L=$T/loop/backups/3/$VA
qcow2 "$L/$U1" 1M "$POOL/backups/3/$VA/$U2"
qcow2 "$L/$U2" 1M "$POOL/backups/3/$VA/$U1"
touch -d '2026-10-01 03:00:00 UTC' "$L/$U1" "$L/$U2"
J=$(listj --catalog "$T/l.db" "$T/loop")
check "a loop of backing names: visible, broken, mtime" \
  "2026-10-01T030000Z mtime true|2026-10-01T030000Z-1 mtime true" \
  "$(q '[.vms[0].backups[] | "\(.name) \(.time_source) \(.status != "ok")"] | join("|")')"
finish
