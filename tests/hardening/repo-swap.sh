#!/bin/bash
# repo-swap.sh — issue 10 item 2: a catalogued image replaced between the
# scan and the first read, by a symlink to a host file or by a different
# regular file.  The mount (without inotify, so nothing rescans before the
# read) must refuse the open with EIO and log why, never serve the host's
# bytes; restore disk through the mount and restore/verify from the
# repository fail with a clear error; after the rescan a replaced regular
# file is served as the backup it now is.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"
R=$T/repo M=$T/mnt
t1=2026-10-01T030000Z t2=2026-10-02T030000Z
mk_pairs "$R" 4M "0 2M" "2M 1M" a b c
# the "host file": 4 MiB of a marker no image holds
python3 -c 'import sys; sys.stdout.write("HOSTSECRET\n" * 400000)' > "$T/secret"
noleak() {  # noleak FILE WHAT: FILE must not hold the host's bytes
  if [ -e "$1" ] && grep -q HOSTSECRET "$1"; then fail "$2: host bytes served"; fi
}

mkdir -p "$M"
MOUNTS="$MOUNTS $M"
"$BACKUPFS" mount -f -o "catalog=$T/cat.db,noinotify" "$R" "$M" 2>"$T/log" &
wait_for mountpoint -q "$M" || fail "not mounted: $(cat "$T/log")"
# the tree is built: look the disks up (no read yet), then swap
for vm in a b c; do stat "$M/$vm/$t2/disks/vda.img" >/dev/null; done
ln -sf "$T/secret" "$R/a/$t2/vda.qcow2"                 # the top image
ln -sf "$T/secret" "$R/b/$t1/vda.qcow2"                 # a backing layer
qemu-img create -q -f qcow2 "$T/other.qcow2" 4M
qemu-io -f qcow2 -c "write -P 0x77 0 4M" "$T/other.qcow2" >/dev/null
oracle "$T/other.raw" "$T/other.qcow2"
mv "$T/other.qcow2" "$R/c/$t2/vda.qcow2"                # another regular file

for vm in a b c; do
  rc=0; err=$(dd if="$M/$vm/$t2/disks/vda.img" of="$T/read-$vm" bs=64k 2>&1) || rc=$?
  [ $rc != 0 ] || fail "$vm: a swapped image was read ($(stat -c %s "$T/read-$vm") bytes)"
  echo "$err" | grep -q "Input/output error" || fail "$vm: not EIO: $err"
  noleak "$T/read-$vm" "$vm: read through the mount"
  cmp -s "$T/read-$vm" "$T/other.raw" && fail "$vm: the replacement file was served before a rescan"
done
ok "swapped top, swapped backing layer, replaced file: open fails EIO, nothing served"
grep -q "changed since the catalog was built" "$T/log" || fail "no log line: $(cat "$T/log")"
grep -q "is a symbolic link" "$T/log" || fail "log does not say symlink: $(cat "$T/log")"
ok "the log says why: $(grep -m1 'symbolic link' "$T/log")"

rc=0; out=$("$BACKUPFS" restore disk "$M/a/$t2" vda "$T/restored.raw" 2>&1) || rc=$?
[ $rc != 0 ] || fail "restore disk through the mount succeeded on a swapped image"
noleak "$T/restored.raw" "restore disk (mount)"
ok "restore disk through the mount refused: $(echo "$out" | tail -1)"

rc=0; out=$("$BACKUPFS" restore disk --catalog "$T/cat2.db" --repo "$R" "a@$t2" vda "$T/restored2.raw" 2>&1) || rc=$?
[ $rc != 0 ] || fail "restore disk --repo succeeded on a symlinked image"
noleak "$T/restored2.raw" "restore disk --repo"
rc=0; out=$("$BACKUPFS" verify --catalog "$T/cat2.db" --no-checksum "$R" b 2>&1) || rc=$?
[ $rc != 0 ] || fail "verify passed a chain whose base is a symlink: $out"
echo "$out" | grep -q HOSTSECRET && fail "verify printed host bytes"
ok "restore --repo and verify refuse the symlinked layers"

# after a rescan the replaced regular file is the backup: served exactly
sleep 2.2; ls "$M/c" >/dev/null
wait_for cmp "$T/other.raw" "$M/c/$t2/disks/vda.img" || fail "c: not healed after the rescan"
ok "after the rescan the replaced file is served as the new backup"
