#!/bin/bash
# vm-blockpull.sh — a real TCG VM, quick-restored from a backup, keeps
# running while the mount's daemon gets SIGTERM; `virsh blockpull --wait`
# then consolidates its overlay, which must equal the point in time
# (qemu-img convert -O raw of both, cmp); afterwards the daemon, no longer
# needed by the VM, exits on its own.  The test starts its own virtlogd and
# libvirtd (sockets and pid files under $T, stopped by PID) and skips (77)
# when they cannot run here.  Guest: the host's /boot/vmlinuz-* and an
# initrd of busybox-static (tests/lib/vm.sh) that loads
# virtio_blk, reads /dev/vda (md5sum to the serial log) and idles; it never
# writes its disk, so the consolidated overlay is the backup's bytes.
. "$SRCDIR/tests/recovery/lib.sh"

. "$SRCDIR/tests/lib/vm.sh"
vm_prereqs

# ---- the guest: kernel + busybox initrd that reads its disk and idles ----
{ vm_init_head; cat <<'G'
md5sum /dev/vda | while read s f; do echo "BFS-VDA-MD5 $s"; done
echo BFS-GUEST-IDLE
while :; do sleep 3600; done
G
} > "$T/init"
vm_guest "$T/init"

# ---- the repository: CloudStack NAS, one disk, full + incremental ----
VM=i-2-$$-VM
DOM=bfs-recovery-$$
R=$T/repo
M=$T/mnt
s1=2026.11.01.02.00.00 s2=2026.11.02.02.00.00
mkdir -p "$R/$VM/$s1" "$R/$VM/$s2"
sparse_raw "$T/base.raw" $((32 << 20)) 7 0 5 20 31
qemu-img convert -c -O qcow2 "$T/base.raw" "$R/$VM/$s1/root.77aa.qcow2"
rm -f "$T/base.raw"
qemu-img create -q -f qcow2 -F qcow2 -b "../$s1/root.77aa.qcow2" "$R/$VM/$s2/root.77aa.qcow2"
qio -c "write -P 0xcc 9M 1M" -c "write -z 20M 128k" "$R/$VM/$s2/root.77aa.qcow2"
for s in $s1 $s2; do
  cat > "$R/$VM/$s/domain-config.xml" <<XML
<domain type='qemu'>
  <name>$VM</name>
  <uuid>5c8a3e2e-1d7b-4a47-9d7e-0a5f6c1e2b$([ $s = $s1 ] && echo 3a || echo 3b)</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$T/vmlinuz</kernel><initrd>$T/initrd.gz</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=3</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/mnt/primary/77aa'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$T/console.log'/><target port='0'/></serial>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
</domain>
XML
  printf ' Target   Source\n------------------------------\n vda      /mnt/primary/77aa\n\n' \
    > "$R/$VM/$s/domblklist.xml"
  printf '<dominfo><name>%s</name></dominfo>\n' "$VM" > "$R/$VM/$s/dominfo.xml"
done
oracle "$T/pit.raw" "$R/$VM/$s2/root.77aa.qcow2"

# the FUSE mount first: / has private propagation, and libvirt gives qemu
# its own mount namespace copied at start
bfs_mount "$R" "$M"
P=$(daemon_pid "$M")
LATEST=$M/$(ls "$M")/latest
[ -f "$LATEST/disks/vda.img" ] || fail "no $LATEST/disks/vda.img: $(ls -R "$M" | head)"

# ---- libvirtd + virtlogd of our own ----
VM_DOMS=$DOM
trap 'vm_stop; rc_cleanup' EXIT INT TERM
vm_libvirtd_start

# ---- quick restore and boot ----
"$BACKUPFS" restore quick --name "$DOM" "$LATEST" "$T/dest" > "$T/quick.out" ||
  fail "restore quick: $(cat "$T/quick.out")"
[ -f "$T/dest/vda.qcow2" ] && [ -f "$T/dest/domain.xml" ] || fail "restore quick made: $(ls "$T/dest")"
virsh define "$T/dest/domain.xml" > /dev/null || fail "virsh define $(cat "$T/dest/domain.xml")"
if ! virsh start "$DOM" > "$T/start.out" 2>&1; then
  grep -qi "cgroup\|namespace\|permission denied\|kvm" "$T/start.out" &&
    skip "a VM cannot start here: $(cat "$T/start.out")"
  fail "virsh start: $(cat "$T/start.out")"
fi
vm_wait_console BFS-GUEST-IDLE 300 || fail "guest did not come up in 300 s: $(tail -5 "$T/console.log")"
[ "$(sed -n 's/^BFS-VDA-MD5 \([0-9a-f]*\).*/\1/p' "$T/console.log" | tr -d '\r')" = \
  "$(md5sum < "$T/pit.raw" | cut -d' ' -f1)" ] || fail "the guest's /dev/vda differs from the point in time"
ok "VM $DOM booted from the quick restore; its vda reads the point in time"

"$BACKUPFS" status --json "$M" > "$T/status.json" || fail "status"
QPID=$(jget "$T/status.json" "[h['pid'] for d in j['disks'] for h in d['holders'] if not h['daemon_child']][0]")
[ "$(cat "/proc/$QPID/comm")" = "$(jget "$T/status.json" "[h['command'] for d in j['disks'] for h in d['holders']][0]")" ] ||
  fail "holder command"
case $(cat "/proc/$QPID/comm") in qemu*) ;; *) fail "holder $QPID is not qemu: $(cat /proc/$QPID/comm)" ;; esac
ok "status names qemu ($QPID) as the holder"

# ---- SIGTERM to the daemon while the VM runs ----
kill -TERM "$P"
sleep 2
gone "$P" 0 && fail "daemon exited on SIGTERM under a running VM"
mountpoint -q "$M" || fail "mount dropped on SIGTERM under a running VM"
ok "SIGTERM: the daemon keeps serving the running VM"

virsh blockpull "$DOM" vda --wait > "$T/pull.out" 2>&1 || fail "blockpull: $(cat "$T/pull.out")"
virsh domblklist "$DOM" --details > "$T/blk.out"
virsh destroy "$DOM" > /dev/null 2>&1 || true
qemu-img info "$T/dest/vda.qcow2" | grep -q "^backing file" &&
  fail "the overlay still has a backing file after blockpull"
qemu-img convert -O raw "$T/dest/vda.qcow2" "$T/consolidated.raw"
cmp "$T/consolidated.raw" "$T/pit.raw" || fail "the consolidated overlay differs from the point in time"
ok "blockpull after SIGTERM: the consolidated overlay equals the point in time"

gone "$P" 10 || fail "daemon still running 10 s after the VM let go of its disk"
wait_for sh -c "! mountpoint -q '$M'" || fail "mount still there after the daemon exited"
ok "the daemon exited once the VM no longer held the disk"
