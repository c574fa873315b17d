#!/bin/bash
# test-guest-broken.sh — files/ of a backup the catalog knows is broken (its
# base image is missing) shows the catalog's reason in .backupfs-error at
# once, without starting an appliance (no libguestfs boilerplate after a
# 30 s boot); backupfs status lists it as failed with that reason; a rescan
# after the base comes back lifts it.  No appliance boots in this test.
set -uo pipefail
. "$SRCDIR/tests/guestfs/fixtures.sh"
. "$SRCDIR/tests/fuse/lib.sh"
set +e

mkdir -p "$T/repo/vm/$T1" "$T/repo/vm/$T2"
qemu-img create -q -f qcow2 "$T/repo/vm/$T1/vda.qcow2" 16M
qemu-img create -q -f qcow2 -F qcow2 -b "../$T1/vda.qcow2" "$T/repo/vm/$T2/vda.qcow2"
mv "$T/repo/vm/$T1/vda.qcow2" "$T/base.qcow2"

export LIBGUESTFS_BACKEND=direct LIBGUESTFS_HV=/bin/false   # never boots
M=$T/m
bfs_mount "$T/repo" "$M" -o guest_timeout=300
F=$M/vm/$T2/files
[ -d "$F" ] || skip "the mount shows no files/ (built without libguestfs)"
MPID=$(pgrep -f -- "backupfs mount .* $M\$" | head -1)
t0=${EPOCHREALTIME/./}
ls -A "$F" > "$T/ls" 2>&1
t1=${EPOCHREALTIME/./}
echo "ls files/ took $(( (t1 - t0) / 1000 )) ms: $(cat "$T/ls")"
[ "$(cat "$T/ls")" = .backupfs-error ] || fail "files/ of a broken backup: $(cat "$T/ls")"
[ $(( (t1 - t0) / 1000 )) -lt 3000 ] || fail "ls files/ took $(( (t1 - t0) / 1000 )) ms: an appliance was started?"
cat "$F/.backupfs-error" > "$T/err" || fail ".backupfs-error not readable"
cat "$T/err"
grep -q "the catalog found this backup broken: vda: " "$T/err" || fail "no catalog reason: $(cat "$T/err")"
status=$(jq -r '.disks[0].status' "$M/vm/$T2/backup.json")
grep -qF "$status" "$T/err" || fail "reason is not the catalog's ('$status')"
grep -qi "libguestfs\|guestfs_" "$T/err" && fail "libguestfs boilerplate: $(cat "$T/err")"
[ -z "$(pgrep -P "$MPID" -f qemu-system)" ] || fail "an appliance was started"
ls "$F/etc" >/dev/null 2>&1 && fail "a path below a broken files/ answered"
"$BACKUPFS" status --json "$M" | jq -e --arg k "vm/$T2" \
  '.appliances | any(.key == $k and .state == "failed" and .broken_in_catalog and .retry_at == null and (.error | test("catalog")))' \
  >/dev/null || fail "status: $("$BACKUPFS" status --json "$M" | jq -c .appliances)"
ok "broken backup: files/ shows the catalog's reason, no appliance"

# the base comes back: the rescan (inotify) mends it; files/ then launches
# (here a hypervisor that fails at once: the error is no longer the catalog's)
mv "$T/base.qcow2" "$T/repo/vm/$T1/vda.qcow2"
for _ in $(seq 50); do
  [ "$(jq -r .status "$M/vm/$T2/backup.json" 2>/dev/null)" = ok ] && break
  sleep 0.2
done
[ "$(jq -r .status "$M/vm/$T2/backup.json")" = ok ] || fail "no rescan after the base came back"
ls -A "$F" > "$T/ls2" 2>&1
cat "$F/.backupfs-error" > "$T/err2" 2>&1
echo "after the rescan: $(cat "$T/ls2"): $(head -1 "$T/err2")"
grep -q "catalog found this backup broken" "$T/err2" && fail "still refused after the rescan: $(cat "$T/err2")"
bfs_umount "$M"
ok "rescan lifts it"
echo PASS
