#!/bin/bash
# test-layout.sh — virtnbdbackup folders through the mount without a VM:
# gen-vnbd.py writes streams in virtnbdbackup 1.9's format (a full, two
# incrementals, a differential; two disks) from raw images.  Mounted, every
# checkpoint is a point in time at its checkpoint XML's creationTime whose
# disks/*.img equal that checkpoint's raw images, with vmconfig as
# domain.xml and source virtnbdbackup; the differential reads as its own
# point in time; a truncated last incremental and a .partial stream break
# their checkpoints with the reason while the earlier ones read; stream
# indexes land in the index cache once and are reused on remount.
. "$SRCDIR/tests/recovery/lib.sh"
gen() { python3 "$SRCDIR/tests/vnbd/gen-vnbd.py" "$@"; }

sparse_raw "$T/a0.raw" $((12 << 20)) 1 0 2 7
sparse_raw "$T/b0.raw" $((4 << 20)) 2 1
patch() {   # SRC DST SEED MIB...: DST = SRC with 256 KiB random at each MIB
  python3 - "$@" <<'PY'
import random, shutil, sys
src, dst, seed, mibs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
shutil.copyfile(src, dst)
with open(dst, "r+b") as f:
    for m in mibs:
        r = random.Random(seed * 1000 + int(m))
        f.seek(int(m) << 20)
        f.write(bytes(r.getrandbits(8) for _ in range(262144)))
PY
}
patch "$T/a0.raw" "$T/a1.raw" 10 3 9
patch "$T/b0.raw" "$T/b1.raw" 11 2
patch "$T/a1.raw" "$T/a2.raw" 12 9 11
cp "$T/b1.raw" "$T/b2.raw"
patch "$T/a1.raw" "$T/ad.raw" 13 5
R=$T/repo/web01
gen full "$R" web01 vda="$T/a0.raw" vdb="$T/b0.raw" --time 1790000000
gen inc "$R" web01 1 vda="$T/a0.raw:$T/a1.raw" vdb="$T/b0.raw:$T/b1.raw" --time 1790003600
gen inc "$R" web01 2 vda="$T/a1.raw:$T/a2.raw" vdb="$T/b1.raw:$T/b2.raw" --time 1790007200
gen diff "$R" web01 1790005000 1 vda="$T/a1.raw:$T/ad.raw"

M=$T/mnt
bfs_mount "$T/repo" "$M"
want() {   # TIME N: checkpoint N at TIME
  local bk=$M/web01/$1
  [ -d "$bk" ] || fail "no point in time $1: $(ls "$M/web01")"
  cmp "$bk/disks/vda.img" "$T/a$2.raw" || fail "checkpoint $2 vda differs"
  cmp "$bk/disks/vdb.img" "$T/b$2.raw" || fail "checkpoint $2 vdb differs"
  grep -q "<name>web01</name>" "$bk/domain.xml" || fail "checkpoint $2: no domain.xml"
  [ "$(jget "$bk/backup.json" "j['source']")" = virtnbdbackup ] || fail "source"
  [ "$(jget "$bk/backup.json" "j['checkpoint']")" = "virtnbdbackup.$2" ] || fail "checkpoint name"
}
want 2026-09-21T141320Z 0
want 2026-09-21T151320Z 1
want 2026-09-21T161320Z 2
d=$M/web01/2026-09-21T153640Z
cmp "$d/disks/vda.img" "$T/ad.raw" || fail "the differential differs"
grep -q "<name>web01</name>" "$d/domain.xml" || fail "the differential has no domain.xml"
[ "$(jget "$d/backup.json" "len(j['disks'])")" = 1 ] || fail "the differential's disks"
[ "$(jget "$d/backup.json" "len(j['disks'][0]['chain'])")" = 3 ] || fail "diff chain: diff, inc.1, full"
ok "three checkpoints and a differential equal their raw images"
n=$(ls "$T/catalog-mnt.db.idx" | grep -c '^vnbd-')
[ "$n" = 7 ] || fail "$n stream indexes in the index cache, want 7"
inodes() { stat -c '%n %i' "$T/catalog-mnt.db.idx"/vnbd-* | sort; }
before=$(inodes)
bfs_umount "$M"

# interrupted: inc.2 of vda cut in half, vdb's inc.2 still being written
sz=$(stat -c %s "$R/vda.inc.virtnbdbackup.2.data")
truncate -s $((sz / 2)) "$R/vda.inc.virtnbdbackup.2.data"
mv "$R/vdb.inc.virtnbdbackup.2.data" "$R/vdb.inc.virtnbdbackup.2.data.partial"
bfs_mount "$T/repo" "$M"
bk=$M/web01/2026-09-21T161320Z
st=$(jget "$bk/backup.json" "j['status']")
case $st in *vda.inc.virtnbdbackup.2.data*offset*) ;; *) fail "cut stream status: $st" ;; esac
if cat "$bk/disks/vda.img" > /dev/null 2>&1; then fail "a cut stream read"; fi
vdb=$(jget "$bk/backup.json" "[d['status'] for d in j['disks'] if d['name'] == 'vdb'][0]")
case $vdb in *partial*half-written*) ;; *) fail ".partial status: $vdb" ;; esac
ok "cut checkpoint broken: $st; $vdb"
want 2026-09-21T141320Z 0
want 2026-09-21T151320Z 1
[ "$(jget "$M/web01/2026-09-21T151320Z/backup.json" "j['status']")" = ok ] || fail "checkpoint 1 not ok"
# the unchanged streams' indexes were reused, not rebuilt
after=$(inodes | grep -F -f <(grep -v 'vnbd-[0-9]*-[0-9]*-'"$sz"'-' <<<"$before" | sed 's/ .*//'))
[ "$(grep -v 'vnbd-[0-9]*-[0-9]*-'"$sz"'-' <<<"$before")" = "$after" ] ||
  fail "stream indexes rebuilt on remount"
bfs_umount "$M"
ok "earlier checkpoints read beside the cut one; indexes reused"
"$BACKUPFS" list --json --catalog "$T/catalog-mnt.db" "$T/repo" > "$T/list.json" || fail "list"
grep -q '"virtnbdbackup"' "$T/list.json" || fail "list does not say virtnbdbackup"
