#!/bin/bash
# test-vm.sh — Debian's virtnbdbackup against a running TCG VM, read back
# through our reader (blk/vnbd*).  The guest (busybox initrd, tests/lib/
# vm.sh) writes random and zero blocks to /dev/vda at changing offsets
# every second; between its rounds the test takes a full and two
# incrementals, plain and with --compress.  Every checkpoint, read through
# blk as the chain full + inc.1 + ... (tests/vnbd/vnbd-read), must equal
# `virtnbdrestore --until virtnbdbackup.N` converted to raw.  A truncated
# last stream (no stop frame; a frame cut in half) must be a clean error
# naming the file and the offset, while the earlier checkpoints still read.
. "$SRCDIR/tests/recovery/lib.sh"
. "$SRCDIR/tests/lib/vm.sh"
: "${VNBD_READ:?}"
for p in virtnbdbackup virtnbdrestore qemu-nbd; do
  command -v $p >/dev/null || skip "$p not installed (contrib/install-deps.sh)"
done
vm_prereqs

DOM=bfs-vnbd-$$
VM_DOMS=$DOM
vm_writer_guest 64k 3 500 1 500
sparse_raw "$T/base.raw" $((96 << 20)) 5 0 3 9 20 31 90
qemu-img convert -O qcow2 "$T/base.raw" "$T/disk.qcow2"
rm -f "$T/base.raw"
# one 40 MiB extent: more than an NBD request (32 MiB), so --compress
# writes it as several lz4 frames (a {"total": [sizes]} trailer entry)
qio -c "write -P 0x5a 40M 40M" "$T/disk.qcow2"
vm_run "$DOM" "$T/disk.qcow2" qcow2

round() { grep -c BFS-ROUND "$T/console.log" 2>/dev/null || echo 0; }
# backup DIR LEVEL [args]: one virtnbdbackup run, after 3 more guest rounds
backup() {
  local dir=$1 level=$2 r0; shift 2
  r0=$(round)
  for _ in $(seq 60); do [ "$(round)" -ge $((r0 + 3)) ] && break; sleep 1; done
  virtnbdbackup -U "$LIBVIRT_DEFAULT_URI" -d "$DOM" -l "$level" -o "$dir" "$@" \
    > "$T/backup.log" 2>&1 || fail "virtnbdbackup -l $level $*: $(tail -5 "$T/backup.log")"
}

for mode in plain compress; do
  B=$T/bk-$mode
  args=()
  [ $mode = compress ] && args=(--compress)
  backup "$B" full "${args[@]}"
  backup "$B" inc "${args[@]}"
  backup "$B" inc "${args[@]}"
  chain=("$B/vda.full.data" "$B/vda.inc.virtnbdbackup.1.data" "$B/vda.inc.virtnbdbackup.2.data")
  for f in "${chain[@]}"; do [ -s "$f" ] || fail "$mode: no $f: $(ls "$B")"; done
  if [ $mode = compress ]; then
    tail -c 4096 "${chain[0]}" | grep -aq '{"[0-9]*": \[' ||
      fail "the full's trailer has no multi-frame entry: $(tail -c 300 "${chain[0]}")"
  fi
  for n in 0 1 2; do
    rm -rf "$T/rs"
    virtnbdrestore -U "$LIBVIRT_DEFAULT_URI" -i "$B" -o "$T/rs" --until virtnbdbackup.$n \
      > "$T/restore.log" 2>&1 || fail "virtnbdrestore --until virtnbdbackup.$n: $(tail -5 "$T/restore.log")"
    out=$(find "$T/rs" -type f ! -name '*.xml' ! -name '*.log' ! -name 'vmlinuz' ! -name 'initrd*' | head -1)
    [ -n "$out" ] || fail "virtnbdrestore made nothing: $(ls -R "$T/rs")"
    oracle "$T/oracle.raw" "$out"
    cp --sparse=always "$T/oracle.raw" "$T/oracle-$mode-$n.raw"
    "$VNBD_READ" "$T/ours.raw" "${chain[@]:0:$((n + 1))}" > "$T/read.out" 2> "$T/read.err" ||
      fail "$mode checkpoint $n: $(cat "$T/read.err")"
    cmp "$T/ours.raw" "$T/oracle.raw" || fail "$mode checkpoint $n differs from virtnbdrestore"
    # the same through each layer's cached index blob (encode, decode)
    "$VNBD_READ" -c "$T/ours.raw" "${chain[@]:0:$((n + 1))}" > /dev/null 2> "$T/read.err" ||
      fail "$mode checkpoint $n from cached indexes: $(cat "$T/read.err")"
    cmp "$T/ours.raw" "$T/oracle.raw" || fail "$mode checkpoint $n from cached indexes differs"
    grep -q "lz4=$([ $mode = compress ] && echo 1 || echo 0)" "$T/read.out" || fail "lz4 flag: $(cat "$T/read.out")"
    ok "$mode checkpoint virtnbdbackup.$n byte-identical ($(tail -1 "$T/read.out"))"
  done
  grep -q "layer0=[1-9]" "$T/read.out" || fail "$mode: inc.2 decides nothing: $(cat "$T/read.out")"
  grep -q "layer0 checkpoint=virtnbdbackup.2 parent=virtnbdbackup.1 inc=1" "$T/read.out" ||
    grep -q "layer 0 checkpoint=virtnbdbackup.2 parent=virtnbdbackup.1 inc=1" "$T/read.out" ||
    fail "$mode: metadata: $(cat "$T/read.out")"

  # interrupted: the last stream cut short; the earlier checkpoints read
  last=${chain[2]}
  sz=$(stat -c %s "$last")
  for cut in 40 $((sz / 2)); do
    head -c $((sz - cut)) "$last" > "$T/cut.data"
    if "$VNBD_READ" "$T/x.raw" "${chain[0]}" "${chain[1]}" "$T/cut.data" > /dev/null 2> "$T/cut.err"; then
      fail "$mode: a stream cut by $cut bytes read without error"
    fi
    grep -q "cut.data: .*offset [0-9]" "$T/cut.err" || fail "$mode: error does not name file and offset: $(cat "$T/cut.err")"
    ok "$mode: stream cut by $cut bytes: $(cat "$T/cut.err")"
  done
  "$VNBD_READ" "$T/x.raw" "${chain[0]}" "${chain[1]}" > /dev/null 2>&1 ||
    fail "$mode: checkpoint 1 no longer reads"
  cmp -s "$T/x.raw" "$T/ours.raw" && fail "$mode: checkpoint 1 equals checkpoint 2 (guest wrote nothing?)"
  ok "$mode: the earlier checkpoints still read"

  # the folder mounted (layout-vnbd.c): each checkpoint a point in time
  # whose disks/vda.img equals virtnbdrestore --until, with domain.xml
  M=$T/mnt-$mode
  bfs_mount "$B" "$M"
  seen=""
  for bk in "$M/$DOM"/2*/; do
    n=$(jget "$bk/backup.json" "j['checkpoint'].split('.')[-1]")
    check_src=$(jget "$bk/backup.json" "j['source']")
    [ "$check_src" = virtnbdbackup ] || fail "$mode: source is $check_src"
    cmp "$bk/disks/vda.img" "$T/oracle-$mode-$n.raw" ||
      fail "$mode: mounted checkpoint $n differs from virtnbdrestore"
    grep -q "<domain" "$bk/domain.xml" || fail "$mode: checkpoint $n has no domain.xml"
    seen="$seen $n"
  done
  [ "$seen" = " 0 1 2" ] || fail "$mode: mounted checkpoints:$seen ($(ls "$M/$DOM"))"
  ls "$T/catalog-mnt-$mode.db.idx" | grep -q '^vnbd-' ||
    fail "$mode: no stream index in the index cache"
  bfs_umount "$M"
  ok "$mode: mounted folder: checkpoints$seen equal virtnbdrestore, domain.xml shown"
  # the same folder with its last stream cut: checkpoint 2 broken, 0 and 1
  # read (plain only: tests/vnbd/test-layout.sh covers more cuts, no VM)
  if [ $mode = plain ]; then
  C=$T/cut-$mode
  cp -r "$B" "$C"
  sz=$(stat -c %s "$C/vda.inc.virtnbdbackup.2.data")
  truncate -s $((sz / 2)) "$C/vda.inc.virtnbdbackup.2.data"
  M=$T/mnt-cut-$mode
  bfs_mount "$C" "$M"
  for bk in "$M/$DOM"/2*/; do
    n=$(jget "$bk/backup.json" "j['checkpoint'].split('.')[-1]")
    st=$(jget "$bk/backup.json" "j['status']")
    if [ "$n" = 2 ]; then
      [ "$st" != ok ] || fail "$mode: a cut stream's checkpoint is ok"
      if cat "$bk/disks/vda.img" > /dev/null 2>&1; then fail "$mode: a cut checkpoint read"; fi
      ok "$mode: cut checkpoint 2 broken: $st"
    else
      [ "$st" = ok ] || fail "$mode: checkpoint $n broken beside a cut one: $st"
      cmp "$bk/disks/vda.img" "$T/oracle-$mode-$n.raw" || fail "$mode: checkpoint $n differs beside a cut one"
    fi
  done
  bfs_umount "$M"
  rm -rf "$C"
  ok "$mode: checkpoints 0 and 1 still read beside the cut one"
  fi

  [ $mode = compress ] || continue
  # one flipped byte inside the full's first lz4 frame: EIO, never data
  python3 - "${chain[0]}" "$T/flip.data" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
meta = int(b[22:38], 16)
d = 40 + meta + 2                      # the first frame after the metadata
assert b[d:d + 5] == b"data ", b[d:d + 5]
b[d + 40 + 200] ^= 0x55                # inside the lz4 frame, past its header
open(sys.argv[2], "wb").write(b)
PY
  if "$VNBD_READ" "$T/x.raw" "$T/flip.data" > /dev/null 2> "$T/flip.err"; then
    fail "a corrupt lz4 frame read without error"
  fi
  grep -q "flip.data: lz4 frame at offset [0-9]* (guest [0-9]*) does not decode" "$T/flip.err" ||
    fail "corrupt lz4 frame: $(cat "$T/flip.err")"
  ok "corrupt lz4 frame: $(cat "$T/flip.err")"
done
