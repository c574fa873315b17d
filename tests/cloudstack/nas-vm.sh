#!/bin/bash
# nas-vm.sh — a CloudStack NAS repository written the way nasbackup.sh
# writes it, by libvirt's own push backups of a running TCG VM (tests/lib/
# vm.sh: a libvirtd of the test's own), read back through backupfs.
#
# The guest writes its disk (a primary-storage file named by its volume id)
# every second.  Backups: `virsh backup-begin` with a checkpoint (full),
# then an incremental from that checkpoint, rebased with
# `qemu-img rebase -u -b ../<stamp>/root.<vol>.qcow2` as nasbackup.sh does,
# each with domain-config.xml (virsh dumpxml) and domblklist.xml; then the
# VM is stopped and a full is taken with `qemu-img convert` (no domain
# files: the stopped-VM path).  Stamps are local wall-clock names chosen
# around the 2026-03-08 US DST change (the management server names them).
# Checked: disk names (vda in every backup, also the stopped one, and
# latest/disks/vda.img), tree names under TZ=UTC and America/New_York
# (-o nas_tz=), and every point in time byte for byte against
# `qemu-img convert -O raw` of its chain.
. "$SRCDIR/tests/recovery/lib.sh"
. "$SRCDIR/tests/lib/vm.sh"
[ "${BFS_SANITIZED:-0}" = 1 ] &&
  skip "a TCG VM under the sanitizer build is too slow for CI; runs in the normal build"
command -v jq >/dev/null || skip "jq not installed"
vm_prereqs

DOM=bfs-nas-$$
VM_DOMS=$DOM
VOL=4d2c1f0e-5b6a-4978-8c9d-0e1f2a3b4c5d
POOL=$T/pool
R=$T/nas
VMDIR=$R/i-2-42-VM
S1=2026.03.07.12.00.00      # EST (-05:00)
S2=2026.03.09.12.00.00      # EDT (-04:00): across the change
S3=2026.03.10.12.00.00      # stopped VM, qemu-img convert
vm_writer_guest 64k 2 200 1
mkdir -p "$POOL" "$VMDIR/$S1" "$VMDIR/$S2" "$VMDIR/$S3"
qemu-img create -q -f qcow2 "$POOL/$VOL" 32M
qemu-io -f qcow2 -c 'write -P 0x5a 1M 2M' "$POOL/$VOL" >/dev/null
vm_run "$DOM" "$POOL/$VOL" qcow2

# push_backup STAMP [FROM]: what nasbackup.sh does for a running VM
push_backup() {
  local d=$VMDIR/$1 from=${2:-} inc=""
  [ -n "$from" ] && inc="<incremental>$from</incremental>"
  cat > "$d/backup.xml" <<X
<domainbackup mode='push'>$inc<disks>
  <disk name='vda' backup='yes' type='file'><target file='$d/root.$VOL.qcow2'/><driver type='qcow2'/></disk>
</disks></domainbackup>
X
  cat > "$d/checkpoint.xml" <<X
<domaincheckpoint><name>$1</name><disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>
X
  virsh backup-begin --domain "$DOM" --backupxml "$d/backup.xml" \
    --checkpointxml "$d/checkpoint.xml" > "$T/bb.out" 2>&1 ||
    fail "virsh backup-begin $1: $(cat "$T/bb.out")"
  for _ in $(seq 300); do
    virsh domjobinfo "$DOM" 2>/dev/null | grep -q "Job type: *None" && break
    sleep 0.2
  done
  virsh domjobinfo "$DOM" --completed > "$T/job.out" 2>&1
  grep -q "Completed" "$T/job.out" || fail "backup job $1: $(cat "$T/job.out")"
  virsh dumpxml "$DOM" > "$d/domain-config.xml"
  virsh domblklist "$DOM" > "$d/domblklist.xml"
  rm -f "$d/backup.xml" "$d/checkpoint.xml"
  if [ -n "$from" ]; then
    qemu-img rebase -u -b "../$from/root.$VOL.qcow2" -F qcow2 "$d/root.$VOL.qcow2" ||
      fail "qemu-img rebase $1"
  fi
}
push_backup $S1
sleep 3
push_backup $S2 $S1
ok "libvirt push backups: full and incremental (rebased as nasbackup.sh does)"
virsh destroy "$DOM" > /dev/null
qemu-img convert -O qcow2 "$POOL/$VOL" "$VMDIR/$S3/root.$VOL.qcow2" ||
  fail "qemu-img convert (stopped VM)"
ok "stopped-VM full with qemu-img convert (no domain files)"

for s in $S1 $S2 $S3; do oracle "$T/$s.raw" "$VMDIR/$s/root.$VOL.qcow2"; done
cmp -s "$T/$S1.raw" "$T/$S2.raw" && fail "the guest wrote nothing between the backups"

# names and times under two zones; the mount under New York's
J=$(TZ=UTC "$BACKUPFS" list --json --catalog "$T/utc.db" "$R")
[ "$(jq -r '[.vms[0].backups[].name] | join(" ")' <<<"$J")" = \
  "2026-03-07T120000Z 2026-03-09T120000Z 2026-03-10T120000Z" ] ||
  fail "UTC names: $(jq -c '[.vms[0].backups[].name]' <<<"$J")"
[ "$(jq -r '[.vms[0].backups[] | [.disks[].name] | join(",")] | join(" ")' <<<"$J")" = "vda vda vda" ] ||
  fail "disk names: $(jq -c '[.vms[0].backups[].disks[].name]' <<<"$J")"
[ "$(jq -r '[.vms[0].backups[].status] | join(" ")' <<<"$J")" = "ok ok ok" ] ||
  fail "statuses: $(jq -c '[.vms[0].backups[].status]' <<<"$J")"
ok "UTC: names as the stamps; every backup's disk is vda, the stopped one too"
MP=$T/mnt
mkdir -p "$MP"
MOUNTS="$MOUNTS $MP"
"$BACKUPFS" mount -o "catalog=$T/ny.db,nas_tz=America/New_York" "$R" "$MP" ||
  fail "mount -o nas_tz=America/New_York"
wait_for test -e "$MP/i-2-42-VM/latest/disks/vda.img" ||
  fail "no latest/disks/vda.img: $(ls -R "$MP" | head -20)"
names=$(cd "$MP/i-2-42-VM" && ls -d 2026-* | tr '\n' ' ')
[ "$names" = "2026-03-07T170000Z 2026-03-09T160000Z 2026-03-10T160000Z " ] ||
  fail "America/New_York names across DST: [$names]"
b1=$MP/i-2-42-VM/2026-03-07T170000Z b2=$MP/i-2-42-VM/2026-03-09T160000Z
[ "$(jq -r '"\(.stamp) \(.timezone) \(.utc_offset)"' "$b1/backup.json")" = \
  "$S1 America/New_York -05:00" ] || fail "backup.json: $(cat "$b1/backup.json")"
[ "$(jq -r .utc_offset "$b2/backup.json")" = "-04:00" ] || fail "S2 offset: $(cat "$b2/backup.json")"
ok "America/New_York: EST then EDT, tree names in UTC, stamp and zone in backup.json"
cmp "$b1/disks/vda.img" "$T/$S1.raw" || fail "full differs from qemu-img convert"
cmp "$b2/disks/vda.img" "$T/$S2.raw" || fail "incremental chain differs from qemu-img convert"
cmp "$MP/i-2-42-VM/latest/disks/vda.img" "$T/$S3.raw" || fail "stopped-VM full differs"
ok "every point in time byte-identical to qemu-img convert -O raw"
fusermount3 -u "$MP"
