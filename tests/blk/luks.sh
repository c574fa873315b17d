#!/bin/bash
# luks.sh — LUKS-encrypted qcow2 (issue 13) as qemu-img writes it: every
# byte of `backupfs image cat --key-file` equal to qemu-img convert with the
# secret, for several cipher settings, 64 KiB and 2 MiB clusters, extended
# L2, and chains (encrypted over encrypted, encrypted over plain); odd
# offsets through the driver and the cache (test-luks); no key, a wrong
# key, a damaged or truncated LUKS header: a clear error and no data.
# Uses the restore suite's lib.sh (fail/skip/ok, $T removed at exit).
. "$SRCDIR/tests/restore/lib.sh"

TL=$BUILDDIR/tests/blk/test-luks
[ -x "$TL" ] || skip "test-luks not built"
PASS='correct horse battery staple'
printf '%s\n' "$PASS" > "$T/key"          # one trailing newline: ignored
printf '%s' "$PASS" > "$T/key-nonl"
printf 'not the passphrase\n' > "$T/wrong"
SEC=(--object "secret,id=s,data=$PASS")
ENC="encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=20"

# qemu-img times PBKDF2 to pick the iterations and fails now and then
# ("Unable to get accurate CPU usage"): tests/lib/qemu-img-retry tries again
mkimg() {
  "$SRCDIR/tests/lib/qemu-img-retry" create -q -f qcow2 "${SEC[@]}" "$@"
}

# write patterns: unaligned starts and lengths, several clusters, a zero
# range, a write past the first 2 MiB cluster, data at the end
fill() {
  qemu-io "${SEC[@]}" --image-opts "driver=qcow2,encrypt.key-secret=s,file.filename=$1" \
    -c 'write -P 0x5a 0 100k' -c 'write -P 0x33 1000000 513' \
    -c 'write -P 0xc1 3M 2M' -c 'write -z 3200k 64k' \
    -c 'write -P 0x7e 7M 1M' -c 'write -P 0x99 8388096 512' >/dev/null ||
    fail "qemu-io could not write $1"
}
oracle_enc() {   # oracle_enc IMG OUT [extra image-opts]
  qemu-img convert "${SEC[@]}" --image-opts \
    "driver=qcow2,encrypt.key-secret=s,file.filename=$1${3:-}" -O raw "$2" ||
    fail "qemu-img convert $1"
}
check_cat() {    # check_cat IMG REF WHAT
  rm -f "$T/out.raw"
  "$BACKUPFS" image cat --key-file "$T/key" -o "$T/out.raw" "$1" ||
    fail "$3: image cat failed"
  cmp -s "$T/out.raw" "$2" || fail "$3: image cat differs from qemu-img convert"
  "$BACKUPFS" image cat --key-file "$T/key-nonl" "$1" | cmp -s - "$2" ||
    fail "$3: image cat to a pipe differs from qemu-img convert"
}

mkdir -p "$T/vm/a" "$T/vm/b"
n=0
for spec in \
  "64k:" \
  "2M:,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256" \
  "64k:,encrypt.cipher-alg=aes-192,encrypt.cipher-mode=xts,encrypt.ivgen-alg=plain" \
  "2M:,encrypt.cipher-alg=aes-256,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain64" \
  "64k:,encrypt.cipher-alg=aes-256,encrypt.cipher-mode=ctr,encrypt.ivgen-alg=plain64" \
  "64k:,encrypt.cipher-alg=aes-256,encrypt.cipher-mode=xts,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256" \
  "128k:,extended_l2=on" \
  "64k:v2"; do
  n=$((n + 1))
  cl=${spec%%:*}; extra=${spec#*:}
  img=$T/vm/a/e$n.qcow2
  compat=1.1
  if [ "$extra" = v2 ]; then compat=0.10; extra=; fi
  mkimg -o "compat=$compat,cluster_size=$cl,$ENC$extra" "$img" 8M ||
    fail "qemu-img create $spec"
  fill "$img"
  oracle_enc "$img" "$T/ref$n.raw"
  if [ -z "${extra##*aes-192*}" ] && [ -n "$extra" ] &&
     ! "$BACKUPFS" image info --key-file "$T/key" "$img" >/dev/null 2>"$T/err"; then
    # libcryptsetup decrypts key slots with libcrypto (no AES-192-XTS),
    # else AF_ALG or device-mapper: without those it cannot open the slot
    grep -q 'key slots (aes-192-xts-plain): libcryptsetup cannot decrypt' "$T/err" ||
      fail "aes-192-xts: $(cat "$T/err")"
    ok "aes-192-xts-plain: refused by name here: $(cat "$T/err")"
    continue
  fi
  cipher=$("$BACKUPFS" image info --key-file "$T/key" "$img" | sed -n 's/^  encrypted: luks //p')
  [ -n "$cipher" ] || fail "$spec: info shows no LUKS cipher"
  check_cat "$img" "$T/ref$n.raw" "$cl $cipher"
  "$TL" "$T/key" "$T/ref$n.raw" "$img" >/dev/null || fail "$cl $cipher: odd reads differ"
  ok "compat=$compat, $cl clusters, $cipher$( [ -n "$extra" ] && [ -z "${extra##*extended*}" ] && echo ', extended L2'): identical to qemu-img"
done
# the second setting must have been CBC-ESSIV with SHA-256 and the
# default XTS-plain64 with AES-256: the names say what was read
"$BACKUPFS" image info --key-file "$T/key" "$T/vm/a/e1.qcow2" | grep -q 'luks aes-256-xts-plain64$' ||
  fail "default cipher is not reported as aes-256-xts-plain64"
"$BACKUPFS" image info --key-file "$T/key" "$T/vm/a/e2.qcow2" | grep -q 'luks aes-128-cbc-essiv:sha256$' ||
  fail "cbc-essiv cipher not reported"
"$BACKUPFS" image info --key-file "$T/key" "$T/vm/a/e2.qcow2" | grep -q 'cluster size: 2097152' ||
  fail "2 MiB cluster image has another cluster size"

# chains: encrypted over encrypted (same passphrase, as nasbackup.sh -e
# writes incrementals), encrypted over plain
base=$T/vm/a/e1.qcow2
mkimg -o "$ENC" -b ../a/e1.qcow2 -F qcow2 "$T/vm/b/top.qcow2" 8M ||
  fail "qemu-img create encrypted overlay"
qemu-io "${SEC[@]}" --image-opts "driver=qcow2,encrypt.key-secret=s,file.filename=$T/vm/b/top.qcow2,backing.encrypt.key-secret=s" \
  -c 'write -P 0x44 64k 200k' -c 'write -z 7M 64k' -c 'write -P 0x45 5000000 3000' >/dev/null ||
  fail "qemu-io on the overlay"
oracle_enc "$T/vm/b/top.qcow2" "$T/chain.raw" ",backing.encrypt.key-secret=s"
check_cat "$T/vm/b/top.qcow2" "$T/chain.raw" "encrypted over encrypted"
"$TL" "$T/key" "$T/chain.raw" "$T/vm/b/top.qcow2" "$base" >/dev/null ||
  fail "encrypted over encrypted: odd reads differ"
ok "encrypted overlay over an encrypted base: identical to qemu-img"

qemu-img create -q -f qcow2 "$T/vm/a/plain.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x21 0 1M' -c 'write -P 0x22 6M 2M' "$T/vm/a/plain.qcow2" >/dev/null
mkimg -o "$ENC" -b ../a/plain.qcow2 -F qcow2 "$T/vm/b/onplain.qcow2" 8M ||
  fail "qemu-img create encrypted overlay over plain"
qemu-io "${SEC[@]}" --image-opts "driver=qcow2,encrypt.key-secret=s,file.filename=$T/vm/b/onplain.qcow2" \
  -c 'write -P 0x46 512k 1M' >/dev/null || fail "qemu-io on the overlay over plain"
oracle_enc "$T/vm/b/onplain.qcow2" "$T/onplain.raw"
check_cat "$T/vm/b/onplain.qcow2" "$T/onplain.raw" "encrypted over plain"
"$TL" "$T/key" "$T/onplain.raw" "$T/vm/b/onplain.qcow2" "$T/vm/a/plain.qcow2" >/dev/null ||
  fail "encrypted over plain: odd reads differ"
ok "encrypted overlay over a plain base: identical to qemu-img"

# expect_fail WHAT WORDS ARGS...: exit 1, WORDS in the message, no data
expect_fail() {
  local what=$1 words=$2; shift 2
  rm -f "$T/out.raw"
  if "$BACKUPFS" image cat "$@" -o "$T/out.raw" >"$T/stdout" 2>"$T/err"; then
    fail "$what: image cat succeeded"
  fi
  grep -q -- "$words" "$T/err" || fail "$what: message: $(cat "$T/err")"
  [ ! -e "$T/out.raw" ] || fail "$what: output file left behind"
  if "$BACKUPFS" image cat "$@" >"$T/stdout" 2>"$T/err"; then
    fail "$what: image cat to stdout succeeded"
  fi
  [ ! -s "$T/stdout" ] || fail "$what: bytes written to stdout"
  if "$BACKUPFS" image map "$@" >"$T/stdout" 2>"$T/err"; then
    fail "$what: image map succeeded"
  fi
  [ ! -s "$T/stdout" ] || fail "$what: map printed extents"
  grep -q -- "$words" "$T/err" || fail "$what: map message: $(cat "$T/err")"
  ok "$what: $(head -1 "$T/err")"
}
img=$T/vm/a/e1.qcow2
expect_fail "no key" "encrypted (LUKS): a key is needed (--key-file)" "$img"
"$BACKUPFS" image info "$img" >"$T/info" 2>"$T/err" && fail "info without a key succeeded"
grep -q 'encrypted: luks aes-256-xts-plain64 (a key is needed: --key-file)' "$T/info" ||
  fail "info without a key does not show the header: $(cat "$T/info")"
grep -q 'a key is needed' "$T/err" || fail "info without a key: $(cat "$T/err")"
ok "no key: info shows the header and says a key is needed"
expect_fail "wrong key" "wrong passphrase" --key-file "$T/wrong" "$img"
expect_fail "no key for the base" "a key is needed" "$T/vm/b/onplain.qcow2"
: > "$T/empty"
expect_fail "empty key file" "empty password" --key-file "$T/empty" "$img"

# damaged LUKS headers: truncated file, bad magic, a broken key slot, an
# extension pointing past the end, an extension without LUKS
python3 - "$img" "$T" <<'PY'
import struct, sys
img, t = sys.argv[1], sys.argv[2]
d = bytearray(open(img, "rb").read())
pos = struct.unpack(">I", d[100:104])[0]
ext = None
while pos + 8 <= len(d):
    typ, ln = struct.unpack(">II", d[pos:pos + 8])
    if typ == 0:
        break
    if typ == 0x0537be77:
        ext = pos
    pos += 8 + ((ln + 7) & ~7)
off, ln = struct.unpack(">QQ", d[ext + 8:ext + 24])
def w(name, b):
    open(f"{t}/{name}.qcow2", "wb").write(b)
w("trunc", d[:off + 1000])
e = bytearray(d); e[off:off + 6] = b"XXXXXX"; w("magic", e)
e = bytearray(d); e[off + 208:off + 208 + 8 * 48] = b"\xff" * (8 * 48); w("slots", e)
e = bytearray(d); e[ext + 8:ext + 16] = struct.pack(">Q", 1 << 40); w("past", e)
e = bytearray(d); e[32:36] = struct.pack(">I", 0); w("noluks", e)
e = bytearray(d); e[ext + 4:ext + 8] = struct.pack(">I", 8); w("extlen", e)
# a compressed cluster in an encrypted image (QEMU never writes one)
e = bytearray(d)
l1 = struct.unpack(">Q", d[40:48])[0]
l2 = struct.unpack(">Q", d[l1:l1 + 8])[0] & 0x00fffffffffffe00
ent = struct.unpack(">Q", d[l2:l2 + 8])[0]
e[l2:l2 + 8] = struct.pack(">Q", (ent & 0x00fffffffffffe00) | (1 << 62)); w("comp", e)
# key material wiped: the passphrase opens no slot, nothing decrypts
e = bytearray(d); e[off + 4096:off + 4096 + 256000] = b"\0" * 256000; w("material", e)
PY
expect_fail "truncated LUKS header" "lies past the end of the file" --key-file "$T/key" "$T/trunc.qcow2"
expect_fail "LUKS header with a bad magic" "damaged or not LUKS1" --key-file "$T/key" "$T/magic.qcow2"
expect_fail "LUKS header with broken key slots" "damaged or not LUKS1" --key-file "$T/key" "$T/slots.qcow2"
expect_fail "LUKS header past the end" "past the end" --key-file "$T/key" "$T/past.qcow2"
expect_fail "crypto extension without LUKS" "encryption method 0" --key-file "$T/key" "$T/noluks.qcow2"
expect_fail "crypto extension of 8 bytes" "16 expected" --key-file "$T/key" "$T/extlen.qcow2"
expect_fail "compressed cluster in a LUKS image" "in a LUKS-encrypted image" --key-file "$T/key" "$T/comp.qcow2"
expect_fail "LUKS key material wiped" "wrong passphrase" --key-file "$T/key" "$T/material.qcow2"

"$BACKUPFS" image --help | grep -- --key-file >/dev/null || fail "--help lacks --key-file"
ok "--help names --key-file"

# ---- the same images as a CloudStack NAS repository, through every
# command: mount -o keyfile=, restore disk --repo, verify, list (issue 13)
export TZ=UTC
VOL=6b1e2d0a-1c1f-4a57-9d3c-0f6f1b7d0a11 DVOL=9f3c0e55-7a2b-4c8e-b1f0-2d7e6a4c5b22
N=$T/nas/i-2-5-VM S1=2026.10.01.03.00.00 S2=2026.10.02.03.00.00 S3=2026.10.03.03.00.00
mkdir -p "$N/$S1" "$N/$S2" "$N/$S3"
cp "$T/vm/a/e1.qcow2" "$N/$S1/root.$VOL.qcow2"          # 64 KiB, aes-256-xts
cp "$T/vm/a/e2.qcow2" "$N/$S1/datadisk.$DVOL.qcow2"     # 2 MiB, cbc-essiv
mkimg -o "$ENC" -b "../$S1/root.$VOL.qcow2" -F qcow2 "$N/$S2/root.$VOL.qcow2" 8M ||
  fail "qemu-img create the NAS incremental"
qemu-io "${SEC[@]}" --image-opts "driver=qcow2,encrypt.key-secret=s,file.filename=$N/$S2/root.$VOL.qcow2,backing.encrypt.key-secret=s" \
  -c 'write -P 0x47 1M 300k' -c 'write -z 5M 1M' >/dev/null || fail "qemu-io on the NAS incremental"
oracle_enc "$N/$S2/root.$VOL.qcow2" "$T/nas-root2.raw" ",backing.encrypt.key-secret=s"
cp "$T/trunc.qcow2" "$N/$S3/root.$VOL.qcow2"            # truncated LUKS header
CAT=(--catalog "$T/nas.db")

J=$("$BACKUPFS" list --json "${CAT[@]}" "$T/nas")
st=$(jq -r '.vms[0].backups[1].status' <<<"$J")
[[ $st == *"encrypted (LUKS): a key is needed"* ]] || fail "list without a key: status [$st]"
ok "list without a key: the backup is there and says a key is needed"
J=$("$BACKUPFS" list --json "${CAT[@]}" --key-file "$T/key" "$T/nas")
[ "$(jq -r '[.vms[0].backups[0,1].status] | join(" ")' <<<"$J")" = "ok ok" ] ||
  fail "list with a key: $(jq -c '[.vms[0].backups[].status]' <<<"$J")"
st=$(jq -r '.vms[0].backups[2].status' <<<"$J")
[[ $st == *"past the end of the file"* ]] || fail "truncated LUKS header: status [$st]"
ok "list with a key: ok, and a truncated LUKS header says why: $st"
[ "$(jq -r '.vms[0].backups[0].disks[0].encrypted' <<<"$J")" = true ] || fail "encrypted not marked"
if grep -rqa -- "$PASS" "$T/nas.db"* "$T/nas" 2>/dev/null; then
  fail "the passphrase reached the catalog or the repository"
fi
ok "the passphrase is in no catalog or repository file"

"$BACKUPFS" restore disk --repo "$T/nas" "${CAT[@]}" --key-file "$T/key" \
  i-2-5-VM@2026-10-02T030000Z root "$T/r-root.raw" >/dev/null || fail "restore disk --key-file"
cmp -s "$T/r-root.raw" "$T/nas-root2.raw" || fail "restored encrypted chain differs from qemu-img"
"$BACKUPFS" restore disk --repo "$T/nas" "${CAT[@]}" --key-file "$T/key" \
  i-2-5-VM@2026-10-01T030000Z "datadisk-$DVOL" "$T/r-data.raw" >/dev/null || fail "restore datadisk"
cmp -s "$T/r-data.raw" "$T/ref2.raw" || fail "restored 2 MiB-cluster CBC-ESSIV disk differs"
ok "restore disk --repo --key-file: both cipher settings identical to qemu-img"
if "$BACKUPFS" restore disk --repo "$T/nas" "${CAT[@]}" --key-file "$T/wrong" \
     i-2-5-VM@2026-10-02T030000Z root "$T/r-wrong.raw" 2>"$T/err" >/dev/null; then
  fail "restore with a wrong key succeeded"
fi
grep -q "wrong passphrase" "$T/err" || fail "restore with a wrong key: $(cat "$T/err")"
[ ! -e "$T/r-wrong.raw" ] || fail "restore with a wrong key left a file"
if "$BACKUPFS" restore disk --repo "$T/nas" "${CAT[@]}" \
     i-2-5-VM@2026-10-02T030000Z root "$T/r-nokey.raw" 2>"$T/err" >/dev/null; then
  fail "restore without a key succeeded"
fi
grep -q "a key is needed" "$T/err" || fail "restore without a key: $(cat "$T/err")"
[ ! -e "$T/r-nokey.raw" ] || fail "restore without a key left a file"
ok "restore disk: wrong key and no key say so and write nothing"
"$BACKUPFS" verify "${CAT[@]}" --key-file "$T/key" --no-checksum "$T/nas" \
  i-2-5-VM@2026-10-02T030000Z > "$T/verify" 2>&1 || fail "verify --key-file: $(cat "$T/verify")"
grep -q "encrypted: header and checksum only" "$T/verify" && fail "verify --key-file did not read the data"
ok "verify --key-file reads the encrypted chain in full"

# the mount, with the key, without, with a wrong one
[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || { ok "no FUSE here: mount part skipped"; exit 0; }
MNT=$T/mnt
luks_mount() {   # luks_mount [OPTS]: mount $T/nas on $MNT with -o OPTS
  mkdir -p "$MNT"
  "$BACKUPFS" mount -o "catalog=$T/nas.db${1:+,$1}" "$T/nas" "$MNT" 2>"$T/mount.err" ||
    fail "mount $*: $(cat "$T/mount.err")"
  for _ in $(seq 50); do
    [ -e "$MNT/i-2-5-VM/latest/backup.json" ] && return 0
    sleep 0.1
  done
  fail "mount $* shows no backup.json"
}
luks_umount() { fusermount3 -u "$MNT"; for _ in $(seq 50); do mountpoint -q "$MNT" || return 0; sleep 0.1; done; }
B1=$MNT/i-2-5-VM/2026-10-01T030000Z B2=$MNT/i-2-5-VM/2026-10-02T030000Z
luks_mount "keyfile=$T/key"
cmp -s "$B2/disks/root.img" "$T/nas-root2.raw" || fail "mount: encrypted chain differs from qemu-img"
cmp -s "$B1/disks/datadisk-$DVOL.img" "$T/ref2.raw" || fail "mount: 2 MiB CBC-ESSIV disk differs"
cmp -s "$B1/disks/root.img" "$T/ref1.raw" || fail "mount: 64 KiB XTS disk differs"
[ "$(jq -r .status "$B2/backup.json")" = ok ] || fail "mount with a key: $(jq -r .status "$B2/backup.json")"
luks_umount
ok "mount -o keyfile=: every disk identical to qemu-img with the secret"

luks_mount
[[ $(jq -r .status "$B2/backup.json") == *"a key is needed"* ]] ||
  fail "mount without a key: status $(jq -r .status "$B2/backup.json")"
if cat "$B2/disks/root.img" > "$T/m-nokey.raw" 2>/dev/null; then
  fail "mount without a key: the disk reads"
fi
[ ! -s "$T/m-nokey.raw" ] || fail "mount without a key: bytes came out"
luks_umount
ok "mount without a key: the backup is there, says a key is needed, gives no data"

luks_mount "keyfile=$T/wrong"
if cat "$B2/disks/root.img" > "$T/m-wrong.raw" 2>/dev/null; then
  fail "mount with a wrong key: the disk reads"
fi
[ ! -s "$T/m-wrong.raw" ] || fail "mount with a wrong key: bytes came out"
luks_umount
ok "mount with a wrong key: reads fail, no data"
