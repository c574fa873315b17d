#!/usr/bin/env python3
"""qcow2-corrupt.py MODE IMAGE — damage a qcow2 image in place for the
verify tests (fixtures are made at test time, never committed).

  l1-past-eof   point the L1 table offset past the end of the file
  compressed    overwrite the first compressed cluster's data with 0xff
                (an invalid deflate/zstd stream); exit 3 when none exists
  data          flip one byte inside the first allocated data cluster (the
                structure stays valid: only a checksum can notice)
"""
import struct
import sys


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path, "r+b") as f:
        hdr = f.read(72)
        if hdr[:4] != b"QFI\xfb":
            sys.exit(f"{path}: not qcow2")
        cluster_bits = struct.unpack(">I", hdr[20:24])[0]
        l1_size = struct.unpack(">I", hdr[36:40])[0]
        l1_off = struct.unpack(">Q", hdr[40:48])[0]
        f.seek(0, 2)
        size = f.tell()
        if mode == "l1-past-eof":
            cs = 1 << cluster_bits
            f.seek(40)
            f.write(struct.pack(">Q", (size + 16 * cs) // cs * cs))
            return
        f.seek(l1_off)
        l1 = struct.unpack(f">{l1_size}Q", f.read(8 * l1_size))
        n_l2 = (1 << cluster_bits) // 8
        for e in l1:
            l2_off = e & 0x00FFFFFFFFFFFE00
            if not l2_off:
                continue
            f.seek(l2_off)
            for x in struct.unpack(f">{n_l2}Q", f.read(8 << (cluster_bits - 3))):
                compressed = x & (1 << 62)
                if mode == "compressed" and compressed:
                    bits = 62 - (cluster_bits - 8)
                    host = x & ((1 << bits) - 1)
                    f.seek(host)
                    f.write(b"\xff" * 512)
                    return
                if mode == "data" and not compressed and x & 0x00FFFFFFFFFFFE00:
                    host = x & 0x00FFFFFFFFFFFE00
                    f.seek(host + 100)
                    b = f.read(1)
                    f.seek(host + 100)
                    f.write(bytes([b[0] ^ 0x5A]))
                    return
    sys.exit(3)


main()
