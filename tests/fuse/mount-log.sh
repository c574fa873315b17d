#!/bin/bash
# mount-log.sh — where a mount's log goes and what it holds: -o log=FILE
# gets the mount and unmount at info level, debug lines only with -vv (or
# -o loglevel=debug), nothing below error with -o loglevel=error; a bad
# level is refused; -f also logs to stderr; without log= and without
# journal or syslog the log is backupfs.log next to the catalog; a repeated
# identical error is written once, then "(repeated N times)".
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

R=$T/repo
M=$T/mnt
t1=2026-08-01T000000Z
mkdir -p "$R/vm1/$t1"
# a data cluster past the end of the file: reads there fail with EIO
qemu-img create -q -f qcow2 "$R/vm1/$t1/vda.qcow2" 1G
qio -c "write -P 0x63 0 1M" -c "write -P 0x64 700M 1M" "$R/vm1/$t1/vda.qcow2"
size=$(stat -c %s "$R/vm1/$t1/vda.qcow2")
truncate -s $((size - 65536)) "$R/vm1/$t1/vda.qcow2"

# default level (info): the mount and the unmount, no debug
bfs_mount "$R" "$M" -o "log=$T/info.log"
bfs_umount "$M"
wait_for grep -q "info: unmounted $M" "$T/info.log" || fail "no unmount line: $(cat "$T/info.log")"
grep -q "info: mounted $R at $M: 1 VMs, 1 backups" "$T/info.log" ||
  fail "no info line for the mount: $(cat "$T/info.log")"
grep -q "debug:" "$T/info.log" && fail "debug line without -vv: $(grep debug: "$T/info.log")"
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[-+][0-9]{4} backupfs\[[0-9]+\]: info: mounted' \
  "$T/info.log" || fail "log line format: $(head -1 "$T/info.log")"
ok "log=FILE at info: $(grep mounted "$T/info.log" | head -c 160)"

# -vv and -o loglevel=debug: debug lines
bfs_mount "$R" "$M" -vv -o "log=$T/debug.log"
bfs_umount "$M"
wait_for grep -q "unmounted" "$T/debug.log" || fail "-vv: no unmount line"
grep -q "debug: FUSE options" "$T/debug.log" || fail "-vv: no debug line: $(cat "$T/debug.log")"
bfs_mount "$R" "$M" -o "loglevel=debug,log=$T/debug2.log"
bfs_umount "$M"
wait_for grep -q "debug: FUSE options" "$T/debug2.log" || fail "loglevel=debug: no debug line"
ok "-vv and -o loglevel=debug log debug lines"

# -o loglevel=error: no info line; a bad level is refused
bfs_mount "$R" "$M" -o "loglevel=error,log=$T/error.log"
bfs_umount "$M"
sleep 0.5
grep -q "info:" "$T/error.log" && fail "loglevel=error wrote info: $(cat "$T/error.log")"
"$BACKUPFS" mount -o "loglevel=loud,catalog=$T/c.db" "$R" "$M" 2>"$T/err" &&
  fail "loglevel=loud accepted"
grep -q "want error, warn, info or debug" "$T/err" || fail "loglevel=loud: $(cat "$T/err")"
"$BACKUPFS" mount -o "log=$T/no/such/dir/x.log,catalog=$T/c.db" "$R" "$M" 2>"$T/err" &&
  fail "unwritable log file accepted"
grep -q "no/such/dir/x.log: No such file" "$T/err" || fail "bad log=: $(cat "$T/err")"
! mountpoint -q "$M" || fail "mounted despite a bad log file"
ok "loglevel=error quiet; bad level and log file refused"

# -f: stderr too
"$BACKUPFS" mount -f -o "catalog=$T/c-fg.db,log=$T/fg.log" "$R" "$M" 2>"$T/fg.err" &
fg=$!
MOUNTS="$MOUNTS $M"
wait_for mountpoint -q "$M" || fail "-f did not mount"
wait_for grep -q "info: mounted" "$T/fg.err" || fail "-f: nothing on stderr: $(cat "$T/fg.err")"
fusermount3 -u "$M"
wait $fg || fail "-f exited with $?"
grep -q "info: mounted" "$T/fg.log" || fail "-f: not in log= file"
ok "-f logs to stderr and the file"

# neither journal nor syslog: backupfs.log next to the catalog
if [ ! -e /dev/log ] && [ ! -d /run/systemd/system ] && [ -z "${INVOCATION_ID:-}" ]; then
  mkdir -p "$T/state"
  "$BACKUPFS" mount -o "catalog=$T/state/c.db" "$R" "$M" || fail "mount"
  wait_for mountpoint -q "$M" || fail "not mounted"
  bfs_umount "$M"
  wait_for grep -q "unmounted" "$T/state/backupfs.log" ||
    fail "no backupfs.log next to the catalog: $(ls "$T/state")"
  grep -q "log: $T/state/backupfs.log" "$T/state/backupfs.log" || fail "log line does not say where"
  ok "state directory fallback: $T/state/backupfs.log"
else
  echo "note: journal or syslog present; state-directory fallback not checked"
fi

# a repeated error: one line, then the count (written at unmount)
bfs_mount "$R" "$M" -o "log=$T/repeat.log"
python3 - "$M/vm1/$t1/disks/vda.img" $((701 * 1048576 - 4096)) <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 4096)
fails = 0
for _ in range(30):
    try:
        os.preadv(fd, [buf], int(sys.argv[2]))
    except OSError as e:
        fails += 1
assert fails == 30, f"only {fails} of 30 reads failed"
PY
bfs_umount "$M"
wait_for grep -q "unmounted" "$T/repeat.log" || fail "no unmount line"
n=$(grep -c "warning: .*vda" "$T/repeat.log" || true)
grep -Eq "warning: .*vda.*\(repeated [0-9]+ times\)" "$T/repeat.log" ||
  fail "no '(repeated N times)' line: $(cat "$T/repeat.log")"
[ "$n" -le 4 ] || fail "$n warning lines for 30 identical errors: $(cat "$T/repeat.log")"
total=$(grep -Eo "\(repeated [0-9]+ times\)" "$T/repeat.log" | grep -Eo "[0-9]+" | awk "{s+=\$1} END {print s}")
ok "30 identical read errors: $n lines, $(grep -Eo "repeated [0-9]+ times" "$T/repeat.log" | head -1) (total suppressed $total)"
