#!/bin/bash
# The catalog file itself (issue 10 item 6): another repository's catalog
# is refused naming both, not wiped; a catalog that cannot be opened says
# why; a corrupt one is moved aside and rebuilt, also under a mount.
. "$(dirname "$0")/lib.sh"
A=$T/repoA B=$T/repoB
qcow2 "$A/vm1/2026-10-01T03:00:00Z/vda.qcow2" 1M
qcow2 "$B/vm2/2026-10-01T03:00:00Z/vda.qcow2" 1M
"$BACKUPFS" scan --catalog "$T/c.db" "$A" >/dev/null
out=$("$BACKUPFS" scan --catalog "$T/c.db" "$B" 2>&1) && rc=0 || rc=$?
check "another repository's catalog refused" "1" "$rc"
check_match "the message names both repositories" "c.db belongs to the repository $A, not to $B" "$out"
check "and keeps what it held" "vm1" \
  "$("$BACKUPFS" list --json --no-scan --catalog "$T/c.db" "$A" | jq -r '[.vms[].name] | join(" ")')"

out=$("$BACKUPFS" scan --catalog "$T/missing/dir/c.db" "$A" 2>&1) && rc=0 || rc=$?
check_match "missing directory: says so" "missing/dir.*No such file or directory" "$out"
mkdir "$T/ro"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 755 "$T" "$T/ro"; chmod -R a+rX "$A"
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
        env HOME=/nonexistent "$BACKUPFS" scan --catalog "$T/ro/c.db" "$A" 2>&1) && rc=0 || rc=$?
else
  chmod 555 "$T/ro"
  out=$("$BACKUPFS" scan --catalog "$T/ro/c.db" "$A" 2>&1) && rc=0 || rc=$?
fi
check_match "read-only directory: permission denied" "ro/c.db: cannot open: directory .*ro: Permission denied" "$out"

head -c 65536 /dev/urandom > "$T/bad.db"
out=$("$BACKUPFS" scan --catalog "$T/bad.db" "$A" 2>&1) && rc=0 || rc=$?
check "corrupt catalog: scan succeeds" "0" "$rc"
check_match "corrupt catalog: moved aside, with a warning" "bad.db is not a valid database.*moved aside to .*bad.db.corrupt-" "$out"
check "the corrupt file is kept" "1" "$(ls "$T" | grep -c '^bad.db.corrupt-')"
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
  head -c 65536 /dev/urandom > "$T/bad2.db"
  mkdir "$T/mnt"
  "$BACKUPFS" mount -o "catalog=$T/bad2.db" "$A" "$T/mnt" 2>"$T/mount.err" && rc=0 || rc=$?
  check "corrupt catalog: the mount comes up" "0" "$rc"
  for _ in $(seq 50); do mountpoint -q "$T/mnt" && break; sleep 0.1; done
  check "and shows the repository" "vm1" "$(ls "$T/mnt" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
  fusermount3 -u "$T/mnt" 2>/dev/null || true
fi
finish
