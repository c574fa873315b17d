#!/bin/bash
# completion.sh — the bash completion completes what the commands take:
# subcommands, per-command options, -o keys and loglevel= values, and VM
# and VM@TIME names of a real repository (from `backupfs list --json`).
set -eu
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
: "${BACKUPFS:?}" "${SRCDIR:?}"
command -v qemu-img >/dev/null || skip "qemu-img is missing"
command -v python3 >/dev/null || skip "python3 is missing"
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-comp.XXXXXX")
trap 'rm -rf "$T"' EXIT
for d in web01/2026-10-01T030000Z web01/2026-10-02T030000Z db01/2026-10-01T040000Z; do
  mkdir -p "$T/repo/$d"
  qemu-img create -q -f qcow2 "$T/repo/$d/vda.qcow2" 1M
done
"$BACKUPFS" scan -q --catalog "$T/c.db" "$T/repo"
mkdir -p "$T/bin"
ln -s "$BACKUPFS" "$T/bin/backupfs"
PATH=$T/bin:$PATH
. "$SRCDIR/contrib/backupfs.bash-completion"
# comp WORDS...: COMPREPLY for the cursor on the last word, space-joined
comp() {
  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
  _backupfs
  printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' '   # order-free
}
expect() {
  local want=$1; shift
  local got
  got=$(comp "$@")
  [ "$got" = "$want" ] || fail "complete '$*': got '$got', want '$want'"
  echo "ok: '$*' -> $got"
}
expect "list" backupfs li
expect "--no-scan" backupfs list --no
expect "--reread --reset-checksums" backupfs verify --re
expect "allow_other,loglevel=debug" backupfs mount -o allow_other,loglevel=d
expect "allow_other,allow_empty allow_other,allow_other allow_other,allow_root" backupfs mount -o allow_other,allow
expect "db01 web01" backupfs list --catalog "$T/c.db" "$T/repo" ""
expect "web01 web01@2026-10-01T030000Z web01@2026-10-02T030000Z web01@latest" \
  backupfs verify --catalog "$T/c.db" "$T/repo" we
expect "db01 db01@2026-10-01T040000Z db01@latest" \
  backupfs restore disk --repo "$T/repo" --catalog "$T/c.db" d
expect "db01 db01@2026-10-01T040000Z db01@latest" \
  backupfs restore file --repo "$T/repo" --catalog "$T/c.db" d
expect "" backupfs restore file --repo "$T/repo" db01@latest ""
expect "tar" backupfs restore file --format t
expect "qcow2" backupfs restore disk --format q
expect "--force --format" backupfs restore file --f
