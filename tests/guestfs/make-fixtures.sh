#!/bin/bash
# make-fixtures.sh DIR — guest fixtures for the guestfs suite, built in ONE
# guestfish session (one appliance: they take 30 s to start under TCG).
#
#   DIR/raw/   raw disks as they are at each point in time (the oracle):
#              linux-t1-vda.img  GPT, ext4 root (LABEL=root), /etc/fstab
#              linux-t1-vdb.img  LVM PV, vgdata/lvhome xfs mounted on /home
#              linux-t2-vda.img  copy of t1 vda, then changed/added/deleted
#              data-sda.img      MBR, NTFS partition
#              data-sdb.img      bare ext4 (no partition table)
#              data-sdc.img      ext4 with its group descriptors zeroed (unmountable)
#   DIR/repo/  a generic-layout repository of qcow2 backups of the above;
#              linux t2 is an incremental overlay (relative backing file).
#   DIR/big50.bin  the 50 MiB file stored at /var/big50.bin
set -euo pipefail
dir=$1
mkdir -p "$dir/raw" "$dir/repo"
cd "$dir"

T1=2026-11-01T030000Z
T2=2026-11-02T030000Z

head -c 50M /dev/urandom > big50.bin
printf 'alice notes\n' > notes.txt

truncate -s 256M raw/linux-t1-vda.img raw/linux-t2-vda.img
truncate -s 512M raw/linux-t1-vdb.img
truncate -s 64M raw/data-sda.img raw/data-sdb.img raw/data-sdc.img

guestfish --format=raw -a raw/linux-t1-vda.img -a raw/linux-t1-vdb.img \
  -a raw/linux-t2-vda.img -a raw/data-sda.img -a raw/data-sdb.img \
  -a raw/data-sdc.img <<'EOF'
run
# ---- linux t1: GPT + ext4 root, LVM + xfs /home on the second disk
part-disk /dev/sda gpt
mkfs ext4 /dev/sda1 label:root blocksize:4096
pvcreate /dev/sdb
vgcreate vgdata /dev/sdb
lvcreate lvhome vgdata 400
mkfs xfs /dev/vgdata/lvhome label:home
mount /dev/sda1 /
mkdir-p /etc
mkdir-p /bin
mkdir-p /usr/bin
mkdir-p /var/log
mkdir /home
write /etc/fstab "LABEL=root / ext4 defaults 0 1\n/dev/vgdata/lvhome /home xfs defaults 0 2\n"
write /etc/hostname "linux01\n"
write /etc/os-release "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
write /etc/debian_version "12.8\n"
write /etc/motd "hello from t1\n"
write /etc/config.txt "version 1\n"
write /etc/delete-me.txt "gone in t2\n"
chmod 0640 /etc/config.txt
chown 123 456 /etc/config.txt
ln-s /etc/motd /etc/abs-link
ln-s ../../nonexistent/target /etc/dangling-link
ln /etc/motd /etc/motd-hard
mknod-c 0666 1 3 /etc/null-dev
mkfifo 0644 /etc/fifo
write /bin/sh "#!fake\n"
chmod 0755 /bin/sh
write /bin/su-like "#!fake\n"
chmod 04755 /bin/su-like
upload big50.bin /var/big50.bin
mount /dev/vgdata/lvhome /home
mkdir /home/alice
upload notes.txt /home/alice/notes.txt
chown 1000 1000 /home/alice
chown 1000 1000 /home/alice/notes.txt
chmod 0700 /home/alice
chmod 0600 /home/alice/notes.txt
umount /home
umount /
# ---- linux t2: the same root disk, then changed, added, deleted
copy-device-to-device /dev/sda /dev/sdc
blockdev-rereadpt /dev/sdc
mount /dev/sdc1 /
write /etc/config.txt "version 2\n"
write /etc/new-in-t2.txt "added in t2\n"
rm /etc/delete-me.txt
umount /
# ---- data VM: NTFS partition, bare ext4, unmountable ext4
part-disk /dev/sdd mbr
mkfs ntfs /dev/sdd1
mount-vfs "" ntfs-3g /dev/sdd1 /
mkdir /Documents
write /Documents/report.txt "ntfs report\n"
umount /
mkfs ext4 /dev/sde label:bare
mount /dev/sde /
write /readme.txt "bare filesystem\n"
umount /
mkfs ext4 /dev/sdf label:broken blocksize:4096
EOF

# zero the group descriptor table (block 1 with 4 KiB blocks): blkid still
# says ext4, the kernel refuses to mount it.
dd if=/dev/zero of=raw/data-sdc.img bs=4096 seek=1 count=1 conv=notrunc status=none

# ---- the repository (generic layout), t2 an incremental overlay of t1
mkdir -p repo/linux/$T1 repo/linux/$T2 repo/data/$T1
qemu-img convert -O qcow2 raw/linux-t1-vda.img repo/linux/$T1/vda.qcow2
qemu-img convert -O qcow2 raw/linux-t1-vdb.img repo/linux/$T1/vdb.qcow2
(cd repo/linux/$T2 &&
 qemu-img convert -O qcow2 -B ../$T1/vda.qcow2 -F qcow2 \
   ../../../raw/linux-t2-vda.img vda.qcow2 &&
 qemu-img create -q -f qcow2 -b ../$T1/vdb.qcow2 -F qcow2 vdb.qcow2)
for d in sda sdb sdc; do
  qemu-img convert -O qcow2 raw/data-$d.img repo/data/$T1/$d.qcow2
done
echo "fixtures ready in $dir"
