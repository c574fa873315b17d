#!/bin/bash
# restore disk and restore quick through a real backupfs mount of a
# generic repository (full + incremental, compressed clusters):
#  - restore disk BACKUP_DIR: equal to the qemu-img oracle of the repository
#    chain, sparse; restore disk --repo VM@TIME: the same without the mount
#  - restore quick: overlays backed by the mounted disks/<disk>.img read as
#    the point in time; writes land in the overlay only (repository files'
#    sha256 and the mounted image unchanged); domain.xml valid and pointing
#    at the overlays; `qemu-img rebase -b ''` consolidates and the overlay
#    stands alone after the unmount.
. "$SRCDIR/tests/restore/lib.sh"
need_catalog
command -v xmllint >/dev/null || skip "xmllint not installed"

R=$T/repo
make_repo "$R"
for d in vda vdb; do oracle "$R/web01/$T2/$d.qcow2" "$T/$d.oracle"; done
repo_sha() { (cd "$R" && find . -type f | sort | xargs sha256sum); }
SHA0=$(repo_sha)

# --repo works without the mount
"$BACKUPFS" restore disk --repo "$R" --catalog "$T/c2.db" web01@$T2 vda "$T/repo.raw" \
  || fail "restore disk --repo"
cmp "$T/vda.oracle" "$T/repo.raw" || fail "--repo result differs from the oracle"
"$BACKUPFS" restore disk --repo "$R" --catalog "$T/c2.db" --format qcow2 web01 vdb "$T/repo.qcow2" \
  || fail "restore disk --repo --format qcow2"
oracle "$T/repo.qcow2" "$T/repo-vdb.raw"
cmp "$T/vdb.oracle" "$T/repo-vdb.raw" || fail "--repo qcow2 result differs"
ok "restore disk --repo"

M=$T/mnt
mount_repo "$R" "$M"
B=$M/web01/latest
RB=$M/web01/$T2

"$BACKUPFS" restore disk "$B" vda "$T/vda.raw" || fail "restore disk through the mount"
cmp "$T/vda.oracle" "$T/vda.raw" || fail "restore disk differs from the oracle"
used=$(du -k "$T/vda.raw" | cut -f1)
[ "$used" -lt 65536 ] || fail "not sparse: $used KiB for 256 MiB"
"$BACKUPFS" restore disk "$M/web01/$T1" vdb "$T/vdb1.raw" || fail "restore disk vdb@T1"
oracle "$R/web01/$T1/vdb.qcow2" "$T/vdb1.oracle"
cmp "$T/vdb1.oracle" "$T/vdb1.raw" || fail "vdb@T1 (compressed) differs"
ok "restore disk through the mount equals the oracle, $used KiB used"

O=$T/quick
"$BACKUPFS" restore quick --via mount "$B" "$O" > "$T/quick.out" 2>"$T/quick.err" || fail "restore quick"
grep -q "allow_other" "$T/quick.err" || fail "no warning about a mount without allow_other"
for d in vda vdb; do
  qemu-img info --output=json "$O/$d.qcow2" | grep -q "\"backing-filename\": \"$RB/disks/$d.img\"" \
    || fail "$d: backing is not $RB/disks/$d.img (latest must be resolved)"
  oracle "$O/$d.qcow2" "$T/$d.overlay"
  cmp "$T/$d.oracle" "$T/$d.overlay" || fail "$d: overlay does not read as the point in time"
done
X=$O/domain.xml
xmllint --noout "$X" || fail "domain.xml not well-formed"
if command -v virt-xml-validate >/dev/null; then
  virt-xml-validate "$X" domain || fail "virt-xml-validate"
elif [ -f /usr/share/libvirt/schemas/domain.rng ]; then
  xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng "$X" 2>/dev/null || fail "domain.rng"
fi
for d in vda vdb; do
  [ "$(xmllint --xpath "string(//disk[target/@dev='$d']/source/@file)" "$X")" = "$O/$d.qcow2" ] \
    || fail "domain.xml: $d does not point at the overlay"
done
ok "quick restore overlays read as the point in time; domain.xml valid"

qemu-io -f qcow2 -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 200M 64k' "$O/vda.qcow2" >/dev/null \
  || fail "write to the overlay"
[ "$(repo_sha)" = "$SHA0" ] || fail "the repository changed"
rm -f "$T/vda.mounted"; qemu-img convert -f raw -O raw "$RB/disks/vda.img" "$T/vda.mounted"
cmp "$T/vda.oracle" "$T/vda.mounted" || fail "the mounted image changed"
cp "$T/vda.oracle" "$T/vda.expect"
qemu-io -f raw -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 200M 64k' "$T/vda.expect" >/dev/null
rm -f "$T/vda.overlay"; oracle "$O/vda.qcow2" "$T/vda.overlay"
cmp "$T/vda.expect" "$T/vda.overlay" || fail "overlay does not read as backup + writes"
ok "writes land in the overlay only"

qemu-img rebase -f qcow2 -b '' "$O/vda.qcow2" || fail "rebase"
fusermount3 -u "$M" || fail "unmount"
MNT=
qemu-img info --output=json "$O/vda.qcow2" | grep -q backing-filename && fail "still backed"
rm -f "$T/vda.overlay"; oracle "$O/vda.qcow2" "$T/vda.overlay" || fail "overlay unreadable after unmount"
cmp "$T/vda.expect" "$T/vda.overlay" || fail "consolidated overlay differs"
[ "$(repo_sha)" = "$SHA0" ] || fail "the repository changed"
ok "consolidated overlay stands alone after the unmount"
exit 0
