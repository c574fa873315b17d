#!/bin/bash
# test-files.sh — guest files of every virtnbdbackup checkpoint through
# the mount.  A TCG VM (tests/lib/vm.sh's busybox guest, plus ext4 and its
# modules appended to its initrd) has an ext4 disk vda made with mke2fs -d
# and a raw control disk vdb (virtnbdbackup leaves raw disks out).  The
# test takes a full backup, then twice writes a stage number to vdb: the
# guest sees it, mounts vda, rewrites /etc/hello.txt, writes a new random
# /data/new-N.bin, unmounts (a clean filesystem), prints its md5 and the
# test takes an incremental.  Mounted, checkpoint N's disks/vda.img must
# hold what the guest wrote up to stage N and nothing of later stages
# (debugfs, no appliance), and the incremental virtnbdbackup.1's files/
# (the libguestfs appliance over the mount's own disk: one appliance)
# must show the same.  After the VM stops, an offline copy backup's disk
# must equal the qcow2.  Skipped in the sanitizer pass.
. "$SRCDIR/tests/recovery/lib.sh"
. "$SRCDIR/tests/lib/vm.sh"
[ "${BFS_SANITIZED:-0}" = 1 ] && skip "a TCG VM and appliance: not in the sanitizer pass"
[ "${BFS_HAVE_GUESTFS:-1}" = 1 ] || skip "built without libguestfs"
for p in virtnbdbackup mke2fs debugfs qemu-nbd; do
  command -v $p >/dev/null || skip "$p not installed (contrib/install-deps.sh)"
done
vm_prereqs
KMODS=/lib/modules/$KVER/kernel
EXT4_MODS="lib/crc16 crypto/crc32c_generic fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4"
for m in $EXT4_MODS; do
  [ -f "$KMODS/$m.ko" ] || skip "no uncompressed $m.ko for $KVER (ext4 in the guest)"
done

DOM=bfs-vnbd-files-$$
VM_DOMS=$DOM
mkdir -p "$T/root/etc" "$T/root/data"
echo "checkpoint 0" > "$T/root/etc/hello.txt"
head -c 3M /dev/urandom > "$T/root/data/blob.bin"
mke2fs -q -t ext4 -b 4096 -L bfsvnbd -d "$T/root" "$T/fs.raw" 64M || fail "mke2fs -d"
qemu-img convert -O qcow2 "$T/fs.raw" "$T/disk.qcow2"
truncate -s 1M "$T/ctl.raw"

# the guest: stage N on vdb -> mount vda, write, unmount, say BFS-STAGE N MD5
{ vm_init_head; cat <<'G'
/bin/busybox --install -s /bin
for m in crc16 crc32c_generic mbcache jbd2 ext4; do
  insmod /lib/$m.ko || echo "BFS-NO-MODULE $m"
done
mkdir -p /mnt
echo BFS-READY
done=0
while :; do
  echo 3 > /proc/sys/vm/drop_caches
  n=$(dd if=/dev/vdb bs=512 count=1 2>/dev/null | tr -dc 0-9)
  if [ -n "$n" ] && [ "$n" != "$done" ]; then
    if mount -t ext4 /dev/vda /mnt; then
      echo "checkpoint $n" > /mnt/etc/hello.txt
      dd if=/dev/urandom of=/mnt/data/new-$n.bin bs=64k count=16 2>/dev/null
      md5=$(md5sum /mnt/data/new-$n.bin | cut -d' ' -f1)
      umount /mnt
      sync
      echo "BFS-STAGE $n $md5"
    else
      echo "BFS-MOUNT-FAILED $n"
    fi
    done=$n
  fi
  sleep 1
done
G
} > "$T/init"
vm_guest "$T/init"
# ext4 and its modules: a second cpio archive appended to the initrd
mkdir -p "$T/mods/lib"
for m in $EXT4_MODS; do cp "$KMODS/$m.ko" "$T/mods/lib/"; done
(cd "$T/mods" && find . | cpio -o -H newc --quiet | gzip -1) >> "$T/initrd.gz"
ctl="    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$T/ctl.raw'/><target dev='vdb' bus='virtio'/></disk>"
vm_domain_xml "$DOM" "$T/disk.qcow2" qcow2 | sed "s#^    </disk>#&\n$ctl#" > "$T/dom.xml"
grep -q "ctl.raw" "$T/dom.xml" || fail "no control disk in the domain: $(cat "$T/dom.xml")"
trap 'vm_stop; rc_cleanup' EXIT INT TERM
vm_libvirtd_start
virsh define "$T/dom.xml" > /dev/null || fail "virsh define"
if ! virsh start "$DOM" > "$T/start.out" 2>&1; then
  grep -qi "cgroup\|namespace\|permission denied\|kvm" "$T/start.out" &&
    skip "a VM cannot start here: $(cat "$T/start.out")"
  fail "virsh start: $(cat "$T/start.out")"
fi
vm_wait_console BFS-READY 300 || fail "guest not ready in 300 s: $(tail -5 "$T/console.log")"
grep -a BFS-NO-MODULE "$T/console.log" && fail "guest modules: $(tail -20 "$T/console.log")"

B=$T/bk
backup() {
  virtnbdbackup -U "$LIBVIRT_DEFAULT_URI" -d "$DOM" -l "$1" -o "$2" > "$T/backup.log" 2>&1 ||
    fail "virtnbdbackup -l $1: $(tail -5 "$T/backup.log")"
}
declare -A MD5
backup full "$B"
for n in 1 2; do
  printf '%s' $n | dd of="$T/ctl.raw" conv=notrunc status=none
  vm_wait_console "BFS-STAGE $n " 120 ||
    fail "guest did not write stage $n: $(tail -5 "$T/console.log")"
  MD5[$n]=$(sed -n "s/^BFS-STAGE $n \([0-9a-f]*\).*/\1/p" "$T/console.log" | tr -d '\r')
  backup inc "$B"
done
ok "full + 2 incrementals of a running VM whose guest wrote files between them"
virsh destroy "$DOM" > /dev/null || fail "virsh destroy"
for f in full inc.virtnbdbackup.1 inc.virtnbdbackup.2; do
  [ -s "$B/vda.$f.data" ] || fail "no vda.$f.data: $(ls "$B")"
done
backup copy "$T/bk-copy"           # shut off: virtnbdbackup's offline copy

# what checkpoint N's filesystem must hold: debugfs over the mounted disk
M=$T/mnt
bfs_mount "$B" "$M"
declare -A PIT
for bk in "$M/$DOM"/2*/; do
  n=$(jget "$bk/backup.json" "j['checkpoint'].split('.')[-1]")
  PIT[$n]=$bk
  img=$bk/disks/vda.img
  got=$(debugfs -R "cat /etc/hello.txt" "$img" 2>/dev/null)
  [ "$got" = "checkpoint $n" ] || fail "checkpoint $n: hello.txt is '$got'"
  for k in 1 2; do
    rm -f "$T/new.bin"
    debugfs -R "dump /data/new-$k.bin $T/new.bin" "$img" > /dev/null 2>&1
    if [ "$k" -le "$n" ]; then
      [ "$(md5sum < "$T/new.bin" | cut -d' ' -f1)" = "${MD5[$k]}" ] ||
        fail "checkpoint $n: new-$k.bin is not what the guest wrote"
    elif [ -s "$T/new.bin" ]; then
      fail "checkpoint $n holds new-$k.bin of a later stage"
    fi
  done
done
[ "${#PIT[@]}" = 3 ] && [ -n "${PIT[0]}" ] && [ -n "${PIT[1]}" ] && [ -n "${PIT[2]}" ] ||
  fail "mounted checkpoints: ${!PIT[*]} ($(ls "$M/$DOM"))"
ok "checkpoints 0, 1, 2: each disk holds the guest's files of its stage only"

# the incremental checkpoint 1 through files/ (one appliance)
bk=${PIT[1]}
[ -d "$bk/files" ] || skip "the mount shows no files/ (built without libguestfs)"
hello=$(timeout 600 find "$bk/files/" -name hello.txt | head -1)
[ -n "$hello" ] || fail "no hello.txt under files/: $(ls -R "$bk/files" 2>&1 | head -20)"
[ "$(cat "$hello")" = "checkpoint 1" ] || fail "files/ of checkpoint 1: hello.txt is '$(cat "$hello")'"
data=$(dirname "$hello")/../data
[ "$(md5sum < "$data/new-1.bin" | cut -d' ' -f1)" = "${MD5[1]}" ] ||
  fail "files/ of checkpoint 1: new-1.bin is not what the guest wrote"
[ -e "$data/new-2.bin" ] && fail "files/ of checkpoint 1 shows stage 2's new-2.bin"
cmp "$data/blob.bin" "$T/root/data/blob.bin" || fail "files/ of checkpoint 1: blob.bin differs"
ok "files/ of incremental checkpoint virtnbdbackup.1: $hello"
"$BACKUPFS" umount "$M" > "$T/umount.out" 2>&1 || fail "umount $M: $(cat "$T/umount.out")"

# the offline copy: one point in time equal to the qcow2
M=$T/mnt-copy
bfs_mount "$T/bk-copy" "$M"
ls "$T/bk-copy"/vda.copy.data > /dev/null || fail "no copy stream: $(ls "$T/bk-copy")"
oracle "$T/now.raw" "$T/disk.qcow2"
bk=$(ls -d "$M/$DOM"/2*/ | head -1)
cmp "$bk/disks/vda.img" "$T/now.raw" || fail "the copy's disks/vda.img differs from the qcow2"
ok "offline copy backup equals the disk"
