#!/bin/bash
# vm-quick.sh VIA — a real TCG VM quick-restored with `--via VIA` (mount,
# repo or nbd) and started, then the mount's daemon gets SIGTERM and
# `fusermount3 -u` while the VM runs, then `backupfs restore consolidate`
# pulls live (virsh blockpull) and checks the result: either it completes,
# says the backup may be released, and the disk equals the point in time
# (qemu-img convert -O raw of the consolidated overlay vs of the chain), or
# it fails loudly (exit 1) with the overlay still backed — never success
# with other bytes.
#   mount: the daemon keeps serving the VM through SIGTERM and the unmount,
#          names qemu as the holder, and exits once the pull let go.
#   repo:  qemu reads the repository's files itself: the daemon holds
#          nothing and may go at once; the VM does not notice.
#   nbd:   the overlay is backed by `backupfs serve`'s export (nbdkit, PID
#          in the restore's state): the mount may go; consolidation stops
#          the export once verified.
# One boot per way.  The test starts its own virtlogd and libvirtd (tests/
# lib/vm.sh: sockets and pid files under $T, stopped by PID) and skips (77)
# when they cannot run here, and in the sanitizer build (a TCG boot).
VIA=${1:?usage: vm-quick.sh mount|repo|nbd}
. "$SRCDIR/tests/recovery/lib.sh"
[ "${BFS_SANITIZED:-0}" = 1 ] && skip "a TCG VM boot: run in the normal build only"
. "$SRCDIR/tests/lib/vm.sh"
vm_prereqs
if [ "$VIA" = nbd ]; then
  command -v nbdkit >/dev/null || skip "nbdkit is missing"
  [ -e "$BUILDDIR/serve/nbdkit-backupfs-plugin.so" ] || skip "no nbdkit plugin built"
fi

vm_read_guest
VM=i-2-$$-VM
DOM=bfs-quick-$VIA-$$
R=$T/repo
M=$T/mnt
vm_nas_repo "$R" "$VM"

# the FUSE mount first: / has private propagation, and libvirt gives qemu
# its own mount namespace copied at start
bfs_mount "$R" "$M"
P=$(daemon_pid "$M")
DPIDS="$DPIDS $P"
LATEST=$M/$VM/latest
[ -f "$LATEST/disks/vda.img" ] || fail "no $LATEST/disks/vda.img: $(ls "$LATEST" "$LATEST/disks")"

VM_DOMS=$DOM
trap 'vm_stop; rc_cleanup' EXIT INT TERM
vm_libvirtd_start

# ---- quick restore and boot ----
D=$T/dest
if ! "$BACKUPFS" restore quick --via "$VIA" --name "$DOM" --start "$LATEST" "$D" \
     > "$T/quick.out" 2>&1; then
  grep -qi "cgroup\|namespace\|permission denied\|kvm" "$T/quick.out" &&
    skip "a VM cannot start here: $(tail -3 "$T/quick.out")"
  fail "restore quick --via $VIA --start: $(cat "$T/quick.out")"
fi
grep -q "^via $VIA: as asked" "$T/quick.out" || fail "way not said: $(head -3 "$T/quick.out")"
X=$D/domain.xml
case $VIA in
  repo) grep -q "<backingStore type=\"file\">" "$X" && grep -q 'relabel="no"' "$X" ||
          fail "no file backingStore with relabel=no: $(cat "$X")" ;;
  nbd)  grep -q 'protocol="nbd"' "$X" || fail "no nbd backingStore: $(cat "$X")"
        SP=$(jget "$D/.backupfs/quick.json" "j['serve_pid']")
        DPIDS="$DPIDS $SP"
        kill -0 "$SP" || fail "the export (nbdkit $SP) is not running" ;;
esac
vm_wait_console BFS-GUEST-IDLE 300 || fail "guest did not come up in 300 s: $(tail -5 "$T/console.log")"
vm_guest_md5_ok || fail "the guest's /dev/vda differs from the point in time"
ok "via $VIA: VM $DOM booted; its vda reads the point in time"

"$BACKUPFS" status --json "$M" > "$T/status.json" || fail "status"
holders=$(jget "$T/status.json" "[h['pid'] for d in j['disks'] for h in d['holders'] if not h['daemon_child']]")
if [ "$VIA" = mount ]; then
  QPID=$(jget "$T/status.json" "[h['pid'] for d in j['disks'] for h in d['holders'] if not h['daemon_child']][0]")
  case $(cat "/proc/$QPID/comm") in qemu*) ;; *) fail "holder $QPID is not qemu" ;; esac
  ok "status names qemu ($QPID) as the holder"
else
  [ "$holders" = "[]" ] || fail "via $VIA the mount is held: $holders"
fi

# ---- SIGTERM to the daemon, then fusermount3 -u, while the VM runs ----
kill -TERM "$P"
sleep 2
if [ "$VIA" = mount ]; then
  gone "$P" 0 && fail "daemon exited on SIGTERM under a running VM"
  mountpoint -q "$M" || fail "mount dropped on SIGTERM under a running VM"
  fusermount3 -u "$M" 2>/dev/null || true
  sleep 1
  gone "$P" 0 && fail "daemon exited on fusermount3 -u under a running VM"
  ok "SIGTERM and fusermount3 -u: the daemon keeps serving the running VM"
else
  gone "$P" 10 || fail "daemon kept running on SIGTERM though nothing holds its disks"
  fusermount3 -u "$M" 2>/dev/null || true
  ok "the mount's daemon is gone; the VM does not need it"
fi
[ "$(virsh domstate "$DOM" 2>/dev/null)" = running ] || fail "the VM stopped: $(virsh domstate "$DOM" 2>&1)"

# ---- consolidation ----
if "$BACKUPFS" restore consolidate "$D" > "$T/cons.out" 2>&1; then
  grep -q "vda: verified" "$T/cons.out" && grep -q "the backup may be released" "$T/cons.out" ||
    fail "consolidate succeeded without saying it verified: $(cat "$T/cons.out")"
  grep -q "(live, virsh blockpull)" "$T/cons.out" || fail "not a live pull: $(cat "$T/cons.out")"
  grep -q "no dirty bitmap" "$T/cons.out" && fail "QMP dirty bitmap not set: $(cat "$T/cons.out")"
  [ "$(virsh domstate "$DOM" 2>/dev/null)" = running ] || fail "the VM is not running after the pull"
  virsh destroy "$DOM" > /dev/null 2>&1 || true
  qemu-img info "$D/vda.qcow2" | grep -q "^backing file" &&
    fail "consolidate said done but the overlay still has a backing file"
  qemu-img convert -O raw "$D/vda.qcow2" "$T/consolidated.raw"
  cmp "$T/consolidated.raw" "$T/pit.raw" ||
    fail "CONSOLIDATED WITH OTHER BYTES: the overlay differs from the point in time"
  "$BACKUPFS" restore status "$D" | grep -q "^state: consolidated" || fail "status after consolidation"
  ok "via $VIA: live pull verified; the consolidated overlay equals the point in time"
else
  grep -q "CONSOLIDATION FAILED" "$T/cons.out" || fail "failed quietly: $(cat "$T/cons.out")"
  virsh destroy "$DOM" > /dev/null 2>&1 || true
  qemu-img info -U "$D/vda.qcow2" | grep -q "^backing file" ||
    fail "failed, and the overlay lost its backing: $(cat "$T/cons.out")"
  fail "via $VIA: consolidation failed (loudly, overlay still backed): $(cat "$T/cons.out")"
fi

case $VIA in
  mount) gone "$P" 10 || fail "daemon still running 10 s after the VM let go of its disk"
         ok "the daemon exited once the VM no longer held the disk" ;;
  nbd)   gone "$SP" 10 || fail "the export (nbdkit $SP) still runs after consolidation"
         ok "consolidation stopped the export" ;;
esac
