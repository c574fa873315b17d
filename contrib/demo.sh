#!/bin/bash
# demo.sh — the Quick start's first command: install what backupfs needs,
# build it, make a demo repository with real guests (contrib/make-demo-repo.sh)
# and mount it at demo/mnt, then show the tree, the catalog and guest files.
# Leaves the mount up for you to browse; `fusermount3 -u demo/mnt` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
if [ "$(id -u)" = 0 ]; then contrib/install-deps.sh; fi
# Inside a VM nested KVM is often unusable; libguestfs then runs on TCG.
# (This is the demo's choice only; backupfs itself uses libguestfs' default.)
if [ -z "${LIBGUESTFS_BACKEND_SETTINGS+x}" ] && systemd-detect-virt -q --vm 2>/dev/null; then
  export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
fi
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
bfs=$top/build/backupfs
repo=$top/demo/repo mnt=$top/demo/mnt
if [ ! -d "$repo" ]; then
  echo "== making the demo repository (a few real guest disks; ~1 min)"
  contrib/make-demo-repo.sh "$repo.tmp" && mv "$repo.tmp" "$repo"
fi
mkdir -p "$mnt"
# an earlier demo's mount (or a dead one) goes first; lazily if it is busy
if grep -qs " $mnt fuse" /proc/mounts; then
  fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
fi

echo "== backupfs mount $repo $mnt"
"$bfs" mount -o catalog="$top/demo/catalog.sqlite" "$repo" "$mnt"
echo "== backupfs list"
"$bfs" list --catalog "$top/demo/catalog.sqlite" "$repo"
echo "== the tree"
# (files/ is pruned: each point in time's guest files start an appliance)
(cd "$mnt" && find . -maxdepth 4 -name files -prune -print -o -print | sort | sed 's|^\./||')
echo "== web01/latest -> $(readlink "$mnt/web01/latest")"
echo "== web01/latest/backup.json"
cat "$mnt/web01/latest/backup.json"; echo
echo "== sha256 of the newest root disk, through the mount and through qemu-img"
sha256sum "$mnt/web01/latest/disks/vda.img" | cut -d' ' -f1
tmp=$(mktemp); qemu-img convert -O raw "$(ls "$repo"/web01/2026.11.22.03.00.00/root.*.qcow2)" "$tmp"
sha256sum "$tmp" | cut -d' ' -f1; rm -f "$tmp"
if [ -d "$mnt/web01/latest/files" ]; then
  echo "== guest files (the first look starts a libguestfs appliance)"
  ls -l "$mnt/web01/latest/files/etc"
  for t in $(ls "$mnt/web01" | grep -v latest); do
    printf '%s: %s' "$t" "$(cat "$mnt/web01/$t/files/etc/motd")"; echo
  done
fi
echo
echo "Mounted at $mnt — browse it, then: fusermount3 -u $mnt"
echo "(guest appliances keep the disks open until 5 minutes idle; before that,"
echo " build/backupfs umount $mnt stops them and unmounts)"
