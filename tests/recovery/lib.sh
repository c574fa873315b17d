# lib.sh — shared by the recovery suite's shell tests (sourced).
#
# Builds on tests/fuse/lib.sh (skips, $T, fail/ok, oracle, wait_for) and
# tests/fuse/mkrepo.sh (mk_generic).  Adds:
#   rc_mount_fg REPO MNT   mount in the foreground, in the background: sets
#                          DPID and DLOG (the daemon's stderr)
#   daemon_pid MNT         the PID `backupfs status --json` reports
#   gone PID SECS          true when PID has exited within SECS seconds
# At exit: fd 3 is closed and every daemon started here is killed by PID
# (SIGKILL) before tests/fuse/lib.sh unmounts what is left.
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

DPIDS=""
rc_cleanup() {
  exec 3<&- 2>/dev/null || true
  for p in $DPIDS; do
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  cleanup
}
trap rc_cleanup EXIT INT TERM

rc_mount_fg() {
  local repo=$1 mp=$2
  mkdir -p "$mp"
  MOUNTS="$MOUNTS $mp"
  DLOG=$T/daemon-$(basename "$mp").log
  "$BACKUPFS" mount -f -o "catalog=$T/catalog-$(basename "$mp").db" \
    "$repo" "$mp" 2>"$DLOG" &
  DPID=$!
  DPIDS="$DPIDS $DPID"
  wait_for mountpoint -q "$mp" || fail "$mp: not mounted after 10 s: $(cat "$DLOG")"
}

daemon_pid() {
  "$BACKUPFS" status --json "$1" > "$T/status.json" || fail "status $1"
  jget "$T/status.json" "j['pid']"
}

# gone PID SECS: PID has exited (or is a zombie) within SECS seconds
gone() {
  local pid=$1 n=$(($2 * 10))
  for _ in $(seq 0 "$n"); do
    if ! kill -0 "$pid" 2>/dev/null ||
       [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}
