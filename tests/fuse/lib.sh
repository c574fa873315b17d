# lib.sh — shared by the fuse suite's shell tests (sourced).
#
# Skips (exit 77) when FUSE or the tools are missing, makes a scratch dir,
# and mounts with a trap that always unmounts (fusermount3 -u) and removes
# the scratch dir.  Every mount uses its own catalog file in the scratch dir.
set -eu

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

[ -c /dev/fuse ] || skip "/dev/fuse is missing"
command -v fusermount3 >/dev/null || skip "fusermount3 is missing"
command -v qemu-img >/dev/null || skip "qemu-img is missing"
command -v qemu-io >/dev/null || skip "qemu-io is missing"
command -v python3 >/dev/null || skip "python3 is missing"
: "${BACKUPFS:?}" "${SRCDIR:?}"

T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-fuse.XXXXXX")
MOUNTS=""
cleanup() {
  for m in $MOUNTS; do
    fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT INT TERM

# bfs_mount REPO MOUNTPOINT [extra args]: mount (daemonised) and wait;
# $MORE_REPOS (space-separated) are more stores mounted with REPO
bfs_mount() {
  local repo=$1 mp=$2; shift 2
  mkdir -p "$mp"
  MOUNTS="$MOUNTS $mp"
  "$BACKUPFS" mount -o "catalog=$T/catalog-$(basename "$mp").db" "$@" \
    "$repo" ${MORE_REPOS:-} "$mp" || fail "mount $repo on $mp failed"
  for _ in $(seq 50); do
    mountpoint -q "$mp" && return 0
    sleep 0.1
  done
  fail "$mp: not mounted after 5 s"
}

bfs_umount() {
  fusermount3 -u "$1" || fail "fusermount3 -u $1"
}

# oracle RAWFILE IMAGE: qemu-img convert into a file (never a pipe)
oracle() {
  qemu-img convert -O raw "$2" "$1"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# jget FILE EXPR: evaluate a python expression on the parsed JSON (as j)
jget() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# wait_for CMD...: retry up to 10 s
wait_for() {
  for _ in $(seq 100); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# compare_disks MOUNTPOINT REPO: every disk of every backup against the
# qemu-img oracle of its top image (sha256); prints how many were compared
compare_disks() {
  local mp=$1 repo=$2 n=0
  for bj in "$mp"/*/*/backup.json; do
    local dir=${bj%/backup.json}
    [ -L "$dir" ] && continue
    case " ${SKIP_CMP:-} " in *" $dir "*) continue ;; esac
    local status
    status=$(jget "$bj" "j['status']")
    [ "$status" = ok ] || continue
    local ndisks
    ndisks=$(jget "$bj" "len(j['disks'])")
    for i in $(seq 0 $((ndisks - 1))); do
      local name image
      name=$(jget "$bj" "j['disks'][$i]['name']")
      image=$(jget "$bj" "j['disks'][$i]['image']")
      oracle "$T/oracle.raw" "$repo/$image"
      [ "$(sha "$dir/disks/$name.img")" = "$(sha "$T/oracle.raw")" ] ||
        fail "$dir/disks/$name.img differs from qemu-img convert of $image"
      n=$((n + 1))
    done
  done
  rm -f "$T/oracle.raw"
  echo "$n"
}
