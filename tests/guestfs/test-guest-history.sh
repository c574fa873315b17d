#!/bin/bash
# test-guest-history.sh — history, diff, find and diff --blocks on real
# guests: a VM "hist" with three points in time (bare ext4 disk; t2 and t3
# qcow2 incrementals, each made by guestfish on a copy as make-fixtures.sh
# does): /etc/app.conf is written in t1, changed in t2 and deleted in t3,
# /etc/keep.txt never changes, /etc/new.txt appears in t2.  `backupfs index`
# indexes all three (one appliance each, through its own mount); then
# history reports exactly first seen / changed / deleted, diff lists the
# change, find collapses keep.txt into one row, and diff --blocks equals a
# byte comparison of the raw images in 64 KiB blocks.  No OS on the disk:
# the guest tree is one directory per filesystem (/vda).  Four appliances.
set -uo pipefail
. "$SRCDIR/tests/guestfs/fixtures.sh"
command -v guestfish >/dev/null || { echo "SKIP: guestfish not installed"; exit 77; }
command -v fusermount3 >/dev/null || { echo "SKIP: no fusermount3"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
for c in history diff; do
  "$BACKUPFS" $c --help >/dev/null 2>&1 || fail "no $c command"
done

W=$(mktemp -d "$BUILDDIR/tests/guestfs/history.XXXXXX")
trap '[ -n "${BFS_KEEP_TEST_DIR:-}" ] || rm -rf "$W"' EXIT   # BFS_KEEP_TEST_DIR=1: keep it to look
export XDG_CACHE_HOME=$W/cache
H1=2026-11-01T030000Z H2=2026-11-02T030000Z H3=2026-11-03T030000Z
R=$W/repo C=$W/catalog.db
mkdir -p "$W/raw" "$R/hist/$H1" "$R/hist/$H2" "$R/hist/$H3" "$W/cache"
truncate -s 64M "$W/raw/t1.img" "$W/raw/t2.img" "$W/raw/t3.img"

# one guestfish session: t1 made, copied to t2 and changed, copied to t3
# and changed; fixed mtimes (utimens) so versions differ by more than luck
if ! guestfish --format=raw -a "$W/raw/t1.img" -a "$W/raw/t2.img" \
     -a "$W/raw/t3.img" > "$W/gf.log" 2>&1 <<'GF'
run
mkfs ext4 /dev/sda label:hist blocksize:4096
mount /dev/sda /
mkdir /etc
write /etc/app.conf "version 1\n"
write /etc/keep.txt "keep\n"
utimens /etc/app.conf 1000 0 1000 0
utimens /etc/keep.txt 500 0 500 0
umount /
copy-device-to-device /dev/sda /dev/sdb
mount /dev/sdb /
write /etc/app.conf "version 2, longer\n"
utimens /etc/app.conf 2000 0 2000 0
write /etc/new.txt "new\n"
umount /
copy-device-to-device /dev/sdb /dev/sdc
mount /dev/sdc /
rm /etc/app.conf
umount /
GF
then
  cat "$W/gf.log"
  grep -qiE "launch|appliance|qemu|kvm|supermin" "$W/gf.log" &&
    { echo "SKIP: libguestfs cannot launch an appliance here"; exit 77; }
  fail "guestfish fixture"
fi
qemu-img convert -O qcow2 "$W/raw/t1.img" "$R/hist/$H1/vda.qcow2"
(cd "$R/hist/$H2" && qemu-img convert -O qcow2 -B "../$H1/vda.qcow2" -F qcow2 \
   "$W/raw/t2.img" vda.qcow2) || fail "t2 overlay"
(cd "$R/hist/$H3" && qemu-img convert -O qcow2 -B "../$H2/vda.qcow2" -F qcow2 \
   "$W/raw/t3.img" vda.qcow2) || fail "t3 overlay"

# on a terminal (script: a pty) index says which point in time of how many
# and what its appliance waits for
if command -v script >/dev/null; then
  script -qec "'$BACKUPFS' index --catalog '$C' '$R' hist" /dev/null > "$W/index.log" 2>&1 ||
    { cat -v "$W/index.log"; fail "index"; }
  grep -aq "\[1/3\] hist/$H1: starting the appliance (" "$W/index.log" &&
    grep -aq "\[3/3\] hist/$H3: " "$W/index.log" ||
    fail "index on a terminal: no [N/M] feedback: $(tr '\r' '\n' < "$W/index.log" | head -20)"
  echo "index feedback: $(tr '\r' '\n' < "$W/index.log" | grep -a '^\[2/3\]' | tail -1)"
else
  "$BACKUPFS" index --catalog "$C" "$R" hist > "$W/index.log" 2>&1 ||
    { cat "$W/index.log"; fail "index"; }
fi
grep -ac "entries indexed" "$W/index.log" | grep -qx 3 || fail "index: $(cat "$W/index.log")"

HI() { "$BACKUPFS" history --catalog "$C" "$R" hist "$@"; }
got=$(HI /vda/etc/app.conf | cut -f1,2,4) || fail "history: exit $?"
want="$H1	first seen	10
$H2	changed (size, mtime)	18
$H3	deleted"
[ "$got" = "$want" ] || fail "history app.conf:
$got
--- want
$want"
echo "ok: history /vda/etc/app.conf: first seen, changed, deleted"
[ "$(HI /vda/etc/keep.txt | cut -f1,2)" = "$H1 .. $H3	first seen" ] ||
  fail "history keep.txt: $(HI /vda/etc/keep.txt)"
HI -r /vda/etc > "$W/rec" || fail "history -r"
[ "$(grep -v '^#' "$W/rec" | cut -f1 | sort -u | tr '\n' ,)" = "/vda/etc,/vda/etc/app.conf,/vda/etc/new.txt," ] ||
  fail "history -r /vda/etc: $(cat "$W/rec")"
echo "ok: history collapses unchanged versions, -r lists what changed (the directory's mtime too)"

D() { "$BACKUPFS" diff --catalog "$C" "$R" "$@"; }
got=$(D hist@$H1 hist@$H2 /vda/etc | cut -f1,2); [ "${PIPESTATUS[0]}" = 1 ] || true
[ "$got" = "changed	/vda/etc/
changed	/vda/etc/app.conf
added	/vda/etc/new.txt
total	1 added, 0 removed, 2 changed" ] || fail "diff t1 t2 /vda/etc: $got"
got=$(D hist@$H2 hist@latest /vda/etc/app.conf | cut -f1,2)
[ "$got" = "removed	/vda/etc/app.conf
total	0 added, 1 removed, 0 changed" ] || fail "diff t2 latest: $got"
echo "ok: diff lists the change, the addition and the deletion"

F() { "$BACKUPFS" find --catalog "$C" "$R" hist "$@"; }
[ "$(F keep.txt)" = "hist@$H1	/vda/etc/keep.txt	5	1970-01-01T00:08:20Z	.. $H3 (3)" ] ||
  fail "find keep.txt: $(F keep.txt)"
[ "$(F --all-versions keep.txt | wc -l)" = 3 ] || fail "find --all-versions"
[ "$(F app.conf | cut -f1,3)" = "hist@$H1	10
hist@$H2	18" ] || fail "find app.conf: $(F app.conf)"
echo "ok: find collapses identical versions, not changed ones"

for p in "$H1 $H2" "$H2 $H3" "$H1 $H3"; do
  set -- $p
  want=$(python3 "$SRCDIR/tests/history/blockcmp.py" vda "$W/raw/$(
           [ $1 = $H1 ] && echo t1 || echo t2).img" "$W/raw/$(
           [ $2 = $H2 ] && echo t2 || echo t3).img")
  D --blocks hist@$1 hist@$2 > "$W/blocks"; rc=$?
  [ $rc = 1 ] || fail "diff --blocks $1 $2: exit $rc"
  [ "$(grep -v '^total' "$W/blocks")" = "$(grep -v '^bytes' <<<"$want")" ] ||
    fail "diff --blocks $1 $2:
$(cat "$W/blocks")
--- raw images
$want"
  grep -q "^total	${want##*bytes }	" "$W/blocks" || fail "diff --blocks total $1 $2"
  echo "ok: diff --blocks $1 $2 = the raw images by 64 KiB blocks ($(grep -vc "^bytes" <<<"$want") extents, ${want##*bytes } bytes)"
done
