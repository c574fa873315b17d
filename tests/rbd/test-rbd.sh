#!/bin/bash
# Ceph RBD pools as repositories (rbd:POOL), against a single-node cluster
# the test starts itself (tests/lib/ceph.sh): every snapshot through the
# mount equals `rbd export IMAGE@SNAP FILE`; SEEK_DATA/SEEK_HOLE match
# `rbd diff`; virt-rbd-backup snapshot names give the time, other names
# the snapshot's timestamp; rbd_group=prefix puts a VM's images in one
# backup; list/backup.json; a snapshot created and one removed while
# mounted (removed: an open handle reads EIO, never zeros, and the backup
# disappears); verify (full read); restore disk; wrong pool, no conf.
. "$(dirname "$0")/lib.sh"
FC="$SRCDIR/tests/fuse/fusecheck.py"

E=$(( $(date +%s) - 2 * 86400 ))              # virt-rbd-backup: UTC date + epoch
D=$(date -u -d "@$E" +%Y_%m_%d)
BK=backup-${D}_$E
make_image "$T/a.raw" 32
R import "$T/a.raw" "$POOL/web01-disk0" >/dev/null 2>&1
R create --size 16M "$POOL/web01-disk1"
R bench --io-type write --io-size 64K --io-total 3M --io-pattern rand \
  "$POOL/web01-disk1" >/dev/null
R create --size 8M "$POOL/nosnap"
for i in web01-disk0 web01-disk1; do
  R snap create "$POOL/$i@$i-$BK" >/dev/null 2>&1
done
# a change, then a plain-named snapshot of disk0 only
qemu-io -f raw -c 'write -q -P 0x33 5M 1M' "$T/a.raw" >/dev/null
R bench --io-type write --io-size 4K --io-total 256K --io-pattern rand \
  "$POOL/web01-disk0" >/dev/null
R snap create "$POOL/web01-disk0@manual" >/dev/null 2>&1

export -n CEPH_CONF                               # only -o ceph_conf= from here
O="ceph_conf=$CEPH_CONF"
mount_rbd "$T/m" || { echo "FAIL: mount"; exit 1; }
J=$(CEPH_CONF=$T/ceph/ceph.conf listj "rbd:$POOL")
check "list: the VMs (images with snapshots)" "web01-disk0 web01-disk1" \
  "$(q '[.vms[].name] | join(" ")')"
check "list: backups of web01-disk0" 2 \
  "$(q '.vms[] | select(.name == "web01-disk0") | .backups | length')"
bname=$(date -u -d "@$E" +%Y-%m-%dT%H%M%SZ)
check "time from the virt-rbd-backup name" "$bname" \
  "$(q '.vms[] | select(.name == "web01-disk1") | .backups[0].name')"
b=$(backup web01-disk0 "$bname")
check "backup.json source" ceph-rbd "$(jq -r .source <<<"$b")"
check "backup.json snapshot" "web01-disk0-$BK" "$(jq -r .snapshot <<<"$b")"
check "backup.json chain" "$POOL/web01-disk0@web01-disk0-$BK" \
  "$(jq -r '.disks[0].chain | join(" ")' <<<"$b")"
check "backup.json virtual size" 33554432 "$(jq -r '.disks[0].virtual_size' <<<"$b")"
ts=$(R snap ls --format json "$POOL/web01-disk0" | jq -r '.[] | select(.name == "manual") | .timestamp')
check "time of a plain name: the snapshot's timestamp" \
  "$(date -u -d "$ts" +%Y-%m-%dT%H%M%SZ)" \
  "$(q '.vms[] | select(.name == "web01-disk0") | .backups[1].name')"

# every snapshot equals rbd export; holes are where rbd diff has none
for spec in "web01-disk0@web01-disk0-$BK" "web01-disk0@manual" \
            "web01-disk1@web01-disk1-$BK"; do
  img=${spec%@*}
  rm -f "$T/exp"; R export "$POOL/$spec" "$T/exp" >/dev/null 2>&1
  case $spec in *manual) dir=$(ls "$T/m/$img" | grep -v latest | tail -1) ;;
                *) dir=$bname ;; esac
  f=$T/m/$img/$dir/disks/$img.img
  check "$spec: bytes equal rbd export" "$(sha256sum <"$T/exp")" \
    "$(sha256sum <"$f")"
  R diff --format json "$POOL/$spec" |
    jq -r '.[] | select(.exists == "true" or .exists == true) |
           "\(.offset) \(.length) DATA"' >"$T/diff"
  check_match "$spec: SEEK_DATA/SEEK_HOLE equal rbd diff" '^seek ok' \
    "$(python3 "$FC" seek "$f" "$T/diff" 2>&1)"
done

# created while mounted: shows up at the next listing (rescan on listing)
R snap create "$POOL/web01-disk1@later" >/dev/null 2>&1
sleep 2.5
n=$(ls "$T/m/web01-disk1" | grep -vc latest)
check "a snapshot created while mounted appears" 2 "$n"
# removed while mounted: an open handle reads EIO, the backup disappears
later=$(ls "$T/m/web01-disk1" | grep -v latest | grep -v "$bname")
exec 7<"$T/m/web01-disk1/$later/disks/web01-disk1.img"
head -c 4096 <&7 >/dev/null
# a data range not read yet (nothing of it cached)
last=$(R diff --format json "$POOL/web01-disk1@later" | jq -r '.[-1].offset')
R snap rm "$POOL/web01-disk1@later" >/dev/null 2>&1
sleep 1.2
out=$(python3 "$FC" eio "$T/m/web01-disk1/$later/disks/web01-disk1.img" \
      "$last" 4096 2>&1 || true)
check_match "a removed snapshot: reads fail (EIO), never zeros" 'ok$' "$out"
exec 7<&-
sleep 2.5
check "the removed snapshot disappears from the mount" "$bname" \
  "$(ls "$T/m/web01-disk1" | grep -v latest | tr '\n' ' ' | sed 's/ $//')"

# verify: a full read of every snapshot
rc=0; out=$("$BACKUPFS" verify "rbd:$POOL" 2>&1) || rc=$?
check "verify: all snapshots read in full (rc)" 0 "$rc"
check_match "verify names the disks" "web01-disk1" "$out"
# restore disk through the disk service and from the mount
"$BACKUPFS" restore disk --repo "rbd:$POOL" "web01-disk0@$bname" web01-disk0 \
  "$T/rest.raw" --format raw >/dev/null 2>&1 || echo "FAIL: restore disk --repo"
rm -f "$T/exp"; R export "$POOL/web01-disk0@web01-disk0-$BK" "$T/exp" >/dev/null 2>&1
check "restore disk --repo equals rbd export" "$(sha256sum <"$T/exp")" \
  "$(sha256sum <"$T/rest.raw" 2>/dev/null)"
"$BACKUPFS" restore disk "$T/m/web01-disk0/$bname" web01-disk0 "$T/rest2.raw" \
  --format raw >/dev/null 2>&1 || echo "FAIL: restore disk from the mount"
check "restore disk from the mount equals rbd export" "$(sha256sum <"$T/exp")" \
  "$(sha256sum <"$T/rest2.raw" 2>/dev/null)"

# grouping: rbd_group=prefix -> VM web01, one backup with both disks
XDG_CACHE_HOME=$T/cache2 mount_rbd "$T/m2" rbd_group=prefix ||
  echo "FAIL: mount -o rbd_group=prefix"
J=$(XDG_CACHE_HOME=$T/cache2 listj "rbd:$POOL")
check "rbd_group=prefix: one VM" "web01" "$(q '[.vms[].name] | join(" ")')"
check "rbd_group=prefix: the backup has both disks" "web01-disk0 web01-disk1" \
  "$(q '.vms[0].backups[0].disks | map(.name) | join(" ")')"

# errors: no such pool, no configuration
rc=0; out=$(CEPH_CONF=$T/ceph/ceph.conf XDG_CACHE_HOME=$T/c3 "$BACKUPFS" list rbd:nopool 2>&1) || rc=$?
check "wrong pool: fails" 1 "$(( rc != 0 ))"
check_match "wrong pool: says so" "pool 'nopool'.*no such pool" "$out"
rc=0; out=$(cd "$T" && XDG_CACHE_HOME=$T/c4 "$BACKUPFS" list "rbd:$POOL" 2>&1) || rc=$?
check "no conf: fails" 1 "$(( rc != 0 ))"
check_match "no conf: says which option" "ceph_conf=FILE" "$out"
finish
