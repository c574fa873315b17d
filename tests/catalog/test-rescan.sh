#!/bin/bash
# Incremental rescans: nothing changed -> no image reopened; added and
# removed backups appear and disappear; a changed image is reopened; the
# catalog schema is versioned.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 needed"; exit 77; }
R=$T/repo
for vm in a b; do
  prev=
  for d in 01 02 03 04 05; do
    qcow2 "$R/$vm/2026-10-${d}T00:00:00Z/vda.qcow2" 1G ${prev:+../$prev/vda.qcow2}
    prev=2026-10-${d}T00:00:00Z
  done
done
qcow2 "$R/b/2026-10-05T00:00:00Z/vdb.qcow2" 1G
sj() { "$BACKUPFS" scan --json "$R" | jq -r '"\(.vms) \(.backups) \(.images) \(.broken) \(.reopened)"'; }
cj() { "$BACKUPFS" scan --json "$R" | jq -r .changed_vms; }
check "first scan" "2 10 11 0 11" "$(sj)"
check "rescan, nothing changed" "2 10 11 0 0" "$(sj)"
check "no VM changed" "0" "$(cj)"
touch "$R/b/2026-10-05T00:00:00Z/vdb.qcow2"
check "touched image: reopened, VM unchanged" "0" "$(cj)"
qcow2 "$R/b/2026-10-06T00:00:00Z/vda.qcow2" 1G
check "a new backup changes one VM" "1" "$(cj)"
rm -r "$R/b/2026-10-06T00:00:00Z"
check "removing it changes one VM" "1" "$(cj)"
DB=$(ls "$XDG_CACHE_HOME"/backupfs/*.db)
m1=$(stat -c %Y.%s "$DB")

qcow2 "$R/a/2026-10-06T00:00:00Z/vda.qcow2" 1G ../2026-10-05T00:00:00Z/vda.qcow2
check "new backup: one header read" "2 11 12 0 1" "$(sj)"
rm -r "$R/b/2026-10-05T00:00:00Z"
check "vanished backup gone, nothing reopened" "2 10 10 0 0" "$(sj)"
# resized BACKUP SIZE BYTES WHAT: a's image in BACKUP grows; the rescan
# reopens it (one header read) and stores the new size
resized() {
  qemu-img resize -q "$R/a/$1/vda.qcow2" "$2"
  check "$4: reopened" "2 10 10 0 1" "$(sj)"
  J=$(listj --no-scan "$R" a)
  check "$4: new size stored" "$3" \
    "$(jq -r '.disks[0].virtual_size' <<<"$(backup a "${1//:/}")")"
}
resized 2026-10-06T00:00:00Z 2G 2147483648 "changed image"

# list rescans on its own; --no-scan does not
qcow2 "$R/c/2026-10-01T00:00:00Z/vda.qcow2" 1G
check "list --no-scan: not yet" "a b" "$(listj --no-scan "$R" | jq -r '[.vms[].name] | join(" ")')"
check "list picks up the new VM" "a b c" "$(listj "$R" | jq -r '[.vms[].name] | join(" ")')"
rm -r "$R/c"
out=$("$BACKUPFS" list "$R" c 2>&1) && rc=0 || rc=$?
check "list of a VM just removed: exit 1" "1" "$rc"
check "list of a VM just removed: one clear line" "backupfs: list: $R: no VM named 'c' in the catalog" "$out"
check "and drops it" "a b" "$(listj "$R" | jq -r '[.vms[].name] | join(" ")')"
out=$("$BACKUPFS" list "$R" c 2>&1) && rc=0 || rc=$?
check "unknown VM: exit 1" "1" "$rc"
check_match "unknown VM: message" "no VM named 'c'" "$out"

# list of one VM rescans that VM only
qcow2 "$R/a/2026-10-07T00:00:00Z/vda.qcow2" 1G ../2026-10-06T00:00:00Z/vda.qcow2
qcow2 "$R/b/2026-10-07T00:00:00Z/vda.qcow2" 1G
check "list a: a's new backup" "7" "$(listj "$R" a | jq '.vms[0].backups | length')"
check "b not rescanned by it" "4" "$(listj --no-scan "$R" b | jq '.vms[0].backups | length')"
check "full scan finds b's (a's not reopened)" "2 12 12 0 1" "$(sj)"
rm -r "$R/a/2026-10-07T00:00:00Z" "$R/b/2026-10-07T00:00:00Z"
check "list a: gone again" "6" "$(listj "$R" a | jq '.vms[0].backups | length')"
check "back to 10" "2 10 10 0 0" "$(sj)"

# the base of a chain disappears, then comes back
mv "$R/a/2026-10-01T00:00:00Z/vda.qcow2" "$T/saved.qcow2"
check "broken once the base is gone" "2 9 9 5 0" "$(sj)"
mv "$T/saved.qcow2" "$R/a/2026-10-01T00:00:00Z/vda.qcow2"
check "whole again (the returning base read once)" "2 10 10 0 1" "$(sj)"

py() { python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); $1" "$2"; }
# directory listings: kept once they are older than their directory's
# last change by 2 s (a change within one timestamp tick is invisible)
sleep 2.1
check "settled: read again, nothing reopened" "2 10 10 0 0" "$(sj)"
lsum() { py 'print(c.execute("SELECT count(*), group_concat(listed_ns) FROM (SELECT listed_ns FROM dirs ORDER BY path)").fetchone())' "$DB"; }
before=$(lsum)
check "unchanged tree: the listings are reused, not read again" "$before" \
  "$(sj >/dev/null; lsum)"
resized 2026-10-04T00:00:00Z 3G 3221225472 \
  "an image changed in an unchanged directory"
qcow2 "$R/a/2026-10-04T00:00:00Z/vdb.qcow2" 1G
check "a new file in a listed directory: found" "2 10 11 0 1" "$(sj)"
rm "$R/a/2026-10-04T00:00:00Z/vdb.qcow2"
qcow2 "$R/b/2026-10-09T00:00:00Z/vda.qcow2" 1G
check "a new directory: found" "2 11 11 0 1" "$(sj)"
rm -r "$R/b/2026-10-09T00:00:00Z"
check "removed again" "2 10 10 0 0" "$(sj)"

# schema version and migrations
check "schema version" "6" "$(py 'print(c.execute("PRAGMA user_version").fetchone()[0])' "$DB")"
check "tables" "backups chains dirs disks files meta verified vms" \
  "$(py 'print(" ".join(r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type=\"table\" ORDER BY name")))' "$DB")"
check "recipes: a driver per layer" "qcow2 0" \
  "$(py 'print(c.execute("SELECT group_concat(DISTINCT driver) FROM chains").fetchone()[0], c.execute("SELECT count(*) FROM chains WHERE driver IS NULL").fetchone()[0])' "$DB")"
# a v3 catalog (chains without drivers) is migrated forward, not rebuilt
cp "$DB" "$T/v3.db"
py 'c.execute("DROP TABLE dirs"); c.execute("DROP TABLE verified"); c.execute("ALTER TABLE chains DROP COLUMN driver"); c.execute("ALTER TABLE chains DROP COLUMN options"); c.execute("PRAGMA user_version = 3"); c.commit()' "$T/v3.db"
check "v3 catalog migrated" "2 10 10 0 0" \
  "$("$BACKUPFS" scan --json --catalog "$T/v3.db" "$R" | jq -r '"\(.vms) \(.backups) \(.images) \(.broken) \(.reopened)"')"
check "v3 catalog: version 6, drivers filled" "6 qcow2" \
  "$(py 'print(c.execute("PRAGMA user_version").fetchone()[0], c.execute("SELECT group_concat(DISTINCT driver) FROM chains").fetchone()[0])' "$T/v3.db")"
# a v4 catalog (no verify verdicts) gains the verified table, keeps its model
cp "$DB" "$T/v4.db"
py 'c.execute("DROP TABLE dirs"); c.execute("DROP TABLE verified"); c.execute("PRAGMA user_version = 4"); c.commit()' "$T/v4.db"
check "v4 catalog listed" "10" \
  "$("$BACKUPFS" list --json --no-scan --catalog "$T/v4.db" "$R" | jq '[.vms[].backups[] | select(.verify == null)] | length')"
check "v4 catalog: version 6, verified table" "6 0" \
  "$(py 'print(c.execute("PRAGMA user_version").fetchone()[0], c.execute("SELECT count(*) FROM verified").fetchone()[0])' "$T/v4.db")"
# a v5 catalog (no directory listings) gains the dirs table on its scan
cp "$DB" "$T/v5.db"
py 'c.execute("DROP TABLE dirs"); c.execute("PRAGMA user_version = 5"); c.commit()' "$T/v5.db"
check "v5 catalog rescanned, nothing reopened" "2 10 10 0 0" \
  "$("$BACKUPFS" scan --json --catalog "$T/v5.db" "$R" | jq -r '"\(.vms) \(.backups) \(.images) \(.broken) \(.reopened)"')"
check "v5 catalog: version 6, listings stored" "6 13" \
  "$(py 'print(c.execute("PRAGMA user_version").fetchone()[0], c.execute("SELECT count(*) FROM dirs").fetchone()[0])' "$T/v5.db")"
py 'c.execute("PRAGMA user_version = 99"); c.commit()' "$T/new.db"
out=$("$BACKUPFS" scan --catalog "$T/new.db" "$R" 2>&1) && rc=0 || rc=$?
check "newer schema refused" "1" "$rc"
check_match "newer schema message" "new.db.*schema version 99 is newer" "$out"
: > "$T/empty.db"                         # version 0: migrated forward
check_match "empty catalog migrated" "2 VMs, 10 backups" \
  "$("$BACKUPFS" scan --catalog "$T/empty.db" "$R")"
finish
