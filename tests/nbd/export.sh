#!/bin/bash
# export.sh — every disk of the generic fixture served by `backupfs serve`
# has the mount's bytes (qemu-img convert nbd+unix://... into a file vs
# the mount's disks/NAME.img vs qemu-img convert of the chain), the mount's
# extents (nbdinfo --map vs backupfs image map), is listed by name (also
# as VM@latest/DISK), is read-only, and --export restricts what is served.
. "$SRCDIR/tests/nbd/lib.sh"

mk_generic "$T/repo"
bfs_mount "$T/repo" "$T/mnt"
serve_fg s1 --catalog "$T/serve.db" --socket "$T/s1.sock" "$T/repo"
[ "$SURI" = "nbd+unix:///?socket=$T/s1.sock" ] || fail "printed URI: $SURI"

nbdinfo --list --json "$SURI" > "$T/list.json"
names=$(jget "$T/list.json" "' '.join(sorted(e['export-name'] for e in j['exports']))")
want="db01@2026-10-01T040000Z/disk0 db01@latest/disk0 web01@2026-10-01T030000Z/root web01@2026-10-02T030000Z/root web01@2026-10-03T030000Z/data web01@2026-10-03T030000Z/root web01@latest/data web01@latest/root"
[ "$names" = "$want" ] || fail "exports listed: $names"
ok "list_exports: 8 names"

n=0
for e in web01@2026-10-01T030000Z/root web01@2026-10-02T030000Z/root \
         web01@2026-10-03T030000Z/root web01@2026-10-03T030000Z/data \
         db01@2026-10-01T040000Z/disk0 web01@latest/root; do
  vm=${e%%@*} rest=${e#*@} time=${rest%%/*} disk=${e##*/}
  [ "$time" = latest ] && time=2026-10-03T030000Z
  uri="nbd+unix:///$e?socket=$T/s1.sock"
  rm -f "$T/nbd.raw"
  qemu-img convert -O raw "$uri" "$T/nbd.raw" || fail "qemu-img convert $e"
  img=$(ls "$T/repo/$vm/$time/$disk".*)
  oracle "$T/oracle.raw" "$img"
  [ "$(sha "$T/nbd.raw")" = "$(sha "$T/oracle.raw")" ] ||
    fail "$e: bytes differ from qemu-img convert of $img"
  [ "$(sha "$T/nbd.raw")" = "$(sha "$T/mnt/$vm/$time/disks/$disk.img")" ] ||
    fail "$e: bytes differ from the mount's disks/$disk.img"
  nbdinfo --map --json "$uri" > "$T/nbd.map"
  "$BACKUPFS" image map "$img" > "$T/blk.map"
  norm_map "$T/nbd.map" > "$T/a"
  norm_map "$T/blk.map" > "$T/b"
  diff -u "$T/b" "$T/a" >&2 || fail "$e: nbdinfo --map differs from backupfs image map"
  n=$((n + 1))
done
ok "$n exports equal the mount and qemu-img, maps equal block status"
grep -q ' ZERO' "$T/a" || fail "no zero/hole extent in the last map: nothing was checked"

# read-only: a write is refused, the backup is untouched
before=$(sha "$T/repo/web01/2026-10-03T030000Z/root.qcow2")
if qemu-io -f raw -c "write -P 0x99 0 4k" \
     "nbd+unix:///web01@latest/root?socket=$T/s1.sock" >"$T/w.out" 2>&1 &&
   ! grep -qi "error\|denied\|read-only\|failed" "$T/w.out"; then
  fail "a write to a read-only export succeeded: $(cat "$T/w.out")"
fi
[ "$(sha "$T/repo/web01/2026-10-03T030000Z/root.qcow2")" = "$before" ] ||
  fail "the backup changed"
ok "read-only export refuses writes"
serve_stop "$SPID"

# --export: only that name, and it is the default export
serve_fg s2 --catalog "$T/serve.db" --socket "$T/s2.sock" \
  --export db01@latest/disk0 "$T/repo"
[ "$SURI" = "nbd+unix:///db01@latest/disk0?socket=$T/s2.sock" ] ||
  fail "printed URI: $SURI"
nbdinfo --list --json "nbd+unix:///?socket=$T/s2.sock" > "$T/list2.json"
[ "$(jget "$T/list2.json" "[e['export-name'] for e in j['exports']]")" = "['db01@latest/disk0']" ] ||
  fail "--export: listed $(cat "$T/list2.json")"
[ "$(nbdinfo --size "nbd+unix:///?socket=$T/s2.sock")" = 16777216 ] ||
  fail "--export: the default export is not db01's disk"
if nbdinfo --size "nbd+unix:///web01@latest/root?socket=$T/s2.sock" 2>/dev/null; then
  fail "--export: another export was served"
fi
grep -q "not served here" "$SLOG" || fail "no reason logged: $(cat "$SLOG")"
serve_stop "$SPID"
ok "--export restricts and is the default"

# a bad --export is refused before anything listens
if "$BACKUPFS" serve -f --catalog "$T/serve.db" --socket "$T/s3.sock" \
     --export web01@latest/nope "$T/repo" 2>"$T/s3.err" >/dev/null; then
  fail "serve with an unknown --export started"
fi
grep -q "has no disk 'nope'" "$T/s3.err" || fail "unknown --export: $(cat "$T/s3.err")"
ok "unknown --export refused at start"
