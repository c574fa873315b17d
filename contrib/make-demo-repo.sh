#!/bin/bash
# make-demo-repo.sh DIR — build a small but real backup repository:
#   DIR/web01/  CloudStack NAS layout: a full backup of a GPT disk with an
#               ext4 Linux root (zstd-compressed qcow2) and a data disk, then
#               two incrementals chained by ../<stamp>/ relative backing files,
#               each changing files inside the guest; domain-config.xml names
#               the disks vda/vdb.
#   DIR/db01/   generic layout: <vm>/<timestamp>/<disk>.qcow2, one full and one
#               incremental with an absolute backing path.
# Guest filesystems are written with guestfish (one appliance per step).
set -euo pipefail
dir=${1:?usage: make-demo-repo.sh DIR}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
gf() { guestfish --no-progress-bars "$@"; }

root=root.5e1f0c2a-1111-4d6e-9a7b-000000000001
data=datadisk.5e1f0c2a-2222-4d6e-9a7b-000000000002
. "$(dirname "$0")/../tests/lib/nas.sh"   # the NAS domain files
disks="vda=/mnt/primary/${root#root.} vdb=/mnt/primary/${data#datadisk.}"

# --- the guest disks, all written in one appliance: three states of web01's
# root (full, incremental 1, incremental 2) and db01's bare filesystem ---
for f in root1 root2 root3; do qemu-img create -q -f raw "$work/$f.raw" 128M; done
qemu-img create -q -f raw "$work/db1.raw" 32M
qemu-img create -q -f raw "$work/db2.raw" 32M
gf -a "$work/root1.raw" -a "$work/root2.raw" -a "$work/root3.raw" \
   -a "$work/db1.raw" -a "$work/db2.raw" <<'GF'
run
part-init /dev/sda gpt
part-add /dev/sda p 2048 -2048
mkfs ext4 /dev/sda1 label:root
mount /dev/sda1 /
mkdir-p /etc
mkdir-p /bin
mkdir-p /usr/bin
mkdir-p /var/log
mkdir-p /home/alice
write /etc/hostname "web01\n"
write /etc/fstab "LABEL=root / ext4 defaults 0 1\n"
write /etc/os-release "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
write /etc/debian_version "12.8\n"
write /etc/motd "Welcome to web01 (full backup)\n"
write /var/log/app.log "2026-11-20 boot\n"
write /home/alice/notes.txt "remember the milk\n"
chown 1000 1000 /home/alice
chown 1000 1000 /home/alice/notes.txt
chmod 0700 /home/alice
ln-s ../../etc/motd /usr/bin/motd-link
umount /
copy-device-to-device /dev/sda /dev/sdb
blockdev-rereadpt /dev/sdb
mount /dev/sdb1 /
write /etc/motd "Welcome to web01 (incremental 1)\n"
write-append /var/log/app.log "2026-11-21 incremental 1\n"
write /home/alice/todo.txt "buy bread\n"
umount /
copy-device-to-device /dev/sdb /dev/sdc
blockdev-rereadpt /dev/sdc
mount /dev/sdc1 /
write /etc/motd "Welcome to web01 (incremental 2)\n"
write-append /var/log/app.log "2026-11-22 incremental 2\n"
rm /home/alice/notes.txt
umount /
mkfs ext4 /dev/sdd label:db
mount /dev/sdd /
mkdir-p /srv/db
write /srv/db/README "database files of db01\n"
umount /
copy-device-to-device /dev/sdd /dev/sde
mount /dev/sde /
write-append /srv/db/README "updated 2026-11-22\n"
GF
qemu-img create -q -f raw "$work/data.raw" 64M
qemu-io -f raw -c 'write -P 0xab 1M 4M' -c 'write -P 0xcd 40M 2M' "$work/data.raw" >/dev/null

# --- web01: CloudStack NAS layout ---
s1=2026.11.20.03.00.00 s2=2026.11.21.03.00.00 s3=2026.11.22.03.00.00
mkdir -p "$dir/web01/$s1" "$dir/web01/$s2" "$dir/web01/$s3"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$work/root1.raw" "$dir/web01/$s1/$root.qcow2"
qemu-img convert -O qcow2 "$work/data.raw" "$dir/web01/$s1/$data.qcow2"
# an incremental holds only what changed since the older backup
(cd "$dir/web01/$s2" &&
 qemu-img convert -O qcow2 -F qcow2 -B "../$s1/$root.qcow2" "$work/root2.raw" "$root.qcow2" &&
 qemu-img create -q -f qcow2 -F qcow2 -b "../$s1/$data.qcow2" "$data.qcow2" &&
 qemu-io -f qcow2 -c 'write -P 0x11 8M 1M' "$data.qcow2" >/dev/null)
(cd "$dir/web01/$s3" &&
 qemu-img convert -O qcow2 -F qcow2 -B "../$s2/$root.qcow2" "$work/root3.raw" "$root.qcow2" &&
 qemu-img create -q -f qcow2 -F qcow2 -b "../$s2/$data.qcow2" "$data.qcow2" &&
 qemu-io -f qcow2 -c 'write -P 0x22 9M 1M' "$data.qcow2" >/dev/null)
for s in $s1 $s2 $s3; do
  nas_domain_xml i-2-10-VM 3f6a9a55-5d2b-4b8e-9d0e-2f1c7a4b9e10 $disks \
    bridge=cloudbr0,02:00:4c:5e:00:01 > "$dir/web01/$s/domain-config.xml"
  nas_domblklist $disks > "$dir/web01/$s/domblklist.xml"
done

# --- db01: generic layout, a bare filesystem (no partition table), the
# incremental naming its base by an absolute path ---
b1="$dir/db01/2026-11-21T02:00:00Z" b2="$dir/db01/2026-11-22T02:00:00Z"
mkdir -p "$b1" "$b2"
qemu-img convert -O qcow2 "$work/db1.raw" "$b1/disk0.qcow2"
qemu-img convert -O qcow2 -F qcow2 -B "$b1/disk0.qcow2" "$work/db2.raw" "$b2/disk0.qcow2"
echo "demo repository ready in $dir"
