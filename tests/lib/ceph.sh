# ceph.sh — a single-node Ceph cluster a test starts itself (sourced).
#
# ceph_start DIR   one mon (mon.a) on 127.0.0.1 at a random free port and
#                  one memstore OSD (osd.0, ~1 GiB of RAM at most), cephx on,
#                  pools of size 1, everything (conf, keyrings, logs,
#                  sockets) in DIR; sets CEPH_CONF (DIR/ceph.conf, keyring
#                  of client.admin named in it).  Returns 1 saying why when
#                  the cluster does not come up (the caller skips: 77).
# ceph_stop        the OSD first, then the mon, by PID (call it from the
#                  test's EXIT trap; safe to call twice or before a start).
# ceph_pool NAME   a replicated pool of size 1 initialised for RBD.
#
# Needs ceph-mon, ceph-osd, ceph-authtool, monmaptool, ceph (Debian: ceph-mon
# ceph-osd ceph-common).  paxos_propose_interval is low so the start takes
# ~2 s instead of ~9.
CEPH_MON_PID= CEPH_OSD_PID= CEPH_DIR=

ceph_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ceph_start() {
  local d=$1 port fsid uuid i
  for p in ceph-mon ceph-osd ceph-authtool monmaptool ceph rbd python3; do
    command -v $p >/dev/null || { echo "ceph: $p not installed"; return 1; }
  done
  CEPH_DIR=$d
  mkdir -p "$d/mon" "$d/osd" "$d/run" "$d/log"
  port=$(ceph_free_port)
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  export CEPH_CONF=$d/ceph.conf
  cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $d/\$name.keyring
run dir = $d/run
log file = $d/log/\$name.log
ms bind ipv6 = false
ms bind msgr1 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.01
mon osd report timeout = 30
osd objectstore = memstore
memstore device bytes = 1073741824
osd data = $d/osd
mon data = $d/mon
osd max object name len = 256
osd max object namespace len = 64
osd op num threads per shard = 1
osd op num shards = 1
[mon]
admin socket = $d/run/\$name.asok
[osd]
admin socket = $d/run/\$name.asok
[client]
admin socket =
log file = $d/log/\$name.\$pid.log
EOF
  ceph-authtool --create-keyring "$d/mon.keyring" --gen-key -n mon. \
    --cap mon 'allow *' >/dev/null || return 1
  ceph-authtool --create-keyring "$d/client.admin.keyring" --gen-key \
    -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' >/dev/null || return 1
  cat "$d/client.admin.keyring" >>"$d/mon.keyring"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" \
    "$d/monmap" >/dev/null || return 1
  ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$d/monmap" \
    --keyring "$d/mon.keyring" >"$d/log/mkfs.log" 2>&1 ||
    { echo "ceph: mon mkfs failed: $(tail -n 3 "$d/log/mkfs.log")"; return 1; }
  ceph-mon -c "$CEPH_CONF" -f -i a >"$d/log/mon.out" 2>&1 &
  CEPH_MON_PID=$!
  for i in $(seq 100); do
    timeout 10 ceph -c "$CEPH_CONF" --connect-timeout 5 mon stat \
      >/dev/null 2>&1 && break
    [ "$i" = 100 ] && { echo "ceph: the mon does not answer"; return 1; }
    sleep 0.2
  done
  uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  i=$(ceph -c "$CEPH_CONF" osd new "$uuid" 2>/dev/null) ||
    { echo "ceph: osd new failed"; return 1; }
  ceph -c "$CEPH_CONF" auth get-or-create "osd.$i" osd 'allow *' \
    mon 'allow profile osd' -o "$d/osd.$i.keyring" >/dev/null 2>&1 ||
    { echo "ceph: auth get-or-create osd.$i failed"; return 1; }
  ceph-osd -c "$CEPH_CONF" -i "$i" --mkfs --osd-uuid "$uuid" \
    >"$d/log/osd-mkfs.log" 2>&1 ||
    { echo "ceph: osd mkfs failed: $(tail -n 3 "$d/log/osd-mkfs.log")"; return 1; }
  ceph-osd -c "$CEPH_CONF" -f -i "$i" >"$d/log/osd.out" 2>&1 &
  CEPH_OSD_PID=$!
  for i in $(seq 150); do
    [ "$(ceph -c "$CEPH_CONF" osd stat -f json 2>/dev/null |
         python3 -c 'import json,sys; print(json.load(sys.stdin).get("num_up_osds", 0))' 2>/dev/null)" = 1 ] && return 0
    kill -0 "$CEPH_OSD_PID" 2>/dev/null ||
      { echo "ceph: the OSD died: $(tail -n 3 "$d/log/osd.0.log" 2>/dev/null)"; return 1; }
    sleep 0.2
  done
  echo "ceph: the OSD did not come up"
  return 1
}

ceph_pool() {
  ceph -c "$CEPH_CONF" osd pool create "$1" 8 8 replicated >/dev/null 2>&1 &&
  ceph -c "$CEPH_CONF" osd pool set "$1" size 1 --yes-i-really-mean-it \
    >/dev/null 2>&1 &&
  rbd -c "$CEPH_CONF" pool init "$1"
}

ceph_stop() {
  local p
  for p in "$CEPH_OSD_PID" "$CEPH_MON_PID"; do
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  CEPH_OSD_PID= CEPH_MON_PID=
}
