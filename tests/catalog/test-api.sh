#!/bin/bash
# The catalog API (catalog-api.c) on a moved repository with absolute
# backing paths: the disk service opens the recipe and reads the data
# qemu-img wrote; concurrent listings during rescans.
. "$(dirname "$0")/lib.sh"
API=${CATALOG_API:?}
O=$T/orig
qcow2 "$O/web01/2026-10-01T03:00:00Z/vda.qcow2" 4M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' "$O/web01/2026-10-01T03:00:00Z/vda.qcow2" >/dev/null
qcow2 "$O/web01/2026-10-02T03:00:00Z/vda.qcow2" 4M "$O/web01/2026-10-01T03:00:00Z/vda.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 512K 1M' "$O/web01/2026-10-02T03:00:00Z/vda.qcow2" >/dev/null
qcow2 "$O/web01/2026-10-03T03:00:00Z/vda.qcow2" 4M "$O/web01/2026-10-02T03:00:00Z/vda.qcow2"
qemu-io -f qcow2 -c 'write -P 0x33 3M 64K' "$O/web01/2026-10-03T03:00:00Z/vda.qcow2" >/dev/null
qemu-img convert -O raw "$O/web01/2026-10-03T03:00:00Z/vda.qcow2" "$T/oracle.raw"
qcow2 "$O/web01/undated/vda.qcow2" 1M
mv "$O" "$T/moved"
"$API" "$T/moved" "$T/c.db" "$T/oracle.raw" web01 2026-10-03T030000Z \
  "$T/moved/web01/undated/vda.qcow2"
