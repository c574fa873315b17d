#!/bin/bash
# hostile-names.sh — names with spaces, newlines, non-UTF-8 bytes and 250
# bytes; symlinks in the repository pointing outside it (never followed out).
. "$SRCDIR/tests/fuse/lib.sh"
# names are passed through byte for byte: parse JSON with surrogateescape
jget() {
  PYTHONIOENCODING=utf-8:surrogateescape python3 -c 'import json,sys; j=json.loads(open(sys.argv[1],"rb").read().decode("utf-8","surrogateescape")); print(eval(sys.argv[2]))' "$1" "$2"
}
R=$T/repo M=$T/mnt
mkimg() { mkdir -p "$(dirname "$1")"; qemu-img create -q -f qcow2 "$1" 4M
          qemu-io -f qcow2 -c "write -P $2 0 1M" "$1" >/dev/null; }
long=$(printf 'v%.0s' $(seq 250))
mkimg "$R/web server/2026-10-01T030000Z/disk one.qcow2" 0x11
mkimg "$R/$(printf 'line\nbreak')/2026-10-01T030000Z/vda.qcow2" 0x22
mkimg "$R/$(printf 'caf\xe9')/2026-10-01T030000Z/vda.qcow2" 0x33
mkimg "$R/$long/2026-10-01T030000Z/vda.qcow2" 0x44
# symlinks out of the repository: a VM dir, a backup dir and an image
mkdir -p "$T/outside/2026-10-01T030000Z"
qemu-img create -q -f qcow2 "$T/outside/2026-10-01T030000Z/vda.qcow2" 4M
ln -s "$T/outside" "$R/escape-vm"
mkdir -p "$R/linky"; ln -s "$T/outside/2026-10-01T030000Z" "$R/linky/2026-10-01T030000Z"
mkdir -p "$R/linkimg/2026-10-01T030000Z"
ln -s "$T/outside/2026-10-01T030000Z/vda.qcow2" "$R/linkimg/2026-10-01T030000Z/vda.qcow2"
# an image whose backing file names a path outside the repository
mkdir -p "$R/evilback/2026-10-01T030000Z"
qemu-img create -q -f qcow2 -u -F raw -b /etc/passwd "$R/evilback/2026-10-01T030000Z/vda.qcow2" 4M

bfs_mount "$R" "$M"
n=0
for vm in "web server" "$(printf 'line\nbreak')" "$(printf 'caf\xe9')" "$long"; do
  d="$M/$vm/latest"
  [ -f "$d/backup.json" ] || fail "VM '$vm' missing: $(ls "$M" | od -c | head -3)"
  img=$(ls "$d/disks/" | head -1)
  # JSON is UTF-8; a name that is not has its exact bytes in image_hex
  rel=$(jget "$d/backup.json" "bytes.fromhex(j['disks'][0]['image_hex']).decode('utf-8','surrogateescape') if 'image_hex' in j['disks'][0] else j['disks'][0]['image']")
  oracle "$T/o.raw" "$R/$rel"
  cmp -s "$T/o.raw" "$d/disks/$img" || fail "'$vm' disk differs from the oracle"
  n=$((n + 1))
done
ok "$n VMs with hostile names listed and read exactly"
for vm in escape-vm linky linkimg; do
  if [ -d "$M/$vm" ]; then
    for f in "$M/$vm"/*/disks/*.img; do
      [ -e "$f" ] || continue
      fail "$vm: an image reached through a symlink out of the repository is served: $f"
    done
  fi
done
ok "symlinks pointing out of the repository are not followed"
if [ -d "$M/evilback/latest" ]; then
  st=$(jget "$M/evilback/latest/backup.json" "j['status']")
  if [ "$st" = ok ]; then
    head -c 64 "$M/evilback/latest/disks/vda.img" | grep -q root && fail "served /etc/passwd as a backing file"
  fi
  ok "backing file outside the repository: status '$st'"
fi
stat "$M" >/dev/null || fail "mount went down"
bfs_umount "$M"
