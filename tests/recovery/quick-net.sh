#!/bin/bash
# quick-net.sh — a quick restore's domain XML starts here: interfaces on
# bridges or libvirt networks this host lacks (CloudStack's cloudbr0, a
# network virsh net-list does not know, a missing host device) are dropped
# with a warning; --bridge/--network put every interface on one that
# exists; a definition guessed without domain.xml says so; when --start
# fails the next steps are still printed.  A stand-in virsh (PATH) knows
# the network "default" and records its calls.  No VM, no mount: the
# point-in-time directory is made here.
. "$SRCDIR/tests/recovery/lib.sh"
command -v xmllint >/dev/null || skip "xmllint not installed"

B=$T/pit/web01/2026-10-02T030000Z
mkdir -p "$B/disks" "$T/bin"
truncate -s 16M "$B/disks/vda.img"
echo '{"vm":"web01","disks":[{"name":"vda","status":"ok"}]}' > "$B/backup.json"
cat > "$B/domain.xml" <<'X'
<domain type='kvm'>
  <name>web01</name>
  <memory unit='MiB'>512</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/mnt/primary/77aa'/><target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><mac address='52:54:00:00:00:01'/>
      <source bridge='cloudbr0'/><model type='virtio'/></interface>
    <interface type='network'><mac address='52:54:00:00:00:02'/>
      <source network='cs-guest-net'/><model type='virtio'/></interface>
    <interface type='network'><mac address='52:54:00:00:00:03'/>
      <source network='default'/><model type='virtio'/></interface>
    <interface type='direct'><source dev='bfs-nodev0' mode='bridge'/></interface>
    <interface type='bridge'><source bridge='lo'/></interface>
  </devices>
</domain>
X
cat > "$T/bin/virsh" <<V
#!/bin/sh
echo "\$*" >> "$T/virsh.log"
case "\$*" in
  *net-list*) printf 'default\n\n' ;;
  start*) [ -n "\${FAIL_START:-}" ] && { echo "error: cannot start" >&2; exit 1; } ;;
esac
exit 0
V
chmod +x "$T/bin/virsh"
xp() { xmllint --xpath "$1" "$2"; }

PATH=$T/bin:$PATH "$BACKUPFS" restore quick "$B" "$T/q1" >"$T/q1.out" 2>"$T/q1.err" ||
  fail "restore quick: $(cat "$T/q1.err")"
X1=$T/q1/domain.xml
xmllint --noout "$X1" || fail "not XML"
[ "$(xp 'count(//interface)' "$X1")" = 2 ] || fail "interfaces kept: $(grep -A2 '<interface' "$X1")"
[ "$(xp 'string(//interface[@type="network"]/source/@network)' "$X1")" = default ] || fail "default network dropped"
[ "$(xp 'string(//interface[@type="bridge"]/source/@bridge)' "$X1")" = lo ] || fail "existing bridge lo dropped"
for w in "bridge 'cloudbr0'" "libvirt network 'cs-guest-net'" "host interface 'bfs-nodev0'"; do
  grep -q "interface on $w, which this host does not have: dropped" "$T/q1.err" ||
    fail "no warning for $w: $(cat "$T/q1.err")"
done
ok "interfaces on missing bridges/networks/devices dropped with a warning, others kept"

PATH=$T/bin:$PATH "$BACKUPFS" restore quick --bridge br-restore "$B" "$T/q2" >/dev/null 2>"$T/q2.err" ||
  fail "--bridge: $(cat "$T/q2.err")"
X2=$T/q2/domain.xml
[ "$(xp 'count(//interface)' "$X2")" = 5 ] || fail "--bridge: interfaces lost"
[ "$(xp 'count(//interface[@type="bridge"]/source[@bridge="br-restore"])' "$X2")" = 5 ] ||
  fail "--bridge: not every interface rewritten: $(grep -A2 '<interface' "$X2")"
[ "$(xp 'count(//interface/mac)' "$X2")" = 0 ] || fail "--bridge: MAC kept without --same-identity"
grep -q "dropped" "$T/q2.err" && fail "--bridge still dropped something: $(cat "$T/q2.err")"
PATH=$T/bin:$PATH "$BACKUPFS" restore quick --network default --same-identity "$B" "$T/q3" >/dev/null ||
  fail "--network"
X3=$T/q3/domain.xml
[ "$(xp 'count(//interface[@type="network"]/source[@network="default"])' "$X3")" = 5 ] ||
  fail "--network: $(grep -A2 '<interface' "$X3")"
[ "$(xp 'string(//interface[1]/mac/@address)' "$X3")" = 52:54:00:00:00:01 ] || fail "--same-identity MAC lost"
"$BACKUPFS" restore quick --network default --bridge br0 "$B" "$T/q4" 2>/dev/null && fail "--network with --bridge accepted"
ok "--bridge and --network put every interface on one that exists"

# --start that fails: the next steps are printed, the exit status says so
: > "$T/virsh.log"
if FAIL_START=1 PATH=$T/bin:$PATH "$BACKUPFS" restore quick --start "$B" "$T/q5" \
     >"$T/q5.out" 2>"$T/q5.err"; then
  fail "--start failure not reported"
fi
grep -q "virsh start web01-restored" "$T/q5.out" && grep -q "restore consolidate $T/q5" "$T/q5.out" ||
  fail "next steps not printed after a failed --start: $(cat "$T/q5.out")"
grep -q -- "--start: virsh start failed" "$T/q5.err" || fail "no reason: $(cat "$T/q5.err")"
[ -f "$T/q5/vda.qcow2" ] && [ -f "$T/q5/.backupfs/quick.json" ] || fail "files removed after a failed --start"
ok "a failed --start still prints the next steps and keeps the files"

# no domain.xml: the definition is a guess and says so
rm "$B/domain.xml"
PATH=$T/bin:$PATH "$BACKUPFS" restore quick "$B" "$T/q6" >"$T/q6.out" 2>&1 || fail "minimal: $(cat "$T/q6.out")"
grep -q "domain web01-restored (a GUESS" "$T/q6.out" || fail "guess not said: $(cat "$T/q6.out")"
ok "a guessed definition says it is a guess"
