#!/bin/bash
# test-files.sh — guest files of a virtnbdbackup checkpoint through the
# mount: Debian's virtnbdbackup takes a full backup of a shut-off domain
# (it exports the qcow2 through its own qemu-nbd, no VM boots) whose disk
# holds an ext4 filesystem made with mke2fs -d; the folder is mounted and
# <vm>/<time>/files/ (the libguestfs appliance over the mount's own
# disks/vda.img, a vnbd recipe) must show the guest's files with their
# bytes.  One appliance (TCG); skipped in the sanitizer pass.
. "$SRCDIR/tests/recovery/lib.sh"
. "$SRCDIR/tests/lib/vm.sh"
[ "${BFS_SANITIZED:-0}" = 1 ] && skip "a TCG libguestfs appliance: not in the sanitizer pass"
[ "${BFS_HAVE_GUESTFS:-1}" = 1 ] || skip "built without libguestfs"
for p in virtnbdbackup mke2fs qemu-nbd; do
  command -v $p >/dev/null || skip "$p not installed (contrib/install-deps.sh)"
done
vm_prereqs

DOM=bfs-vnbd-files-$$
VM_DOMS=$DOM
mkdir -p "$T/root/etc" "$T/root/data"
echo "checkpoint zero" > "$T/root/etc/hello.txt"
head -c 3M /dev/urandom > "$T/root/data/blob.bin"
mke2fs -q -t ext4 -L bfsvnbd -d "$T/root" "$T/fs.raw" 64M || fail "mke2fs -d"
qemu-img convert -O qcow2 "$T/fs.raw" "$T/disk.qcow2"
: > "$T/vmlinuz"; : > "$T/initrd.gz"       # never booted
vm_domain_xml "$DOM" "$T/disk.qcow2" qcow2 > "$T/dom.xml"
trap 'vm_stop; rc_cleanup' EXIT INT TERM
vm_libvirtd_start
virsh define "$T/dom.xml" > /dev/null || fail "virsh define"
B=$T/bk
virtnbdbackup -U "$LIBVIRT_DEFAULT_URI" -d "$DOM" -l full -o "$B" > "$T/backup.log" 2>&1 ||
  fail "virtnbdbackup (offline full): $(tail -5 "$T/backup.log")"
ls "$B"/vda.*.data > /dev/null 2>&1 || fail "no stream: $(ls "$B")"

M=$T/mnt
bfs_mount "$B" "$M"
bk=$(ls -d "$M/$DOM"/2*/ | head -1)
[ -n "$bk" ] || fail "no point in time: $(ls -R "$M" | head -30) folder: $(ls -la "$B") list: $("$BACKUPFS" list --catalog "$T/l.db" "$B" 2>&1)"
cmp "$bk/disks/vda.img" "$T/fs.raw" || fail "disks/vda.img differs from the source filesystem"
[ -d "$bk/files" ] || skip "the mount shows no files/ (built without libguestfs)"
hello=$(timeout 600 find "$bk/files/" -name hello.txt | head -1)
[ -n "$hello" ] || fail "no hello.txt under files/: $(ls -R "$bk/files" 2>&1 | head -20)"
[ "$(cat "$hello")" = "checkpoint zero" ] || fail "hello.txt: $(cat "$hello")"
cmp "$(dirname "$hello")/../data/blob.bin" "$T/root/data/blob.bin" || fail "data/blob.bin differs"
ok "files/ of checkpoint $(jget "$bk/backup.json" "j.get('checkpoint')"): $hello"
