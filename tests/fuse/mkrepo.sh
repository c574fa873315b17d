# mkrepo.sh — fixture repositories for the fuse suite (sourced after lib.sh).
#
# mk_generic DIR: generic layout, two VMs.  web01 has a depth-3 qcow2 chain
#   (compressed base, zero clusters and a compressed cluster in the
#   overlays, relative backing names) and a raw disk; db01 a qcow2 v2 image
#   with 4 KiB clusters.
# mk_nas DIR: CloudStack NAS layout, one VM with a root and a data disk,
#   full + incremental, domain-config.xml and friends (tests/lib/nas.sh).
# mk_pairs DIR SIZE "OFF LEN" "OFF LEN" VM...: generic layout, each VM a
#   full (vda.qcow2 of SIZE, 0x41 written at the first OFF LEN) and an
#   incremental over it (0x42 at the second) at 2026-10-0[12]T030000Z.

# sparse_raw FILE SIZE SEED OFFSETS...: random 256 KiB chunks at OFFSETS (MiB)
sparse_raw() {
  python3 - "$@" <<'PY'
import random, sys
path, size, seed, offs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
r = random.Random(seed)
with open(path, "wb") as f:
    f.truncate(size)
    for o in offs:
        f.seek(int(float(o) * 1048576))
        chunk = bytes(r.getrandbits(8) for _ in range(4096)) * 32
        f.write(chunk + b"backupfs text " * 4681)
PY
}

qio() { qemu-io -f qcow2 "$@" >/dev/null; }

. "$SRCDIR/tests/lib/nas.sh"

mk_generic() {
  local r=$1 t1=2026-10-01T030000Z t2=2026-10-02T030000Z t3=2026-10-03T030000Z
  mkdir -p "$r/web01/$t1" "$r/web01/$t2" "$r/web01/$t3" "$r/db01/2026-10-01T040000Z"
  sparse_raw "$T/base.raw" $((64 << 20)) 1 0 3 17.5 40 63.5
  qemu-img convert -c -O qcow2 "$T/base.raw" "$r/web01/$t1/root.qcow2"
  rm -f "$T/base.raw"
  qemu-img create -q -f qcow2 -F qcow2 -b "../$t1/root.qcow2" "$r/web01/$t2/root.qcow2"
  qio -c "write -P 0xaa 1M 2M" -c "write -z 3M 256k" -c "write -P 0x55 60M 64k" \
      "$r/web01/$t2/root.qcow2"
  qemu-img create -q -f qcow2 -F qcow2 -b "../$t2/root.qcow2" "$r/web01/$t3/root.qcow2"
  qio -c "write -P 0x11 0 64k" -c "write -z 17M 1M" -c "write -c -P 0x22 8M 64k" \
      -c "write -P 0x33 63M 512" "$r/web01/$t3/root.qcow2"
  sparse_raw "$r/web01/$t3/data.raw" $((8 << 20)) 2 2 6
  qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 \
    "$r/db01/2026-10-01T040000Z/disk0.qcow2" 16M
  qio -c "write -P 0x77 4k 12k" -c "write -P 0x78 1M 100k" -c "write -P 0x79 16380k 4k" \
    "$r/db01/2026-10-01T040000Z/disk0.qcow2"
  touch -d 2026-10-01T03:00:00Z "$r/web01/$t1"/* 
  touch -d 2026-10-02T03:00:00Z "$r/web01/$t2"/*
  touch -d 2026-10-03T03:00:00Z "$r/web01/$t3"/*
}

mk_nas() {
  local r=$1 vm=i-2-17-VM s1=2026.10.01.02.00.00 s2=2026.10.02.02.00.00
  local disks="vda=/mnt/primary/8f1c vdb=/mnt/primary/9a2b"
  mkdir -p "$r/$vm/$s1" "$r/$vm/$s2"
  sparse_raw "$T/nas-root.raw" $((32 << 20)) 3 0 9 31
  qemu-img convert -c -O qcow2 "$T/nas-root.raw" "$r/$vm/$s1/root.8f1c.qcow2"
  sparse_raw "$T/nas-data.raw" $((16 << 20)) 4 4
  qemu-img convert -O qcow2 "$T/nas-data.raw" "$r/$vm/$s1/datadisk.9a2b.qcow2"
  rm -f "$T/nas-root.raw" "$T/nas-data.raw"
  qemu-img create -q -f qcow2 -F qcow2 -b "../$s1/root.8f1c.qcow2" "$r/$vm/$s2/root.8f1c.qcow2"
  qio -c "write -P 0xcc 9M 1M" "$r/$vm/$s2/root.8f1c.qcow2"
  qemu-img create -q -f qcow2 -F qcow2 -b "../$s1/datadisk.9a2b.qcow2" "$r/$vm/$s2/datadisk.9a2b.qcow2"
  qio -c "write -z 4M 128k" "$r/$vm/$s2/datadisk.9a2b.qcow2"
  for s in $s1 $s2; do
    nas_domain_xml "$vm" "5c8a3e2e-1d7b-4a47-9d7e-0a5f6c1e2b3$([ $s = $s1 ] && echo a || echo b)" \
      $disks > "$r/$vm/$s/domain-config.xml"
    nas_domblklist $disks > "$r/$vm/$s/domblklist.xml"
    nas_dominfo "$vm" > "$r/$vm/$s/dominfo.xml"
  done
}

mk_pairs() {
  local r=$1 size=$2 w1=$3 w2=$4 t1=2026-10-01T030000Z t2=2026-10-02T030000Z vm
  shift 4
  for vm in "$@"; do
    mkdir -p "$r/$vm/$t1" "$r/$vm/$t2"
    qemu-img create -q -f qcow2 "$r/$vm/$t1/vda.qcow2" "$size"
    qio -c "write -P 0x41 $w1" "$r/$vm/$t1/vda.qcow2"
    qemu-img create -q -f qcow2 -F qcow2 -b "../$t1/vda.qcow2" "$r/$vm/$t2/vda.qcow2"
    qio -c "write -P 0x42 $w2" "$r/$vm/$t2/vda.qcow2"
  done
}
