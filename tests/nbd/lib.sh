# lib.sh — shared by the nbd suite's shell tests (sourced).
#
# Builds on tests/fuse/lib.sh (skips, $T, fail/ok, oracle, jget, wait_for,
# mounts unmounted at exit) and tests/fuse/mkrepo.sh (mk_generic).  Adds:
#   serve_fg NAME ARGS...  `backupfs serve -f ARGS` in the background (its
#                          stderr in $T/NAME.log, its PID in SPID and killed
#                          at exit); waits until it answers nbdinfo --list
#                          on the URI it printed, which is left in SURI
#   serve_stop PID         SIGTERM, then wait (30 s) until it is gone
#   norm_map FILE          an extent map (nbdinfo --map --json or backupfs
#                          image map) as merged "OFFSET LENGTH DATA|ZERO"
#                          lines, for comparing
# In the sanitizer build nbdkit (not instrumented) loads an instrumented
# plugin: the ASan runtime is preloaded into it (tests/lib/preload.sh).
. "$SRCDIR/tests/fuse/lib.sh"
. "$SRCDIR/tests/fuse/mkrepo.sh"

command -v nbdkit >/dev/null || skip "nbdkit is missing (contrib/install-deps.sh)"
command -v nbdinfo >/dev/null || skip "nbdinfo is missing (libnbd-bin)"
[ -e "$BUILDDIR/serve/nbdkit-backupfs-plugin.so" ] ||
  skip "the nbdkit plugin was not built (nbdkit-plugin-dev missing)"

. "$SRCDIR/tests/lib/preload.sh"

SPIDS=""
nbd_cleanup() {
  for p in $SPIDS; do
    kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
  done
  for p in $SPIDS; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  cleanup
}
trap nbd_cleanup EXIT INT TERM

serve_fg() {
  local name=$1; shift
  SLOG=$T/$name.log
  "$BACKUPFS" serve -f "$@" \
    >"$T/$name.uri" 2>"$SLOG" &
  SPID=$!
  SPIDS="$SPIDS $SPID"
  for _ in $(seq 100); do
    SURI=$(head -n1 "$T/$name.uri" 2>/dev/null || true)
    if [ -n "$SURI" ] && nbdinfo --list "$SURI" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$SPID" 2>/dev/null || fail "serve $*: exited: $(cat "$SLOG")"
    sleep 0.1
  done
  fail "serve $*: not answering after 10 s: $(cat "$SLOG")"
}

serve_stop() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  fail "serve (PID $1) still running 30 s after SIGTERM: $(tail -3 "$SLOG")"
}

norm_map() {
  python3 - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
runs = []
if text.lstrip().startswith("["):        # nbdinfo --map --json
    for e in json.loads(text):
        runs.append([e["offset"], e["length"], "DATA" if e["type"] == 0 else "ZERO"])
else:                                    # backupfs image map
    for line in text.split("\n"):
        if line.strip():
            o, l, k = line.split()[:3]
            runs.append([int(o), int(l), k])
out = []
for o, l, k in runs:
    if out and out[-1][2] == k and out[-1][0] + out[-1][1] == o:
        out[-1][1] += l
    else:
        out.append([o, l, k])
for o, l, k in out:
    print(o, l, k)
PY
}
