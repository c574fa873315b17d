#!/bin/bash
# restore quick from an RBD snapshot (rbd:POOL, the test's own Ceph): the
# overlays read as the snapshot, byte for byte against `rbd export
# IMAGE@SNAP` (not the image's head, which has changed since):
#  - from the mounted BACKUP_DIR (default way: nbd, qemu reads no rbd
#    layer here), domain.xml from rbd_group=xml: pointing at the overlay;
#    writes land in the overlay only; `restore consolidate` pulls the
#    backing in, verifies it and stops the export: the disk stands alone;
#  - --via mount: backed by the mount's disks/vda.img;
#  - --repo rbd:POOL VM@TIME, no mount at all.
. "$(dirname "$0")/lib.sh"
command -v nbdkit >/dev/null || { echo "SKIP: nbdkit not installed"; exit 77; }
command -v xmllint >/dev/null || { echo "SKIP: xmllint not installed"; exit 77; }

E=$(( $(date +%s) - 3600 ))
BK=backup-$(date -u -d "@$E" +%Y_%m_%d)_$E
bname=$(date -u -d "@$E" +%Y-%m-%dT%H%M%SZ)
make_image "$T/a.raw" 24
R import "$T/a.raw" "$POOL/web-root" >/dev/null 2>&1
R snap create "$POOL/web-root@web-root-$BK" >/dev/null 2>&1
R bench --io-type write --io-size 64K --io-total 2M --io-pattern rand \
  "$POOL/web-root" >/dev/null                  # the head moves on
R export "$POOL/web-root@web-root-$BK" "$T/snap.raw" >/dev/null 2>&1
R export "$POOL/web-root" "$T/head.raw" >/dev/null 2>&1
check "the head differs from the snapshot" 1 \
  "$(cmp -s "$T/snap.raw" "$T/head.raw" && echo 0 || echo 1)"
mkdir -p "$T/xml"
cat >"$T/xml/web.xml" <<EOX
<domain type='kvm'>
  <name>web</name>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='$POOL/web-root'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOX
export -n CEPH_CONF
mount_rbd "$T/m" "rbd_group=xml:$T/xml" || { echo "FAIL: mount"; exit 1; }
B=$T/m/web/$bname
raw_of() { rm -f "$2"; qemu-img convert -O raw "$1" "$2"; }

# from the mount: nbd, domain.xml from the XML file
O=$T/q1
PIDFILES+=("$O/.backupfs/serve.pid")
"$BACKUPFS" restore quick "$B" "$O" >"$T/out" 2>&1 || { cat "$T/out"; echo "FAIL: restore quick"; }
check_match "quick: the way and why" "via nbd" "$(cat "$T/out")"
raw_of "$O/vda.qcow2" "$T/o1.raw"
check "quick: the overlay reads as the snapshot (rbd export)" \
  "$(sha256sum <"$T/snap.raw")" "$(sha256sum <"$T/o1.raw")"
check "quick: domain.xml is well-formed" 0 \
  "$(xmllint --noout "$O/domain.xml" >/dev/null 2>&1; echo $?)"
check "quick: domain.xml's vda is the overlay" "$O/vda.qcow2" \
  "$(xmllint --xpath "string(//disk[target/@dev='vda']/source/@file)" "$O/domain.xml")"
check "quick: the domain is the XML's, renamed" web-restored \
  "$(xmllint --xpath "string(/domain/name)" "$O/domain.xml")"
qemu-io -f qcow2 -c 'write -q -P 0xab 1M 64k' "$O/vda.qcow2" >/dev/null ||
  echo "FAIL: write to the overlay"
cp "$T/snap.raw" "$T/expect.raw"
qemu-io -f raw -c 'write -q -P 0xab 1M 64k' "$T/expect.raw" >/dev/null
rm -f "$T/exp2"; R export "$POOL/web-root@web-root-$BK" "$T/exp2" >/dev/null 2>&1
check "quick: the snapshot is unchanged by writes" \
  "$(sha256sum <"$T/snap.raw")" "$(sha256sum <"$T/exp2")"
rc=0; "$BACKUPFS" restore consolidate "$O" >"$T/cons" 2>&1 || rc=$?
check "consolidate: verified (rc)" 0 "$rc"
check_match "consolidate: stops the export" "stopped the NBD export" "$(cat "$T/cons")"
check "consolidate: no backing left" "" \
  "$(qemu-img info --output=json "$O/vda.qcow2" | jq -r '.["backing-filename"] // ""')"
raw_of "$O/vda.qcow2" "$T/o1c.raw"
check "consolidate: the disk is the snapshot plus the writes" \
  "$(sha256sum <"$T/expect.raw")" "$(sha256sum <"$T/o1c.raw")"

# --via mount
O=$T/q2
"$BACKUPFS" restore quick --via mount "$B" "$O" >/dev/null 2>&1 || echo "FAIL: --via mount"
check "--via mount: backed by the mounted image" "$B/disks/vda.img" \
  "$(qemu-img info --output=json "$O/vda.qcow2" | jq -r '.["backing-filename"]')"
raw_of "$O/vda.qcow2" "$T/o2.raw"
check "--via mount: the overlay reads as the snapshot" \
  "$(sha256sum <"$T/snap.raw")" "$(sha256sum <"$T/o2.raw")"

# --repo, no mount
fusermount3 -u "$T/m"
O=$T/q3
PIDFILES+=("$O/.backupfs/serve.pid")
"$BACKUPFS" restore quick --repo "rbd:$POOL" "web@$bname" "$O" >/dev/null 2>&1 ||
  echo "FAIL: restore quick --repo"
raw_of "$O/vda.qcow2" "$T/o3.raw"
check "--repo: the overlay reads as the snapshot" \
  "$(sha256sum <"$T/snap.raw")" "$(sha256sum <"$T/o3.raw")"
rc=0; "$BACKUPFS" restore consolidate "$O" >/dev/null 2>&1 || rc=$?
check "--repo: consolidate verified (rc)" 0 "$rc"
raw_of "$O/vda.qcow2" "$T/o3c.raw"
check "--repo: consolidated disk equals rbd export" \
  "$(sha256sum <"$T/snap.raw")" "$(sha256sum <"$T/o3c.raw")"
finish
