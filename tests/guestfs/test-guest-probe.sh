#!/bin/bash
# test-guest-probe.sh — guest/guest.h driven directly (guest-probe) on the raw
# disks of the fixtures: inspection across two disks (GPT ext4 root + LVM
# xfs /home), no-OS filesystems (NTFS, bare ext4, an unmountable one),
# attributes, links, special files, a 50 MiB copy, the LRU cap and idle
# close, the file index and `backupfs find`.  Two appliances.  (The
# incremental point in time is read through the mount: test-guest-mount.sh.)
set -uo pipefail
. "$SRCDIR/tests/guestfs/fixtures.sh"
ensure_fixtures
: "${GUEST_PROBE:?}"

W=$(mktemp -d "$BUILDDIR/tests/guestfs/probe.XXXXXX")
trap 'rm -rf "$W"' EXIT
R=$FIX/raw
before=$(cd "$R" && sha256sum *.img)
# the data VM's disks as a mount names them (disks/vda.img ...): directories
# of filesystems without an OS are named after them (vda1, not sda1)
mkdir -p "$W/data"
for d in a b c; do ln -s "$R/data-sd$d.img" "$W/data/vd$d.img"; done

# max 1 live appliance: each guest evicts the previous one
"$GUEST_PROBE" -v -m 1 -i 4 > "$W/out" 2> "$W/err" <<CMDS
guest linux/$T1 $R/linux-t1-vda.img $R/linux-t1-vdb.img
ls /
ls /etc
stat /etc/config.txt
cat /etc/config.txt $W/t1-config
readlink /etc/abs-link
readlink /etc/dangling-link
stat /etc/motd
stat /etc/motd-hard
stat /home/alice
ls /home/alice
cat /home/alice/notes.txt $W/notes
cat /var/big50.bin $W/big50
cat /etc/fifo $W/fifo
cat /etc/null-dev $W/null
stat /etc/nonexistent
index $W/idx.sqlite linux $T1
guest data/$T1 $W/data/vda.img $W/data/vdb.img $W/data/vdc.img
ls /
cat /vda1/Documents/report.txt $W/ntfs
cat /vdb/readme.txt $W/bare
ls /vdc
cat /vdc/.backupfs-error $W/sdc-error
index $W/idx.sqlite data $T1
guest linux/$T1 $R/linux-t1-vda.img $R/linux-t1-vdb.img
ls /etc
sleep 10
CMDS
cat "$W/out"; cat "$W/err"

# result line N of the probe output (only the "ok"/"error" lines count)
res() { grep -E '^(ok|error)' "$W/out" | sed -n "${1}p"; }
expect() { local got; got=$(res "$1"); [ "$got" = "$2" ] || fail "result $1: got '$got', want '$2'"; }
lsout() { awk -v n="$1" '/^(ok|error)/{c++; next} c==n' "$W/out"; }

expect 2 "ok 6"
lsout 2 | grep -q '^home d 0755 0 0 ' || fail "/home not the xfs mount"
lsout 3 | grep -q '^delete-me.txt f 0644 0 0 11 1$' || fail "t1 delete-me.txt"
lsout 3 | grep -q '^null-dev c ' || fail "device node not listed"
lsout 3 | grep -q '^fifo p 0644 ' || fail "fifo not listed"
res 4 | grep -q '^ok f 0640 123 456 10 1 ' || fail "config.txt attributes: $(res 4)"
[ "$(cat "$W/t1-config")" = "version 1" ] || fail "t1 config.txt content"
expect 6 "ok /etc/motd"
expect 7 "ok ../../nonexistent/target"
m=$(res 8 | cut -d' ' -f2-8); h=$(res 9 | cut -d' ' -f2-8)
[ "$m" = "$h" ] && [ "$(echo "$m" | cut -d' ' -f6)" = 2 ] || fail "hard links: '$m' vs '$h'"
res 10 | grep -q '^ok d 0700 1000 1000 ' || fail "/home/alice attributes: $(res 10)"
lsout 11 | grep -q '^notes.txt f 0600 1000 1000 12 1$' || fail "notes.txt attributes"
[ "$(sha "$W/notes")" = "$(sha "$FIX/notes.txt")" ] || fail "notes.txt content"
expect 13 "ok 52428800"
[ "$(sha "$W/big50")" = "$(sha "$FIX/big50.bin")" ] || fail "50 MiB file differs"
res 14 | grep -q '^error 6 ' || fail "fifo read: $(res 14)"
res 15 | grep -q '^error 6 ' || fail "device read: $(res 15)"
res 16 | grep -q '^error 2 ' || fail "missing file: $(res 16)"
res 17 | grep -q '^ok [0-9]' || fail "index t1: $(res 17)"
# data: no OS, one directory per filesystem
[ "$(lsout 19 | cut -d' ' -f1 | sort | tr '\n' ' ')" = "vda1 vdb vdc " ] || fail "data root: $(lsout 19)"
[ "$(cat "$W/ntfs")" = "ntfs report" ] || fail "NTFS file"
[ "$(cat "$W/bare")" = "bare filesystem" ] || fail "bare filesystem file"
lsout 22 | grep -q '^.backupfs-error f 0444 ' || fail "no error file in sdc"
grep -q '^vdc (ext4) could not be mounted' "$W/sdc-error" || fail "error file text: $(cat "$W/sdc-error")"
# pool: 2 launches with max 1 live (linux/T1 again answers from its cache),
# an idle close after -i 4
[ "$(grep -c 'launching appliance' "$W/err")" = 2 ] || fail "launch count"
[ "$(grep -c 'closing appliance (pool full)' "$W/err")" = 1 ] || fail "LRU evictions"
grep -q 'closing idle appliance' "$W/err" || fail "no idle close"
lsout 26 | grep -q '^delete-me.txt ' || fail "t1 listing from cache"

# with the index, listing and stat answer without an appliance (the disks
# given do not even exist: a launch would fail)
"$GUEST_PROBE" -v -x "$W/idx.sqlite" > "$W/out" 2> "$W/err" <<CMDS
guest linux/$T1 /nonexistent/a.img /nonexistent/b.img
ls /etc
stat /etc/config.txt
readlink /etc/abs-link
stat /home/alice/notes.txt
stat /etc/nope
guest data/$T1 /nonexistent/c.img
cat /vdc/.backupfs-error $W/sdc-error2
guest bad/$T1 /nonexistent/d.img
ls /
ls /
cat /.backupfs-error $W/bad-error
CMDS
cat "$W/out"; cat "$W/err"
grep -q 'launching' "$W/err" && fail "index did not avoid the appliance"
expect 2 "ok 12"
res 3 | grep -q '^ok f 0640 123 456 10 1 ' || fail "indexed config.txt: $(res 3)"
expect 4 "ok /etc/motd"
res 5 | grep -q '^ok f 0600 1000 1000 12 ' || fail "indexed notes.txt: $(res 5)"
res 6 | grep -q '^error 2 ' || fail "indexed missing file: $(res 6)"
cmp -s "$W/sdc-error" "$W/sdc-error2" || fail "indexed error file"
# an appliance that cannot start: files/ holds .backupfs-error, the failure
# is reported once and not retried on every call
expect 10 "ok 1"
expect 11 "ok 1"
grep -q 'nonexistent/d.img' "$W/bad-error" || fail "launch error text: $(cat "$W/bad-error")"
[ "$(grep -c 'retrying in' "$W/err")" = 1 ] || fail "launch failure reported more than once"

# find across points in time
"$BACKUPFS" find --help | grep usage >/dev/null || fail "find --help"
"$BACKUPFS" find --index "$W/idx.sqlite" "$FIX/repo" config.txt > "$W/find" || fail "find exit"
cat "$W/find"
grep -q "^linux@$T1	/etc/config.txt	10	" "$W/find" || fail "find config.txt"
"$BACKUPFS" find --index "$W/idx.sqlite" "$FIX/repo" data '/vd?/*.txt' > "$W/find" || fail "find path glob"
[ "$(cut -f1,2 "$W/find")" = "data@$T1	/vdb/readme.txt" ] || fail "find path glob: $(cat "$W/find")"
"$BACKUPFS" find --index "$W/idx.sqlite" "$FIX/repo" data 'config.txt' && fail "find matched in the wrong VM"

after=$(cd "$R" && sha256sum *.img)
[ "$before" = "$after" ] || fail "raw disks changed while browsing"
echo PASS
