#!/bin/bash
# RBD images grouped into VMs by a mapping (rbd_group=xml:DIR, libvirt
# domain XML files; rbd_group=cloudstack:FILE, `cmk list volumes` JSON),
# against the test's own single-node Ceph:
#  - xml: a domain's rbd network disks of the pool are its VM, disks named
#    by <target dev>, the XML is the backup's domain.xml (byte for byte);
#    a file with a DTD (entity expansion) or that is not XML is skipped
#    with a warning naming it, the other files still count; disks of other
#    pools or protocols do not match; unmatched images keep their names;
#  - cloudstack: volume path (uuid) -> vmname; volumes of no VM unmatched;
#  - bad rules: relative paths, unknown rules, a file that is no export;
#  - --ceph-conf / --ceph-id on list and mount (a read-only client).
. "$(dirname "$0")/lib.sh"

E=$(( $(date +%s) - 86400 ))
BK=backup-$(date -u -d "@$E" +%Y_%m_%d)_$E
bname=$(date -u -d "@$E" +%Y-%m-%dT%H%M%SZ)
U1=5b0c2e4a-6f1d-4c55-9a3e-0d2b9f1c7a11        # CloudStack volume uuids
U2=9d8e7f60-1a2b-4c3d-8e9f-a0b1c2d3e4f5
make_image "$T/a.raw" 24
R import "$T/a.raw" "$POOL/one-root" >/dev/null 2>&1
for i in one-data loner "$U1" "$U2"; do R create --size 8M "$POOL/$i"; done
R bench --io-type write --io-size 64K --io-total 1M --io-pattern rand \
  "$POOL/one-data" >/dev/null
for i in one-root one-data loner "$U1" "$U2"; do
  R snap create "$POOL/$i@$i-$BK" >/dev/null 2>&1
done

X=$T/xml
mkdir -p "$X"
cat >"$X/one.xml" <<EOF
<domain type='kvm'>
  <name>one</name>
  <uuid>6a0f3d4e-5b6c-4d7e-8f90-a1b2c3d4e5f6</uuid>
  <memory unit='KiB'>524288</memory>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='$POOL/one-root'>
        <host name='127.0.0.1' port='6789'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='$POOL/one-data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='nbd' name='$POOL/loner'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='otherpool/loner'/>
      <target dev='vdd' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOF
# entity expansion ("billion laughs") naming the uuid image: refused
{ echo '<?xml version="1.0"?>'
  echo '<!DOCTYPE domain [ <!ENTITY a "aaaaaaaaaaaaaaaa">'
  p=a; for i in b c d e f g h i j k; do
    echo "<!ENTITY $i \"&$p;&$p;&$p;&$p;&$p;&$p;&$p;&$p;&$p;&$p;\">"; p=$i
  done
  echo ']>'
  echo "<domain><name>&k;</name><devices><disk type='network'>"
  echo "<source protocol='rbd' name='$POOL/$U1'/><target dev='vda'/>"
  echo '</disk></devices></domain>'; } >"$X/laughs.xml"
printf '<domain><name>bad</name><devices>' >"$X/broken.xml"
# a harmless DTD: still refused (virsh dumpxml writes none)
printf '<!DOCTYPE domain [ <!ENTITY n "x"> ]>\n<domain><name>&n;</name></domain>\n' \
  >"$X/dtd.xml"
echo 'not a domain' >"$X/notes.txt"

export -n CEPH_CONF
CC=$CEPH_CONF
out=$(XDG_CACHE_HOME=$T/c1 "$BACKUPFS" list --json --ceph-conf "$CC" \
      -o "rbd_group=xml:$X" "rbd:$POOL" 2>"$T/err") || echo "FAIL: list xml"
J=$out
check "xml: VMs (mapped, then image names)" "$U1 $U2 loner one" \
  "$(q '[.vms[].name] | sort | join(" ")')"
check "xml: one backup with both disks, named by target" "vda vdb" \
  "$(q '.vms[] | select(.name == "one") | .backups[0].disks | map(.name) | sort | join(" ")')"
check "xml: the time of the snapshots" "$bname" \
  "$(q '.vms[] | select(.name == "one") | .backups[0].name')"
check_match "xml: the DTD file is skipped, named" "dtd.xml.*DTD.*skipped" \
  "$(cat "$T/err")"
check_match "xml: entity expansion is skipped, named" "laughs.xml.*skipped" \
  "$(cat "$T/err")"
check_match "xml: the broken file is skipped, named" "broken.xml.*well-formed" \
  "$(cat "$T/err")"
check "xml: no warning about other files" 0 "$(grep -c notes.txt "$T/err" || true)"

mkdir -p "$T/m"
XDG_CACHE_HOME=$T/c1 "$BACKUPFS" mount --ceph-conf "$CC" \
  -o "rbd_group=xml:$X" "rbd:$POOL" "$T/m" && MOUNTS+=("$T/m") ||
  echo "FAIL: mount --ceph-conf"
B=$T/m/one/$bname
check "xml: domain.xml is the domain's XML" "$(sha256sum <"$X/one.xml")" \
  "$(sha256sum <"$B/domain.xml" 2>/dev/null)"
check "xml: backup.json names the image" one-root \
  "$(jq -r '.disks[] | select(.name == "vda") | .volume // .image' \
     "$B/backup.json" 2>/dev/null)"
for d in vda:one-root vdb:one-data; do
  rm -f "$T/exp"; R export "$POOL/${d#*:}@${d#*:}-$BK" "$T/exp" >/dev/null 2>&1
  check "xml: disks/${d%%:*}.img equals rbd export" "$(sha256sum <"$T/exp")" \
    "$(sha256sum <"$B/disks/${d%%:*}.img" 2>/dev/null)"
done
check "xml: an unmatched image has no domain.xml" no \
  "$([ -e "$T/m/loner/$bname/domain.xml" ] && echo yes || echo no)"
fusermount3 -u "$T/m"

# cloudstack: `cmk list volumes` output (path is the RBD image)
cat >"$T/vols.json" <<EOF
{ "count": 3, "volume": [
  { "id": "$U1", "name": "ROOT-10", "path": "$U1", "type": "ROOT",
    "virtualmachineid": "0c1d2e3f-0000-4000-8000-000000000010",
    "vmname": "i-2-10-VM" },
  { "id": "$U2", "name": "DATA-10", "type": "DATADISK",
    "virtualmachineid": "0c1d2e3f-0000-4000-8000-000000000010",
    "vmname": "i-2-10-VM" },
  { "id": "11111111-2222-4333-8444-555555555555", "path": "loner",
    "name": "detached", "type": "DATADISK" } ] }
EOF
J=$(XDG_CACHE_HOME=$T/c2 "$BACKUPFS" list --json --ceph-conf "$CC" \
    -o "rbd_group=cloudstack:$T/vols.json" "rbd:$POOL" 2>/dev/null) ||
  echo "FAIL: list cloudstack"
check "cloudstack: VMs" "i-2-10-VM loner one-data one-root" \
  "$(q '[.vms[].name] | sort | join(" ")')"
check "cloudstack: the VM's backup has both volumes" "$U1 $U2" \
  "$(q '.vms[] | select(.name == "i-2-10-VM") | .backups[0].disks | map(.name) | sort | join(" ")')"
jq '{listvolumesresponse: .}' "$T/vols.json" >"$T/api.json"
J=$(XDG_CACHE_HOME=$T/c3 "$BACKUPFS" list --json --ceph-conf "$CC" \
    -o "rbd_group=cloudstack:$T/api.json" "rbd:$POOL" 2>/dev/null) ||
  echo "FAIL: list cloudstack (API form)"
check "cloudstack: the API's listvolumesresponse form" "i-2-10-VM" \
  "$(q '[.vms[].name] | map(select(startswith("i-"))) | join(" ")')"

# bad rules fail the scan, saying why
bad() {   # bad DESCRIPTION REGEX RULE
  local rc=0 o
  o=$(XDG_CACHE_HOME=$T/c4 "$BACKUPFS" list --ceph-conf "$CC" \
      -o "rbd_group=$3" "rbd:$POOL" 2>&1) || rc=$?
  check "$1: fails" 1 "$(( rc != 0 ))"
  check_match "$1: says why" "$2" "$o"
}
bad "a relative directory" "absolute path" "xml:xml"
bad "an unknown rule" "not image, prefix, xml:DIR" "uuid"
bad "no such directory" "xml:$T/none: No such file" "xml:$T/none"
echo '{"virtualmachine": []}' >"$T/vm.json"
bad "not a list volumes export" "no \"volume\" array" "cloudstack:$T/vm.json"
bad "not JSON" "not JSON" "cloudstack:$X/one.xml"

# --ceph-id: a read-only client with its keyring where the conf says
ceph -c "$CC" auth get-or-create client.bfsro mon 'profile rbd' \
  osd "profile rbd-read-only pool=$POOL" -o "$T/ceph/client.bfsro.keyring" \
  >/dev/null 2>&1 || echo "FAIL: auth get-or-create client.bfsro"
J=$(XDG_CACHE_HOME=$T/c5 "$BACKUPFS" list --json --ceph-conf "$CC" \
    --ceph-id bfsro "rbd:$POOL" 2>/dev/null) || echo "FAIL: list --ceph-id"
check "--ceph-id bfsro: lists the pool" 5 "$(q '.vms | length')"
rc=0; out=$(XDG_CACHE_HOME=$T/c6 "$BACKUPFS" list --ceph-conf "$CC" \
            --ceph-id nobody "rbd:$POOL" 2>&1) || rc=$?
check "--ceph-id of no client: fails" 1 "$(( rc != 0 ))"
check_match "--ceph-id of no client: names it" "nobody" "$out"
mkdir -p "$T/m2"
XDG_CACHE_HOME=$T/c7 "$BACKUPFS" mount --ceph-conf "$CC" --ceph-id bfsro \
  "rbd:$POOL" "$T/m2" && MOUNTS+=("$T/m2") || echo "FAIL: mount --ceph-id"
rm -f "$T/exp"; R export "$POOL/one-root@one-root-$BK" "$T/exp" >/dev/null 2>&1
check "mount --ceph-id: bytes equal rbd export" "$(sha256sum <"$T/exp")" \
  "$(sha256sum <"$T/m2/one-root/$bname/disks/one-root.img" 2>/dev/null)"
finish
