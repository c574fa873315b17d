#!/bin/bash
# scan/list command lines: --help, usage errors, errors naming the file.
. "$(dirname "$0")/lib.sh"
rc() { "$@" >"$T/out" 2>&1 && echo 0 || echo $?; }
for c in scan list; do
  check "$c --help exits 0" "0" "$(rc "$BACKUPFS" $c --help)"
  check_match "$c --help shows usage" "usage: backupfs $c" "$(cat "$T/out")"
  check "$c without REPO: usage error" "2" "$(rc "$BACKUPFS" $c)"
  check "$c bad option: usage error" "2" "$(rc "$BACKUPFS" $c --frobnicate "$T")"
  check "$c missing repository: exit 1" "1" "$(rc "$BACKUPFS" $c "$T/nope")"
  check_match "$c missing repository: named" "$T/nope: No such file" "$(cat "$T/out")"
done
touch "$T/file"
check "scan of a file: exit 1" "1" "$(rc "$BACKUPFS" scan "$T/file")"
check_match "scan of a file: reason" "not a directory" "$(cat "$T/out")"
mkdir "$T/empty"
check_match "empty repository" "0 VMs, 0 backups, 0 images, 0 broken" \
  "$("$BACKUPFS" scan "$T/empty")"
check "list of an empty repository: header only" "1" \
  "$("$BACKUPFS" list "$T/empty" | wc -l)"
check "scan --quiet prints nothing" "" "$("$BACKUPFS" scan -q "$T/empty")"
check "catalog in an unwritable place: exit 1" "1" \
  "$(rc "$BACKUPFS" scan --catalog /proc/nope/c.db "$T/empty")"
check_match "catalog error names the file" "/proc/nope/c.db" "$(cat "$T/out")"
mkdir -p "$T/r/vm/2026-10-01T00:00:00Z"
qcow2 "$T/r/vm/2026-10-01T00:00:00Z/vda.qcow2" 1M
check "options after the operands" "vm" "$("$BACKUPFS" list "$T/r" vm --json | jq -r '.vms[0].name')"
finish
