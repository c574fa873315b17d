#!/usr/bin/env python3
"""blockcmp.py — the oracle of `backupfs diff --blocks`.

Usage: blockcmp.py DISK A.raw|- B.raw|-   ('-': the disk is not there)
Compares two flat images (qemu-img convert -O raw) in 64 KiB blocks and
prints DISK OFFSET LENGTH for each run of consecutive blocks that differ
(a block past the end of the shorter image differs), then `bytes N`.
"""
import os
import sys

BLOCK = 64 * 1024
disk, pa, pb = sys.argv[1:4]


def opened(p):
    return open(p, "rb") if p != "-" else None


fa, fb = opened(pa), opened(pb)
sa = os.path.getsize(pa) if fa else 0
sb = os.path.getsize(pb) if fb else 0
size = max(sa, sb)
runs = []
off = 0
while off < size:
    n = min(BLOCK, size - off)
    a = fa.read(n) if fa else b""
    b = fb.read(n) if fb else b""
    if a != b:
        if runs and runs[-1][0] + runs[-1][1] == off:
            runs[-1][1] += n
        else:
            runs.append([off, n])
    off += n
for o, n in runs:
    print("%s\t%d\t%d" % (disk, o, n))
print("bytes %d" % sum(n for _, n in runs))
