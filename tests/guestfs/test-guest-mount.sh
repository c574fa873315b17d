#!/bin/bash
# test-guest-mount.sh — guest files end to end through a real mount, on the
# incremental point in time (qcow2 overlay over its base, read through the
# mount's own disks/*.img): changed, added and deleted files, attributes,
# symlinks, special files, a 50 MiB copy; then `backupfs index` and a
# remount on which appliances cannot start: files/ lists from the index,
# an unindexed point in time shows `.backupfs-error`.  The repository's
# sha256 is unchanged at the end.  Two appliances.
set -uo pipefail
. "$SRCDIR/tests/guestfs/fixtures.sh"
ensure_fixtures
command -v fusermount3 >/dev/null || { echo "SKIP: no fusermount3"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }

W=$(mktemp -d "$BUILDDIR/tests/guestfs/mount.XXXXXX")
M=$W/mnt
mkdir -p "$M" "$W/cache"
export XDG_CACHE_HOME=$W/cache
REPO=$FIX/repo
CAT=$W/catalog.db
MPID=

stop_mount() {
  [ -n "$MPID" ] || return 0
  kill "$MPID" 2>/dev/null   # closes the appliances, then unmounts
  for i in $(seq 600); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
  fusermount3 -uz "$M" 2>/dev/null
  MPID=
}
trap 'stop_mount; rm -rf "$W"' EXIT

start_mount() {
  "$@" "$BACKUPFS" mount -f -o "catalog=$CAT" "$REPO" "$M" >> "$W/mount.log" 2>&1 &
  MPID=$!
  for i in $(seq 600); do
    grep -q " $M fuse" /proc/mounts && return 0
    kill -0 "$MPID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$W/mount.log"; fail "mount did not come up"
}

before=$(cd "$REPO" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
start_mount env
F2=$M/linux/$T2/files
if [ ! -d "$F2" ]; then
  ls -la "$M/linux/$T2"
  echo "SKIP: the mount shows no files/ directory (guest files not wired in)"
  exit 77
fi

ls -la "$F2/etc" || fail "listing files/etc"
[ -e "$F2/etc/delete-me.txt" ] && fail "deleted file present in the later point in time"
[ "$(cat "$F2/etc/config.txt")" = "version 2" ] || fail "changed file"
[ "$(cat "$F2/etc/new-in-t2.txt")" = "added in t2" ] || fail "added file"
[ "$(stat -c '%a %u %g %s' "$F2/etc/config.txt")" = "640 123 456 10" ] || fail "config.txt attributes"
[ -L "$F2/etc/abs-link" ] && [ "$(readlink "$F2/etc/abs-link")" = /etc/motd ] || fail "absolute symlink"
[ "$(readlink "$F2/etc/dangling-link")" = ../../nonexistent/target ] || fail "relative symlink"
[ "$(stat -c '%a %u %g' "$F2/home/alice")" = "700 1000 1000" ] || fail "/home/alice (LVM xfs)"
[ "$(sha "$F2/home/alice/notes.txt")" = "$(sha "$FIX/notes.txt")" ] || fail "notes.txt"
[ "$(stat -c %F "$F2/etc/fifo")" = fifo ] || fail "fifo type"
[ "$(stat -c %F "$F2/etc/null-dev")" = "character special file" ] || fail "device type"
timeout 60 cat "$F2/etc/null-dev" > /dev/null 2>&1 && fail "device node opened"
cp "$F2/var/big50.bin" "$W/big50" || fail "copy 50 MiB"
[ "$(sha "$W/big50")" = "$(sha "$FIX/big50.bin")" ] || fail "50 MiB file differs"
# many readers of guest files at once must not take every FUSE worker (the
# appliance reads its disks through this same mount): 24 parallel readers
head -c 4M "$FIX/big50.bin" > "$W/head4"
pids=""
for i in $(seq 24); do
  ( head -c 4M "$F2/var/big50.bin" > "$W/par$i" ) & pids="$pids $!"
done
for p in $pids; do
  timeout 300 tail --pid="$p" -f /dev/null || fail "parallel reader $p hung"
done
for i in $(seq 24); do cmp -s "$W/head4" "$W/par$i" || fail "parallel reader $i read wrong data"; done
i1=$(stat -c %i "$F2/etc/motd"); i2=$(stat -c %i "$F2/etc/motd-hard")
[ "$i1" = "$i2" ] || fail "hard links show different inode numbers ($i1, $i2)"
[ "$(stat -c %h "$F2/etc/motd")" = 2 ] || fail "hard link count"
[ "$(stat -c %a "$F2/bin/su-like")" = 4755 ] || fail "guest setuid bit not shown: $(stat -c %a "$F2/bin/su-like")"

# index through this mount (its own appliance), then find
"$BACKUPFS" index --help | grep usage >/dev/null || fail "index --help"
"$BACKUPFS" index --catalog "$CAT" --mountpoint "$M" "$REPO" "linux@$T2" > "$W/index.out" 2>&1 ||
  fail "index: $(cat "$W/index.out")"
grep -q "starting the appliance\|\[1/1\]" "$W/index.out" &&
  fail "index drew terminal feedback into a file: $(cat -v "$W/index.out")"
"$BACKUPFS" find --catalog "$CAT" "$REPO" '*.txt' > "$W/find" || fail "find"
cat "$W/find"
grep -q "^linux@$T2	/etc/new-in-t2.txt	12	" "$W/find" || fail "find new file"
grep -q "/etc/delete-me.txt" "$W/find" && fail "find lists a deleted file"
stop_mount

# remount where no appliance can start: listings come from the index only
start_mount env LIBGUESTFS_BACKEND=direct LIBGUESTFS_HV=/bin/false
ls -la "$F2/etc" > "$W/ls" 2>&1
if [ "$(ls -A "$F2")" = .backupfs-error ] &&
   ! grep -q guest_pool_set_index "$SRCDIR/fs/mount-files.c"; then
  echo "SKIP: the mount does not load file indexes yet (files_init needs"
  echo "      guest_pool_set_index(pool, guest_index_db_path(catalog_path(cat))))"
  exit 77
fi
grep -q ' config.txt$' "$W/ls" || fail "indexed listing: $(cat "$W/ls")"
grep -q ' new-in-t2.txt$' "$W/ls" || fail "indexed listing content"
[ "$(stat -c '%a %u %g %s' "$F2/etc/config.txt")" = "640 123 456 10" ] || fail "indexed attributes"
[ "$(readlink "$F2/etc/abs-link")" = /etc/motd ] || fail "indexed symlink"
F1=$M/linux/$T1/files
[ "$(ls -A "$F1")" = .backupfs-error ] || fail "unindexed point in time without appliance: $(ls -A "$F1")"
grep -qi "appliance" "$F1/.backupfs-error" || fail "error file text: $(cat "$F1/.backupfs-error")"
cat "$F1/.backupfs-error"
stop_mount

# the daemon exited cleanly although its appliances held disks at SIGTERM
# (under ASan: no LeakSanitizer report of the handles the kernel never
# released)
if grep -q "LeakSanitizer" "$W/mount.log"; then
  grep -A30 LeakSanitizer "$W/mount.log" | head -60
  fail "the mount leaked at exit (LeakSanitizer)"
fi
after=$(cd "$REPO" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
[ "$before" = "$after" ] || fail "repository files changed"
echo PASS
