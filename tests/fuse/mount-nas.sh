#!/bin/bash
# mount-nas.sh — a CloudStack NAS-layout repository: backup names from the
# stamp directories, domain.xml = domain-config.xml, disks against qemu-img.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
CHECK="python3 $SRCDIR/tests/fuse/fusecheck.py"

R=$T/repo
M=$T/mnt
mk_nas "$R"
# files being written are not backups
touch "$R/i-2-17-VM/2026.10.02.02.00.00/root.8f1c.qcow2.tmp"
bfs_mount "$R" "$M"

[ "$(ls "$M")" = i-2-17-VM ] || fail "root lists: $(ls "$M")"
V=$M/i-2-17-VM
[ "$(ls "$V" | tr '\n' ' ')" = "2026-10-01T020000Z 2026-10-02T020000Z latest " ] ||
  fail "VM dir lists: $(ls "$V" | tr '\n' ' ')"
[ "$(readlink "$V/latest")" = 2026-10-02T020000Z ] || fail "latest -> $(readlink "$V/latest")"
ok "tree: $(ls "$V" | tr '\n' ' ')"

for s in 2026.10.01.02.00.00:2026-10-01T020000Z 2026.10.02.02.00.00:2026-10-02T020000Z; do
  cmp "$V/${s#*:}/domain.xml" "$R/i-2-17-VM/${s%%:*}/domain-config.xml" ||
    fail "${s#*:}/domain.xml differs from domain-config.xml"
  [ "$(ls "$V/${s#*:}/disks" | wc -l)" = 2 ] || fail "disks: $(ls "$V/${s#*:}/disks")"
done
ok "domain.xml is domain-config.xml"

J=$V/latest/backup.json
jget "$J" "j['source']" | grep -q nas || fail "source: $(jget "$J" "j['source']")"
[ "$(jget "$J" "j['vm']")" = i-2-17-VM ] || fail "vm"
jget "$J" "j['time']" | grep -q '^2026-10-02T02:00:00' || fail "time: $(jget "$J" "j['time']")"
[ "$(jget "$J" "sorted(len(d['chain']) for d in j['disks'])")" = "[2, 2]" ] ||
  fail "chains: $(jget "$J" "[d['chain'] for d in j['disks']]")"
[ "$(jget "$J" "sorted(d['name'] for d in j['disks'])")" = "['vda', 'vdb']" ] ||
  echo "note: disk names $(jget "$J" "sorted(d['name'] for d in j['disks'])") (targets not mapped)"
ok "backup.json"

n=$(compare_disks "$M" "$R")
[ "$n" = 4 ] || fail "compared $n disks, want 4"
ok "4 disks equal their qemu-img convert (sha256)"

for i in 0 1; do
  name=$(jget "$J" "j['disks'][$i]['name']")
  "$BACKUPFS" image map "$R/$(jget "$J" "j['disks'][$i]['image']")" > "$T/map"
  $CHECK seek "$V/latest/disks/$name.img" "$T/map"
done
$CHECK erofs "$V/latest" "$V/latest/domain.xml"
ok "seek, EROFS"
