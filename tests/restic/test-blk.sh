#!/bin/bash
# A restic file as a struct bfs_blk: bfs_blk_pread of every byte equals
# restic dump, block status covers the size with DATA and ZERO only (the
# zero chunks of the image's holes), each range inside its decode unit.
. "$(dirname "$0")/lib.sh"
repo=$T/repo
make_repo "$repo" 2 auto
mapfile -t ids < <(snaps "$repo")
set +e
out=$("$RESTIC_READ" blk "$repo" "$T/pw" "${ids[0]}" /vda.img "$T/mine")
rc=$?
set -e
[ "$rc" = 77 ] && { echo "SKIP: $out"; exit 77; }
check "blk read succeeds" 0 "$rc"
dump "$repo" "${ids[0]}" /vda.img "$T/dump"
check "bfs_blk_pread equals restic dump" "$(sha256sum <"$T/dump")" "$(sha256sum <"$T/mine")"
read -r _ data _ zero _ hole <<<"$out"
check "block status covers the size" "$(stat -c %s "$T/dump")" "$((data + zero + hole))"
check "no holes" 0 "$hole"
check_match "zero chunks reported ZERO" '^[1-9]' "$zero"
# the zero ranges read as zeros in the dump, the rest is not all zeros
check "data ranges hold data" 1 "$([ "$data" -ge $((12 << 20)) ] && echo 1)"
finish
