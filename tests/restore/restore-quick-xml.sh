#!/bin/bash
# restore quick on a point-in-time directory made here (backup.json,
# disks/<disk>.img, domain.xml as virsh dumpxml writes it), so it runs
# without a mount; restore-mount.sh repeats the essentials through a real
# mount.  Overlays read as the point in time, writes go to the overlay only,
# the domain XML is valid and points at the overlays with a new identity,
# nothing is overwritten, and `qemu-img rebase -b ''` makes the overlay
# stand alone.
. "$SRCDIR/tests/restore/lib.sh"
command -v xmllint >/dev/null || skip "xmllint not installed"

B=$T/mnt/web01/$T2
mkdir -p "$B/disks"
qemu-img create -q -f qcow2 "$T/a.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 3M' -c 'write -P 0x22 40M 1M' "$T/a.qcow2" >/dev/null
oracle "$T/a.qcow2" "$B/disks/vda.img"
truncate -s 32M "$B/disks/vdb.img"
printf 'data disk' | dd of="$B/disks/vdb.img" conv=notrunc status=none
cat > "$B/backup.json" <<J
{"vm":"web01","time":"2026-10-02T03:00:00Z","source":"generic","disks":[
 {"name":"vda","image":"web01/$T2/vda.qcow2","chain":[],"virtual_size":67108864,"status":"ok"},
 {"name":"vdb","image":"web01/$T2/vdb.qcow2","chain":[],"virtual_size":33554432,"status":"ok"}]}
J
UUID=4dea22b3-1d52-d8f3-2516-782e98ab3fa0
cat > "$B/domain.xml" <<X
<domain type='kvm' id='7'>
  <name>web01</name>
  <uuid>$UUID</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/mnt/pool/1b2c/root.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/mnt/pool/1b2c/template.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <serial>1b2c3d</serial>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/data'><host name='ceph1' port='6789'/></source>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/mnt/pool/scratch.qcow2'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:12:34:56'/>
      <source bridge='br0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
    </interface>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+64055:+64055</label>
    <imagelabel>+64055:+64055</imagelabel>
  </seclabel>
</domain>
X
SHA_BEFORE=$(sha256sum "$B/disks/vda.img" "$B/disks/vdb.img" "$B/domain.xml")
RB=$(realpath "$B")

xp() { xmllint --xpath "$1" "$2" 2>/dev/null; }
validate() {
  xmllint --noout "$1" || fail "$1: not well-formed"
  if command -v virt-xml-validate >/dev/null; then
    virt-xml-validate "$1" domain || fail "$1: virt-xml-validate"
  elif [ -f /usr/share/libvirt/schemas/domain.rng ]; then
    xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng "$1" 2>"$T/rng" \
      || fail "$1: not valid against domain.rng: $(cat "$T/rng")"
  fi
}

O=$T/restored
"$BACKUPFS" restore quick "$T/mnt/web01/$T2" "$O" > "$T/out" 2>"$T/err" || fail "restore quick"
grep -q allow_other "$T/err" && fail "allow_other warning off a FUSE mount"
for d in vda vdb; do
  [ -f "$O/$d.qcow2" ] || fail "no overlay $d"
  info=$(qemu-img info --output=json "$O/$d.qcow2")
  echo "$info" | grep -q "\"backing-filename\": \"$RB/disks/$d.img\"" || fail "$d: backing is not the mounted image: $info"
  echo "$info" | grep -q '"backing-filename-format": "raw"' || fail "$d: backing format not raw"
  oracle "$O/$d.qcow2" "$T/$d.check"
  cmp "$B/disks/$d.img" "$T/$d.check" || fail "$d: overlay does not read as the point in time"
done
grep -q "virsh define $O/domain.xml" "$T/out" && grep -q "virsh start web01-restored" "$T/out" \
  && grep -q "virsh blockpull web01-restored vda --wait" "$T/out" \
  && grep -q "qemu-img rebase -f qcow2 -b '' $O/vda.qcow2" "$T/out" || fail "next steps not printed: $(cat "$T/out")"
ok "overlays read as the point in time"

X=$O/domain.xml
validate "$X"
[ "$(xp 'string(/domain/name)' "$X")" = web01-restored ] || fail "name not changed"
u=$(xp 'string(/domain/uuid)' "$X")
[ -n "$u" ] && [ "$u" != "$UUID" ] || fail "uuid not changed: $u"
[ "$(xp 'count(//interface/mac)' "$X")" = 0 ] || fail "MAC kept"
[ "$(xp 'count(//interface/target)' "$X")" = 0 ] || fail "vnet target kept"
[ "$(xp 'count(/domain/@id)' "$X")" = 0 ] || fail "live id kept"
[ "$(xp 'count(//seclabel)' "$X")" = 0 ] || fail "dynamic seclabel kept"
[ "$(xp 'count(//disk[@device="disk"])' "$X")" = 2 ] || fail "disk not in the backup kept"
[ "$(xp 'count(//disk[@device="cdrom"])' "$X")" = 1 ] || fail "cdrom dropped"
[ "$(xp 'count(//backingStore)' "$X")" = 0 ] || fail "backingStore kept"
for d in vda vdb; do
  [ "$(xp "string(//disk[target/@dev='$d']/source/@file)" "$X")" = "$O/$d.qcow2" ] || fail "$d: source is not the overlay"
  [ "$(xp "string(//disk[target/@dev='$d']/driver/@type)" "$X")" = qcow2 ] || fail "$d: driver not qcow2"
  [ "$(xp "string(//disk[target/@dev='$d']/@type)" "$X")" = file ] || fail "$d: type not file"
done
[ "$(xp "string(//disk[target/@dev='vda']/serial)" "$X")" = 1b2c3d ] || fail "serial lost"
ok "domain.xml valid, new identity, points at the overlays"

# refuse to overwrite anything
X_SHA=$(sha256sum "$X")
"$BACKUPFS" restore quick "$B" "$O" 2>"$T/err" && fail "overwrote a quick restore"
grep -q exists "$T/err" || fail "no clear message: $(cat "$T/err")"
[ "$(sha256sum "$X")" = "$X_SHA" ] || fail "domain.xml changed"
ok "refuses to overwrite"

# --same-identity keeps name, uuid and MACs
"$BACKUPFS" restore quick --same-identity --bridge br0 "$B" "$T/same" >/dev/null || fail "--same-identity"
validate "$T/same/domain.xml"
[ "$(xp 'string(/domain/name)' "$T/same/domain.xml")" = web01 ] || fail "--same-identity name"
[ "$(xp 'string(/domain/uuid)' "$T/same/domain.xml")" = "$UUID" ] || fail "--same-identity uuid"
[ "$(xp 'string(//interface/mac/@address)' "$T/same/domain.xml")" = 52:54:00:12:34:56 ] || fail "--same-identity mac"
ok "--same-identity"

# writes go to the overlay only
qemu-io -f qcow2 -c 'write -P 0xab 0 1M' "$O/vda.qcow2" >/dev/null || fail "qemu-io write"
[ "$(sha256sum "$B/disks/vda.img" "$B/disks/vdb.img" "$B/domain.xml")" = "$SHA_BEFORE" ] || fail "backup changed"
rm -f "$T/vda.check"; oracle "$O/vda.qcow2" "$T/vda.check"
cp "$B/disks/vda.img" "$T/expect"
qemu-io -f raw -c 'write -P 0xab 0 1M' "$T/expect" >/dev/null
cmp "$T/expect" "$T/vda.check" || fail "overlay does not read as backup + writes"
ok "writes land in the overlay only"

# offline consolidation: the overlay stands alone once the backup is gone
qemu-img rebase -f qcow2 -b '' "$O/vda.qcow2" || fail "rebase"
mv "$T/mnt" "$T/gone"
qemu-img info --output=json "$O/vda.qcow2" | grep -q backing-filename && fail "still has a backing file"
rm -f "$T/vda.check"; oracle "$O/vda.qcow2" "$T/vda.check"
cmp "$T/expect" "$T/vda.check" || fail "consolidated overlay differs"
mv "$T/gone" "$T/mnt"
ok "consolidated overlay stands alone"

# --start runs virsh define + start (a stand-in virsh records its calls);
# without virsh it fails clearly and keeps the files
mkdir -p "$T/bin"
printf '#!/bin/sh\necho "$*" >> "%s/virsh.log"\n' "$T" > "$T/bin/virsh"
chmod +x "$T/bin/virsh"
PATH=$T/bin:$PATH "$BACKUPFS" restore quick --start --name web01-test "$B" "$T/started" >/dev/null \
  || fail "--start with virsh"
grep -v net-list "$T/virsh.log" > "$T/virsh.calls" || true   # networks: domxml
printf 'define %s\nstart web01-test\n' "$T/started/domain.xml" | cmp - "$T/virsh.calls" \
  || fail "--start ran: $(cat "$T/virsh.log")"
rm "$T/bin/virsh"
if ! command -v virsh >/dev/null; then
  "$BACKUPFS" restore quick --start "$B" "$T/nostart" >/dev/null 2>"$T/err" && fail "--start without virsh"
  grep -q "virsh not found" "$T/err" || fail "--start: no clear message"
  [ -f "$T/nostart/domain.xml" ] && [ -f "$T/nostart/vda.qcow2" ] || fail "--start removed the files"
fi
ok "--start"

# no domain.xml: a minimal valid definition
B2=$T/mnt/db01/$T1
mkdir -p "$B2/disks"
truncate -s 16M "$B2/disks/root.img"
echo '{"vm":"db01","disks":[{"name":"root","status":"ok"}]}' > "$B2/backup.json"
"$BACKUPFS" restore quick "$B2" "$T/min" >/dev/null || fail "quick without domain.xml"
validate "$T/min/domain.xml"
[ "$(xp 'string(/domain/name)' "$T/min/domain.xml")" = db01-restored ] || fail "minimal name"
[ "$(xp 'string(//disk/source/@file)' "$T/min/domain.xml")" = "$T/min/root.qcow2" ] || fail "minimal disk source"
[ "$(xp 'string(//disk/target/@dev)' "$T/min/domain.xml")" = vda ] || fail "minimal target"
ok "minimal domain.xml"

# a broken disk is refused, and nothing is left behind
echo '{"vm":"db01","disks":[{"name":"root","status":"backing file missing"}]}' > "$B2/backup.json"
"$BACKUPFS" restore quick "$B2" "$T/broken" 2>"$T/err" && fail "broken backup accepted"
grep -q "backing file missing" "$T/err" || fail "reason not shown"
[ -z "$(ls -A "$T/broken" 2>/dev/null)" ] || fail "left files behind"
# hostile disk names in backup.json never leave DEST_DIR
echo '{"vm":"db01","disks":[{"name":"../escape","status":"ok"}]}' > "$B2/backup.json"
"$BACKUPFS" restore quick "$B2" "$T/hostile" 2>/dev/null && fail "disk name ../escape accepted"
[ ! -e "$T/escape.qcow2" ] || fail "wrote outside DEST_DIR"
"$BACKUPFS" restore disk "$B2" ../escape "$T/h.raw" 2>/dev/null && fail "restore disk ../escape"
"$BACKUPFS" restore quick --help | grep same-identity >/dev/null || fail "--help"
ok "broken backup refused"
exit 0
