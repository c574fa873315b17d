#!/bin/bash
# tls.sh — `backupfs serve --tcp ... --tls-psk FILE`: a second process
# (nbdinfo, qemu-img) reads an export over TCP with TLS-PSK and gets the
# chain's bytes; a client without TLS or with the wrong key gets nothing;
# --tcp without a TLS choice is refused.
. "$SRCDIR/tests/nbd/lib.sh"
command -v python3 >/dev/null || skip "python3 is missing"

mk_generic "$T/repo"
# --tcp alone would serve backups to the network in clear: refused
if "$BACKUPFS" serve -f --tcp 127.0.0.1:1 "$T/repo" 2>"$T/e" >/dev/null; then
  fail "serve --tcp without TLS started"
fi
grep -q -- "--tls-psk" "$T/e" || fail "--tcp without TLS: $(cat "$T/e")"

python3 -c 'import os; print("alice:" + os.urandom(32).hex())' > "$T/keys.psk"
python3 -c 'import os; print("alice:" + os.urandom(32).hex())' > "$T/wrong.psk"
chmod 600 "$T/keys.psk" "$T/wrong.psk"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
serve_fg tls --catalog "$T/serve.db" --tcp "127.0.0.1:$port" \
  --tls-psk "$T/keys.psk" --export web01@latest/root "$T/repo"
[ "$SURI" = "nbds://alice@127.0.0.1:$port/web01@latest/root?tls-psk-file=$T/keys.psk" ] ||
  fail "printed URI: $SURI"

uri="nbds://alice@127.0.0.1:$port/web01@latest/root?tls-psk-file=$T/keys.psk"
nbdinfo --json "$uri" > "$T/info.json" || fail "nbdinfo over TLS-PSK"
[ "$(jget "$T/info.json" "j['TLS']")" = True ] || fail "not TLS: $(cat "$T/info.json")"
# qemu reads the key from DIR/keys.psk
mkdir -p "$T/pskdir" && cp "$T/keys.psk" "$T/pskdir/keys.psk"
qemu-img convert -O raw \
  --object "tls-creds-psk,id=tls0,endpoint=client,username=alice,dir=$T/pskdir" \
  --image-opts "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port,export=web01@latest/root,tls-creds=tls0" \
  "$T/nbd.raw" || fail "qemu-img convert over TLS-PSK"
oracle "$T/oracle.raw" "$T/repo/web01/2026-10-03T030000Z/root.qcow2"
[ "$(sha "$T/nbd.raw")" = "$(sha "$T/oracle.raw")" ] ||
  fail "bytes over TLS differ from qemu-img convert of the chain"
ok "TLS-PSK: nbdinfo and qemu-img read the chain's bytes over TCP"

if nbdinfo --size "nbd://127.0.0.1:$port/web01@latest/root" >/dev/null 2>&1; then
  fail "a client without TLS was served"
fi
if nbdinfo --size "nbds://alice@127.0.0.1:$port/web01@latest/root?tls-psk-file=$T/wrong.psk" \
     >/dev/null 2>&1; then
  fail "a client with the wrong PSK was served"
fi
ok "no TLS or a wrong key: refused"
# the sanitizer build preloads libasan into nbdkit: at exit p11-kit's
# destructor then deadlocks on glibc's locale lock (not ours); the trap
# kills it there
[ "${BFS_SANITIZED:-0}" = 1 ] || serve_stop "$SPID"
