#!/bin/bash
# image-cmd.sh — `backupfs image` reads through blk/ with the chain rules of
# issue 10: backing files outside the image's directory tree are refused
# unless --root/--allow-outside; a v2 image with the zero flag is EIO, not
# zeros; virtual sizes are QEMU's.  Uses the restore suite's lib.sh
# (fail/skip/ok, $T removed at exit).
. "$SRCDIR/tests/restore/lib.sh"

R=$T/repo
mkdir -p "$R/vm/t1" "$R/vm/t2" "$T/outside"
qemu-img create -q -f qcow2 "$R/vm/t1/base.qcow2" 1M
qemu-io -f qcow2 -c 'write -P 0x11 0 64k' "$R/vm/t1/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b ../t1/base.qcow2 -F qcow2 "$R/vm/t2/top.qcow2"
qemu-img create -q -f qcow2 "$T/outside/secret.qcow2" 1M
qemu-io -f qcow2 -c 'write -P 0x66 0 64k' "$T/outside/secret.qcow2" >/dev/null
qemu-img create -q -f qcow2 -u -b "$T/outside/secret.qcow2" -F qcow2 "$R/vm/t2/abs.qcow2" 1M
qemu-img create -q -f qcow2 -u -b ../../../outside/secret.qcow2 -F qcow2 "$R/vm/t2/rel.qcow2" 1M
ln -s "$T/outside/secret.qcow2" "$R/vm/t1/link.qcow2"     # a symlink out of the tree
qemu-img create -q -f qcow2 -u -b ../t1/link.qcow2 -F qcow2 "$R/vm/t2/sym.qcow2" 1M

"$BACKUPFS" image cat -o "$T/ok.raw" "$R/vm/t2/top.qcow2" || fail "a sibling backup's backing refused"
qemu-img convert -O raw "$R/vm/t2/top.qcow2" "$T/ok.ref"
cmp -s "$T/ok.raw" "$T/ok.ref" || fail "cat differs from qemu-img convert"
ok "backing in a sibling backup directory followed"

for img in abs rel sym; do
  for sub in "cat -o $T/out.raw" info map; do
    # shellcheck disable=SC2086
    if "$BACKUPFS" image $sub "$R/vm/t2/$img.qcow2" >"$T/stdout" 2>"$T/err"; then
      fail "image $sub $img.qcow2 followed a backing file outside the tree"
    fi
    grep -q "outside" "$T/err" || fail "image $sub $img.qcow2: message: $(cat "$T/err")"
    grep -q -E 'secret.qcow2|link.qcow2' "$T/err" || fail "message does not name the backing: $(cat "$T/err")"
    [ ! -e "$T/out.raw" ] || fail "partial output left behind"
    if [ "$sub" = map ] && [ -s "$T/stdout" ]; then fail "map printed extents"; fi
  done
  "$BACKUPFS" image cat --allow-outside -o "$T/out.raw" "$R/vm/t2/$img.qcow2" ||
    fail "--allow-outside refused: $img"
  "$BACKUPFS" image cat --root "$T" -o "$T/out2.raw" "$R/vm/t2/$img.qcow2" ||
    fail "--root refused: $img"
  qemu-img convert -O raw "$R/vm/t2/$img.qcow2" "$T/ref.raw"
  cmp -s "$T/out.raw" "$T/ref.raw" && cmp -s "$T/out2.raw" "$T/ref.raw" ||
    fail "$img: --allow-outside/--root output differs from qemu-img"
  rm -f "$T/out.raw" "$T/out2.raw"
done
ok "backing files outside the tree refused, read with --allow-outside/--root"
"$BACKUPFS" image --help | grep -- --allow-outside >/dev/null || fail "--help lacks --allow-outside"

# a qcow2 v2 image with the v3-only zero flag on an allocated L2 entry
qemu-img create -q -f qcow2 -o compat=0.10 "$T/v2.qcow2" 1M
qemu-io -f qcow2 -c 'write -P 0x33 0 64k' "$T/v2.qcow2" >/dev/null
python3 - "$T/v2.qcow2" <<'PY'
import struct, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    h = f.read(48)
    l1off = struct.unpack(">Q", h[40:48])[0]
    f.seek(l1off); l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    f.seek(l2); e = struct.unpack(">Q", f.read(8))[0]
    f.seek(l2); f.write(struct.pack(">Q", e | 1))
PY
if "$BACKUPFS" image cat "$T/v2.qcow2" >"$T/v2.out" 2>"$T/err"; then
  fail "v2 zero flag read as data"
fi
grep -q "zero flag" "$T/err" || fail "v2 zero flag: message: $(cat "$T/err")"
[ ! -s "$T/v2.out" ] || fail "v2 zero flag: bytes written to stdout"
ok "v2 zero flag is corruption"

# virtual size not a multiple of 512: as QEMU reports it
qemu-img create -q -f qcow2 "$T/odd.qcow2" 1M
python3 -c 'import struct,sys; f=open(sys.argv[1],"r+b"); f.seek(24); f.write(struct.pack(">Q",1000))' "$T/odd.qcow2"
want=$(qemu-img info --output=json "$T/odd.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
got=$("$BACKUPFS" image info "$T/odd.qcow2" | awk '/^  virtual size:/ {print $3; exit}')
[ "$got" = "$want" ] || fail "virtual size $got, qemu-img says $want"
head -c 1000 /dev/urandom > "$T/odd.raw"
want=$(qemu-img info --output=json -f raw "$T/odd.raw" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
got=$("$BACKUPFS" image info "$T/odd.raw" | awk '/^  virtual size:/ {print $3; exit}')
[ "$got" = "$want" ] || fail "raw virtual size $got, qemu-img says $want"
ok "virtual sizes as qemu-img reports them ($got)"
