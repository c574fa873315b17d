#!/bin/bash
# fuse-in-repo.sh — the scan never walks into a FUSE mount below the
# repository (issue 10 item 3).  A backupfs mount of the repository inside
# the repository itself may never answer (its daemon can wait on its own
# mount); `backupfs scan` and `list` must still complete within 10 s, say
# that they skipped it, and list nothing from inside it.  Nothing here
# touches the inner mount's files: only /proc/mounts is read.
. "$SRCDIR/tests/fuse/lib.sh"
R=$T/repo
mkdir -p "$R/vm/2026-10-01T030000Z" "$R/mnt/inner"
qemu-img create -q -f qcow2 "$R/vm/2026-10-01T030000Z/vda.qcow2" 4M
export XDG_CACHE_HOME=$T/cache
M=$R/mnt/inner             # at <vm>/<dir>/ depth, where layouts look
mounted() { grep -q " $M fuse" /proc/mounts; }
inner_pids() { pgrep -f "catalog=$T/inner.db" || true; }
stop_inner() {             # the inner daemon may be stuck on itself
  fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null || true
  for p in $(inner_pids); do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in $(inner_pids); do kill -9 "$p" 2>/dev/null || true; done
}
trap 'stop_inner; cleanup' EXIT INT TERM
# a mount of this repository inside it; where the mount command refuses a
# mount point inside its own repository, a mount of another one instead
if ! "$BACKUPFS" mount -o "catalog=$T/inner.db" "$R" "$M" 2>/dev/null; then
  mkdir -p "$T/other/vm2/2026-10-02T030000Z"
  qemu-img create -q -f qcow2 "$T/other/vm2/2026-10-02T030000Z/vdb.qcow2" 4M
  "$BACKUPFS" mount -o "catalog=$T/inner.db" "$T/other" "$M" ||
    fail "mount of another repository on $M"
fi
for _ in $(seq 50); do mounted && break; sleep 0.1; done
mounted || fail "$M: not mounted"

for cmd in scan list; do
  rc=0
  timeout -k 2 10 "$BACKUPFS" $cmd --json --catalog "$T/outer.db" "$R" \
    >"$T/$cmd.json" 2>"$T/$cmd.err" || rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then fail "$cmd did not complete in 10 s"; fi
  [ $rc = 0 ] || fail "$cmd: exit $rc: $(cat "$T/$cmd.err")"
  grep -q "mnt/inner: a FUSE mount inside the repository: skipped" "$T/$cmd.err" ||
    fail "$cmd does not say it skipped the mount: $(cat "$T/$cmd.err")"
done
[ "$(jget "$T/list.json" "[v['name'] for v in j['vms']]")" = "['vm']" ] ||
  fail "list shows more than the repository: $(cat "$T/list.json")"
ok "scan and list complete with a FUSE mount inside the repository, skip it"
