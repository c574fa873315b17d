#!/bin/bash
# test-guest-stuck.sh — appliances that stop answering after they started.
#
# Two points in time of one VM (a bare ext4 disk made on the host), mounted
# with short limits.  A real appliance starts, then its qemu is frozen
# (SIGSTOP), as a guest kernel that hangs on a bad filesystem would be:
#   1. files/ names the filesystem after the guest's disk (vda, not sda);
#      a listing that needs the frozen appliance returns within
#      guest_call_timeout (EIO), the qemu is killed and files/.backupfs-error
#      says it stopped answering and when it retries.
#   2. idle close of a frozen appliance (guest_idle) kills its qemu instead
#      of waiting on guestfs_shutdown forever.
# Two appliances; skips when libguestfs cannot launch one here.
set -uo pipefail
. "$SRCDIR/tests/guestfs/fixtures.sh"
. "$SRCDIR/tests/fuse/lib.sh"
set +e
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 is missing"
"$BACKUPFS" mount --help | grep guest_call_timeout >/dev/null ||
  fail "mount has no guest_call_timeout option"

mkdir -p "$T/root/dir/sub" "$T/repo/vm/$T1" "$T/repo/vm/$T2"
echo hello > "$T/root/dir/sub/hello.txt"
truncate -s 32M "$T/vda.raw"
mkfs.ext4 -q -F -d "$T/root" "$T/vda.raw" || skip "mkfs.ext4 -d failed"
qemu-img convert -O qcow2 "$T/vda.raw" "$T/repo/vm/$T1/vda.qcow2"
qemu-img convert -O qcow2 "$T/vda.raw" "$T/repo/vm/$T2/vda.qcow2"

now() { echo "${EPOCHREALTIME/./}" | cut -c1-13; }      # milliseconds
qemu_of() { pgrep -P "$1" -f qemu-system | tr '\n' ' '; }
alive() { for p in $1; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
gone() { ! alive "$1"; }
# list_root FILES: ls -A, again while the appliance starts (.backupfs-status)
list_root() {
  for _ in $(seq 60); do
    ls -A "$1" > "$T/ls" 2>&1
    [ "$(cat "$T/ls")" = .backupfs-status ] || return 0
  done
}
wait_until() {
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}

M=$T/m
bfs_mount "$T/repo" "$M" -o guest_idle=6,guest_call_timeout=4
MPID=$(pgrep -f -- "backupfs mount .* $M\$" | head -1)
[ -n "$MPID" ] || fail "no daemon for $M"
F1=$M/vm/$T1/files F2=$M/vm/$T2/files
[ -d "$F1" ] || skip "the mount shows no files/ (built without libguestfs)"

# ---- 1. a call to a frozen appliance -----------------------------------
list_root "$F1"
if [ "$(cat "$T/ls")" = .backupfs-error ]; then
  cat "$F1/.backupfs-error"
  skip "libguestfs cannot launch an appliance here"
fi
[ "$(cat "$T/ls")" = vda ] || fail "files/ of a bare ext4 disk vda: $(cat "$T/ls")"
ls "$F1/vda" | grep -qx dir || fail "files/vda: $(ls "$F1/vda")"
Q=$(qemu_of "$MPID")
[ -n "$Q" ] || fail "no qemu for the running appliance"
kill -STOP $Q
t0=$(now)
ls "$F1/vda/dir" > "$T/ls" 2>&1 && fail "listing through a frozen appliance succeeded"
t1=$(now)
echo "listing through the frozen appliance failed after $(( t1 - t0 )) ms: $(cat "$T/ls")"
grep -q "Input/output error" "$T/ls" || fail "not EIO: $(cat "$T/ls")"
[ $(( t1 - t0 )) -lt 10000 ] || fail "took $(( t1 - t0 )) ms with guest_call_timeout=4"
wait_until 5 gone "$Q" || fail "the frozen qemu $Q was not killed"
cat "$F1/.backupfs-error" > "$T/err" || fail "no .backupfs-error after the kill"
cat "$T/err"
grep -q "stopped answering" "$T/err" && grep -q "next try" "$T/err" ||
  fail "error text: $(cat "$T/err")"
ls -A "$F1" | grep -qx .backupfs-error || fail "files/ does not list .backupfs-error"
ok "call timeout"

# ---- 2. idle close of a frozen appliance -------------------------------
list_root "$F2"
[ "$(cat "$T/ls")" = vda ] || fail "files/ of $T2: $(cat "$T/ls")"
Q=$(qemu_of "$MPID")
[ -n "$Q" ] || fail "no qemu for the second appliance"
kill -STOP $Q
t0=$(now)
wait_until 15 gone "$Q" || fail "frozen idle appliance $Q alive 15 s later (guest_idle=6)"
t1=$(now)
echo "the idle frozen appliance was killed after $(( t1 - t0 )) ms"
# the cache still answers, and the daemon is well
[ "$(ls "$F2")" = vda ] || fail "files/ after the idle close"
bfs_umount "$M"
ok "idle close"
echo PASS
