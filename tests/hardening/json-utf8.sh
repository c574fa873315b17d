#!/bin/bash
# json-utf8.sh — every JSON output is UTF-8 a strict parser accepts, also
# for names that are not UTF-8, and the raw bytes stay recoverable through
# "<key>_hex" (issue 10 item 6): list --json, scan --json, backup.json,
# verify --json and the mount's status.
. "$SRCDIR/tests/fuse/lib.sh"
# a repository path, a VM and a disk name that are Latin-1, not UTF-8
R=$T/$'repo\xe9' M=$T/mnt
vm=$'caf\xe9' t=2026-10-01T030000Z
mkdir -p "$R/$vm/$t"
qemu-img create -q -f qcow2 "$R/$vm/$t/"$'d\xff.qcow2' 4M
qemu-img create -q -f qcow2 -u -b $'d\xff.qcow2' -F qcow2 "$R/$vm/$t/"$'top\xfe.qcow2' 4M
export XDG_CACHE_HOME=$T/cache
CAT=$T/catalog.db
strict() {   # strict FILE PYTHON-EXPR: decode strictly, parse, evaluate
  python3 -c '
import json, sys
j = json.loads(open(sys.argv[1], "rb").read().decode("utf-8", "strict"))
print(eval(sys.argv[2]))' "$@"
}
"$BACKUPFS" scan --json --catalog "$CAT" "$R" > "$T/scan.json" || fail "scan"
[ "$(strict "$T/scan.json" "bytes.fromhex(j['repository_hex']).endswith(b'repo\\xe9')")" = True ] ||
  fail "scan --json: $(cat "$T/scan.json")"
"$BACKUPFS" list --json --catalog "$CAT" "$R" > "$T/list.json" || fail "list"
got=$(strict "$T/list.json" "(bytes.fromhex(j['vms'][0]['name_hex']), [bytes.fromhex(d['image_hex']).split(b'/')[-1] for b in j['vms'][0]['backups'] for d in b['disks']], [[bytes.fromhex(x).split(b'/')[-1] for x in d['chain_hex']] for b in j['vms'][0]['backups'] for d in b['disks'] if len(d['chain']) > 1])")
[ "$got" = "(b'caf\\xe9', [b'd\\xff.qcow2', b'top\\xfe.qcow2'], [[b'top\\xfe.qcow2', b'd\\xff.qcow2']])" ] ||
  fail "list --json: $got: $(cat "$T/list.json")"
[ "$(strict "$T/list.json" "j['vms'][0]['name']")" = "caf�" ] || fail "name not U+FFFD-replaced"
ok "list --json and scan --json parse strictly; _hex gives back the bytes"
bfs_mount "$R" "$M"
for bj in "$M"/*/*/backup.json; do
  strict "$bj" "bytes.fromhex(j['vm_hex'])" >/dev/null || fail "$bj: $(cat "$bj")"
done
ok "backup.json parses strictly"
"$BACKUPFS" status --json "$M" > "$T/status.json" || fail "status --json"
[ "$(strict "$T/status.json" "bytes.fromhex(j['repository_hex']).endswith(b'repo\\xe9')")" = True ] ||
  fail "status --json: $(cat "$T/status.json")"
ok "status --json parses strictly"
bfs_umount "$M"
"$BACKUPFS" verify --json --catalog "$CAT" --state "$T/vstate" "$R" > "$T/verify.json"
[ "$(strict "$T/verify.json" "bytes.fromhex(j['results'][0]['vm_hex'])")" = "b'caf\\xe9'" ] ||
  fail "verify --json: $(cat "$T/verify.json")"
ok "verify --json parses strictly"
