#!/bin/bash
# readonly-repo.sh — a repository on a read-only bind mount scans, mounts and
# reads exactly (the catalog lives outside it).
. "$SRCDIR/tests/fuse/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root for a bind mount"
R=$T/repo RO=$T/ro M=$T/mnt
mkdir -p "$R/vm1/2026-10-01T030000Z" "$R/vm1/2026-10-02T030000Z" "$RO"
qemu-img create -q -f qcow2 "$R/vm1/2026-10-01T030000Z/vda.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x5a 2M 3M" "$R/vm1/2026-10-01T030000Z/vda.qcow2" >/dev/null
qemu-img create -q -f qcow2 -F qcow2 -b ../2026-10-01T030000Z/vda.qcow2 "$R/vm1/2026-10-02T030000Z/vda.qcow2"
qemu-io -f qcow2 -c "write -c -P 0x6b 4M 64k" "$R/vm1/2026-10-02T030000Z/vda.qcow2" >/dev/null
mount --bind "$R" "$RO" || skip "bind mount not permitted here"
trap 'fusermount3 -u "$M" 2>/dev/null || true; umount "$RO" 2>/dev/null || umount -l "$RO" 2>/dev/null || true; cleanup' EXIT
mount -o remount,bind,ro "$RO" || skip "read-only remount not permitted here"
touch "$RO/x" 2>/dev/null && fail "bind mount is writable"
"$BACKUPFS" scan --catalog "$T/cat.db" "$RO" >/dev/null || fail "scan of a read-only repository failed"
bfs_mount "$RO" "$M"
oracle "$T/o.raw" "$R/vm1/2026-10-02T030000Z/vda.qcow2"
cmp "$T/o.raw" "$M/vm1/latest/disks/vda.img" || fail "read through a read-only repository differs"
ok "read-only repository: scanned, mounted, read exactly"
bfs_umount "$M"
# the daemon closes its files as it exits: retry the bind unmount briefly
for _ in $(seq 50); do umount "$RO" 2>/dev/null && break; sleep 0.1; done
if mountpoint -q "$RO"; then fail "$RO still busy 5 s after the unmount"; fi
