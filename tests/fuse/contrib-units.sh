#!/bin/bash
# contrib-units.sh — the systemd unit meson generates is what systemd
# accepts: no @VAR@ left, ExecStart an absolute path to backupfs, Type=notify,
# and `systemd-analyze verify` of an instance prints nothing and exits 0
# (the binary path pointed at this build so the check can find it); the
# mount unit example too.
set -eu
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
: "${BACKUPFS:?}" "${BUILDDIR:?}" "${SRCDIR:?}"
U=$BUILDDIR/contrib/backupfs@.service
[ -f "$U" ] || fail "$U was not generated"
grep -q "@[A-Za-z_]*@" "$U" && fail "unsubstituted variable in $U: $(grep "@[A-Za-z_]*@" "$U")"
grep -qx "Type=notify" "$U" || fail "$U is not Type=notify"
exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$U")
case $exe in /*/backupfs) ;; *) fail "ExecStart binary '$exe'" ;; esac
echo "ok: generated unit runs $exe"
command -v systemd-analyze >/dev/null || skip "systemd-analyze is missing"
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-units.XXXXXX")
trap 'rm -rf "$T"' EXIT
sed "s|^ExecStart=$exe |ExecStart=$BACKUPFS |" "$U" > "$T/backupfs@.service"
ln -s backupfs@.service "$T/backupfs@srv-backups.service"
rc=0
systemd-analyze verify --man=no "$T/backupfs@srv-backups.service" >"$T/out" 2>&1 || rc=$?
[ $rc -eq 0 ] && [ ! -s "$T/out" ] || fail "systemd-analyze verify (rc $rc): $(cat "$T/out")"
echo "ok: systemd-analyze verify backupfs@srv-backups.service: clean"
rc=0
systemd-analyze verify --man=no "$SRCDIR/contrib/mnt-backups.mount" >"$T/out" 2>&1 || rc=$?
[ $rc -eq 0 ] && [ ! -s "$T/out" ] || fail "systemd-analyze verify mnt-backups.mount (rc $rc): $(cat "$T/out")"
echo "ok: systemd-analyze verify mnt-backups.mount: clean"
