#!/bin/bash
# A blob stored in two packs (two restic backups of one image running at
# once both write it): with either copy damaged the file still reads
# equal to restic dump; with both damaged it is EIO naming the first.
. "$(dirname "$0")/lib.sh"
repo=$T/repo
R init -r "$repo" --repository-version 2 >/dev/null
make_image "$T/img" 32
R -r "$repo" backup --stdin --stdin-filename vda.img <"$T/img" >/dev/null &
R -r "$repo" backup --stdin --stdin-filename vda.img <"$T/img" >/dev/null &
wait
mapfile -t ids < <(snaps "$repo")
check "two snapshots" 2 "${#ids[@]}"
for i in $(R -r "$repo" list index); do R -r "$repo" cat index "$i"; done |
  jq -r '.packs[] | .id as $p | .blobs[] | "\(.id) \($p) \(.offset) \(.length)"' \
  >"$T/blobs"
tree=$(R -r "$repo" cat snapshot "${ids[0]}" | jq -r .tree)
blob=$(R -r "$repo" cat blob "$tree" | jq -r '.nodes[0].content[0]')
mapfile -t copies < <(awk -v b="$blob" '$1 == b { print $2, $3, $4 }' "$T/blobs")
[ "${#copies[@]}" -ge 2 ] || { echo "SKIP: restic wrote the blob once"; exit 77; }
dump "$repo" "${ids[0]}" /vda.img "$T/good"

flip() {   # flip COPY: damage that copy's bytes in a fresh copy of the repo
  local pack off len
  read -r pack off len <<<"$1"
  local f=$T/c/data/${pack:0:2}/$pack b
  b=$(od -An -tu1 -j $((off + len / 2)) -N1 "$f" | tr -d ' ')
  printf "\\x$(printf %02x $(((b + 1) % 256)))" |
    dd of="$f" bs=1 seek=$((off + len / 2)) conv=notrunc status=none
}
fresh() { rm -rf "$T/c"; cp -a "$repo" "$T/c"; chmod -R u+w "$T/c"; }

for k in 0 1; do
  fresh
  flip "${copies[$k]}"
  "$RESTIC_READ" cat "$T/c" "$T/pw" "${ids[0]}" /vda.img "$T/mine"
  check "copy $k damaged: the other copy serves it" \
    "$(sha256sum <"$T/good")" "$(sha256sum <"$T/mine")"
done
fresh
flip "${copies[0]}"
flip "${copies[1]}"
err=$("$RESTIC_READ" read "$T/c" "$T/pw" "${ids[0]}" /vda.img 0 4096 "$T/mine" 2>&1 || true)
check_match "both copies damaged: EIO" "blob $blob.*MAC does not match.*every other copy" "$err"
finish
