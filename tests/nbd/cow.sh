#!/bin/bash
# cow.sh — `backupfs serve --cow`: a client writes to its own scratch
# overlay (reads back what it wrote within the connection), the next client
# sees the backup's bytes, the repository is unchanged,
# and the overlay is gone when the client disconnects.
. "$SRCDIR/tests/nbd/lib.sh"

mk_generic "$T/repo"
( cd "$T/repo" && find . -type f -print0 | sort -z | xargs -0 sha256sum ) > "$T/before"
mkdir -p "$T/scratch"
serve_fg cow --catalog "$T/serve.db" --socket "$T/c.sock" --cow \
  --scratch "$T/scratch" "$T/repo"
uri="nbd+unix:///web01@latest/root?socket=$T/c.sock"
oracle "$T/oracle.raw" "$T/repo/web01/2026-10-03T030000Z/root.qcow2"

nbdinfo --json "$uri" > "$T/info.json"
[ "$(jget "$T/info.json" "j['exports'][0]['is_read_only']")" = False ] ||
  fail "--cow export is read-only"
[ "$(jget "$T/info.json" "j['exports'][0]['can_multi_conn']")" = False ] ||
  fail "--cow export claims multi-conn (clients see different bytes)"

# connection 1 writes and reads its writes back
qemu-io -f raw -c "write -P 0x5a 1m 64k" -c "write -P 0x5b 100 10" \
  -c "read -P 0x5a 1m 64k" -c "read -P 0x5b 100 10" \
  -c "read -P 0xaa 2m 64k" "$uri" > "$T/w.out" 2>&1 ||
  fail "writes through --cow: $(cat "$T/w.out")"
grep -qi "fail\|error\|pattern" "$T/w.out" && fail "write/read back: $(cat "$T/w.out")"
ok "a --cow client reads back its own writes over the backup's bytes"

rm -f "$T/nbd.raw"
qemu-img convert -O raw "$uri" "$T/nbd.raw"
[ "$(sha "$T/nbd.raw")" = "$(sha "$T/oracle.raw")" ] ||
  fail "the next client sees another client's writes"
( cd "$T/repo" && find . -type f -print0 | sort -z | xargs -0 sha256sum ) > "$T/after"
diff -u "$T/before" "$T/after" >&2 || fail "the repository changed"
[ -z "$(ls -A "$T/scratch")" ] || fail "scratch left behind: $(ls -A "$T/scratch")"
ok "the next client sees the backup, the repository is unchanged"
serve_stop "$SPID"

if "$BACKUPFS" serve -f --scratch "$T/scratch" "$T/repo" 2>"$T/e" >/dev/null; then
  fail "--scratch without --cow accepted"
fi
grep -q -- "--scratch without --cow" "$T/e" || fail "$(cat "$T/e")"
