#!/bin/bash
# A repository moved after its backups were written: the absolute backing
# paths recorded in the images dangle, every chain is still found.
. "$(dirname "$0")/lib.sh"
O=$T/orig/backups-repo
# generic, absolute backing paths
qcow2 "$O/web01/2026-10-01T03:00:00Z/vda.qcow2" 1G
qcow2 "$O/web01/2026-10-02T03:00:00Z/vda.qcow2" 1G "$O/web01/2026-10-01T03:00:00Z/vda.qcow2"
qcow2 "$O/web01/2026-10-03T03:00:00Z/vda.qcow2" 1G "$O/web01/2026-10-02T03:00:00Z/vda.qcow2"
# KBOSS inside the same tree, absolute too
qcow2 "$O/backups/7/vol1/u1" 1G
qcow2 "$O/backups/7/vol1/u2" 1G "$O/backups/7/vol1/u1"
touch -d '2026-10-01 00:00 UTC' "$O/backups/7/vol1/u1"
touch -d '2026-10-02 00:00 UTC' "$O/backups/7/vol1/u2"

out=$("$BACKUPFS" scan --catalog "$T/a.db" "$O")
check_match "before the move" "2 VMs, 5 backups, 5 images, 0 broken" "$out"

mkdir -p "$T/elsewhere"
mv "$T/orig/backups-repo" "$T/elsewhere/renamed"
rmdir "$T/orig"
M=$T/elsewhere/renamed
! qemu-img info --backing-chain "$M/web01/2026-10-03T03:00:00Z/vda.qcow2" >/dev/null 2>&1 \
  || { echo "FAIL: qemu-img still finds the old path"; exit 1; }

J=$(listj "$M")                        # a fresh default catalog
check "no broken backup" "ok ok ok ok ok" "$(q '[.vms[].backups[].status] | join(" ")')"
check "generic chain" \
  "web01/2026-10-03T03:00:00Z/vda.qcow2 web01/2026-10-02T03:00:00Z/vda.qcow2 web01/2026-10-01T03:00:00Z/vda.qcow2" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$(backup web01 2026-10-03T030000Z)")"
check "KBOSS chain" "backups/7/vol1/u2 backups/7/vol1/u1" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$(backup volume-7-vol1 2026-10-02T000000Z)")"
check "default catalog named after the repository" "1" \
  "$(ls "$XDG_CACHE_HOME/backupfs/" | grep -c '^tmp_.*elsewhere_renamed-[0-9a-f]\{8\}\.db$' || true)"

# the old catalog file reused for the moved repository is rebuilt
out=$("$BACKUPFS" scan --catalog "$T/a.db" "$M" 2>&1)
check_match "old catalog rebuilt" "was for .*gone; rebuilding" "$out"
check_match "old catalog rebuilt, all chains" "2 VMs, 5 backups, 5 images, 0 broken" "$out"
finish
