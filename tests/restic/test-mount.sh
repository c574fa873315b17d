#!/bin/bash
# test-mount.sh VER — a restic repository (format VER) as a backupfs
# repository: the catalog lists each snapshot's vda.img as a point in time
# of VM "vda" (the tree/ snapshot's empty.img too), the mount serves every
# one byte-identical to `restic dump`, `restore disk --repo` copies one out,
# a missing or wrong password leaves the repository visible as a broken
# backup saying why, and a flipped byte in a pack is EIO and a verify fault.
. "$SRCDIR/tests/restic/lib.sh"
[ -c /dev/fuse ] || { echo "SKIP: /dev/fuse is missing"; exit 77; }
ver=${1:-2}
MNT=$T/mnt
cleanup() { fusermount3 -u "$MNT" 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT

R_DIR=$T/repo
make_repo "$R_DIR" "$ver" ${2:-}
pw=$T/pw
unset RESTIC_PASSWORD_FILE      # backupfs must be told
mapfile -t S < <(RESTIC_PASSWORD_FILE=$pw snaps "$R_DIR")

# no password: visible, broken, saying what it needs
J=$(listj --catalog "$T/c0.db" "$R_DIR")
check_match "no password: a broken backup says so" \
  "password is needed.*restic-password-file" \
  "$(q '[.vms[].backups[].status] | join(" ")')"
# wrong password
printf 'wrong\n' >"$T/bad"
"$BACKUPFS" scan -q --catalog "$T/c1.db" --restic-password-file "$T/bad" "$R_DIR"
J=$(listj --catalog "$T/c1.db" "$R_DIR")
check_match "wrong password: a broken backup says so" \
  "wrong password" "$(q '[.vms[].backups[].status] | join(" ")')"
# the password file given to scan is remembered by the catalog
"$BACKUPFS" scan -q --catalog "$T/c2.db" -o "restic_password_file=$pw" "$R_DIR"
J=$(listj --catalog "$T/c2.db" "$R_DIR")
check "scan -o restic_password_file: remembered by list" "ok ok ok" \
  "$(q '[.vms[] | select(.name == "vda") | .backups[].status] | join(" ")')"

mkdir -p "$MNT"
"$BACKUPFS" mount -o "catalog=$T/c.db,restic_password_file=$pw" "$R_DIR" "$MNT"
J=$(listj --catalog "$T/c.db" "$R_DIR")
check "three points in time of vda" 3 "$(q '.vms[] | select(.name == "vda") | .backups | length')"
check "source is restic" restic "$(q '[.vms[] | select(.name == "vda") | .backups[].source] | unique | join(",")')"
mapfile -t B < <(ls "$MNT/vda" | grep -v latest)
check "three directories in the tree" 3 "${#B[@]}"
# each point in time against the snapshot its backup.json names (two
# snapshots of one second have names in the order of their keys)
for i in 0 1 2; do
  sid=$(jq -r .restic_snapshot "$MNT/vda/${B[$i]}/backup.json")
  RESTIC_PASSWORD_FILE=$pw dump "$R_DIR" "$sid" /vda.img "$T/want$i"
  if cmp -s "$T/want$i" "$MNT/vda/${B[$i]}/disks/vda.img"; then
    echo "ok: point in time $i through the mount equals restic dump"
  else
    echo "FAIL: point in time $i differs from restic dump"; fails=$((fails + 1))
  fi
done
check "every snapshot of vda.img is a point in time" \
  "$(printf '%s\n' "${S[@]:0:3}" | sort | tr '\n' ' ')" \
  "$(for b in "${B[@]}"; do jq -r .restic_snapshot "$MNT/vda/$b/backup.json"; done | sort | tr '\n' ' ')"
check "the tree snapshot's empty.img is a disk of VM empty" 0 \
  "$(stat -c %s "$MNT/empty/latest/disks/empty.img")"
fusermount3 -u "$MNT"

# restore disk without a mount
"$BACKUPFS" restore disk --repo "$R_DIR" --catalog "$T/c.db" \
  "vda@${B[1]}" vda "$T/out.raw" >/dev/null
if cmp -s "$T/want1" "$T/out.raw"; then echo "ok: restore disk --repo"
else echo "FAIL: restore disk --repo differs"; fails=$((fails + 1)); fi

# a flipped byte in each data pack: EIO through the mount, a verify fault
find "$R_DIR/data" -type f -size +1M -print0 | xargs -0 python3 -c '
import sys
for p in sys.argv[1:]:
    with open(p, "r+b") as f:
        f.seek(4096); b = f.read(1); f.seek(4096); f.write(bytes([b[0] ^ 0xff]))
'

"$BACKUPFS" mount -o "catalog=$T/c.db" "$R_DIR" "$MNT"
bad=0
for b in "${B[@]}"; do
  cat "$MNT/vda/$b/disks/vda.img" >/dev/null 2>"$T/err" || bad=$((bad + 1))
done
check "reads through the damaged pack fail" yes "$([ $bad -gt 0 ] && echo yes || echo no)"
check_match "the error is EIO" "Input/output error" "$(cat "$T/err")"
fusermount3 -u "$MNT"
if "$BACKUPFS" verify --catalog "$T/c.db" "$R_DIR" vda >"$T/v" 2>&1; then
  echo "FAIL: verify passed over a damaged pack"; fails=$((fails + 1))
else
  check_match "verify names the damage" "(MAC|pack|authent)" "$(cat "$T/v")"
fi
finish
