# lib.sh — shared by the restore suite's shell tests (sourced).
#
# fail MSG        print and exit 1          skip MSG   print and exit 77
# tmpdir          $T, removed at exit (unmounting $MNT first when set)
# make_repo DIR   a generic-layout repository:
#   web01/2026-10-01T030000Z/vda.qcow2   full, 256 MiB, patterns + a zero range
#   web01/2026-10-01T030000Z/vdb.qcow2   full, 64 MiB, zlib-compressed clusters
#   web01/2026-10-02T030000Z/vda.qcow2   incremental on ../2026-10-01.../vda.qcow2
#   web01/2026-10-02T030000Z/vdb.qcow2   incremental on ../2026-10-01.../vdb.qcow2
# oracle IMG OUT  qemu-img convert -O raw into a file (never a pipe)
# mount_repo REPO MNT   backupfs mount (exit 77 when the mount is not built)
set -u

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
ok() { echo "ok: $*"; }

: "${BACKUPFS:?BACKUPFS must name the backupfs binary}"
for p in qemu-img qemu-io; do
  command -v $p >/dev/null || skip "$p not installed"
done

MNT=
cleanup() {
  if [ -n "$MNT" ] && mountpoint -q "$MNT" 2>/dev/null; then
    # backupfs umount ends the daemon with its appliances (fusermount3 -u is
    # refused while an appliance holds a disk, and -uz left them running)
    "$BACKUPFS" umount --timeout 20 "$MNT" >/dev/null 2>&1 ||
      fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
  fi
  [ -n "${T:-}" ] && rm -rf "$T"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-restore.XXXXXX")
trap cleanup EXIT

T1=2026-10-01T030000Z
T2=2026-10-02T030000Z

make_repo() {
  local r=$1
  mkdir -p "$r/web01/$T1" "$r/web01/$T2"
  qemu-img create -q -f qcow2 "$r/web01/$T1/vda.qcow2" 256M
  qemu-io -f qcow2 -c 'write -P 0x11 0 4M' -c 'write -P 0x22 100M 2M' \
    -c 'write -P 0x44 255M 1M' -c 'write -z 8M 1M' \
    "$r/web01/$T1/vda.qcow2" >/dev/null
  # compressible text, stored as compressed clusters
  yes "backupfs restore test line, compressible" | head -c 8M > "$T/text.raw"
  truncate -s 64M "$T/text.raw"
  qemu-img convert -c -f raw -O qcow2 "$T/text.raw" "$r/web01/$T1/vdb.qcow2"
  rm -f "$T/text.raw"
  qemu-img create -q -f qcow2 -F qcow2 -b "../$T1/vda.qcow2" "$r/web01/$T2/vda.qcow2"
  qemu-io -f qcow2 -c 'write -P 0x33 1M 1M' -c 'write -z 100M 64k' \
    -c 'write -P 0x55 200M 3M' "$r/web01/$T2/vda.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -F qcow2 -b "../$T1/vdb.qcow2" "$r/web01/$T2/vdb.qcow2"
  qemu-io -f qcow2 -c 'write -P 0x66 32M 1M' "$r/web01/$T2/vdb.qcow2" >/dev/null
  touch -d '2026-10-01 03:00' "$r/web01/$T1"/*
  touch -d '2026-10-02 03:00' "$r/web01/$T2"/*
}

oracle() { qemu-img convert -O raw "$1" "$2"; }

# the catalog is available when verify is built (not the pending stub)
need_catalog() {
  "$BACKUPFS" verify --help >/dev/null 2>&1 || skip "catalog not built yet"
}

mount_repo() {
  local repo=$1 mnt=$2
  [ -c /dev/fuse ] || skip "no /dev/fuse"
  command -v fusermount3 >/dev/null || skip "fusermount3 not installed"
  "$BACKUPFS" mount --help >/dev/null 2>&1 || skip "mount not built yet"
  mkdir -p "$mnt"
  "$BACKUPFS" mount -o "catalog=$T/catalog.db" "$repo" "$mnt" \
    || skip "backupfs mount failed (mount not working yet?)"
  MNT=$mnt
  for _ in $(seq 50); do
    [ -e "$mnt/web01/latest/backup.json" ] && return 0
    sleep 0.1
  done
  skip "mount shows no web01/latest/backup.json yet"
}
