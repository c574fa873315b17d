#!/bin/bash
# hold-sigterm.sh — a process holds disks/<disk>.img open: SIGTERM (twice)
# does not drop the mount, reads through the held descriptor return the
# point in time's bytes, status names the holder, the daemon logs who holds
# what and exits within seconds once the descriptor is closed.  With no
# holder, SIGTERM exits promptly.  A lazy unmount (fusermount3 -uz) detaches
# the mount but the daemon keeps serving the open descriptor until it is
# closed, then exits.
. "$SRCDIR/tests/recovery/lib.sh"

R=$T/repo
M=$T/mnt
mk_generic "$R"
latest=$(ls "$R/web01" | sort | tail -1)
oracle "$T/root.raw" "$R/web01/$latest/root.qcow2"

# ---- held: SIGTERM keeps the mount ----
rc_mount_fg "$R" "$M"
exec 3< "$M/web01/latest/disks/root.img"
kill -TERM "$DPID"
sleep 1
kill -0 "$DPID" 2>/dev/null || fail "daemon exited on SIGTERM while a disk is held"
mountpoint -q "$M" || fail "mount dropped on SIGTERM while a disk is held"
cmp <(cat <&3) "$T/root.raw" || fail "reads through the held fd differ from qemu-img convert"
ok "SIGTERM while held: mount stays, held fd reads the point in time"

"$BACKUPFS" status "$M" > "$T/status.txt" || fail "status failed"
grep -q "web01/$latest/disks/root.img: held by $$ (" "$T/status.txt" ||
  fail "status does not name holder $$: $(cat "$T/status.txt")"
grep -q "stopping: SIGTERM" "$T/status.txt" || fail "status does not say stopping"
"$BACKUPFS" status --json "$M" > "$T/status.json" || fail "status --json"
[ "$(jget "$T/status.json" "j['pid']")" = "$DPID" ] || fail "status pid != $DPID"
[ "$(jget "$T/status.json" "j['held_by_others']")" = 1 ] || fail "held_by_others"
[ "$(jget "$T/status.json" "[h['pid'] for d in j['disks'] for h in d['holders']]")" = "[$$]" ] ||
  fail "holders: $(cat "$T/status.json")"
ls -a "$M" | grep -q backupfs-status && fail "the status file is listed"
ok "status names holder $$ and the daemon $DPID"

grep -q "SIGTERM: not unmounting .*web01/$latest/disks/root.img by $$ " "$DLOG" ||
  fail "no log line naming the holder: $(cat "$DLOG")"
kill -TERM "$DPID"
sleep 0.5
kill -0 "$DPID" 2>/dev/null || fail "second SIGTERM forced an exit"
[ "$(grep -c 'SIGTERM: not unmounting' "$DLOG")" = 2 ] || fail "second SIGTERM not logged again"
ok "second SIGTERM logs again and does not force"

exec 3<&-
gone "$DPID" 5 || fail "daemon still running 5 s after the last holder closed"
wait_for sh -c "! mountpoint -q '$M'" || fail "mount still there after the daemon exited"
grep -q "last disk held by another process was closed" "$DLOG" || fail "no exit log"
wait "$DPID" || fail "daemon exit status $?: $(cat "$DLOG")"
ok "closing the held fd ends the daemon and the mount"

# ---- no holder: SIGTERM exits promptly ----
rc_mount_fg "$R" "$M"
cat "$M/web01/latest/disks/root.img" > /dev/null     # opened and closed
start=$(date +%s%N)
kill -TERM "$DPID"
gone "$DPID" 3 || fail "daemon still running 3 s after SIGTERM with no holder"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait "$DPID" || fail "daemon exit status $?: $(cat "$DLOG")"
wait_for sh -c "! mountpoint -q '$M'" || fail "mount still there"
ok "no holder: SIGTERM exits in $ms ms"

# ---- lazy unmount: detached, the open fd still served ----
rc_mount_fg "$R" "$M"
exec 3< "$M/web01/latest/disks/root.img"
fusermount3 -uz "$M" || fail "fusermount3 -uz"
mountpoint -q "$M" && fail "still mounted after -uz"
kill -0 "$DPID" || fail "daemon exited on -uz while a disk is held"
cmp <(cat <&3) "$T/root.raw" || fail "held fd after -uz differs from qemu-img convert"
exec 3<&-
gone "$DPID" 5 || fail "daemon still running 5 s after the lazily unmounted fd closed"
ok "fusermount3 -uz: detached, held fd served until closed, then the daemon exits"
