#!/bin/bash
# test.sh — build (warnings as errors) and run every meson test suite, then
# every suite again under AddressSanitizer+UBSan (BFS_NO_SANITIZE=1 skips it).
# Prints "N passed, N failed, N skipped" at the end; exits non-zero on any
# failure.  Usage: contrib/test.sh [meson test args...]
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && contrib/install-deps.sh >/dev/null
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

rc=0
setup() {  # dir, extra meson args
  local d=$1; shift
  if [ -d "$d" ]; then meson setup --reconfigure "$d" "$@" >/dev/null
  else meson setup "$d" "$@" >/dev/null; fi && ninja -C "$d" >/dev/null
}
setup build -Dwerror=true || { echo "build failed"; exit 1; }
meson test -C build --print-errorlogs --num-processes 2 "$@" || rc=1

if [ -z "${BFS_NO_SANITIZE:-}" ]; then
  setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    || { echo "sanitizer build failed"; exit 1; }
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2 "$@" || rc=1
fi

python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys, os
p = f = s = 0
for path in sys.argv[1:]:
    if not os.path.exists(path): continue
    for line in open(path):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $rc
