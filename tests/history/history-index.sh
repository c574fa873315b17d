#!/bin/bash
# history-index.sh — history, diff and find over stored listings written
# in the index format by mkindex.py (no appliance): events across six
# points in time of which one is not indexed, collapsing, --recursive,
# --json, and the errors.  The guestfs suite does the same on real guests.
. "$SRCDIR/tests/restore/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
command -v zstd >/dev/null || skip "zstd not installed"
for c in history diff; do
  "$BACKUPFS" $c --help >/dev/null 2>&1 || fail "no $c command"
done

R=$T/repo C=$T/catalog.db X=$T/catalog.db.index.sqlite
TS=(2026-11-01T030000Z 2026-11-02T030000Z 2026-11-03T030000Z
    2026-11-04T030000Z 2026-11-05T030000Z 2026-11-06T030000Z)
for t in "${TS[@]}"; do
  mkdir -p "$R/app/$t"
  truncate -s 1M "$R/app/$t/vda.raw"
done
"$BACKUPFS" scan --catalog "$C" "$R" >/dev/null || fail "scan"

root=/:40755:0:0:4096:100 etc=/etc:40755:0:0:4096:100
keep=/etc/keep.txt:100644:0:0:5:500
v1=/etc/app.conf:100640:0:0:10:1000 v2=/etc/app.conf:100640:0:0:12:2000
new=/etc/new.txt:100644:0:0:3:4000 lnk=/etc/link:120777:0:0:9:600:/etc/motd
mk() { python3 "$SRCDIR/tests/history/mkindex.py" "$X" app "$@" || fail "mkindex"; }
mk ${TS[0]} $root $etc $keep $v1 $lnk
mk ${TS[1]} $root $etc $keep $v2 $lnk
# TS[2] is not indexed
mk ${TS[3]} $root $etc $keep $v2 $new $lnk
mk ${TS[4]} $root $etc $keep $new $lnk
mk ${TS[5]} $root $etc $keep $new /etc/link:120777:0:0:9:600:/etc/issue
H() { "$BACKUPFS" history --catalog "$C" "$R" app "$@"; }

got=$(H /etc/app.conf | cut -f1,2,4) || fail "history app.conf: exit $?"
want="${TS[0]}	first seen	10
${TS[1]}	changed (size, mtime)	12
${TS[2]}	not indexed
${TS[3]}	unchanged	12
${TS[4]} .. ${TS[5]}	deleted"
[ "$got" = "$want" ] || fail "history app.conf:
$got
--- want
$want"
ok "history: first seen, changed, not indexed, unchanged, deleted (collapsed)"

got=$(H /etc/keep.txt | cut -f1,2) || fail "history keep.txt"
[ "$got" = "${TS[0]} .. ${TS[1]}	first seen
${TS[2]}	not indexed
${TS[3]} .. ${TS[5]}	unchanged" ] || fail "history keep.txt: $got"
[ "$(H /etc/link | cut -f2,8 | tr '\n' ,)" = "first seen	-> /etc/motd,not indexed,unchanged	-> /etc/motd,changed (target)	-> /etc/issue," ] ||
  fail "history link: $(H /etc/link)"
ok "history: unchanged versions collapse, a symlink's target change is seen"

H /etc/nothing > "$T/out" 2> "$T/err"; rc=$?
[ $rc = 1 ] || fail "history of a path in no point in time: exit $rc"
grep -q "in no indexed point in time" "$T/err" || fail "never-seen message: $(cat "$T/err")"
[ "$(cut -f2 "$T/out" | tr '\n' ,)" = "absent,not indexed,absent," ] ||
  fail "never-seen rows: $(cat "$T/out")"
H etc/app.conf 2>/dev/null; [ $? = 2 ] || fail "relative path accepted"
"$BACKUPFS" history --catalog "$C" "$R" nosuchvm /etc 2>/dev/null; [ $? = 2 ] ||
  fail "history of a missing VM"
ok "history: exit 1 for a path never seen, 2 for a bad path or VM"

# a directory: its own entry; --recursive: the paths below it that changed
[ "$(H /etc/ | cut -f1,2)" = "${TS[0]} .. ${TS[1]}	first seen
${TS[2]}	not indexed
${TS[3]} .. ${TS[5]}	unchanged" ] || fail "history of a directory: $(H /etc/)"
H --recursive /etc > "$T/out" || fail "history -r"
[ "$(cut -f1 "$T/out" | grep -v '^#' | sort -u | tr '\n' ,)" = "/etc/app.conf,/etc/link,/etc/new.txt," ] ||
  fail "history -r paths: $(cat "$T/out")"
grep -q "^# 2 path(s) under /etc unchanged" "$T/out" || fail "history -r unchanged count: $(cat "$T/out")"
grep -q "^/etc/new.txt	${TS[3]} .. ${TS[5]}	first seen	" "$T/out" || fail "history -r new.txt"
ok "history: a directory is its entry, --recursive lists what changed below"

H --json /etc/app.conf > "$T/json" || fail "history --json"
python3 - "$T/json" <<'PY' || fail "history --json content"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["vm"] == "app" and j["path"] == "/etc/app.conf", j
ev = [(v["event"], v["first"][:10], v["last"][:10], v["points"]) for v in j["versions"]]
assert ev == [("first seen", "2026-11-01", "2026-11-01", 1),
              ("changed", "2026-11-02", "2026-11-02", 1),
              ("not indexed", "2026-11-03", "2026-11-03", 1),
              ("unchanged", "2026-11-04", "2026-11-04", 1),
              ("deleted", "2026-11-05", "2026-11-06", 2)], ev
assert j["versions"][1]["changed"] == ["size", "mtime"], j["versions"][1]
assert j["versions"][1]["size"] == 12 and j["versions"][1]["mode"] == 0o640
PY
ok "history --json"

# diff
D() { "$BACKUPFS" diff --catalog "$C" "$R" "$@"; }
got=$(D app@${TS[0]} app@${TS[1]}); [ $? = 1 ] || fail "diff exit"
[ "$got" = "changed	/etc/app.conf	12	1970-01-01T00:33:20Z	(size, mtime)
total	0 added, 0 removed, 1 changed" ] || fail "diff T1 T2: $got"
got=$(D app@${TS[1]} app@latest /etc) || [ $? = 1 ] || fail "diff latest"
[ "$(cut -f1,2 <<<"$got")" = "removed	/etc/app.conf
changed	/etc/link
added	/etc/new.txt
total	1 added, 1 removed, 1 changed" ] || fail "diff T2 latest: $got"
got=$(D app@${TS[4]} app@${TS[5]} /etc/keep.txt); [ $? = 0 ] || fail "diff of an unchanged path: exit $?"
[ "$got" = "total	0 added, 0 removed, 0 changed" ] || fail "diff unchanged: $got"
D app@${TS[0]} app@${TS[2]} 2> "$T/err"; [ $? = 2 ] || fail "diff with a point in time not indexed"
grep -q "not indexed" "$T/err" || fail "not indexed message: $(cat "$T/err")"
D --json app@${TS[3]} app@${TS[4]} > "$T/json"; [ $? = 1 ] || fail "diff --json exit"
python3 - "$T/json" <<'PY' || fail "diff --json content: $(cat "$T/json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["from"] == "app@2026-11-04T030000Z" and j["to"] == "app@2026-11-05T030000Z", j
assert [(c["change"], c["path"]) for c in j["changes"]] == [("removed", "/etc/app.conf")], j
PY
ok "diff: added, removed, changed under PATH; not indexed is an error; --json"

# find: one row per version, ranges over consecutive indexed points in time
F() { "$BACKUPFS" find --catalog "$C" "$R" "$@"; }
got=$(F keep.txt) || fail "find keep.txt"
[ "$got" = "app@${TS[0]}	/etc/keep.txt	5	1970-01-01T00:08:20Z	.. ${TS[5]} (5)" ] ||
  fail "find collapses: $got"
[ "$(F --all-versions keep.txt | cut -f1 | tr '\n' ,)" = \
  "app@${TS[0]},app@${TS[1]},app@${TS[3]},app@${TS[4]},app@${TS[5]}," ] ||
  fail "find --all-versions: $(F --all-versions keep.txt)"
got=$(F app '*.conf') || fail "find app.conf"
[ "$got" = "app@${TS[0]}	/etc/app.conf	10	1970-01-01T00:16:40Z
app@${TS[1]}	/etc/app.conf	12	1970-01-01T00:33:20Z	.. ${TS[3]} (2)" ] ||
  fail "find app.conf: $got"
F --json '/etc/*' > "$T/json" || fail "find --json"
python3 - "$T/json" <<'PY' || fail "find --json content: $(cat "$T/json")"
import json, sys
j = json.load(open(sys.argv[1]))
rows = [(r["path"], r["time"][:10], r["last"][:10], r["points"]) for r in j]
assert ("/etc/keep.txt", "2026-11-01", "2026-11-06", 5) in rows, rows
assert ("/etc/link", "2026-11-06", "2026-11-06", 1) in rows, rows
assert all(r["vm"] == "app" for r in j)
PY
F nothing-matches; [ $? = 1 ] || fail "find without a match: exit"
ok "find: collapsed ranges, --all-versions, --json"
