#!/bin/bash
# Broken backups are listed with the reason; hostile names never lead out
# of the repository; symlinks are not followed; depth is capped.
. "$(dirname "$0")/lib.sh"
R=$T/repo
qcow2 "$R/vm1/2026-10-01T00:00:00Z/vda.qcow2" 1G
qcow2 "$R/vm1/2026-10-02T00:00:00Z/vda.qcow2" 1G ../2026-10-01T00:00:00Z/vda.qcow2
qcow2 "$R/vm1/2026-10-03T00:00:00Z/vda.qcow2" 1G ../2026-10-02T00:00:00Z/vda.qcow2
qcow2 "$R/vm1/2026-10-04T00:00:00Z/vda.qcow2" 1G
rm "$R/vm1/2026-10-01T00:00:00Z/vda.qcow2"             # the base is gone
# a loop
qcow2 "$R/vm2/2026-10-01T00:00:00Z/vda.qcow2" 1G ../2026-10-02T00:00:00Z/vda.qcow2
qcow2 "$R/vm2/2026-10-02T00:00:00Z/vda.qcow2" 1G ../2026-10-01T00:00:00Z/vda.qcow2
# not qcow2 / truncated header
mkdir -p "$R/vm3/2026-10-01T00:00:00Z" "$R/vm3/2026-10-02T00:00:00Z"
echo hello > "$R/vm3/2026-10-01T00:00:00Z/vda.qcow2"
qcow2 "$T/t.qcow2" 1G
head -c 60 "$T/t.qcow2" > "$R/vm3/2026-10-02T00:00:00Z/vda.qcow2"
# hostile backing names
echo secret > "$T/outside.qcow2"
qcow2 "$R/vm4/2026-10-01T00:00:00Z/vda.qcow2" 1G ../../../../outside.qcow2
qcow2 "$R/vm4/2026-10-02T00:00:00Z/vda.qcow2" 1G "$T/outside.qcow2"
ln -s "$T/outside.qcow2" "$R/vm4/2026-10-02T00:00:00Z/inrepo-link.qcow2"
qcow2 "$R/vm4/2026-10-03T00:00:00Z/vda.qcow2" 1G ../2026-10-02T00:00:00Z/inrepo-link.qcow2
# symlinked image and directory: not followed
mkdir -p "$R/vm5/2026-10-01T00:00:00Z" "$T/outdir/2026-10-01T00:00:00Z"
qcow2 "$T/outdir/2026-10-01T00:00:00Z/vda.qcow2" 1G
ln -s "$T/outdir/2026-10-01T00:00:00Z/vda.qcow2" "$R/vm5/2026-10-01T00:00:00Z/vda.qcow2"
ln -s "$T/outdir" "$R/vm6"
# a chain of 70 layers: past the depth cap of 64
prev=
for i in $(seq 0 69); do
  d=$((1790000000 + i))
  qcow2 "$R/vm7/$d/vda.qcow2" 1G ${prev:+../$prev/vda.qcow2}
  prev=$d
done

S=$("$BACKUPFS" scan --json "$R")
check "scan counts" "5 80 15" "$(jq -r '"\(.vms) \(.backups) \(.broken)"' <<<"$S")"
J=$(listj --no-scan "$R")
st() { jq -r '.status' <<<"$(backup "$1" "$2")"; }
check_match "missing base" "^vda: backing file '../2026-10-01T00:00:00Z/vda.qcow2' of vm1/2026-10-02T00:00:00Z/vda.qcow2 not found" \
  "$(st vm1 2026-10-02T000000Z)"
check_match "missing base further down" "not found" "$(st vm1 2026-10-03T000000Z)"
check "unrelated backup ok" "ok" "$(st vm1 2026-10-04T000000Z)"
check "broken chain keeps what was found" "vm1/2026-10-03T00:00:00Z/vda.qcow2 vm1/2026-10-02T00:00:00Z/vda.qcow2" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$(backup vm1 2026-10-03T000000Z)")"
check_match "loop" "loop" "$(st vm2 2026-10-01T000000Z)"
check_match "loop (other end)" "loop" "$(st vm2 2026-10-02T000000Z)"
check_match "not qcow2" "not a qcow2 image" "$(st vm3 2026-10-01T000000Z)"
check_match "truncated header" "vm3/2026-10-02T00:00:00Z/vda.qcow2" "$(st vm3 2026-10-02T000000Z)"
check_match "relative escape refused" "not found" "$(st vm4 2026-10-01T000000Z)"
check_match "absolute outside refused" "not found" "$(st vm4 2026-10-02T000000Z)"
check_match "symlink out of the repository refused" "not found" "$(st vm4 2026-10-03T000000Z)"
check "symlinks not followed" "vm1 vm2 vm3 vm4 vm7" "$(q '[.vms[].name] | join(" ")')"
check "depth cap: 64 layers ok, 65+ broken" "64 ok|6" \
  "$(q '[.vms[] | select(.name=="vm7") | .backups[63].disks[0].chain_depth, .backups[63].status] | join(" ")')|$(q '[.vms[] | select(.name=="vm7") | .backups[] | select(.status != "ok")] | length')"
check_match "depth cap reason" "deeper than 64" \
  "$(q '.vms[] | select(.name=="vm7") | .backups[69].status')"
out=$("$BACKUPFS" list --no-scan "$R" vm1)
check_match "table shows the whole reason" "vm1 +2026-10-02T000000Z .* vda: backing file '../2026-10-01T00:00:00Z/vda.qcow2' of vm1/2026-10-02T00:00:00Z/vda.qcow2 not found in the repository" "$out"
finish
