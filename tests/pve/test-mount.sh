#!/bin/bash
# test-mount.sh — vzdump dump directories and PBS datastores (written by
# gen-pve.py from the format specifications) mounted through their
# layouts: every disk's bytes equal the source raw image (and qemu-img's
# raw oracle of it); backup.json source vzdump / pbs; qemu-server.conf
# shown; a corrupt chunk is EIO naming the chunk, a missing chunk too, an
# unfinished snapshot is a broken point in time saying so while the
# finished ones read; an encrypted datastore reads with -o pbs_keyfile=
# and is a clear error with a wrong key; a rescan/remount reuses the
# cached VMA index (no rebuild); archives replaced under the mount read
# as the new ones, the old unpacked copy dropped.
. "$SRCDIR/tests/recovery/lib.sh"
: "${GEN_PVE:?}" "${AESGCM:?}"
command -v zstd >/dev/null || skip "zstd is missing"
gen() { python3 "$GEN_PVE" "$@"; }

# --- sources: two disks, the second snapshot changes some chunks ---
sparse_raw "$T/a0.raw" $((24 << 20)) 1 0 3 9 17
sparse_raw "$T/b0.raw" $((8 << 20)) 2 1 5
cp "$T/a0.raw" "$T/a1.raw"
sparse_raw "$T/patch.raw" $((1 << 20)) 3 0
dd if="$T/patch.raw" of="$T/a1.raw" bs=1M seek=12 conv=notrunc status=none
printf 'name: web01\nmemory: 2048\nscsi0: local:100/vm-100-disk-0.raw,size=24M\n' > "$T/conf"

# --- a vzdump dump directory: one .vma, one .vma.zst ---
D=$T/repo-vma/dump
mkdir -p "$D"
gen vma "$D/vzdump-qemu-100-2026_10_01-03_00_00.vma" --dev drive-scsi0="$T/a0.raw" \
  --dev drive-virtio1="$T/b0.raw" --config qemu-server.conf="$T/conf"
gen vma "$T/v1.vma" --dev drive-scsi0="$T/a1.raw" --config qemu-server.conf="$T/conf"
zstd -q "$T/v1.vma" -o "$D/vzdump-qemu-100-2026_10_02-03_00_00.vma.zst"
echo "before the upgrade" > "$D/vzdump-qemu-100-2026_10_02-03_00_00.vma.zst.notes"

M=$T/mnt-vma
bfs_mount "$T/repo-vma" "$M"
bk=$M/100/2026-10-01T030000Z
[ -d "$bk" ] || fail "no VMA backup dir: $(ls -R "$M" | head -20)"
cmp "$bk/disks/scsi0.img" "$T/a0.raw" || fail "vma scsi0 differs"
cmp "$bk/disks/virtio1.img" "$T/b0.raw" || fail "vma virtio1 differs"
oracle "$T/o.raw" "$T/a1.raw"
cmp "$M/100/2026-10-02T030000Z/disks/scsi0.img" "$T/o.raw" || fail "vma.zst scsi0 differs"
check_json() {   # FILE EXPR WANT
  got=$(jget "$1" "$2") || fail "$1: $2"
  [ "$got" = "$3" ] || fail "$1: $2 is '$got', want '$3'"
}
check_json "$bk/backup.json" "j['source']" vzdump
check_json "$M/100/2026-10-02T030000Z/backup.json" "j['notes']" "before the upgrade"
cmp "$bk/qemu-server.conf" "$T/conf" || fail "qemu-server.conf differs: $(cat "$bk/qemu-server.conf")"
ok "vzdump: .vma and .vma.zst disks equal their sources, conf and notes shown"
idx=$(ls "$T/catalog-mnt-vma.db.idx" | grep -c '^vma-') || true
[ "$idx" -ge 2 ] || fail "no VMA index in the index cache: $(ls -a "$T/catalog-mnt-vma.db.idx")"
inodes() { stat -c '%n %i' "$T/catalog-mnt-vma.db.idx"/vma-* | sort; }
before=$(inodes)
bfs_umount "$M"
# the list command shows the source
"$BACKUPFS" list --json --catalog "$T/catalog-mnt-vma.db" "$T/repo-vma" > "$T/list.json" ||
  fail "list $T/repo-vma"
grep -q '"vzdump"' "$T/list.json" || fail "list does not say vzdump: $(head -c 600 "$T/list.json")"
# a truncated archive: the device it holds completely reads, the cut one is broken
head -c $(( $(stat -c %s "$D/vzdump-qemu-100-2026_10_01-03_00_00.vma") - 70000 )) \
  "$D/vzdump-qemu-100-2026_10_01-03_00_00.vma" > "$D/vzdump-qemu-100-2026_10_03-03_00_00.vma"
bfs_mount "$T/repo-vma" "$M"
check_json "$M/100/2026-10-03T030000Z/backup.json" "j['status'] != 'ok'" True
if cat "$M/100/2026-10-03T030000Z/disks/"*.img > /dev/null 2> "$T/cut.err"; then
  fail "every device of a truncated archive read"
fi
ok "vzdump: truncated archive broken: $(jget "$M/100/2026-10-03T030000Z/backup.json" "j['status']")"
cmp "$bk/disks/scsi0.img" "$T/a0.raw" || fail "earlier archive no longer reads"
cmp "$M/100/2026-10-02T030000Z/disks/scsi0.img" "$T/o.raw" || fail "vma.zst no longer reads"
# rescan + remount + reads: the two unchanged archives' indexes were
# loaded, not rebuilt (a rebuild stores a new file: a new inode)
after=$(inodes | grep -F -f <(sed 's/ .*//' <<<"$before"))
[ "$before" = "$after" ] || fail "VMA indexes rebuilt on remount: $before / $after"
ok "vzdump: indexes reused across rescan and remount"
# archives replaced under the mount (rescanned, no remount): each reads as
# the new one; the .vma.zst is unpacked again and its old copy dropped (the
# daemon holds one non-empty unpacked copy, another inode than before)
Z=$D/vzdump-qemu-100-2026_10_02-03_00_00.vma.zst
# copies PID: "INODE SIZE" of each unpacked copy (O_TMPFILE) it holds
copies() {
  for f in /proc/"$1"/fd/*; do
    case $(readlink "$f") in *.db.idx/\#*) stat -L -c '%i %s' "$f" ;; esac
  done | sort -u
}
pid=$(daemon_pid "$M")
live() { copies "$pid" | awk '$2 > 0 { print $1 }'; }
old_copy=$(live)
[ "$(wc -l <<<"$old_copy")" = 1 ] && [ -n "$old_copy" ] ||
  fail "want one unpacked copy before the replacement: $(copies "$pid")"
cp "$D/vzdump-qemu-100-2026_10_01-03_00_00.vma" "$T/old.vma"
gen vma "$T/new.vma" --dev drive-scsi0="$T/a1.raw" --dev drive-virtio1="$T/b0.raw"
cp "$T/new.vma" "$D/x.tmp"; mv "$D/x.tmp" "$D/vzdump-qemu-100-2026_10_01-03_00_00.vma"
gen vma "$T/new2.vma" --dev drive-scsi0="$T/a0.raw"
zstd -q "$T/new2.vma" -o "$D/y.tmp"; mv "$D/y.tmp" "$Z"
wait_for cmp "$bk/disks/scsi0.img" "$T/a1.raw" || fail "a replaced .vma does not read as the new archive"
wait_for cmp "$M/100/2026-10-02T030000Z/disks/scsi0.img" "$T/a0.raw" ||
  fail "a replaced .vma.zst does not read as the new archive: $(cmp "$M/100/2026-10-02T030000Z/disks/scsi0.img" "$T/a0.raw" 2>&1)"
new_copy=$(live)
[ "$(wc -l <<<"$new_copy")" = 1 ] && [ -n "$new_copy" ] ||
  fail "want one non-empty unpacked copy after the replacement: $(copies "$pid")"
[ "$new_copy" != "$old_copy" ] || fail "the replaced .vma.zst reads through its old copy"
ok "vzdump: replaced archives read as the new ones; the old unpacked copy dropped"
bfs_umount "$M"
bfs_mount "$T/repo-vma" "$M"
cmp "$M/100/2026-10-02T030000Z/disks/scsi0.img" "$T/a0.raw" || fail "the replaced .vma.zst after a remount"
bfs_umount "$M"
cp "$T/old.vma" "$D/vzdump-qemu-100-2026_10_01-03_00_00.vma"
gen vma "$T/v1.vma" --dev drive-scsi0="$T/a1.raw" --config qemu-server.conf="$T/conf"
rm -f "$Z"; zstd -q "$T/v1.vma" -o "$Z"
bfs_mount "$T/repo-vma" "$M"
bfs_umount "$M"

# --- a PBS datastore: two finished snapshots sharing chunks, one unfinished ---
P=$T/repo-pbs
gen pbs "$P" --vm 100 --time 2026-10-01T03:00:00Z --drive scsi0="$T/a0.raw" \
  --drive virtio1="$T/b0.raw" --chunk-size 1048576 --compress --conf "$T/conf"
gen pbs "$P" --vm 100 --time 2026-10-02T03:00:00Z --drive scsi0="$T/a1.raw" \
  --chunk-size 1048576 --compress --conf "$T/conf"
gen pbs "$P" --vm 100 --time 2026-10-03T03:00:00Z --drive scsi0="$T/a1.raw" \
  --chunk-size 1048576 --unfinished
gen pbs "$P" --ns team/dev --vm 200 --time 2026-10-01T04:00:00Z --drive scsi0="$T/b0.raw" \
  --chunk-size 1048576
M=$T/mnt-pbs
bfs_mount "$P" "$M"
s1=$M/100/2026-10-01T030000Z s2=$M/100/2026-10-02T030000Z s3=$M/100/2026-10-03T030000Z
cmp "$s1/disks/scsi0.img" "$T/a0.raw" || fail "pbs s1 scsi0 differs"
cmp "$s1/disks/virtio1.img" "$T/b0.raw" || fail "pbs s1 virtio1 differs"
cmp "$s2/disks/scsi0.img" "$T/a1.raw" || fail "pbs s2 scsi0 differs"
cmp "$M/team-dev-200/2026-10-01T040000Z/disks/scsi0.img" "$T/b0.raw" || fail "pbs namespace disk differs"
check_json "$s1/backup.json" "j['source']" pbs
check_json "$s1/backup.json" "j['vm_name']" web01
cmp "$s1/qemu-server.conf" "$T/conf" || fail "pbs qemu-server.conf differs"
check_json "$s3/backup.json" "'unfinished' in j['status']" True
if cat "$s3/disks/scsi0.img" > /dev/null 2> "$T/unf.err"; then
  fail "an unfinished snapshot's disk read"
fi
ok "pbs: disks equal sources (namespace too), unfinished: $(jget "$s3/backup.json" "j['status']")"
bfs_umount "$M"

# a corrupt chunk, then a missing one: EIO naming the chunk; others still read
digest() {   # the chunk of snapshot dir, drive, chunk number
  python3 - "$1" "$2" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
i = int(sys.argv[2])
print(b[4096 + 32 * i:4096 + 32 * (i + 1)].hex())
PY
}
c=$(digest "$P/vm/100/2026-10-02T03:00:00Z/drive-scsi0.img.fidx" 12)
cf=$P/.chunks/${c:0:4}/$c
cp "$cf" "$T/chunk.save"
python3 - "$cf" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[-5] ^= 0xff
open(sys.argv[1], "wb").write(b)
PY
rc_mount_fg "$P" "$M"
if dd if="$s2/disks/scsi0.img" of=/dev/null bs=1M skip=12 count=1 2> "$T/bad.err"; then
  fail "a corrupt chunk read"
fi
grep -q "Input/output error" "$T/bad.err" || fail "corrupt chunk: $(cat "$T/bad.err")"
cmp "$s1/disks/scsi0.img" "$T/a0.raw" || fail "s1 does not read beside a corrupt chunk of s2"
bfs_umount "$M"
wait "$DPID" || true
grep -q "$c" "$DLOG" || fail "the log does not name the corrupt chunk $c: $(tail -5 "$DLOG")"
ok "pbs: corrupt chunk: $(grep -m1 "$c" "$DLOG")"
"$BACKUPFS" list --json --catalog "$T/catalog-mnt-pbs.db" "$P" > "$T/list.json" || fail "list $P"
grep -q '"pbs"' "$T/list.json" || fail "list does not say pbs"
rm "$cf"
rc_mount_fg "$P" "$M"
if dd if="$s2/disks/scsi0.img" of=/dev/null bs=1M skip=12 count=1 2> "$T/miss.err"; then
  fail "a missing chunk read"
fi
bfs_umount "$M"
wait "$DPID" || true
grep -q "$c" "$DLOG" || fail "the log does not name the missing chunk $c: $(tail -5 "$DLOG")"
ok "pbs: missing chunk: $(grep -m1 "$c" "$DLOG")"
cp "$T/chunk.save" "$cf"
ok "pbs: corrupt and missing chunks are EIO, the other snapshot reads"

# encrypted datastore: reads with the key file, a clear error with a wrong one
K=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
E=$T/repo-enc
gen pbs "$E" --vm 300 --time 2026-10-01T05:00:00Z --drive scsi0="$T/b0.raw" \
  --chunk-size 1048576 --compress --key $K --aesgcm "$AESGCM" --conf "$T/conf"
gen keyfile "$T/key.json" --key $K
gen keyfile "$T/bad.json" --key "${K//0/f}"
M=$T/mnt-enc
bfs_mount "$E" "$M" -o "pbs_keyfile=$T/key.json"
cmp "$M/300/2026-10-01T050000Z/disks/scsi0.img" "$T/b0.raw" || fail "encrypted disk differs"
cmp "$M/300/2026-10-01T050000Z/qemu-server.conf" "$T/conf" || fail "encrypted qemu-server.conf"
bfs_umount "$M"
rm -f "$T/catalog-mnt-enc.db"*
bfs_mount "$E" "$M"
if cat "$M/300/2026-10-01T050000Z/disks/scsi0.img" > /dev/null 2>&1; then
  fail "an encrypted datastore read without a key"
fi
bfs_umount "$M"
rm -f "$T/catalog-mnt-enc.db"*
MOUNTS="$MOUNTS $M"
"$BACKUPFS" mount -f -o "catalog=$T/catalog-mnt-enc.db,pbs_keyfile=$T/bad.json" "$E" "$M" \
  2> "$T/enc.log" &
DPID=$!; DPIDS="$DPIDS $DPID"
wait_for mountpoint -q "$M" || fail "encrypted mount: $(cat "$T/enc.log")"
if cat "$M/300/2026-10-01T050000Z/disks/scsi0.img" > /dev/null 2> "$T/wrong.err"; then
  fail "an encrypted datastore read with the wrong key"
fi
grep -q "Input/output error\|Required key" "$T/wrong.err" || fail "wrong key: $(cat "$T/wrong.err")"
bfs_umount "$M"
wait "$DPID" || true
grep -qi "key\|decrypt\|tag" "$T/enc.log" || fail "the wrong key's error says nothing of the key: $(tail -3 "$T/enc.log")"
ok "pbs: encrypted datastore reads with its key file; wrong key: $(grep -i -m1 "key\|decrypt\|tag" "$T/enc.log")"
