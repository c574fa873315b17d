#!/bin/bash
# restore file from a real mount's files/ (guest files through libguestfs):
# an ext4 disk made with virt-make-fs from a tree with modes, owners, times,
# symlinks (one hostile: /etc/passwd), hard links; restored through
# <mnt>/<vm>/latest/files/... and compared with the tree it was made from.
# Appliances are slow under TCG (two here: virt-make-fs and the mount's).
. "$SRCDIR/tests/restore/lib.sh"
need_catalog
command -v virt-make-fs >/dev/null || skip "virt-make-fs not installed"
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

# does this build's mount show files/ at all?  (cheap probe: no appliance)
mkdir -p "$T/probe/p1/$T1"
truncate -s 1M "$T/probe/p1/$T1/vda.raw"
mount_probe() {
  mkdir -p "$T/pm"
  "$BACKUPFS" mount -o "catalog=$T/probe.db" "$T/probe" "$T/pm" 2>/dev/null || return 1
  MNT=$T/pm
  sleep 0.5
  [ -d "$T/pm/p1/latest/files" ]; local r=$?
  fusermount3 -u "$T/pm"; MNT=
  return $r
}
mount_probe || skip "the mount shows no files/ (guest files not linked in this build)"

S=$T/tree
mkdir -p "$S/etc/app/sub"
printf 'secret=1\n' > "$S/etc/app/conf"
chmod 0640 "$S/etc/app/conf"
chown 123:456 "$S/etc/app/conf"
ln "$S/etc/app/conf" "$S/etc/app/conf.hard"
ln -s /etc/passwd "$S/etc/app/passwd"
ln -s ../app "$S/etc/app/rel"
head -c 3M /dev/urandom > "$S/etc/app/sub/blob"
chmod 0750 "$S/etc/app/sub"
touch -d '2021-02-03 04:05:06' "$S/etc/app/conf" "$S/etc/app/sub/blob"
touch -d '2020-01-01 00:00:00' "$S/etc/app/sub" "$S/etc/app"
R=$T/repo; mkdir -p "$R/g1/$T1"
virt-make-fs --format=qcow2 --type=ext4 --size=+16M "$S" "$R/g1/$T1/vda.qcow2" \
  || fail "virt-make-fs"

M=$T/mnt
mkdir -p "$M"
"$BACKUPFS" mount -o "catalog=$T/catalog.db" "$R" "$M" || fail "mount"
MNT=$M
app=$(find "$M/g1/latest/files" -maxdepth 4 -type d -name app -path '*/etc/app' | head -1)
[ -n "$app" ] || fail "no etc/app under files/: $(ls -R "$M/g1/latest/files" | head)"

D=$T/out; mkdir "$D"
"$BACKUPFS" restore file "$app" "$D" || fail "restore file from files/"
A=$D/app
cmp "$S/etc/app/conf" "$A/conf" && cmp "$S/etc/app/sub/blob" "$A/sub/blob" || fail "contents differ"
for f in conf sub sub/blob .; do
  [ "$(stat -c '%a %Y' "$S/etc/app/$f")" = "$(stat -c '%a %Y' "$A/$f")" ] || fail "mode/mtime of $f"
done
[ "$(stat -c %u:%g "$A/conf")" = 123:456 ] || fail "owner not kept"
[ -L "$A/passwd" ] && [ "$(readlink "$A/passwd")" = /etc/passwd ] || fail "hostile symlink not kept as a link"
[ "$(readlink "$A/rel")" = ../app ] || fail "relative symlink"
[ "$(stat -c %i "$app/conf")" = "$(stat -c %i "$app/conf.hard")" ] || fail "the mount shows hard links with different inode numbers"
[ "$(stat -c %i "$A/conf")" = "$(stat -c %i "$A/conf.hard")" ] || fail "hard link not kept"
ok "guest tree restored: contents, modes, owner, times, links"

"$BACKUPFS" restore file "$app/rel/conf" "$T/leak" 2>/dev/null && fail "followed a guest symlink"
"$BACKUPFS" restore file "$app" "$D" 2>/dev/null && fail "overwrote without --force"
ok "guest symlinks never followed, no overwrite"

# without a mount: --repo REPO VM@TIME PATH, as a tar on stdout (a private
# mount of its own, gone afterwards); extracted with tar and compared
GP=${app#"$M/g1/latest/files"}
"$BACKUPFS" restore file --repo "$R" --catalog "$T/catalog.db" --format tar \
  g1@latest "$GP" - > "$T/repo.tar" 2>"$T/repo.err" || fail "restore file --repo: $(cat "$T/repo.err")"
mkdir "$T/xr"; tar -C "$T/xr" -xpf "$T/repo.tar" || fail "tar -x of the --repo archive"
X=$T/xr/app
cmp "$S/etc/app/conf" "$X/conf" && cmp "$S/etc/app/sub/blob" "$X/sub/blob" || fail "--repo tar: contents differ"
for f in conf sub sub/blob .; do
  [ "$(stat -c '%a %Y' "$S/etc/app/$f")" = "$(stat -c '%a %Y' "$X/$f")" ] || fail "--repo tar: mode/mtime of $f"
done
[ "$(stat -c %u:%g "$X/conf")" = 123:456 ] || fail "--repo tar: owner not kept"
[ "$(readlink "$X/passwd")" = /etc/passwd ] || fail "--repo tar: symlink"
[ "$(stat -c %i "$X/conf")" = "$(stat -c %i "$X/conf.hard")" ] || fail "--repo tar: hard link"
grep -q backupfs-restore /proc/mounts && fail "private mount left: $(grep backupfs-restore /proc/mounts)"
ls -d "${XDG_RUNTIME_DIR:-/nonexistent}"/backupfs-restore.* /tmp/backupfs-restore.* 2>/dev/null &&
  fail "private mount directory left behind"
"$BACKUPFS" restore file --repo "$R" --catalog "$T/catalog.db" g1@1999-01-01T000000Z /etc "$T/no" 2>"$T/e" &&
  fail "--repo: unknown point in time accepted"
grep -q "no such point in time" "$T/e" || fail "--repo unknown time: $(cat "$T/e")"
ok "restore file --repo --format tar -: the same tree, no mount left"
exit 0
