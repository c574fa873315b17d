#!/bin/bash
# tsan-fuse.sh — ThreadSanitizer build of backupfs, then the fuse suite and a
# short hardening stress run under it.  Too slow for every CI run; run it
# before changing fs/ locking.  Any data race report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
d=build-tsan
if [ -d $d ]; then meson setup --reconfigure $d -Db_sanitize=thread -Db_lundef=false >/dev/null
else meson setup $d -Db_sanitize=thread -Db_lundef=false >/dev/null; fi
ninja -C $d >/dev/null
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$PWD/$d/tsan"
rm -f $d/tsan.*
export BFS_STRESS_SECONDS=${BFS_STRESS_SECONDS:-15}
rc=0
meson test -C $d --suite fuse --print-errorlogs --num-processes 1 || rc=1
meson test -C $d --suite hardening --print-errorlogs --num-processes 1 concurrency changed-under-mount || rc=1
if ls $d/tsan.* >/dev/null 2>&1; then
  echo "ThreadSanitizer reports:"; head -50 $d/tsan.*; rc=1
else
  echo "ThreadSanitizer: no reports"
fi
exit $rc
