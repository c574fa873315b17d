# preload.sh — SERVE_PRELOAD: what an uninstrumented nbdkit needs preloaded
# to load the sanitizer build's plugin (sourced; empty in a normal build).
# The ASan runtime must come first in a process; nbdkit is not built with
# it, so libasan (and libubsan) are preloaded into it: `backupfs serve`
# sets LD_PRELOAD from $BACKUPFS_NBDKIT_PRELOAD for nbdkit only (qemu-img
# and qemu-io must not get it).  Leak checks are off: nbdkit keeps its own
# allocations at exit.
SERVE_PRELOAD=""
if [ "${BFS_SANITIZED:-0}" = 1 ]; then
  asan=$(cc -print-file-name=libasan.so 2>/dev/null || true)
  ubsan=$(cc -print-file-name=libubsan.so 2>/dev/null || true)
  [ -e "$asan" ] || skip "sanitizer build: libasan.so not found to preload into nbdkit"
  SERVE_PRELOAD="$asan"
  [ -e "$ubsan" ] && SERVE_PRELOAD="$SERVE_PRELOAD $ubsan"
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
export BACKUPFS_NBDKIT_PRELOAD="$SERVE_PRELOAD"
