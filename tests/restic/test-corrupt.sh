#!/bin/bash
# Bad input gets a clear error and loses nothing: a wrong password; a
# flipped byte in a pack (EIO naming pack and blob for that blob's range
# only, every other range still equal to restic dump); a short pack; a
# missing pack; a damaged index file (storage id, then MAC); a damaged tree.
# Argument: repository version (1 or 2).
. "$(dirname "$0")/lib.sh"
ver=$1
repo=$T/repo
make_repo "$repo" "$ver" $([ "$ver" = 2 ] && echo auto)
mapfile -t ids < <(snaps "$repo")
snap=${ids[0]}
dump "$repo" "$snap" /vda.img "$T/good"

printf 'not the password\n' >"$T/badpw"
err=$("$RESTIC_READ" snapshots "$repo" "$T/badpw" 2>&1 || true)
check_match "wrong password: clear error" "wrong password" "$err"
printf 'correct horse battery' >"$T/pw-bare"
printf 'correct horse battery\r\n' >"$T/pw-crlf"
for p in bare crlf; do
  out=$("$RESTIC_READ" snapshots "$repo" "$T/pw-$p" 2>&1 | head -1 || true)
  check "password file ($p): one trailing newline ignored" "version $ver" "$out"
done
err=$("$RESTIC_READ" snapshots "$repo" "$T/nonexistent" 2>&1 || true)
check_match "missing password file named" "$T/nonexistent: No such file" "$err"

# the first content blob of vda.img (random data), and where it lives
tree=$(R -r "$repo" cat snapshot "$snap" | jq -r .tree)
blob=$(R -r "$repo" cat blob "$tree" | jq -r '.nodes[0].content[0]')
loc=$(for i in $(R -r "$repo" list index); do R -r "$repo" cat index "$i"; done |
  jq -r --arg b "$blob" '.packs[] | .id as $p | .blobs[] |
    select(.id == $b) | "\($p) \(.offset) \(.length)"' | head -1)
read -r pack off len <<<"$loc"
check_match "blob located in the index" '^[0-9a-f]{64} [0-9]+ [0-9]+$' "$loc"
mapfile -t ext < <("$RESTIC_READ" extents "$repo" "$T/pw" "$snap" /vda.img)
check_match "several extents" '^[3-9]|^[1-9][0-9]' "${#ext[@]}"

flip() {   # flip FILE POS: add 1 to the byte at POS
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\x$(printf %02x $(((b + 1) % 256)))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
copy() { rm -rf "$T/c"; cp -a "$repo" "$T/c"; chmod -R u+w "$T/c"; }

# index entries as "blob pack offset length", and vda.img's content ids
for i in $(R -r "$repo" list index); do R -r "$repo" cat index "$i"; done |
  jq -r '.packs[] | .id as $p | .blobs[] | "\(.id) \($p) \(.offset) \(.length)"' \
  >"$T/blobs"
R -r "$repo" cat blob "$tree" | jq -r '.nodes[0].content[]' >"$T/content"
check "one extent per content blob" "$(wc -l <"$T/content")" "${#ext[@]}"

# read every extent of vda.img from the damaged copy $T/c: the extents whose
# blob matches awk condition $2 (on "blob pack offset length") must fail
# with $3 in the message, all others must equal the good bytes (zero blobs
# are known by their id and never read, so they stay readable)
extents_after() {
  local what=$1 cond=$2 reason=$3 i=0 o l st msg bad=0 nfail=0
  mapfile -t want < <(while read -r b; do
    awk -v b="$b" -v p="$pack" -v off="$off" -v len="$len" \
      '$1 == b { print ('"$cond"') ? "fail" : "ok"; exit }' "$T/blobs"
  done <"$T/content")
  while read -r o l st msg; do
    # zero blobs (id = SHA-256 of zeros) are never read: still fine
    [[ "${ext[$i]}" == *zero ]] && want[$i]=ok
    if [ "${want[$i]}" = fail ]; then
      nfail=$((nfail + 1))
      if [ "$st" != error ]; then bad=$((bad + 1)); echo "extent $i: $st"
      elif [[ ! "$msg" =~ pack\ [0-9a-f]{64}.*blob\ [0-9a-f]{64}.*$reason ]]; then
        bad=$((bad + 1)); echo "extent $i: $msg"
      fi
    elif [ "$st" != ok ]; then bad=$((bad + 1)); echo "extent $i: $st $msg"
    fi
    i=$((i + 1))
  done < <("$RESTIC_READ" check-extents "$T/c" "$T/pw" "$snap" /vda.img "$T/good")
  check "$what: every extent checked" "${#ext[@]}" "$i"
  check_match "$what: some extents fail" '^[1-9]' "$nfail"
  check "$what: exactly the damaged blobs' ranges fail, naming pack and blob" 0 "$bad"
}

pf=data/${pack:0:2}/$pack
copy
pos=$((off + len / 2))
flip "$T/c/$pf" "$pos"
check "byte flipped" 1 "$(cmp -l "$repo/$pf" "$T/c/$pf" | wc -l)"
extents_after "flipped byte" '$1 == "'"$blob"'"' "MAC does not match"
err=$("$RESTIC_READ" read "$T/c" "$T/pw" "$snap" /vda.img 0 10 "$T/out" 2>&1 || true)
check_match "flipped byte: message names the pack" "pack $pack: blob $blob" "$err"
err=$("$RESTIC_READ" cat "$T/c" "$T/pw" "$snap" /vda.img "$T/out" 2>&1 || true)
check_match "flipped byte: whole-file read fails" "read at 0: .*MAC does not match" "$err"
# the directory snapshot does not use that blob
"$RESTIC_READ" cat "$T/c" "$T/pw" "${ids[3]}" /tree/sub/deeper/random.bin "$T/out"
dump "$repo" "${ids[3]}" /tree/sub/deeper/random.bin "$T/dump"
check "flipped byte: other files still read" "$(sha256sum <"$T/dump")" "$(sha256sum <"$T/out")"

copy
truncate -s $((off + len - 1)) "$T/c/$pf"
extents_after "short pack" '$2 == p && $3 + $4 > off + len - 1' "pack is short"

copy
rm -f "$T/c/$pf"
extents_after "missing pack" '$2 == p' "No such file"

# an index file: a flipped byte breaks its storage id; renamed to match,
# its MAC
copy
idx=$(ls "$T/c/index" | head -1)
flip "$T/c/index/$idx" 40
err=$("$RESTIC_READ" snapshots "$T/c" "$T/pw" 2>&1 || true)
check_match "damaged index: storage id" "index/$idx: SHA-256 of the file does not match" "$err"
new=$(sha256sum <"$T/c/index/$idx" | cut -d' ' -f1)
mv "$T/c/index/$idx" "$T/c/index/$new"
err=$("$RESTIC_READ" snapshots "$T/c" "$T/pw" 2>&1 || true)
check_match "damaged index: MAC" "index/$new: MAC does not match" "$err"

# a tree blob: listing the snapshot fails, naming the tree's pack and blob
copy
tloc=$(for i in $(R -r "$repo" list index); do R -r "$repo" cat index "$i"; done |
  jq -r --arg b "$tree" '.packs[] | .id as $p | .blobs[] |
    select(.id == $b) | "\($p) \(.offset) \(.length)"' | head -1)
read -r tpack toff tlen <<<"$tloc"
flip "$T/c/data/${tpack:0:2}/$tpack" $((toff + 20))
err=$("$RESTIC_READ" ls "$T/c" "$T/pw" "$snap" 2>&1 || true)
check_match "damaged tree: ls fails naming the blob" "pack $tpack: blob $tree.*MAC" "$err"

# symlinks inside the repository are not followed
copy
mv "$T/c/keys" "$T/keys-elsewhere"
ln -s "$T/keys-elsewhere" "$T/c/keys"
err=$("$RESTIC_READ" snapshots "$T/c" "$T/pw" 2>&1 || true)
check_match "symlinked keys/ refused" "keys: (Too many levels of symbolic links|Not a directory)" "$err"
rm -rf "$T/keys-elsewhere"
finish
