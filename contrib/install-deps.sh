#!/bin/sh
# install-deps.sh — every Debian 12 package backupfs needs to build, test and
# run its demo.  Idempotent; run as root.
set -eu
export DEBIAN_FRONTEND=noninteractive
PKGS="build-essential meson ninja-build pkg-config clang llvm
 fuse3 libfuse3-dev qemu-utils qemu-system-x86
 restic libssl-dev zstd libcryptsetup-dev cryptsetup-bin
 virtnbdbackup liblz4-dev
 nbdkit nbdkit-plugin-dev libnbd-bin
 libguestfs-tools libguestfs-dev libguestfs-xfs linux-image-amd64 ntfs-3g
 xfsprogs lvm2 e2fsprogs
 libzstd-dev libdeflate-dev zlib1g-dev libsqlite3-dev libjson-c-dev libxml2-dev libxxhash-dev
 sqlite3 xxhash jq attr rsync python3 libxml2-utils libvirt-clients
 libsystemd-dev systemd libvirt-daemon-system
 libssl-dev zstd liblzo2-dev lzop
 libarchive-dev libarchive-tools
 librbd-dev librados-dev ceph-mon ceph-osd ceph-common"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q $missing
fi
