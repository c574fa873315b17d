#!/bin/bash
# CloudStack NAS layout: full + 2 incrementals of a VM with two disks mapped
# to vda/vdb through domain-config.xml, files being written ignored, a
# second VM mapped through domblklist.xml with a LUKS-encrypted disk.
. "$(dirname "$0")/lib.sh"
R=$T/nas
VM=i-2-10-VM
ROOT=6b1e2d0a-1c1f-4a57-9d3c-0f6f1b7d0a11
DATA=9f3c0e55-7a2b-4c8e-b1f0-2d7e6a4c5b22
S1=2026.10.01.03.00.00 S2=2026.10.02.03.00.00 S3=2026.10.03.03.00.00

domxml() {
  cat <<XML
<domain type='kvm' id='7'>
  <name>$VM</name>
  <uuid>1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0</uuid>
  <devices>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/mnt/0c2f9a3e-pool/$DATA'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/mnt/0c2f9a3e-pool/$ROOT'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
XML
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
printf ' Target   Source\n------------------------------------------------\n vda      /mnt/0c2f9a3e-pool/%s\n hdc      -\n' \
  $ROOT2 > "$R/$VM2/$S1/domblklist.xml"
echo '<domain><devices><disk' > "$R/$VM2/$S1/domain-config.xml"   # truncated

J=$(listj "$R")
check "VMs" "$VM $VM2" "$(q '[.vms[].name] | join(" ")')"
check "points in time (the one being written is not one)" \
  "2026-10-01T030000Z 2026-10-02T030000Z 2026-10-03T030000Z" \
  "$(q '[.vms[0].backups[].name] | join(" ")')"
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

# without any domain file the repository names are used
rm "$R"/$VM/*/domain-config.xml
J=$(listj "$R")
check "names without domain XML" "root datadisk-$DATA" \
  "$(jq -r '[.disks[].name] | join(" ")' <<<"$(backup $VM 2026-10-03T030000Z)")"
finish
