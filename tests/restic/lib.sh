# lib.sh — shared by the restic suite (sourced): the catalog suite's
# helpers ($T, check, check_match, finish) plus repositories made by
# Debian's restic at test time.
#
# make_image FILE MiB      raw image: random data, a 0x5a pattern (qemu-io),
#                          and holes (never written)
# change_image FILE        rewrite some random ranges, fill part of a hole
# make_repo DIR VER [COMP] restic init --repository-version VER; then four
#                          snapshots: vda.img (tag daily, host hostA), the
#                          changed vda.img, vda.img grown to 40 MiB, and a
#                          directory tree/ (empty file, setuid file, symlink,
#                          a 3 MB random file); COMP = off|auto|max (v2 only)
# snaps DIR                snapshot ids, oldest first (restic snapshots)
# dump DIR SNAP PATH OUT   restic dump into a file (never a pipe)
: "${SRCDIR:?SRCDIR not set (run through meson test)}"
: "${RESTIC_READ:?RESTIC_READ not set (run through meson test)}"
command -v restic >/dev/null || { echo "SKIP: restic not installed"; exit 77; }
command -v qemu-io >/dev/null || { echo "SKIP: qemu-io not installed"; exit 77; }
# shellcheck source=../catalog/lib.sh
. "$SRCDIR/tests/catalog/lib.sh"

export RESTIC_PASSWORD_FILE=$T/pw RESTIC_CACHE_DIR=$T/restic-cache
printf 'correct horse battery\n' >"$T/pw"
R() { restic -q "$@"; }

make_image() {
  local f=$1 mib=$2
  qemu-img create -q -f raw "$f" "${mib}M"
  dd if=/dev/urandom of="$f" bs=1M count=4 conv=notrunc status=none
  qemu-io -f raw -c 'write -q -P 0x5a 12M 2M' "$f" >/dev/null
  dd if=/dev/urandom of="$f" bs=1M seek=14 count=6 conv=notrunc status=none
  dd if=/dev/urandom of="$f" bs=4k seek=$((27 * 256)) count=3 conv=notrunc \
     status=none
}

change_image() {
  local f=$1
  dd if=/dev/urandom of="$f" bs=1M seek=2 count=1 conv=notrunc status=none
  dd if=/dev/urandom of="$f" bs=64k seek=$((8 * 16)) count=5 conv=notrunc \
     status=none
  qemu-io -f raw -c 'write -q -P 0x11 17M 300k' "$f" >/dev/null
}

make_repo() {
  local d=$1 ver=$2 comp=${3:-} img=$T/img.$$
  local c=()
  [ -n "$comp" ] && c=(--compression "$comp")
  R init -r "$d" --repository-version "$ver" >/dev/null
  make_image "$img" 32
  R -r "$d" "${c[@]}" backup --host hostA --tag daily --stdin \
    --stdin-filename vda.img <"$img" >/dev/null
  change_image "$img"
  R -r "$d" "${c[@]}" backup --host hostB --stdin --stdin-filename vda.img \
    <"$img" >/dev/null
  qemu-img resize -q -f raw "$img" 40M
  dd if=/dev/urandom of="$img" bs=1M seek=36 count=1 conv=notrunc status=none
  R -r "$d" "${c[@]}" backup --host hostB --stdin --stdin-filename vda.img \
    <"$img" >/dev/null
  rm -rf "$T/tree"
  mkdir -p "$T/tree/sub/deeper"
  : >"$T/tree/empty.img"
  echo hello >"$T/tree/sub/small.txt"
  chmod 4750 "$T/tree/sub/small.txt"
  head -c 3000000 /dev/urandom >"$T/tree/sub/deeper/random.bin"
  ln -s ../empty.img "$T/tree/sub/link"
  (cd "$T" && R -r "$d" "${c[@]}" backup --host hostB tree >/dev/null)
  rm -f "$img"
}

snaps() { R -r "$1" snapshots --json | jq -r 'sort_by(.time) | .[].id'; }
dump() { R -r "$1" dump "$2" "$3" >"$4"; }
