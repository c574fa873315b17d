# vm.sh — a real TCG VM under a libvirtd of the test's own (sourced).
#
# Shared by the VM tests (tests/recovery/vm-quick.sh, tests/vnbd/).
# Sourced after tests/recovery/lib.sh (skip, fail, wait_for, gone, the
# scratch dir $T).  The guest is the host's /boot/vmlinuz-* with an initrd of
# busybox-static (apt-get download, dpkg -x) whose /init the caller writes;
# virtio modules are copied in and loaded by vm_init_head.
#   vm_prereqs            skip unless root, libvirtd & co, a kernel with an
#                         uncompressed virtio_blk.ko, no other libvirtd
#   vm_guest INIT         $T/vmlinuz and $T/initrd.gz with INIT as /init
#   vm_init_head          prints the /init lines that mount /proc, /sys,
#                         /dev, load virtio and wait for /dev/vda
#   vm_domain_xml NAME DISK FORMAT [UUID]   prints a domain (serial:
#                         $T/console.log; the guest from vm_guest)
#   vm_nas_repo DIR VM    a CloudStack NAS repository: one disk (root, 32
#                         MiB, full + incremental), domain-config.xml from
#                         vm_domain_xml; the point in time's bytes in
#                         $T/pit.raw (qemu-img convert of the chain)
#   vm_read_guest INIT    vm_guest with an /init that prints the md5sum of
#                         /dev/vda (BFS-VDA-MD5) and idles (BFS-GUEST-IDLE)
#   vm_guest_md5_ok       the md5 the guest printed is $T/pit.raw's
#   vm_libvirtd_start     virtlogd (if none) + libvirtd on sockets in $T/run,
#                         exports LIBVIRT_DEFAULT_URI; skips when they cannot
#                         run or have no qemu (TCG) domains
#   vm_stop               destroys/undefines $VM_DOMS, stops what
#                         vm_libvirtd_start started, by PID
#   vm_wait_console STR SECS   waits for STR in $T/console.log
#   vm_writer_guest BS COUNT SPAN SECS [ZSPAN]   vm_guest with an /init that
#                         writes its disk for ever: every SECS seconds COUNT
#                         random blocks of BS at a moving offset below SPAN
#                         blocks (and one zero block below ZSPAN), sync, then
#                         "BFS-ROUND N" on the console
#   vm_run DOM DISK FORMAT     vm_start of vm_domain_xml's DOM on DISK
#   vm_start DOM [MARK]   defines $T/dom.xml and starts DOM under a libvirtd
#                         of our own (stopped at exit), skips where a VM
#                         cannot start, waits for MARK on the console
#                         (default: the writing guest's second round)
. "$SRCDIR/tests/lib/nas.sh"
VM_DOMS=""
LVPIDS=""

vm_prereqs() {
  for p in libvirtd virtlogd virsh qemu-system-x86_64 cpio gzip dpkg apt-get; do
    command -v $p >/dev/null || skip "$p not installed (contrib/install-deps.sh)"
  done
  [ "$(id -u)" = 0 ] || skip "needs root (a system libvirtd)"
  KVER=$(ls /boot | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
  [ -n "$KVER" ] && [ -r "/boot/vmlinuz-$KVER" ] || skip "no readable /boot/vmlinuz-*"
  MODS=/lib/modules/$KVER/kernel/drivers
  [ -f "$MODS/block/virtio_blk.ko" ] || skip "no uncompressed virtio_blk.ko for $KVER"
  if pgrep -x libvirtd >/dev/null; then
    skip "another libvirtd runs here (it would own the qemu driver)"
  fi
}

vm_init_head() {
  cat <<'G'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  [ -f /lib/$m.ko ] && insmod /lib/$m.ko
done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 1; done
echo BFS-GUEST-UP
G
}

vm_guest() {
  local init=$1 cache=${BUILDDIR:-$T}/recovery-cache i=$T/initrd
  mkdir -p "$cache"
  if ! ls "$cache"/busybox-static_*.deb >/dev/null 2>&1; then
    (cd "$cache" && apt-get download -q busybox-static >/dev/null 2>&1) ||
      skip "apt-get download busybox-static failed (no network?)"
  fi
  mkdir -p "$i/bin" "$i/proc" "$i/sys" "$i/dev" "$i/lib"
  dpkg -x "$(ls "$cache"/busybox-static_*.deb | head -1)" "$T/bb"
  cp "$T/bb/bin/busybox" "$i/bin/busybox"
  for a in sh mount insmod md5sum sleep echo cat dd sync seq; do
    ln -sf busybox "$i/bin/$a"
  done
  for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev \
           virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk; do
    [ -f "$MODS/$m.ko" ] && cp "$MODS/$m.ko" "$i/lib/"
  done
  cp "$init" "$i/init"
  chmod +x "$i/init"
  (cd "$i" && find . | cpio -o -H newc --quiet | gzip -1) > "$T/initrd.gz"
  cp "/boot/vmlinuz-$KVER" "$T/vmlinuz"
}

vm_domain_xml() {
  cat <<XML
<domain type='qemu'>
  <name>$1</name>${4:+
  <uuid>$4</uuid>}
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$T/vmlinuz</kernel><initrd>$T/initrd.gz</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=3</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='$3'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$T/console.log'/><target port='0'/></serial>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
</domain>
XML
}

vm_stop() {
  for d in $VM_DOMS; do
    virsh destroy "$d" >/dev/null 2>&1 || true
    virsh undefine --checkpoints-metadata "$d" >/dev/null 2>&1 ||
      virsh undefine "$d" >/dev/null 2>&1 || true
  done
  for p in $LVPIDS; do
    kill -TERM "$p" 2>/dev/null || true
    gone "$p" 10 || kill -KILL "$p" 2>/dev/null || true
  done
  LVPIDS=""
}

vm_libvirtd_start() {
  local run=$T/run
  mkdir -p "$run"
  cat > "$T/libvirtd.conf" <<C
unix_sock_dir = "$run"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$T/libvirtd.log"
C
  if [ ! -S /run/libvirt/virtlogd-sock ]; then
    virtlogd --pid-file "$T/virtlogd.pid" > "$T/virtlogd.out" 2>&1 &
    LVPIDS="$LVPIDS $!"
  fi
  libvirtd --config "$T/libvirtd.conf" --pid-file "$T/libvirtd.pid" > "$T/libvirtd.out" 2>&1 &
  LVPIDS="$LVPIDS $!"
  export LIBVIRT_DEFAULT_URI="qemu:///system?socket=$run/libvirt-sock"
  wait_for virsh version ||
    skip "libvirtd cannot run here: $(tail -3 "$T/libvirtd.out" "$T/libvirtd.log" 2>/dev/null | tr '\n' ' ')"
  virsh capabilities 2>/dev/null | grep -q "<domain type='qemu'" ||
    skip "libvirtd here has no qemu (TCG) domains: $(grep -i error "$T/libvirtd.log" | tail -2)"
}

vm_wait_console() {
  for _ in $(seq "$2"); do
    grep -q "$1" "$T/console.log" 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

vm_read_guest() {
  { vm_init_head; cat <<'G'
md5sum /dev/vda | while read s f; do echo "BFS-VDA-MD5 $s"; done
echo BFS-GUEST-IDLE
while :; do sleep 3600; done
G
  } > "$T/init"
  vm_guest "$T/init"
}

vm_guest_md5_ok() {
  [ "$(sed -n 's/^BFS-VDA-MD5 \([0-9a-f]*\).*/\1/p' "$T/console.log" | tr -d '\r')" = \
    "$(md5sum < "$T/pit.raw" | cut -d' ' -f1)" ]
}

vm_nas_repo() {
  local r=$1 vm=$2 s1=2026.11.01.02.00.00 s2=2026.11.02.02.00.00 s
  mkdir -p "$r/$vm/$s1" "$r/$vm/$s2"
  sparse_raw "$T/base.raw" $((32 << 20)) 7 0 5 20 31
  qemu-img convert -c -O qcow2 "$T/base.raw" "$r/$vm/$s1/root.77aa.qcow2"
  rm -f "$T/base.raw"
  qemu-img create -q -f qcow2 -F qcow2 -b "../$s1/root.77aa.qcow2" "$r/$vm/$s2/root.77aa.qcow2"
  qemu-io -f qcow2 -c "write -P 0xcc 9M 1M" -c "write -z 20M 128k" \
    "$r/$vm/$s2/root.77aa.qcow2" >/dev/null
  for s in $s1 $s2; do
    vm_domain_xml "$vm" /mnt/primary/77aa qcow2 \
      "5c8a3e2e-1d7b-4a47-9d7e-0a5f6c1e2b$([ $s = $s1 ] && echo 3a || echo 3b)" \
      > "$r/$vm/$s/domain-config.xml"
    nas_domblklist vda=/mnt/primary/77aa > "$r/$vm/$s/domblklist.xml"
    nas_dominfo "$vm" > "$r/$vm/$s/dominfo.xml"
  done
  qemu-img convert -O raw "$r/$vm/$s2/root.77aa.qcow2" "$T/pit.raw"
}

vm_writer_guest() {
  { vm_init_head; cat <<G
echo BFS-GUEST-WRITING
n=0
while :; do
  n=\$((n + 1))
  dd if=/dev/urandom of=/dev/vda bs=$1 count=$2 seek=\$(( (n * 37) % $3 )) conv=notrunc 2>/dev/null
G
    if [ -n "${5:-}" ]; then cat <<G
  dd if=/dev/zero of=/dev/vda bs=$1 count=1 seek=\$(( (n * 53 + 11) % $5 )) conv=notrunc 2>/dev/null
G
    fi
    cat <<G
  sync
  echo "BFS-ROUND \$n"
  sleep $4
done
G
  } > "$T/init"
  vm_guest "$T/init"
}

vm_run() {
  vm_domain_xml "$1" "$2" "$3" > "$T/dom.xml"
  vm_start "$1"
  ok "VM $1 runs and writes its disk"
}

vm_start() {
  local mark=${2:-BFS-ROUND 2}
  trap 'vm_stop; rc_cleanup' EXIT INT TERM
  vm_libvirtd_start
  virsh define "$T/dom.xml" > /dev/null || fail "virsh define"
  if ! virsh start "$1" > "$T/start.out" 2>&1; then
    grep -qi "cgroup\|namespace\|permission denied\|kvm" "$T/start.out" &&
      skip "a VM cannot start here: $(cat "$T/start.out")"
    fail "virsh start: $(cat "$T/start.out")"
  fi
  vm_wait_console "$mark" 300 ||
    fail "guest did not print $mark in 300 s: $(tail -5 "$T/console.log")"
}
