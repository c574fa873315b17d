#!/bin/bash
# json-output.sh — --json on the commands that print data prints one valid
# JSON document with the same facts as the text: scan, list, verify, image
# info, image map (extents equal to the text map), restore disk (the
# summary; the restored bytes equal `qemu-img convert -O raw`).
set -u
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
: "${BACKUPFS:?}"
for p in qemu-img qemu-io python3; do
  command -v $p >/dev/null || skip "$p is missing"
done
T=$(mktemp -d "${TMPDIR:-/tmp}/bfs-json.XXXXXX")
trap 'rm -rf "$T"' EXIT
R=$T/repo
B1=$R/web01/2026-10-01T030000Z B2=$R/web01/2026-10-02T030000Z
mkdir -p "$B1" "$B2"
qemu-img create -q -f qcow2 "$B1/vda.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x11 0 192k' "$B1/vda.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b ../2026-10-01T030000Z/vda.qcow2 -F qcow2 \
  "$B2/vda.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 2M 64k' -c 'write -z 64k 64k' \
  "$B2/vda.qcow2" >/dev/null
C=(--catalog "$T/c.db")
J() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" "${@:2}"; }

got=$("$BACKUPFS" scan "${C[@]}" --json "$R" | J 'd["backups"], d["images"]') ||
  fail "scan --json"
[ "$got" = "2 2" ] || fail "scan --json: backups, images = $got"
got=$("$BACKUPFS" list "${C[@]}" --no-scan --json "$R" |
  J 'len(d["vms"][0]["backups"]), d["vms"][0]["name"]') || fail "list --json"
[ "$got" = "2 web01" ] || fail "list --json: $got"
got=$("$BACKUPFS" verify "${C[@]}" --no-checksum --json "$R" web01@latest |
  J 'type(d).__name__') || fail "verify --json"
echo "ok: scan, list, verify --json"

# image info --json: the chain, top first, with its backing
"$BACKUPFS" image info --json "$B2/vda.qcow2" >"$T/info.json" ||
  fail "image info --json"
got=$(J 'd["depth"], len(d["layers"]), d["layers"][0]["backing"], d["layers"][1]["backing"], d["virtual_size"]' <"$T/info.json")
[ "$got" = "2 2 ../2026-10-01T030000Z/vda.qcow2 None 8388608" ] ||
  fail "image info --json: $got"
alloc=$("$BACKUPFS" image info "$B2/vda.qcow2" | sed -n 's/^  allocated: //p')
[ "$(J 'd["allocated"]' <"$T/info.json")" = "$alloc" ] ||
  fail "image info --json: allocated differs from the text ($alloc)"
echo "ok: image info --json"

# image map --json: the same extents as the text map
"$BACKUPFS" image map "$B2/vda.qcow2" >"$T/map.txt" || fail "image map"
"$BACKUPFS" image map --json "$B2/vda.qcow2" >"$T/map.json" ||
  fail "image map --json"
python3 - "$T/map.txt" "$T/map.json" <<'PY' || fail "image map --json differs"
import json, sys
text = []
for line in open(sys.argv[1]):
    off, ln, kind, layer = line.split()
    text.append((int(off), int(ln), kind == "DATA",
                 int(layer) if kind == "DATA" else None))
d = json.load(open(sys.argv[2]))
js = [(e["offset"], e["length"], e["data"], e.get("layer")) for e in d["extents"]]
if text != js or len(js) < 3:
    sys.exit("text %s\njson %s" % (text, js))
PY
echo "ok: image map --json = image map"

# restore disk --json: one summary object; the bytes are the oracle's
"$BACKUPFS" restore disk "${C[@]}" --json --repo "$R" web01@latest vda \
  "$T/out.raw" >"$T/rd.json" || fail "restore disk --json"
got=$(J 'd["format"], d["checked"], d["virtual_size"], d["dest"] == sys.argv[1]' \
  "$T/out.raw" <"$T/rd.json") || fail "restore disk --json: $(cat "$T/rd.json")"
[ "$got" = "raw True 8388608 True" ] || fail "restore disk --json: $got"
qemu-img convert -O raw "$B2/vda.qcow2" "$T/oracle.raw"
cmp "$T/oracle.raw" "$T/out.raw" || fail "restored bytes differ from qemu-img"
echo "ok: restore disk --json"
