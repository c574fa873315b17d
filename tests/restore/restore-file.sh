#!/bin/bash
# restore file on a directory tree made here (the command works on any
# tree; the mount's files/ is one): contents, modes, owner, times, sparse
# files, symlinks kept as links (a hostile absolute one included), hard
# links, FIFOs, no overwrite without --force, never writing through a link
# at the destination, never following a guest symlink in the source path.
. "$SRCDIR/tests/restore/lib.sh"

S=$T/backup/files          # looks like a mount's point in time
mkdir -p "$S/etc/app/sub" "$S/var"
echo '{"vm":"fake","disks":[]}' > "$T/backup/backup.json"
printf 'secret=1\n' > "$S/etc/app/conf"
chmod 0640 "$S/etc/app/conf"
printf '#!/bin/sh\necho hi\n' > "$S/etc/app/run.sh"
chmod 4755 "$S/etc/app/run.sh"
ln "$S/etc/app/conf" "$S/etc/app/conf.hard"
ln -s /etc/passwd "$S/etc/app/passwd"          # hostile: absolute, host path
ln -s ../../etc "$S/etc/app/up"                 # relative
ln -s /etc "$S/var/hostetc"                     # a parent that is a link
mkfifo "$S/etc/app/fifo"
truncate -s 16M "$S/etc/app/sparse"; echo tail >> "$S/etc/app/sparse"
head -c 300000 /dev/urandom > "$S/etc/app/sub/blob"
chmod 0700 "$S/etc/app/sub"
if [ "$(id -u)" = 0 ]; then chown -h 1234:4321 "$S/etc/app/conf" "$S/etc/app/passwd"; fi
touch -d '2021-02-03 04:05:06' "$S/etc/app/conf" "$S/etc/app/sub/blob" "$S/etc/app/sub"
touch -h -d '2019-01-01 00:00:00' "$S/etc/app/passwd"
touch -d '2020-05-05 05:05:05' "$S/etc/app"

XATTR=
if python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.bfs", b"kept")' \
     "$S/etc/app/conf" 2>/dev/null; then XATTR=1; fi

D=$T/out; mkdir "$D"
"$BACKUPFS" restore file "$S/etc/app" "$D" || fail "restore file of a tree"
A=$D/app
cmp "$S/etc/app/conf" "$A/conf" && cmp "$S/etc/app/sub/blob" "$A/sub/blob" \
  && cmp "$S/etc/app/sparse" "$A/sparse" || fail "contents differ"
for f in conf run.sh sub sub/blob; do
  [ "$(stat -c %a "$S/etc/app/$f")" = "$(stat -c %a "$A/$f")" ] || fail "mode of $f"
done
for f in conf sub sub/blob .; do
  [ "$(stat -c %Y "$S/etc/app/$f")" = "$(stat -c %Y "$A/$f")" ] || fail "mtime of $f"
done
[ -L "$A/passwd" ] || fail "hostile symlink not kept as a link"
[ "$(readlink "$A/passwd")" = /etc/passwd ] || fail "symlink target changed"
[ "$(stat -c %Y "$A/passwd")" = "$(stat -c %Y "$S/etc/app/passwd")" ] || fail "symlink mtime"
[ "$(readlink "$A/up")" = ../../etc ] || fail "relative symlink"
[ "$(stat -c %i "$A/conf")" = "$(stat -c %i "$A/conf.hard")" ] || fail "hard link not kept"
[ -p "$A/fifo" ] || fail "fifo"
[ "$(du -k "$A/sparse" | cut -f1)" -lt 1024 ] || fail "sparse file not sparse"
if [ "$(id -u)" = 0 ]; then
  [ "$(stat -c %u:%g "$A/conf")" = 1234:4321 ] || fail "owner not kept"
  [ "$(stat -c %u:%g "$A/passwd")" = 1234:4321 ] || fail "symlink owner not kept"
fi
if [ -n "$XATTR" ]; then
  python3 -c 'import os, sys; sys.exit(os.getxattr(sys.argv[1], "user.bfs") != b"kept")' \
    "$A/conf" || fail "user xattr not kept"
fi
ok "tree restored with modes, times, links${XATTR:+, xattrs}"

# never overwrite without --force
echo changed > "$A/conf"
"$BACKUPFS" restore file "$S/etc/app" "$D" >"$T/o" 2>"$T/e" && fail "overwrote without --force"
[ "$(cat "$A/conf")" = changed ] || fail "file changed without --force"
# the message names the whole destination path; no success-looking summary
grep -q "^backupfs: restore file: $(realpath "$D")/app: exists" "$T/e" ||
  fail "exists message does not name the whole path: $(cat "$T/e")"
grep -q "restored" "$T/o" && fail "success-looking summary after errors: $(cat "$T/o")"
"$BACKUPFS" restore file "$S/etc/app/conf" "$A/conf" >"$T/o" 2>"$T/e" && fail "overwrote a single file"
grep -q "$(realpath "$D")/app/conf: exists" "$T/e" && grep -q "nothing restored" "$T/e" &&
  [ ! -s "$T/o" ] || fail "single existing file: out '$(cat "$T/o")' err '$(cat "$T/e")'"
ok "no overwrite without --force: $(head -1 "$T/e")"

# --force replaces files, and never writes through a link at the destination
echo victim > "$T/victim"
rm "$A/sub/blob"; ln -s "$T/victim" "$A/sub/blob"
"$BACKUPFS" restore file --force "$S/etc/app" "$D" || fail "--force"
[ "$(cat "$T/victim")" = victim ] || fail "wrote through a destination symlink"
[ ! -L "$A/sub/blob" ] && cmp "$S/etc/app/sub/blob" "$A/sub/blob" || fail "--force did not replace"
cmp "$S/etc/app/conf" "$A/conf" || fail "--force did not restore conf"
ok "--force replaces, never through links"

# a single file to a new name; a symlink alone stays a link
"$BACKUPFS" restore file "$S/etc/app/conf" "$T/conf.copy" || fail "single file"
cmp "$S/etc/app/conf" "$T/conf.copy" || fail "single file contents"
"$BACKUPFS" restore file "$S/etc/app/passwd" "$T/pw" || fail "single symlink"
[ -L "$T/pw" ] && [ "$(readlink "$T/pw")" = /etc/passwd ] || fail "single symlink followed"
ok "single file and single link"

# a guest symlink in the source path is never followed onto the host
if "$BACKUPFS" restore file "$S/var/hostetc/hostname" "$T/leak" 2>"$T/err"; then
  fail "followed a guest symlink onto the host"
fi
[ ! -e "$T/leak" ] || fail "leaked a host file"
grep -q symlink "$T/err" || fail "no clear message: $(cat "$T/err")"
ok "guest symlink in the path not followed"

# archives: tar (extracted with GNU tar, and bsdtar when there) and zip
# (unzip), compared with the source: contents, modes, mtimes, owners (root),
# symlinks as links, hard links (tar), the FIFO (tar)
same_tree() {   # SRC DST what
  local f
  cmp "$1/conf" "$2/conf" && cmp "$1/sub/blob" "$2/sub/blob" && cmp "$1/sparse" "$2/sparse" ||
    fail "$3: contents differ"
  for f in conf run.sh sub sub/blob; do
    [ "$(stat -c '%a %Y' "$1/$f")" = "$(stat -c '%a %Y' "$2/$f")" ] ||
      fail "$3: mode/mtime of $f: $(stat -c '%a %Y' "$1/$f") vs $(stat -c '%a %Y' "$2/$f")"
  done
  [ -L "$2/passwd" ] && [ "$(readlink "$2/passwd")" = /etc/passwd ] || fail "$3: hostile symlink not a link"
  [ "$(readlink "$2/up")" = ../../etc ] || fail "$3: relative symlink"
  if [ "$(id -u)" = 0 ]; then
    [ "$(stat -c %u:%g "$2/conf")" = 1234:4321 ] || fail "$3: owner not kept"
  fi
}
"$BACKUPFS" restore file --format tar "$S/etc/app" "$T/app.tar" > "$T/o" || fail "--format tar"
grep -q "wrote $T/app.tar" "$T/o" || fail "--format tar output: $(cat "$T/o")"
mkdir "$T/xt"; tar -C "$T/xt" -xpf "$T/app.tar" || fail "tar cannot extract it"
same_tree "$S/etc/app" "$T/xt/app" tar
[ "$(stat -c %i "$T/xt/app/conf")" = "$(stat -c %i "$T/xt/app/conf.hard")" ] || fail "tar: hard link"
[ -p "$T/xt/app/fifo" ] || fail "tar: fifo"
tar -tvf "$T/app.tar" | grep -q "app/passwd -> /etc/passwd" || fail "tar -tv: no symlink entry"
if command -v bsdtar >/dev/null; then
  mkdir "$T/xb"; bsdtar -C "$T/xb" -xpf "$T/app.tar" || fail "bsdtar cannot extract it"
  same_tree "$S/etc/app" "$T/xb/app" bsdtar
fi
"$BACKUPFS" restore file --format tar "$S/etc/app" "$T/app.tar" 2>"$T/e" && fail "archive overwritten without --force"
grep -q "app.tar: File exists (use --force" "$T/e" || fail "existing archive: $(cat "$T/e")"
"$BACKUPFS" restore file --force --format tar "$S/etc/app/conf" "$T/app.tar" >/dev/null || fail "--force --format"
[ "$(tar -tf "$T/app.tar")" = conf ] || fail "--force did not replace the archive: $(tar -tf "$T/app.tar")"
ok "tar archive extracts to the same tree (GNU tar${BSDTAR:+, bsdtar})"

mkdir "$T/zdir"
"$BACKUPFS" restore file --format zip "$S/etc/app" "$T/zdir" > "$T/o" 2>"$T/e" || fail "--format zip: $(cat "$T/e")"
[ -f "$T/zdir/app.zip" ] || fail "zip into a directory: no app.zip: $(ls "$T/zdir")"
grep -q "fifo: special file (zip has none) skipped" "$T/e" || fail "zip: fifo not reported: $(cat "$T/e")"
if command -v unzip >/dev/null; then
  mkdir "$T/xz"; (cd "$T/xz" && unzip -qKX "$T/zdir/app.zip") || fail "unzip"
  same_tree "$S/etc/app" "$T/xz/app" zip
fi
python3 - "$T/zdir/app.zip" <<'PY' || fail "zip entries"
import sys, zipfile, stat
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
i = z.getinfo("app/passwd")
assert stat.S_ISLNK(i.external_attr >> 16) and z.read(i) == b"/etc/passwd", i
assert z.read("app/conf") == b"secret=1\n"
PY
ok "zip archive: entries, symlinks, modes, mtimes"

# DEST - is stdout; not a terminal; a bad format is refused
"$BACKUPFS" restore file --format tar "$S/etc/app/conf" - > "$T/s.tar" || fail "--format tar -"
[ "$(tar -xOf "$T/s.tar" conf)" = "secret=1" ] || fail "tar on stdout"
"$BACKUPFS" restore file "$S/etc/app/conf" - 2>"$T/e" && fail "DEST - without --format"
grep -q "needs --format" "$T/e" || fail "DEST - message: $(cat "$T/e")"
"$BACKUPFS" restore file --format rar "$S/etc/app/conf" "$T/x.rar" 2>/dev/null && fail "--format rar accepted"
if command -v script >/dev/null; then
  script -qec "'$BACKUPFS' restore file --format tar '$S/etc/app/conf' -" /dev/null > "$T/tty" 2>&1 &&
    fail "wrote an archive to a terminal"
  grep -aq "not writing an archive to a terminal" "$T/tty" || fail "terminal: $(cat "$T/tty")"
fi
"$BACKUPFS" restore file --json --format zip "$S/etc/app" "$T/j.zip" > "$T/j.json" 2>/dev/null ||
  fail "--json --format zip"
jq -e --arg d "$T/j.zip" '.dest == $d and .entries > 5 and .errors == 0' "$T/j.json" >/dev/null ||
  fail "--json --format: $(cat "$T/j.json")"
ok "archive on stdout (never a terminal); --json names the archive"

"$BACKUPFS" restore file --help | grep force >/dev/null || fail "--help"
"$BACKUPFS" restore file "$S/nonexistent" "$T/x" 2>/dev/null && fail "missing source accepted"
exit 0
