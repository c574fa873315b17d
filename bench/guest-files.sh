#!/bin/bash
# bench/guest-files.sh — guest files: time to the first listing of
# files/etc (without and with a file index) and copy-out throughput of a
# 200 MiB file, against `guestmount --ro -i` and `virt-copy-out` on the same
# image in the same run.  Not a test: prints figures and ratios.
#
#   bench/guest-files.sh [BACKUPFS]     (default: build/backupfs)
#
# Appliances run under TCG unless BENCH_KVM=1 or LIBGUESTFS_BACKEND_SETTINGS
# is set (nested KVM is unusable on the build machine).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
B=$(realpath "${1:-$here/build/backupfs}")
[ -x "$B" ] || { echo "no backupfs binary at $B" >&2; exit 2; }
for c in mkfs.ext4 guestmount guestunmount virt-copy-out qemu-img fusermount3; do
  command -v $c >/dev/null || { echo "needs $c" >&2; exit 2; }
done
# KVM is not usable inside this build machine even where /dev/kvm exists:
# TCG unless the caller says otherwise (BENCH_KVM=1 or its own settings).
if [ -z "${LIBGUESTFS_BACKEND_SETTINGS:-}" ] && [ -z "${BENCH_KVM:-}" ]; then
  export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
fi
echo "LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-}"

W=$(mktemp -d /tmp/bfs-guest-bench.XXXXXX)
M=$W/mnt G=$W/gmnt
mkdir -p "$M" "$G" "$W/cache" "$W/vco"
export XDG_CACHE_HOME=$W/cache
MPID=
cleanup() {
  [ -n "$MPID" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
  fusermount3 -uz "$M" 2>/dev/null || true
  grep -q " $G fuse" /proc/mounts && guestunmount "$G" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }

echo "== fixture: ext4 root made on the host (mkfs.ext4 -d), 300 files in /etc, 200 MiB file"
# no appliance needed to build it: a bare ext4 root (no partition table) that
# inspection recognises by its /etc/fstab
R=$W/root
mkdir -p "$R/etc" "$R/bin" "$R/data"
printf 'LABEL=root / ext4 defaults 0 1\n' > "$R/etc/fstab"
printf 'bench\n' > "$R/etc/hostname"
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n' > "$R/etc/os-release"
for i in $(seq 300); do echo "setting $i" > "$R/etc/file$i.conf"; done
head -c 200M /dev/urandom > "$R/data/big200.bin"
cp "$R/data/big200.bin" "$W/big200.bin"
mkfs.ext4 -q -L root -d "$R" "$W/vda.raw" 1G
rm -rf "$R"
T=2026-01-01T000000Z
mkdir -p "$W/repo/vm1/$T"
qemu-img convert -O qcow2 "$W/vda.raw" "$W/repo/vm1/$T/vda.qcow2"
rm -f "$W/vda.raw"
IMG=$W/repo/vm1/$T/vda.qcow2
CAT=$W/catalog.db

start_mount() {
  "$B" mount -f -o "catalog=$CAT" "$W/repo" "$M" >> "$W/mount.log" 2>&1 &
  MPID=$!
  until grep -q " $M fuse" /proc/mounts; do sleep 0.05; done
}
stop_mount() {
  kill "$MPID"; wait "$MPID" 2>/dev/null || true; MPID=
  fusermount3 -uz "$M" 2>/dev/null || true
}
F=$M/vm1/$T/files

echo "== backupfs, no index"
start_mount
t=$(now); ls "$F/etc" > /dev/null; ours_first=$(since "$t")
t=$(now); cp "$F/data/big200.bin" "$W/out1"; ours_copy=$(since "$t")
cmp -s "$W/out1" "$W/big200.bin" || { echo "backupfs copy differs!"; exit 1; }
rm -f "$W/out1"
t=$(now)
"$B" index --catalog "$CAT" --mountpoint "$M" "$W/repo" > /dev/null
ours_index=$(since "$t")
stop_mount

echo "== backupfs, with index"
start_mount
t=$(now); ls "$F/etc" > /dev/null; ours_first_idx=$(since "$t")
stop_mount

echo "== guestmount --ro -i"
t=$(now)
guestmount --ro -i --format=qcow2 -a "$IMG" "$G"
ls "$G/etc" > /dev/null; gm_first=$(since "$t")
t=$(now); cp "$G/data/big200.bin" "$W/out2"; gm_copy=$(since "$t")
cmp -s "$W/out2" "$W/big200.bin" || { echo "guestmount copy differs!"; exit 1; }
rm -f "$W/out2"
guestunmount "$G"

echo "== virt-copy-out"
t=$(now)
virt-copy-out --format=qcow2 -a "$IMG" /data/big200.bin "$W/vco/"
vco_total=$(since "$t")
cmp -s "$W/vco/big200.bin" "$W/big200.bin" || { echo "virt-copy-out copy differs!"; exit 1; }

mib=200
printf '\n%-44s %10s\n' "measure" "value"
printf '%-44s %9.2fs\n' "first listing files/etc, backupfs (no index)" "$ours_first"
printf '%-44s %9.3fs\n' "first listing files/etc, backupfs (index)" "$ours_first_idx"
printf '%-44s %9.2fs\n' "first listing /etc, guestmount --ro -i" "$gm_first"
printf '%-44s %9.2fs\n' "backupfs index (one point in time)" "$ours_index"
printf '%-44s %7.1f MiB/s\n' "copy 200 MiB, backupfs (appliance up)" "$(echo "$mib / $ours_copy" | bc -l)"
printf '%-44s %7.1f MiB/s\n' "copy 200 MiB, guestmount (appliance up)" "$(echo "$mib / $gm_copy" | bc -l)"
printf '%-44s %7.1f MiB/s\n' "copy 200 MiB, virt-copy-out (incl. launch)" "$(echo "$mib / $vco_total" | bc -l)"
printf '%-44s %9.2fs\n' "cold: launch + copy, backupfs" "$(echo "$ours_first + $ours_copy" | bc -l)"
printf '%-44s %9.2fs\n' "cold: launch + copy, guestmount" "$(echo "$gm_first + $gm_copy" | bc -l)"
printf '%-44s %9.2fs\n' "cold: virt-copy-out" "$vco_total"
echo
echo "ratios (> 1: backupfs better)"
printf '  first listing, no index vs guestmount:   %sx\n' "$(ratio "$gm_first" "$ours_first")"
printf '  first listing, index vs guestmount:      %sx\n' "$(ratio "$gm_first" "$ours_first_idx")"
printf '  copy throughput vs guestmount:           %sx\n' "$(ratio "$gm_copy" "$ours_copy")"
printf '  copy throughput vs virt-copy-out:        %sx\n' "$(ratio "$vco_total" "$ours_copy")"
printf '  cold launch + copy vs virt-copy-out:     %sx\n' "$(ratio "$vco_total" "$(echo "$ours_first + $ours_copy" | bc -l)")"
