# lib.sh — shared by the rbd suite (sourced): the catalog suite's helpers
# ($T, check, check_match, finish) plus a single-node Ceph cluster
# (tests/lib/ceph.sh) started in $T/ceph, stopped (OSD first, by PID) and
# every mount made with mount_rbd unmounted in the EXIT trap, and every
# process whose pid file is in PIDFILES (nbdkit of a quick restore) ended.
#
# mount_rbd MNT [OPTS]   backupfs mount rbd:$POOL MNT -o ceph_conf=...,OPTS
# make_image FILE MiB    raw file: random data, a 0x5a pattern, holes
# R ARGS                 rbd -c $CEPH_CONF ARGS
: "${SRCDIR:?SRCDIR not set (run through meson test)}"
if [ "${BFS_SANITIZED:-0}" = 1 ]; then
  echo "SKIP: the rbd suite starts a Ceph cluster (mon + OSD, ~5 s and"
  echo "      ~1 GiB of RAM); it runs in the normal build only"
  exit 77
fi
command -v qemu-io >/dev/null || { echo "SKIP: qemu-io not installed"; exit 77; }
# shellcheck source=../catalog/lib.sh
. "$SRCDIR/tests/catalog/lib.sh"
# shellcheck source=../lib/ceph.sh
. "$SRCDIR/tests/lib/ceph.sh"

MOUNTS=() PIDFILES=()
rbd_cleanup() {
  local m
  for m in "${PIDFILES[@]}"; do
    [ -s "$m" ] && kill "$(cat "$m")" 2>/dev/null || true
  done
  for m in "${MOUNTS[@]}"; do
    mountpoint -q "$m" && fusermount3 -u "$m" 2>/dev/null
  done
  ceph_stop
  rm -rf "$T"
}
trap rbd_cleanup EXIT
ceph_start "$T/ceph" || { echo "SKIP: the test Ceph cluster did not start"; exit 77; }
POOL=bfs
ceph_pool "$POOL" || { echo "SKIP: cannot create pool $POOL"; exit 77; }
R() { timeout 120 rbd -c "$CEPH_CONF" "$@"; }

mount_rbd() {
  local m=$1 extra=${2:+,$2}
  mkdir -p "$m"
  "$BACKUPFS" mount "rbd:$POOL" "$m" -o "ceph_conf=$CEPH_CONF$extra" ||
    return 1
  MOUNTS+=("$m")
}

make_image() {
  local f=$1 mib=$2
  qemu-img create -q -f raw "$f" "${mib}M"
  dd if=/dev/urandom of="$f" bs=1M count=3 conv=notrunc status=none
  qemu-io -f raw -c 'write -q -P 0x5a 9M 2M' "$f" >/dev/null
  dd if=/dev/urandom of="$f" bs=4k seek=$((20 * 256 + 3)) count=5 \
     conv=notrunc status=none
}
