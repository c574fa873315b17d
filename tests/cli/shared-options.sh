#!/bin/bash
# shared-options.sh — the options every command shares (common/opts.c):
# -V/--version, -h/--help, an unknown option (exit 2, named), a missing
# option argument, `--` ending the options, -v before and after the command,
# and --catalog on mount (beside -o catalog=).
set -u
fail() { echo "FAIL: $*" >&2; exit 1; }
: "${BACKUPFS:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-opts.XXXXXX")
trap 'rm -rf "$T"' EXIT
ver=$("$BACKUPFS" --version) || fail "backupfs --version"
case $ver in "backupfs "[0-9]*) ;; *) fail "version '$ver'" ;; esac
n=0
for c in mount scan list verify index find history diff status umount \
         "restore file" "restore disk" "restore quick" \
         "image info" "image map" "image cat"; do
  # shellcheck disable=SC2086
  got=$("$BACKUPFS" $c -V 2>&1) || fail "$c -V: exit $?"
  [ "$got" = "$ver" ] || fail "$c -V printed '$got'"
  got=$("$BACKUPFS" $c --version 2>&1) || fail "$c --version: exit $?"
  [ "$got" = "$ver" ] || fail "$c --version printed '$got'"
  "$BACKUPFS" $c -h >"$T/out" 2>&1 || fail "$c -h: exit $?"
  grep -q "^usage: backupfs $c" "$T/out" || fail "$c -h: $(head -2 "$T/out")"
  for o in --verbose --version --help; do
    grep -q -- "$o" "$T/out" || fail "$c --help lacks $o"
  done
  "$BACKUPFS" $c --no-such-option x y z >"$T/out" 2>&1
  rc=$?
  [ $rc = 2 ] || fail "$c --no-such-option: exit $rc, want 2"
  grep -q "unknown option '--no-such-option'" "$T/out" ||
    fail "$c: unknown option not named: $(head -1 "$T/out")"
  n=$((n + 1))
done
echo "ok: -V, --version, -h, unknown options on $n commands"

# a missing option argument is a usage error naming the option
"$BACKUPFS" scan "$T" --catalog >"$T/out" 2>&1
[ $? = 2 ] || fail "scan --catalog without FILE: not a usage error"
grep -q -- "--catalog needs an argument" "$T/out" || fail "$(head -1 "$T/out")"
# too many operands
"$BACKUPFS" status a b >"$T/out" 2>&1
[ $? = 2 ] || fail "status a b: not a usage error"
grep -q "too many arguments" "$T/out" || fail "$(head -1 "$T/out")"
echo "ok: missing argument, too many operands"

# -- ends the options: a repository whose name starts with '-'
mkdir -p "$T/-repo/vm1/2026-10-01T000000Z"
( cd "$T" && "$BACKUPFS" scan -q --catalog c.db -- -repo ) ||
  fail "scan -- -repo"
( cd "$T" && "$BACKUPFS" list --no-scan --catalog c.db -- -repo ) >/dev/null ||
  fail "list -- -repo"
"$BACKUPFS" list --no-scan --catalog "$T/c.db" -- --json 2>/dev/null &&
  fail "list -- --json: '--json' taken as an option, not the repository"
echo "ok: -- ends the options"

# -v before and after the command (-vv: the parsed command line at debug)
"$BACKUPFS" -v -v scan --catalog "$T/c.db" "$T/-repo" >/dev/null 2>"$T/err0" ||
  fail "backupfs -v -v scan"
"$BACKUPFS" scan --catalog "$T/c.db" "$T/-repo" -vv >/dev/null 2>"$T/err1" ||
  fail "scan -vv"
"$BACKUPFS" scan -v --catalog "$T/c.db" "$T/-repo" >/dev/null 2>"$T/err2" ||
  fail "scan -v"
grep -q "scan: 1 operand(s), catalog $T/c.db" "$T/err0" ||
  fail "backupfs -v -v scan: no debug line: $(cat "$T/err0")"
grep -q "scan: 1 operand(s), catalog $T/c.db" "$T/err1" ||
  fail "scan -vv: no debug line: $(cat "$T/err1")"
grep -q "operand" "$T/err2" && fail "scan -v logged at debug: $(cat "$T/err2")"
echo "ok: -v/-vv before and after the command"

# mount --catalog FILE: the catalog is that file (opened before mounting)
mkdir -p "$T/mnt"
"$BACKUPFS" mount -f --catalog /proc/nope/c.db "$T/-repo" "$T/mnt" \
  >"$T/out" 2>&1 && fail "mount with an unusable --catalog succeeded"
grep -q "/proc/nope/c.db" "$T/out" ||
  fail "mount --catalog not used: $(head -2 "$T/out")"
echo "ok: mount --catalog"
