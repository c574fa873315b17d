#!/bin/bash
# Every snapshot of v1 and v2 (compression off/auto/max) repositories read
# through the reader equals `restic dump`; random-offset reads (1 and 4
# threads) equal the dumped bytes; the snapshot list matches restic's.
# Argument: the repository kind, 1 or 2:off, 2:auto, 2:max.
. "$(dirname "$0")/lib.sh"

for kind in "$@"; do
  ver=${kind%%:*} comp=
  [ "$kind" != "$ver" ] && comp=${kind#*:}
  repo=$T/repo-$ver-$comp
  make_repo "$repo" "$ver" "$comp"
  mapfile -t ids < <(snaps "$repo")
  check "v$kind: four snapshots" 4 "${#ids[@]}"

  out=$("$RESTIC_READ" snapshots "$repo" "$T/pw")
  check "v$kind: repository version" "version $ver" "$(head -1 <<<"$out")"
  mine=$(tail -n +2 <<<"$out" | cut -d' ' -f1)
  check "v$kind: snapshot ids, oldest first" "$(printf '%s\n' "${ids[@]}")" "$mine"
  # restic's view of each snapshot: time (to the second), host, paths, tags
  theirs=$(R -r "$repo" snapshots --json | jq -r 'sort_by(.time) | .[] |
    "\(.id) \(.time | sub("\\.[0-9]+"; "") | sub("Z$"; "")) \(.hostname)" +
    ([.paths[] | " path=\(.)"] | join("")) +
    ([(.tags // [])[] | " tag=\(.)"] | join(""))')
  mine=$(tail -n +2 <<<"$out" | sed -E 's/\.[0-9]+Z / /')
  check "v$kind: time, host, paths, tags" "$theirs" "$mine"

  for i in 0 1 2; do
    dump "$repo" "${ids[$i]}" /vda.img "$T/dump"
    "$RESTIC_READ" cat "$repo" "$T/pw" "${ids[$i]}" /vda.img "$T/mine" ||
      echo "FAIL: v$kind snapshot $i: cat"
    check "v$kind snapshot $i: bytes equal restic dump" \
      "$(sha256sum <"$T/dump")" "$(sha256sum <"$T/mine")"
    # odd block size: reads straddle blob boundaries
    "$RESTIC_READ" cat "$repo" "$T/pw" "${ids[$i]}" vda.img "$T/mine" 99991
    check "v$kind snapshot $i: 99991-byte reads equal" \
      "$(sha256sum <"$T/dump")" "$(sha256sum <"$T/mine")"
    threads=$([ "$i" = 1 ] && echo 4 || echo 1)
    r=$("$RESTIC_READ" random "$repo" "$T/pw" "${ids[$i]}" /vda.img "$T/dump" \
        150 $((i + 7)) "$threads")
    check "v$kind snapshot $i: random reads ($threads threads)" \
      "$((150 * threads)) random reads in $threads threads, 0 mismatches" "$r"
  done
  # the directory snapshot: every node restic lists, with type, size, mode
  theirs=$(R -r "$repo" ls --json "${ids[3]}" | jq -r 'select(.struct_type == "node") |
    "\(.path) \(.type) \(.size // 0) \(.uid) \(.gid)"' | sort)
  mine=$("$RESTIC_READ" ls "$repo" "$T/pw" "${ids[3]}" | awk '{print $1, $2, $3, $6, $7}' | sort)
  check "v$kind: tree nodes equal restic ls" "$theirs" "$mine"
  mode=$("$RESTIC_READ" ls "$repo" "$T/pw" "${ids[3]}" | awk '$1 == "/tree/sub/small.txt" {print $4}')
  check "v$kind: setuid mode" 104750 "$mode"
  link=$("$RESTIC_READ" ls "$repo" "$T/pw" "${ids[3]}" | awk '$1 == "/tree/sub/link" {print $NF}')
  check "v$kind: link target" ../empty.img "$link"
  for f in /tree/empty.img /tree/sub/small.txt /tree/sub/deeper/random.bin; do
    dump "$repo" "${ids[3]}" "$f" "$T/dump"
    "$RESTIC_READ" cat "$repo" "$T/pw" "${ids[3]}" "$f" "$T/mine"
    check "v$kind: $f equals restic dump" \
      "$(sha256sum <"$T/dump") $(stat -c %s "$T/dump")" \
      "$(sha256sum <"$T/mine") $(stat -c %s "$T/mine")"
  done
  err=$("$RESTIC_READ" cat "$repo" "$T/pw" "${ids[3]}" /tree/sub "$T/mine" 2>&1 || true)
  check_match "v$kind: a directory is not a file" 'not a regular file' "$err"
  err=$("$RESTIC_READ" cat "$repo" "$T/pw" "${ids[3]}" /tree/nope "$T/mine" 2>&1 || true)
  check_match "v$kind: a missing path" 'tree/nope: no such file' "$err"
  # zero chunks share one blob id: at least one extent is known zero
  z=$("$RESTIC_READ" extents "$repo" "$T/pw" "${ids[0]}" /vda.img | grep -c zero || true)
  check_match "v$kind: zero blobs found" '^[1-9]' "$z"
  rm -f "$T/dump" "$T/mine"
done
finish
