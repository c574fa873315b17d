#!/bin/bash
# umount.sh — `backupfs umount` refuses (exit 1, names the holder) while a
# disk is held and a plain fusermount3 -u stays busy; with no holder it
# unmounts and waits for the daemon; `--force` drops a held mount: the
# daemon exits, the mount is gone, the holder's reads fail (never zeros).
. "$SRCDIR/tests/recovery/lib.sh"

R=$T/repo
M=$T/mnt
mk_generic "$R"

bfs_mount "$R" "$M"                       # daemonised, as in production
P=$(daemon_pid "$M")
exec 3< "$M/db01/latest/disks/disk0.img"
if "$BACKUPFS" umount "$M" 2> "$T/err"; then fail "umount succeeded while held"; fi
grep -q "db01/.*/disks/disk0.img: held by $$ (" "$T/err" || fail "umount does not name the holder: $(cat "$T/err")"
mountpoint -q "$M" || fail "refused umount dropped the mount"
if fusermount3 -u "$M" 2>/dev/null; then fail "fusermount3 -u succeeded while held"; fi
mountpoint -q "$M" || fail "fusermount3 -u dropped the mount"
kill -0 "$P" || fail "daemon gone"
ok "umount refuses while held and names holder $$; fusermount3 -u stays busy"

exec 3<&-
sleep 0.3                                 # release reaches the daemon
"$BACKUPFS" umount "$M" || fail "umount with no holder failed"
mountpoint -q "$M" && fail "still mounted after umount"
gone "$P" 0 || fail "daemon $P still there after umount returned"
ok "umount with no holder unmounts and waits for the daemon"

bfs_mount "$R" "$M"
P=$(daemon_pid "$M")
exec 3< "$M/db01/latest/disks/disk0.img"
"$BACKUPFS" umount --force "$M" 2> "$T/err" || fail "umount --force failed: $(cat "$T/err")"
grep -q "running VMs on them will fail" "$T/err" || fail "no warning: $(cat "$T/err")"
grep -q "held by $$ (" "$T/err" || fail "--force does not name the holder"
gone "$P" 5 || fail "daemon still running after --force"
mountpoint -q "$M" && fail "still mounted after --force"
if head -c 4096 <&3 > "$T/got" 2>/dev/null && [ -s "$T/got" ]; then
  fail "reads through the held fd still succeed after --force"
fi
exec 3<&-
ok "umount --force ends a held mount; the holder's reads fail"

if "$BACKUPFS" status "$T" 2> "$T/err"; then fail "status of a non-mount succeeded"; fi
grep -q "not a backupfs mount" "$T/err" || fail "status of a non-mount: $(cat "$T/err")"
ok "status of a non-mount says so"
