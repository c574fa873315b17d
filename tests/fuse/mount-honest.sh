#!/bin/bash
# mount-honest.sh — mounts that would deadlock, hide files or show nothing
# are refused with a clear message, and each refusal has its override:
# a mount point inside the repository (10 s timeout: the old daemon
# deadlocked on its own mount) and a repository inside the mount point;
# a repository where no layout recognises anything (--allow-empty /
# -o allow_empty); a non-empty mount point and one already mounted
# (-o nonempty); the user_allow_other hint for a non-root allow_other mount.
. "$SRCDIR/tests/fuse/lib.sh"

R=$T/repo
mkdir -p "$R/vm1/2026-01-01T000000Z"
qemu-img create -q -f qcow2 "$R/vm1/2026-01-01T000000Z/vda.qcow2" 1M

# refused MESSAGE-REGEX ARGS...: the mount fails within 10 s, says why,
# and nothing more is mounted at the last argument
refused() {
  local want=$1; shift
  local mp=${*: -1}
  MOUNTS="$MOUNTS $mp"
  local rc=0 before
  before=$(findmnt -n -o TARGET "$mp" | wc -l)
  timeout 10 "$BACKUPFS" mount "$@" 2>"$T/err" >/dev/null || rc=$?
  [ $rc -ne 124 ] || fail "mount $* hung for 10 s"
  [ $rc -ne 0 ] || fail "mount $* succeeded"
  grep -Eq "$want" "$T/err" || fail "mount $*: message '$(cat "$T/err")' lacks /$want/"
  [ "$(findmnt -n -o TARGET "$mp" | wc -l)" = "$before" ] ||
    fail "mount $*: mounted on $mp"
  ok "refused: $(head -c 160 "$T/err")"
}

# a mount point inside the repository, by its own path and through a
# second name (symlink) of the repository
mkdir -p "$R/mnt"
refused "inside the repository" -o "catalog=$T/c1.db" "$R" "$R/mnt"
ln -s "$R" "$T/repolink"
mkdir -p "$R/vm1/mnt"
refused "inside the repository" -o "catalog=$T/c1.db" "$R" "$T/repolink/vm1/mnt"
rmdir "$R/mnt" "$R/vm1/mnt"
if [ "$(id -u)" = 0 ]; then
  # the same directory under another mount (bind mount): by device/inode
  mkdir -p "$T/bind"
  if mount --bind "$R" "$T/bind" 2>/dev/null; then
    mkdir -p "$R/m2"
    refused "inside the repository" -o "catalog=$T/c1.db" "$R" "$T/bind/m2"
    umount "$T/bind"
    rmdir "$R/m2"
  fi
fi

# the repository inside the mount point
mkdir -p "$T/outer"
mv "$R" "$T/outer/repo"
refused "repository is inside the mount point" -o "catalog=$T/c2.db" "$T/outer/repo" "$T/outer"
mv "$T/outer/repo" "$R"
rmdir "$T/outer"

# an empty repository, and one with files no layout claims
mkdir -p "$T/empty" "$T/m-empty"
refused "no known layout.*CloudStack NAS.*generic.*KBOSS.*--allow-empty" \
  -o "catalog=$T/c3.db" "$T/empty" "$T/m-empty"
mkdir -p "$T/etc-like/a"
echo "not a backup" > "$T/etc-like/a/passwd"
refused "no known layout" -o "catalog=$T/c4.db" "$T/etc-like" "$T/m-empty"
bfs_mount "$T/empty" "$T/m-empty" --allow-empty
[ -z "$(ls "$T/m-empty")" ] || fail "empty mount lists $(ls "$T/m-empty")"
bfs_umount "$T/m-empty"
bfs_mount "$T/empty" "$T/m-empty" -o allow_empty,noinotify
bfs_umount "$T/m-empty"
ok "--allow-empty and -o allow_empty mount an empty repository"

# a non-empty mount point
mkdir -p "$T/full"
echo keep > "$T/full/precious"
refused "not empty.*precious.*-o nonempty" -o "catalog=$T/c5.db" "$R" "$T/full"
bfs_mount "$R" "$T/full" -o nonempty
[ -e "$T/full/vm1/latest/disks/vda.img" ] || fail "-o nonempty: tree missing"
ok "-o nonempty mounts over a non-empty directory"

# an existing mount (a backupfs one here, still mounted from above)
refused "already a mount point.*fuse.backupfs.*-o nonempty" \
  -o "catalog=$T/c6.db" "$R" "$T/full"
bfs_mount "$R" "$T/full" -o nonempty
[ "$(findmnt -n -o TARGET "$T/full" | wc -l)" -ge 2 ] ||
  fail "-o nonempty over a mount: not stacked: $(findmnt "$T/full")"
bfs_umount "$T/full"
bfs_umount "$T/full"
[ "$(cat "$T/full/precious")" = keep ] || fail "precious file changed"
ok "-o nonempty mounts over an existing mount"

# allow_other as a user without user_allow_other in /etc/fuse.conf
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
   ! grep -q '^[[:space:]]*user_allow_other' /etc/fuse.conf 2>/dev/null; then
  U=$T/user
  mkdir -p "$U/mnt"
  cp -r "$R" "$U/repo"
  chown -R nobody: "$U"
  chmod 755 "$T"
  MOUNTS="$MOUNTS $U/mnt"
  rc=0
  timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env HOME="$U" XDG_CACHE_HOME="$U/cache" "$BACKUPFS" mount \
    -o "allow_other,catalog=$U/c.db" "$U/repo" "$U/mnt" 2>"$T/err" || rc=$?
  [ $rc -ne 0 ] || fail "non-root allow_other mount succeeded without user_allow_other"
  grep -q "user_allow_other.*/etc/fuse.conf" "$T/err" ||
    fail "no user_allow_other hint: $(cat "$T/err")"
  ok "non-root allow_other: $(grep user_allow_other "$T/err" | tail -1 | head -c 200)"
else
  echo "note: user_allow_other check needs root, setpriv and no user_allow_other"
fi
