#!/bin/bash
# CloudStack NAS layout: full + 2 incrementals of a VM with two disks mapped
# to vda/vdb through domain-config.xml, files being written ignored, a
# second VM mapped through domblklist.xml with a LUKS-encrypted disk.
. "$(dirname "$0")/lib.sh"
R=$T/nas
export TZ=UTC     # the host zone NAS stamps are read in unless told
VM=i-2-10-VM
ROOT=6b1e2d0a-1c1f-4a57-9d3c-0f6f1b7d0a11
DATA=9f3c0e55-7a2b-4c8e-b1f0-2d7e6a4c5b22
S1=2026.10.01.03.00.00 S2=2026.10.02.03.00.00 S3=2026.10.03.03.00.00

. "$SRCDIR/tests/lib/nas.sh"
domxml() {   # a CD-ROM first and vdb before vda: the targets name the disks
  nas_domain_xml "$VM" 1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 hdc=cdrom \
    "vdb=/mnt/0c2f9a3e-pool/$DATA" "vda=/mnt/0c2f9a3e-pool/$ROOT"
}

qcow2 "$R/$VM/$S1/root.$ROOT.qcow2" 2G
qcow2 "$R/$VM/$S1/datadisk.$DATA.qcow2" 1G
for s in $S2 $S3; do
  prev=$S1; [ $s = $S3 ] && prev=$S2
  qcow2 "$R/$VM/$s/root.$ROOT.qcow2" 2G "../$prev/root.$ROOT.qcow2"
  qcow2 "$R/$VM/$s/datadisk.$DATA.qcow2" 1G "../$prev/datadisk.$DATA.qcow2"
done
for s in $S1 $S2 $S3; do
  domxml > "$R/$VM/$s/domain-config.xml"
  printf 'Id: 7\nName: %s\nState: running\n' $VM > "$R/$VM/$s/dominfo.xml"
done
# a backup being written: only temporary files
S4=2026.10.04.03.00.00
qcow2 "$R/$VM/$S4/root.$ROOT.qcow2.tmp" 2G
echo '<domainbackup/>' > "$R/$VM/$S4/backup.xml"
echo '<domaincheckpoint/>' > "$R/$VM/$S4/checkpoint.xml"
domxml > "$R/$VM/$S4/domain-config.xml"
# and leftovers next to a finished one
cp "$R/$VM/$S3/root.$ROOT.qcow2" "$R/$VM/$S3/root.$ROOT.qcow2.luks"
echo '<domainbackup/>' > "$R/$VM/$S3/backup.xml"

# second VM: domblklist.xml only, LUKS-encrypted root
VM2=i-2-11-VM ROOT2=0a1b2c3d-0000-4000-8000-000000000001
mkdir -p "$R/$VM2/$S1"
"$SRCDIR/tests/lib/qemu-img-retry" create -q -f qcow2 --object secret,id=s0,data=secret \
  -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
  "$R/$VM2/$S1/root.$ROOT2.qcow2" 64M
nas_domblklist "vda=/mnt/0c2f9a3e-pool/$ROOT2" hdc=cdrom > "$R/$VM2/$S1/domblklist.xml"
echo '<domain><devices><disk' > "$R/$VM2/$S1/domain-config.xml"   # truncated

J=$(listj "$R")
check "VMs" "$VM $VM2" "$(q '[.vms[].name] | join(" ")')"
check "points in time (the one being written is shown)" \
  "2026-10-01T030000Z 2026-10-02T030000Z 2026-10-03T030000Z 2026-10-04T030000Z" \
  "$(q '[.vms[0].backups[].name] | join(" ")')"
check "the one being written says it is unfinished" \
  "unfinished: $VM/$S4/root.$ROOT.qcow2.tmp is still being written" \
  "$(jq -r .status <<<"$(backup $VM 2026-10-04T030000Z)")"
check "stamp and zone kept (TZ=UTC)" "$S3 UTC +00:00" \
  "$(jq -r '"\(.stamp) \(.timezone) \(.utc_offset)"' <<<"$(backup $VM 2026-10-03T030000Z)")"
B=$(backup $VM 2026-10-03T030000Z)
check "disk targets from domain-config.xml, in order" "vda vdb" \
  "$(jq -r '[.disks[].name] | join(" ")' <<<"$B")"
check "vda chain, top first" \
  "$VM/$S3/root.$ROOT.qcow2 $VM/$S2/root.$ROOT.qcow2 $VM/$S1/root.$ROOT.qcow2" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$B")"
check "vdb chain, top first" \
  "$VM/$S3/datadisk.$DATA.qcow2 $VM/$S2/datadisk.$DATA.qcow2 $VM/$S1/datadisk.$DATA.qcow2" \
  "$(jq -r '.disks[1].chain | join(" ")' <<<"$B")"
check "sizes" "2147483648 1073741824" \
  "$(jq -r '[.disks[].virtual_size] | join(" ")' <<<"$B")"
check "volume ids" "$ROOT $DATA" "$(jq -r '[.disks[].volume] | join(" ")' <<<"$B")"
check "source, status, domain" \
  "cloudstack-nas ok $VM/$S3/domain-config.xml $VM 1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" \
  "$(jq -r '"\(.source) \(.status) \(.domain_xml) \(.domain_name) \(.domain_uuid)"' <<<"$B")"
check "full backup has depth 1" "1 1" \
  "$(jq -r '[.disks[].chain_depth] | join(" ")' <<<"$(backup $VM 2026-10-01T030000Z)")"
check "time" "2026-10-02T03:00:00Z" "$(jq -r .time <<<"$(backup $VM 2026-10-02T030000Z)")"

B=$(backup $VM2 2026-10-01T030000Z)
check "target from domblklist.xml (domain-config.xml unreadable)" "vda" "$(jq -r '.disks[0].name' <<<"$B")"
check "LUKS marked" "true" "$(jq -r '.disks[0].encrypted' <<<"$B")"
check_match "LUKS status says so" "encrypted" "$(jq -r '.status' <<<"$B")"

# a stopped VM's backup (no domain files, as nasbackup.sh writes it)
# names its disks like the same volumes in the VM's other backups
S5=2026.10.05.03.00.00
qcow2 "$R/$VM/$S5/root.$ROOT.qcow2" 2G
qcow2 "$R/$VM/$S5/datadisk.$DATA.qcow2" 1G
J=$(listj "$R")
check "stopped-VM backup: names from the other backups" "vda vdb" \
  "$(jq -r '[.disks[].name] | join(" ")' <<<"$(backup $VM 2026-10-05T030000Z)")"
check "stopped-VM backup: status" "ok" "$(jq -r .status <<<"$(backup $VM 2026-10-05T030000Z)")"
# ... also in a partial rescan of the VM (list VM)
J=$(listj "$R" $VM)
check "stopped-VM backup named in a partial scan" "vda vdb" \
  "$(jq -r '[.disks[].name] | join(" ")' <<<"$(backup $VM 2026-10-05T030000Z)")"

# no image vanishes: pre-release <n>.root.<vol>.qcow2, a generic
# root.qcow2 next to domain-config.xml, an unknown file
VM3=i-2-12-VM
qcow2 "$R/$VM3/$S1/0.root.$ROOT.qcow2" 1G
qcow2 "$R/$VM3/$S1/1.datadisk.$DATA.qcow2" 1G
domxml > "$R/$VM3/$S1/domain-config.xml"
qcow2 "$R/$VM3/$S2/root.qcow2" 1G
domxml > "$R/$VM3/$S2/domain-config.xml"
qcow2 "$R/$VM3/$S3/root.$ROOT.qcow2" 1G
echo junk > "$R/$VM3/$S3/root.$ROOT.qcow2.part"
J=$(listj "$R")
B=$(backup $VM3 2026-10-01T030000Z)
check "pre-release names parsed and mapped" "vda vdb $ROOT $DATA ok" \
  "$(jq -r '"\([.disks[].name] | join(" ")) \([.disks[].volume] | join(" ")) \(.status)"' <<<"$B")"
B=$(backup $VM3 2026-10-02T030000Z)
check "a generic root.qcow2 is a disk named after the file" "root ok" \
  "$(jq -r '"\([.disks[].name] | join(" ")) \(.status)"' <<<"$B")"
B=$(backup $VM3 2026-10-03T030000Z)
check_match "an unknown file makes the backup broken, with the reason" \
  "root.$ROOT.qcow2.part: not a CloudStack NAS image name" "$(jq -r .status <<<"$B")"
check "... and its disk is still shown" "1" "$(jq -r '.disks | length' <<<"$B")"

# stamps are local time: the zone given, DST-correct, names stay UTC
SUM=2026.07.01.03.00.00 WIN=2026.12.01.03.00.00
VM4=i-2-13-VM
qcow2 "$R/$VM4/$SUM/root.$ROOT.qcow2" 64M
qcow2 "$R/$VM4/$WIN/root.$ROOT.qcow2" 64M "../$SUM/root.$ROOT.qcow2"
for tz in UTC America/New_York; do
  J=$(listj --nas-timezone $tz "$R" $VM4)
  case $tz in
    UTC) want="2026-07-01T030000Z 2026-12-01T030000Z" off="+00:00 +00:00" ;;
    *) want="2026-07-01T070000Z 2026-12-01T080000Z" off="-04:00 -05:00" ;;
  esac
  check "$tz: names of local stamps across DST" "$want" \
    "$(q '.vms[] | select(.name == "'$VM4'") | [.backups[].name] | join(" ")')"
  check "$tz: offsets and stamps in backup.json" "$off $SUM $WIN $tz $tz" \
    "$(q '.vms[] | select(.name == "'$VM4'") | "\([.backups[].utc_offset] | join(" ")) \([.backups[].stamp] | join(" ")) \([.backups[].timezone] | join(" "))"')"
done
J=$(TZ=Asia/Kolkata listj "$R" $VM4)
check "the zone given stays with the catalog (source option)" "America/New_York" \
  "$(q '.vms[] | select(.name == "'$VM4'") | .backups[0].timezone')"
J=$(TZ=Asia/Kolkata listj --catalog "$T/other.db" "$R" $VM4)
check "the host's zone by default (TZ)" "2026-06-30T213000Z Asia/Kolkata +05:30" \
  "$(q '.vms[] | select(.name == "'$VM4'") | .backups[0] | "\(.name) \(.timezone) \(.utc_offset)"')"
if "$BACKUPFS" list --nas-timezone No/Such_Zone "$R" > "$T/out" 2>&1; then
  check "an unknown zone is refused" "exit 2" "exit 0"
else
  check_match "an unknown zone is refused, saying why" "unknown time zone 'No/Such_Zone'" "$(cat "$T/out")"
fi

# without any domain file anywhere the repository names are used
rm "$R"/$VM/*/domain-config.xml
J=$(listj --nas-timezone UTC "$R")
check "names without domain XML" "root datadisk-$DATA" \
  "$(jq -r '[.disks[].name] | join(" ")' <<<"$(backup $VM 2026-10-03T030000Z)")"
finish
