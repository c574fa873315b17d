#!/bin/bash
# test-guest-hang.sh — files/ never hangs on an appliance that never answers.
#
# The hung appliance is a real qemu started paused (-S, through
# LIBGUESTFS_HV): libguestfs waits forever for it to boot, as under a nested
# KVM that hangs.  On a tiny repository (one VM, one ext4 disk made on the
# host, no guestfish needed):
#   1. -o guest_timeout=8: `ls files/` returns within the timeout showing
#      only a readable .backupfs-error that says what happened and when it
#      retries; the qemu is gone; files/.backupfs-status existed meanwhile;
#      `backupfs status` listed the appliance starting, then failed.
#   2. guest_timeout=300: a lookup waiting for the launch ends when its
#      process gets SIGINT (FUSE interrupt); `ls files/` gives up waiting
#      after ~10 s with -o guest_list_wait=10 and shows .backupfs-status
#      (since when, waiting for what).
#   3. SIGTERM of the daemon while that launch hangs: the daemon exits within
#      10 s and leaves no qemu of its own.
set -uo pipefail
. "$SRCDIR/tests/guestfs/fixtures.sh"
. "$SRCDIR/tests/fuse/lib.sh"
set +e
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 is missing"
QEMU=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 is missing"
"$BACKUPFS" mount --help | grep guest_timeout >/dev/null ||
  fail "mount has no guest_timeout option"

# repository: vm/T1/vda.qcow2 holding a bare ext4 with a directory
mkdir -p "$T/root/dir" "$T/repo/vm/$T1"
echo hello > "$T/root/dir/hello.txt"
truncate -s 32M "$T/vda.raw"
mkfs.ext4 -q -F -d "$T/root" "$T/vda.raw" || skip "mkfs.ext4 -d failed"
qemu-img convert -O qcow2 "$T/vda.raw" "$T/repo/vm/$T1/vda.qcow2"

HQ=$BUILDDIR/tests/guestfs/hung-qemu   # a fixed path: libguestfs caches its probes
mkdir -p "${HQ%/*}"
cat > "$HQ.tmp" <<EOF
#!/bin/sh
# the appliance itself starts paused and never boots; probes run as usual
case " \$* " in *" -kernel "*) exec "$QEMU" "\$@" -S ;; esac
exec "$QEMU" "\$@"
EOF
chmod +x "$HQ.tmp"
cmp -s "$HQ.tmp" "$HQ" && rm "$HQ.tmp" || mv "$HQ.tmp" "$HQ"
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_HV=$HQ

now() { echo "${EPOCHREALTIME/./}" | cut -c1-13; }      # milliseconds
daemon_of() { pgrep -f -- "backupfs mount .* $1\$" | head -1; }
qemu_of() { pgrep -P "$1" -f qemu-system | tr '\n' ' '; }  # the daemon's qemu
alive() { for p in $1; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
# wait_until SECONDS CMD...: poll every 0.2 s
wait_until() {
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}
has_qemu() { [ -n "$(qemu_of "$1")" ]; }
gone() { ! alive "$1"; }

# ---- 1. launch timeout -------------------------------------------------
M=$T/m1
bfs_mount "$T/repo" "$M" -o guest_timeout=8
F=$M/vm/$T1/files
[ -d "$F" ] || skip "the mount shows no files/ (built without libguestfs)"
MPID=$(daemon_of "$M")
[ -n "$MPID" ] || fail "no daemon for $M"
t0=$(now)
ls -A "$F" > "$T/ls1" 2>&1 &
LS=$!
# meanwhile files/ says it is starting
wait_until 6 test -e "$F/.backupfs-status" || fail "no .backupfs-status while starting"
wait_until 7 has_qemu "$MPID"; Q=$(qemu_of "$MPID")
echo "qemu of the launch: ${Q:-none yet}"
cat "$F/.backupfs-status" > "$T/status1"
cat "$T/status1"
grep -q "starting" "$T/status1" && grep -q "waiting for" "$T/status1" ||
  fail ".backupfs-status text: $(cat "$T/status1")"
# and backupfs status lists the appliance as starting
"$BACKUPFS" status "$M" > "$T/bst1" 2>&1 || fail "backupfs status: $(cat "$T/bst1")"
cat "$T/bst1"
grep -q "^appliances: 1 starting, 0 running, 0 failed" "$T/bst1" &&
  grep -q "^  vm/$T1: starting since .*, waiting for " "$T/bst1" ||
  fail "backupfs status while starting: $(cat "$T/bst1")"
wait_until 30 sh -c "! kill -0 $LS 2>/dev/null" || fail "ls files/ still waiting after 30 s"
t1=$(now)
echo "ls files/ returned after $(( t1 - t0 )) ms: $(cat "$T/ls1")"
[ $(( t1 - t0 )) -lt 20000 ] || fail "ls files/ took $(( t1 - t0 )) ms with guest_timeout=8"
[ "$(cat "$T/ls1")" = .backupfs-error ] || fail "files/ after the timeout: $(cat "$T/ls1")"
cat "$F/.backupfs-error" > "$T/err1" || fail ".backupfs-error not readable"
cat "$T/err1"
grep -q "did not start within 8 s" "$T/err1" || fail "error text: no reason"
grep -q "next try" "$T/err1" || fail "error text: no retry time"
wait_until 5 gone "$Q" || fail "the timed-out appliance's qemu still runs: $Q"
[ -z "$(qemu_of "$MPID")" ] || fail "qemu after the timeout: $(qemu_of "$MPID")"
[ -e "$F/.backupfs-status" ] && fail ".backupfs-status after the launch ended"
# backupfs status: failed, why, when it retries
"$BACKUPFS" status "$M" > "$T/bst2" 2>&1 || fail "backupfs status: $(cat "$T/bst2")"
grep -q "^appliances: 0 starting, 0 running, 1 failed" "$T/bst2" &&
  grep -q "^  vm/$T1: failed at .*did not start within 8 s.*; retries on the first access after" "$T/bst2" ||
  fail "backupfs status after the timeout: $(cat "$T/bst2")"
"$BACKUPFS" status --json "$M" | jq -e --arg k "vm/$T1" \
  '.appliances | length == 1 and .[0].key == $k and .[0].state == "failed" and (.[0].retry_at | test("Z$"))' \
  >/dev/null || fail "status --json appliances: $("$BACKUPFS" status --json "$M" | jq -c .appliances)"
echo "status after the timeout: $(grep "vm/$T1" "$T/bst2")"
# failing again fast, not launching on every access
t0=$(now); ls "$F/dir" >/dev/null 2>&1; t1=$(now)
[ $(( t1 - t0 )) -lt 2000 ] || fail "a failed guest waited $(( t1 - t0 )) ms"
bfs_umount "$M"
ok "launch timeout"

# ---- 1b. restore file on a terminal says what it waits for -------------
M=$T/m1b
bfs_mount "$T/repo" "$M" -o guest_timeout=6
F=$M/vm/$T1/files
if command -v script >/dev/null; then
  script -qec "'$BACKUPFS' restore file '$F/dir/hello.txt' '$T/hello.out'" /dev/null \
    > "$T/rtty" 2>&1 && fail "restore file from a hung appliance succeeded"
  tr '\r' '\n' < "$T/rtty" | grep -a . | tail -8
  grep -aq "vm/$T1: starting the appliance ([0-9]*s, gives up at .*): waiting for " "$T/rtty" ||
    fail "restore file on a pty did not say what it waits for: $(cat -v "$T/rtty")"
  grep -aq "the guest's files cannot be read" "$T/rtty" &&
    grep -aq "did not start within 6 s" "$T/rtty" ||
    fail "restore file: no reason from .backupfs-error: $(cat -v "$T/rtty")"
  [ ! -e "$T/hello.out" ] || fail "restore file left $T/hello.out"
  ok "restore file on a terminal: what it waits for, then why it failed"
else
  echo "note: script(1) missing: the terminal feedback is not checked"
fi
bfs_umount "$M"

# ---- 2. interrupts and the status listing ------------------------------
M=$T/m2
bfs_mount "$T/repo" "$M" -o guest_timeout=300,guest_list_wait=10
F=$M/vm/$T1/files
MPID=$(daemon_of "$M")
[ -n "$MPID" ] || fail "no daemon for $M"
t0=$(now)
timeout -s INT 3 stat "$F/dir" > /dev/null 2>&1 &
ST=$!
wait_until 15 sh -c "! kill -0 $ST 2>/dev/null" || fail "stat ignored SIGINT for 15 s"
t1=$(now)
echo "interrupted lookup returned after $(( t1 - t0 )) ms"
[ $(( t1 - t0 )) -lt 6000 ] || fail "interrupted lookup took $(( t1 - t0 )) ms"
wait_until 60 has_qemu "$MPID" || fail "no qemu started for the hung launch"
Q=$(qemu_of "$MPID")
t0=$(now)
ls -A "$F" > "$T/ls2" 2>&1 || fail "ls files/ while starting: $(cat "$T/ls2")"
t1=$(now)
echo "ls files/ while starting: $(( t1 - t0 )) ms: $(cat "$T/ls2")"
[ "$(cat "$T/ls2")" = .backupfs-status ] || fail "files/ while starting: $(cat "$T/ls2")"
[ $(( t1 - t0 )) -lt 15000 ] || fail "ls files/ took $(( t1 - t0 )) ms while starting"
cat "$F/.backupfs-status" | tee "$T/status2" | grep -q "guest_timeout=300" ||
  fail "status text: $(cat "$T/status2")"

# ---- 3. SIGTERM during the hung launch ---------------------------------
ls "$F/dir" > /dev/null 2>&1 &       # a request waiting as SIGTERM comes
sleep 0.5
t0=$(now)
kill -TERM "$MPID"
wait_until 10 sh -c "! kill -0 $MPID 2>/dev/null" || fail "daemon alive 10 s after SIGTERM"
t1=$(now)
echo "daemon exited $(( t1 - t0 )) ms after SIGTERM"
alive "$Q" && fail "qemu left after the daemon exited: $Q"
mountpoint -q "$M" && fail "still mounted after SIGTERM"
ok "interrupt, status, SIGTERM"
echo PASS
