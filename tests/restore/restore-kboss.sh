#!/bin/bash
# verify and restore disk --repo on a CloudStack KBOSS repository written on
# another host: an incremental whose backing name is an absolute path that
# does not exist here (resolved inside the repository by the catalog), and
# zstd-compressed clusters.  The qcow2 output goes through qemu-img, which
# could not follow that backing name itself: restore spells the resolved
# chain for it.  A corrupt zstd cluster is then found by verify.
. "$SRCDIR/tests/restore/lib.sh"
need_catalog
command -v python3 >/dev/null || skip "python3 not installed"

POOL=/mnt/5e1c7b4a-2f3d-4e5f-8a9b-0c1d2e3f4a5b
[ ! -e "$POOL" ] || skip "$POOL exists here"
VA=3a9e1c2b-1111-4aaa-8bbb-000000000001
U1=7d0c1e2f-0000-4000-8000-000000000001
U2=7d0c1e2f-0000-4000-8000-000000000002
R=$T/secondary; D=$R/backups/2/$VA
mkdir -p "$D"
yes "kboss restore test" | head -c 6M > "$T/a.raw"
truncate -s 32M "$T/a.raw"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/a.raw" "$D/$U1"
qemu-img create -q -f qcow2 -F qcow2 -b "$U1" "$D/$U2" 32M
qemu-io -f qcow2 -c "write -P 0x5a 12M 512k" -c "write -z 1M 64k" "$D/$U2" >/dev/null
oracle "$D/$U2" "$T/u2.raw"
qemu-img rebase -u -F qcow2 -b "$POOL/backups/2/$VA/$U1" "$D/$U2"
touch -d '2026-10-01 03:00:00 UTC' "$D/$U1"
touch -d '2026-10-02 03:00:00 UTC' "$D/$U2"
qemu-img convert -O raw "$D/$U2" "$T/never.raw" 2>/dev/null && fail "qemu follows the dangling name?"

"$BACKUPFS" verify --catalog "$T/c.db" "$R" > "$T/v.out" 2>&1 || fail "verify: $(cat "$T/v.out")"
[ "$(grep -c ' ok$' "$T/v.out")" = 2 ] || fail "verify rows: $(cat "$T/v.out")"
ok "verify passes the moved KBOSS repository"

VM=$(awk 'NR == 2 { print $1 }' "$T/v.out")
"$BACKUPFS" restore disk --repo "$R" --catalog "$T/c.db" "$VM@latest" "$VA" "$T/out.raw" \
  || fail "restore disk --repo"
cmp "$T/u2.raw" "$T/out.raw" || fail "raw result differs from the oracle"
"$BACKUPFS" restore disk --repo "$R" --catalog "$T/c.db" --format qcow2 "$VM" "$VA" "$T/out.qcow2" \
  || fail "restore disk --repo --format qcow2"
oracle "$T/out.qcow2" "$T/out2.raw"
cmp "$T/u2.raw" "$T/out2.raw" || fail "qcow2 result differs from the oracle"
ok "restore disk --repo through an absolute backing name from another host"

python3 "$SRCDIR/tests/restore/qcow2-corrupt.py" compressed "$D/$U1" || fail "no compressed cluster"
"$BACKUPFS" verify --catalog "$T/c.db" "$R" > "$T/v.out" 2>&1 && fail "corrupt zstd cluster passed"
[ "$(grep -c FAULT "$T/v.out")" = 2 ] || fail "expected 2 faults: $(cat "$T/v.out")"
grep -q "content changed\|decompress" "$T/v.out" || fail "no reason: $(cat "$T/v.out")"
ok "corrupt zstd cluster found"
exit 0
