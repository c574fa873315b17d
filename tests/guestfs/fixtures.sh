# fixtures.sh — sourced by the guestfs tests: builds the shared fixtures
# once per build directory (one guestfish appliance), or skips (exit 77)
# when libguestfs cannot launch here.
: "${BUILDDIR:?}" "${SRCDIR:?}"
if [ "${BFS_HAVE_GUESTFS:-1}" != 1 ]; then
  echo "SKIP: built without libguestfs (-Dguestfs=disabled)"; exit 77
fi
FIX=$BUILDDIR/tests/guestfs/fixtures
T1=2026-11-01T030000Z
T2=2026-11-02T030000Z

ensure_fixtures() {
  mkdir -p "$BUILDDIR/tests/guestfs"
  exec 9>"$BUILDDIR/tests/guestfs/fixtures.lock"
  flock 9
  if [ -f "$FIX/.stamp" ] &&
     [ "$FIX/.stamp" -nt "$SRCDIR/tests/guestfs/make-fixtures.sh" ]; then
    flock -u 9
    return 0
  fi
  if ! command -v guestfish >/dev/null; then
    echo "SKIP: guestfish not installed"; exit 77
  fi
  rm -rf "$FIX"
  if ! "$SRCDIR/tests/guestfs/make-fixtures.sh" "$FIX" > "$FIX.log" 2>&1; then
    cat "$FIX.log"
    if grep -qiE "launch|appliance|qemu|kvm|supermin" "$FIX.log"; then
      echo "SKIP: libguestfs cannot launch an appliance here"; exit 77
    fi
    echo "FAIL: fixture creation"; exit 1
  fi
  touch "$FIX/.stamp"
  flock -u 9
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
fail() { echo "FAIL: $*"; exit 1; }
