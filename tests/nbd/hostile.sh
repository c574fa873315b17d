#!/bin/bash
# hostile.sh — export names come from clients: '..', '/', '.', empty parts,
# control bytes, unknown VMs/times/disks are refused with the reason in
# nbdkit's log, nothing outside the catalog is opened, and the server keeps
# serving the good names afterwards.
. "$SRCDIR/tests/nbd/lib.sh"

mk_generic "$T/repo"
# a file a traversal would reach if names were paths
echo secret > "$T/repo/web01/passwd"
serve_fg s --catalog "$T/serve.db" --socket "$T/s.sock" "$T/repo"
S=$T/s.sock

# refused NAME REASON: the client fails and REASON is logged for NAME
refused() {
  local uri="nbd+unix:///$1?socket=$S" shown=$3
  if nbdinfo --size "$uri" >"$T/out" 2>&1; then
    fail "export '$shown' was served: $(cat "$T/out")"
  fi
  grep -qF -- "$2" "$SLOG" || fail "export '$shown': no '$2' in the log: $(tail -5 "$SLOG")"
}
refused "..%2F..%2Fetc%2Fpasswd" "not VM@TIME/DISK" "../../etc/passwd"
refused "web01@latest/..%2Fpasswd" "not VM@TIME/DISK" "web01@latest/../passwd"
refused "web01@latest/.." "'.'/'..' part refused" "web01@latest/.."
refused "web01@latest/." "'.'/'..' part refused" "web01@latest/."
refused "..@latest/root" "part refused" "..@latest/root"
refused "web01@..%2Froot" "part refused" "web01@../root"
refused "%2Froot" "part refused" "/root"
refused "web01@latest%2F" "part refused" "web01@latest/"
refused "web01@latest/root%0Ax" "control character (0x0a at byte 17)" "web01@latest/root\\nx"
refused "web01@latest/root%1B" "control character (0x1b at byte 17)" "web01@latest/root\\e"
refused "web01@latest/passwd" "no disk named 'passwd'" "web01@latest/passwd"
refused "web01@2026-10-03T030000Z/root.qcow2" "no disk named" "web01@...Z/root.qcow2"
refused "web01@1999-01-01T000000Z/root" "1999-01-01T000000Z" "web01@1999/root"
refused "nosuchvm@latest/root" "nosuchvm" "nosuchvm@latest/root"
refused "" "no export name given" "(empty)"
ok "15 hostile or unknown names refused with a reason"

# still serving, with the right bytes
qemu-img convert -O raw "nbd+unix:///db01@latest/disk0?socket=$S" "$T/nbd.raw"
oracle "$T/oracle.raw" "$T/repo/db01/2026-10-01T040000Z/disk0.qcow2"
[ "$(sha "$T/nbd.raw")" = "$(sha "$T/oracle.raw")" ] || fail "served bytes after refusals"
kill -0 "$SPID" || fail "the server died"
ok "server still serves after the refusals"
