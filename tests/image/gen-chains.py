#!/usr/bin/env python3
"""gen-chains.py — seeded generator of qcow2/raw backing chains for the
differential tests.  Usage: gen-chains.py SEED COUNT OUTDIR

Each chain N lives in OUTDIR/cN/, its layers spread over sub-directories so
backing names are relative (../dB/l2.qcow2) or absolute.  Features drawn per
chain/layer: qcow2 v2 (compat=0.10) and v3, cluster sizes 512 B..2 MiB,
extended_l2, zlib/zstd compression (qemu-io write -c, qemu-img convert -c),
zero writes (plain and unmap), discard, raw or qcow2 base, a backing file
shorter than its overlay, an overlay grown by qemu-img resize.  Writes one
line per chain to stdout: "NAME TOP_PATH DEPTH FEATURES".
"""
import os
import random
import subprocess
import sys

CLUSTERS = [512, 1024, 4096, 16384, 65536, 131072, 524288, 2097152]
K = 1024
M = 1024 * 1024


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def make_sources(d, rng):
    """A few compressible but non-trivial pattern files for qemu-io -s."""
    srcs = []
    for i in range(3):
        alphabet = bytes(rng.randrange(256) for _ in range(rng.choice([4, 16, 64])))
        data = bytearray()
        while len(data) < M:
            data += bytes(rng.choices(alphabet, k=256)) * rng.randint(1, 8)
        p = os.path.join(d, f"src{i}.bin")
        with open(p, "wb") as f:
            f.write(data[:M])
        srcs.append(p)
    return srcs


def io_ops(rng, size, cluster, srcs, allow_compress, feats, nops):
    cmds, comp, used = [], [], set()
    for _ in range(nops):
        kind = rng.choice(["data", "data", "pattern", "zero", "zerou",
                           "compress", "compress", "discard"])
        if kind == "compress" and allow_compress and size >= cluster:
            ncl = size // cluster
            c0 = rng.randrange(ncl)
            n = rng.randint(1, max(1, min(ncl - c0, (512 * K) // cluster)))
            if used.isdisjoint(range(c0, c0 + n)):
                # qemu compresses only into clusters unallocated in this
                # layer: do these first, never twice on one cluster
                used.update(range(c0, c0 + n))
                comp.append(f"write -c -s {rng.choice(srcs)} {c0 * cluster} {n * cluster}")
                feats.add("compressed")
            continue
        off = rng.randrange(0, size // 512) * 512
        ln = min(size - off, rng.randint(1, 512) * 512)
        if ln <= 0:
            continue
        if kind in ("data", "compress"):
            cmds.append(f"write -s {rng.choice(srcs)} {off} {ln}")
        elif kind == "pattern":
            cmds.append(f"write -P {rng.randrange(1, 256)} {off} {ln}")
        elif kind == "zero":
            cmds.append(f"write -z {off} {ln}")
            feats.add("zero")
        elif kind == "zerou":
            cmds.append(f"write -z -u {off} {ln}")
            feats.add("zero")
        else:
            cmds.append(f"discard {off} {ln}")
            feats.add("discard")
    return comp + cmds


def qemu_io(fmt, path, cmds):
    if not cmds:
        return
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    run(*args, path)


def make_chain(root, idx, rng):
    d = os.path.join(root, f"c{idx}")
    for sub in ("dA", "dB", "dC"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    srcs = make_sources(d, rng)
    depth = 1 + (idx % 10) if idx < 20 else rng.randint(1, 10)
    feats = set()
    size = rng.choice([1, 2, 3, 4]) * M + rng.choice([0, 0, 512, 3 * 512, 64 * K])
    layers = []          # (path, fmt)
    for j in range(depth):
        sub = rng.choice(["dA", "dB", "dC"])
        v3 = rng.random() < 0.7
        cluster = rng.choice(CLUSTERS)
        ext = v3 and cluster >= 16384 and rng.random() < 0.35
        zstd = v3 and rng.random() < 0.4
        opts = [f"compat={'1.1' if v3 else '0.10'}", f"cluster_size={cluster}"]
        if ext:
            opts.append("extended_l2=on")
            feats.add("extl2")
        if zstd:
            opts.append("compression_type=zstd")
            feats.add("zstd")
        feats.add("v3" if v3 else "v2")
        feats.add(f"c{cluster}")
        nops = rng.randint(2, 7)
        if j == 0:
            base_kind = rng.choice(["raw", "qcow2", "qcow2", "convert"])
            if base_kind == "raw":
                p = os.path.join(d, sub, "base.raw")
                run("qemu-img", "create", "-q", "-f", "raw", p, str(size))
                qemu_io("raw", p, io_ops(rng, size, 512, srcs, False, feats, nops))
                layers.append((p, "raw"))
                feats.add("rawbase")
                continue
            p = os.path.join(d, sub, "l0.qcow2")
            if base_kind == "convert":
                tmp = os.path.join(d, "tmp.raw")
                run("qemu-img", "create", "-q", "-f", "raw", tmp, str(size))
                qemu_io("raw", tmp, io_ops(rng, size, 512, srcs, False, feats, nops + 2))
                run("qemu-img", "convert", "-c", "-O", "qcow2", "-o", ",".join(opts), tmp, p)
                os.unlink(tmp)
                feats.add("convert-c")
            else:
                run("qemu-img", "create", "-q", "-f", "qcow2", "-o", ",".join(opts), p, str(size))
                qemu_io("qcow2", p, io_ops(rng, size, cluster, srcs, True, feats, nops))
            layers.append((p, "qcow2"))
            continue
        bpath, bfmt = layers[-1]
        p = os.path.join(d, sub, f"l{j}.qcow2")
        if rng.random() < 0.5:
            bname = os.path.abspath(bpath)
            feats.add("abs")
        else:
            bname = os.path.relpath(bpath, os.path.dirname(p))
            feats.add("rel")
        newsize = size
        if rng.random() < 0.2:
            newsize = size + rng.randint(1, 8) * 64 * K
            feats.add("shorter-backing")
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o", ",".join(opts),
            "-b", bname, "-F", bfmt, p, str(newsize))
        if rng.random() < 0.15:
            newsize += rng.randint(1, 8) * 128 * K
            run("qemu-img", "resize", "-q", "-f", "qcow2", p, str(newsize))
            feats.add("resize")
        size = newsize
        qemu_io("qcow2", p, io_ops(rng, size, cluster, srcs, True, feats, nops))
        layers.append((p, "qcow2"))
    for s in srcs:
        os.unlink(s)
    return layers[-1][0], depth, feats


def main():
    seed, count, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        rng = random.Random(seed * 100003 + i)
        top, depth, feats = make_chain(out, i, rng)
        print(f"c{i} {top} {depth} {','.join(sorted(feats))}", flush=True)


if __name__ == "__main__":
    main()
