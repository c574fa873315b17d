#!/bin/bash
# restore-messages.sh — what restore disk prints: DEST given with trailing
# slashes names DEST/<disk>.raw with one slash; an unknown disk name lists
# the backup's disks; the progress never shows a rate measured over less
# than a second (it was "120.9 TiB/s" after a cached first read).
. "$SRCDIR/tests/restore/lib.sh"
need_catalog
R=$T/repo
make_repo "$R"
mount_repo "$R" "$T/mnt"
B=$T/mnt/web01/latest

mkdir -p "$T/rest"
"$BACKUPFS" restore disk "$B" vdb "$T/rest//" >"$T/out" 2>&1 || fail "restore disk: $(cat "$T/out")"
[ -f "$T/rest/vdb.raw" ] || fail "no $T/rest/vdb.raw"
grep -q "rest//" "$T/out" && fail "doubled slash in output: $(grep rest// "$T/out")"
grep -q "$T/rest/vdb.raw" "$T/out" || fail "output does not name $T/rest/vdb.raw: $(cat "$T/out")"
ok "DEST// -> one slash: $(grep -o "$T/rest/vdb.raw" "$T/out" | head -1)"

"$BACKUPFS" restore disk "$B" vdz "$T/rest/" >"$T/out" 2>&1 && fail "vdz accepted"
grep -q "no disk named 'vdz'.*vda, vdb" "$T/out" || fail "vdz: $(cat "$T/out")"
ok "unknown disk: $(grep vdz "$T/out" | head -c 200)"
"$BACKUPFS" restore disk --repo "$R" --catalog "$T/rc.db" web01@latest vdz "$T/rest/" >"$T/out" 2>&1 &&
  fail "--repo vdz accepted"
grep -q "no disk named 'vdz' (its disks: vda, vdb)" "$T/out" || fail "--repo vdz: $(cat "$T/out")"
ok "unknown disk with --repo: $(grep vdz "$T/out" | head -c 200)"

# progress on a terminal (script gives a pty), a second restore: cached
if command -v script >/dev/null; then
  rm -f "$T/rest/vdb.raw"
  script -qec "'$BACKUPFS' restore disk '$B' vdb '$T/rest/'" /dev/null >"$T/tty" 2>&1 ||
    fail "restore disk on a pty: $(cat "$T/tty")"
  if grep -aEo "[0-9.]+ (TiB|PiB)/s" "$T/tty"; then
    fail "absurd rate on the progress line"
  fi
  ok "progress rates: $(grep -aEo "[0-9.]+ [KMG]?i?B/s|  -" "$T/tty" | sort -u | head -3 | paste -sd' ')"
else
  echo "note: script(1) missing; progress line not checked"
fi
