# lib.sh — shared by the catalog tests: a scratch directory, qemu-img
# helpers and assertions.  Sourced; expects $BACKUPFS.
set -euo pipefail
: "${BACKUPFS:?BACKUPFS not set (run through meson test)}"
for p in qemu-img jq; do
  command -v $p >/dev/null || { echo "SKIP: $p not installed"; exit 77; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-catalog.XXXXXX")
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME=$T/cache
fails=0

qcow2() {   # qcow2 FILE SIZE [BACKING]   (backing recorded as given)
  local f=$1 size=$2 b=${3:-}
  mkdir -p "$(dirname "$f")"
  if [ -n "$b" ]; then
    qemu-img create -q -f qcow2 -u -b "$b" -F qcow2 "$f" "$size"
  else
    qemu-img create -q -f qcow2 "$f" "$size"
  fi
}

check() {   # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then echo "ok: $1"
  else echo "FAIL: $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi
}

check_match() {   # check_match DESCRIPTION REGEX ACTUAL
  if [[ "$3" =~ $2 ]]; then echo "ok: $1"
  else echo "FAIL: $1: [$3] does not match /$2/"; fails=$((fails + 1)); fi
}

# list --json of a repository, then jq queries on it
listj() { "$BACKUPFS" list --json "$@"; }
q() { jq -r "$1" <<<"$J"; }
# the backup named $2 of VM $1 as compact JSON
backup() { jq -c --arg vm "$1" --arg b "$2" \
  '.vms[] | select(.name == $vm) | .backups[] | select(.name == $b)' <<<"$J"; }

finish() {
  if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed"; exit 1; fi
  echo "all checks passed"
}
