#!/bin/bash
# Generic layout: every timestamp form of backup directory names, mtime
# fallback, same-second duplicates, disk names and formats, a chain.
. "$(dirname "$0")/lib.sh"
R=$T/repo
qcow2 "$R/web01/2026-10-01T03:00:00Z/vda.qcow2" 1G
qcow2 "$R/web01/20261002T030000Z/vda.qcow2" 1G ../2026-10-01T03:00:00Z/vda.qcow2
qemu-img create -q -f raw "$R/web01/20261002T030000Z/vdb.raw" 8M
qcow2 "$R/web01/2026.10.03.03.00.00/vda.qcow2" 1G ../20261002T030000Z/vda.qcow2
qcow2 "$R/web01/2026-10-04_03-00-00/vda.qcow2" 1G
qcow2 "$R/web01/1790000000/vda.qcow2" 2G
qcow2 "$R/web01/2026-10-06T05:00:00+02:00/vda.qcow2" 1G
# same second twice
qcow2 "$R/web01/2026-10-07T03:00:00Z/vda.qcow2" 1G
qcow2 "$R/web01/20261007T030000Z/vda.qcow2" 1G
# no timestamp: the newest mtime inside
qcow2 "$R/db1/manual/disk0.img" 16M
qemu-img create -q -f raw "$R/db1/manual/disk1.img" 4M
touch -d '2026-09-30 12:34:56 UTC' "$R/db1/manual/disk0.img"
touch -d '2026-09-30 12:00:00 UTC' "$R/db1/manual/disk1.img"
# zstd-compressed image (data, or qemu-img writes no cluster at all)
qemu-img create -q -f raw "$T/src.raw" 4M
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$T/src.raw" >/dev/null
mkdir -p "$R/db1/2026-10-01T00:00:00Z"
qemu-img convert -q -c -O qcow2 -o compression_type=zstd "$T/src.raw" "$R/db1/2026-10-01T00:00:00Z/root.qcow2"
# compression from the clusters present, not the header's type: a zstd
# image with no compressed cluster is "none", a zlib base under a zstd
# overlay "mixed", a plain overlay over a zlib base "zlib"
mkdir -p "$T/crepo/comp/2026-10-01T00:00:00Z" "$T/crepo/comp/2026-10-02T00:00:00Z" \
  "$T/crepo/comp/2026-10-03T00:00:00Z"
qemu-img convert -q -O qcow2 -o compression_type=zstd "$T/src.raw" "$T/crepo/comp/2026-10-01T00:00:00Z/vda.qcow2"
qemu-img convert -q -c -O qcow2 "$T/src.raw" "$T/crepo/comp/2026-10-02T00:00:00Z/vda.qcow2"
qemu-img create -q -f qcow2 -o compression_type=zstd -b ../2026-10-02T00:00:00Z/vda.qcow2 -F qcow2 "$T/crepo/comp/2026-10-03T00:00:00Z/vda.qcow2"
qemu-io -f qcow2 -c 'write -c -P 0x11 0 64k' "$T/crepo/comp/2026-10-03T00:00:00Z/vda.qcow2" >/dev/null
mkdir -p "$T/crepo/comp/2026-10-04T00:00:00Z"
qemu-img create -q -f qcow2 -b ../2026-10-02T00:00:00Z/vda.qcow2 -F qcow2 "$T/crepo/comp/2026-10-04T00:00:00Z/vda.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 0 64k' "$T/crepo/comp/2026-10-04T00:00:00Z/vda.qcow2" >/dev/null
# not backups
mkdir -p "$R/db1/2026-10-02T00:00:00Z"
echo notes > "$R/db1/2026-10-02T00:00:00Z/README.txt"
qcow2 "$R/db1/2026-10-02T00:00:00Z/.hidden.qcow2" 1M

J=$(listj "$R")
check "VMs" "db1 web01" "$(q '[.vms[].name] | join(" ")')"
check "web01 point-in-time names" \
  "2026-09-21T141320Z 2026-10-01T030000Z 2026-10-02T030000Z 2026-10-03T030000Z 2026-10-04T030000Z 2026-10-06T030000Z 2026-10-07T030000Z 2026-10-07T030000Z-1" \
  "$(q '[.vms[] | select(.name=="web01") | .backups[].name] | join(" ")')"
check "ISO time of the epoch form" "2026-09-21T14:13:20Z" \
  "$(jq -r .time <<<"$(backup web01 2026-09-21T141320Z)")"
check "same-second duplicates keep their directories apart" \
  "web01/2026-10-07T03:00:00Z/vda.qcow2 web01/20261007T030000Z/vda.qcow2" \
  "$(jq -r '.disks[0].image' <<<"$(backup web01 2026-10-07T030000Z)") $(jq -r '.disks[0].image' <<<"$(backup web01 2026-10-07T030000Z-1)")"
B=$(backup web01 2026-10-03T030000Z)
check "chain top first" \
  "web01/2026.10.03.03.00.00/vda.qcow2 web01/20261002T030000Z/vda.qcow2 web01/2026-10-01T03:00:00Z/vda.qcow2" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$B")"
check "source and status" "generic ok" "$(jq -r '"\(.source) \(.status)"' <<<"$B")"
B=$(backup web01 2026-10-02T030000Z)
check "two disks, raw and qcow2" "vda:qcow2:1073741824 vdb:raw:8388608" \
  "$(jq -r '[.disks[] | "\(.name):\(.format):\(.virtual_size)"] | join(" ")' <<<"$B")"
check "db1 times" "2026-09-30T123456Z 2026-10-01T000000Z" \
  "$(q '[.vms[] | select(.name=="db1") | .backups[].name] | join(" ")')"
B=$(backup db1 2026-09-30T123456Z)
# .img is raw whatever its bytes say, also when they are a qcow2 header
check "mtime-dated backup disks" "disk0:raw disk1:raw" \
  "$(jq -r '[.disks[] | "\(.name):\(.format)"] | join(" ")' <<<"$B")"
check "zstd compression" "zstd" \
  "$(jq -r '.disks[0].compression' <<<"$(backup db1 2026-10-01T000000Z)")"
check "compression from the clusters: zstd header only, zlib, mixed, zlib below" \
  "none zlib mixed zlib" \
  "$(listj "$T/crepo" | jq -r '.vms[0] | [.backups[].disks[0].compression] | join(" ")')"
check "allocated is the top image's bytes on disk" \
  "$(( $(stat -c %b "$R/db1/2026-10-01T00:00:00Z/root.qcow2") * 512 ))" \
  "$(jq -r '.disks[0].allocated' <<<"$(backup db1 2026-10-01T000000Z)")"

# the table
out=$("$BACKUPFS" list --no-scan "$R" web01)
check_match "table header" "^VM +TIME +DISKS +VIRTUAL +ALLOCATED +DEPTH +STATUS" "$out"
check_match "table row" "web01 +2026-10-03T030000Z +1 +1.0 GiB +[0-9.]+ [KM]iB +3 +ok" "$out"
check "one VM listed" "9" "$(wc -l <<<"$out")"
finish
