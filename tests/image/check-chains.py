#!/usr/bin/env python3
"""check-chains.py — differential test of the image core against QEMU.

Generates seeded chains (gen-chains.py), then for every chain:
  * `backupfs image cat` (alternately -o FILE, stdout to a file and stdout
    through a pipe) must equal `qemu-img convert -O raw` into a FILE, byte
    for byte;
  * `backupfs image map` must cover [0, virtual size) with contiguous
    extents, every ZERO extent must read as zeros in QEMU's output, and
    DATA layers must exist;
  * `backupfs image info` must report the chain depth.
Usage: check-chains.py SEED COUNT   (env: BACKUPFS, SRCDIR; TMPDIR honoured)
"""
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    bfs = os.environ.get("BACKUPFS")
    if not bfs or not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        print("SKIP: needs $BACKUPFS, qemu-img and qemu-io")
        return 77
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    work = tempfile.mkdtemp(prefix="bfs-chains-")
    failures = 0
    try:
        gen = subprocess.run([sys.executable, os.path.join(HERE, "gen-chains.py"),
                              str(seed), str(count), work],
                             check=True, capture_output=True, text=True)
        chains = [l.split() for l in gen.stdout.splitlines()]
        feats = set()
        for n, (name, top, depth, f) in enumerate(chains):
            feats.update(f.split(","))
            failures += check_one(bfs, work, n, name, top, int(depth), f)
        print(f"{len(chains)} chains, {failures} failures; features: {','.join(sorted(feats))}")
        if len(chains) < count:
            failures += 1
    finally:
        if failures == 0 or not os.environ.get("BFS_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def check_one(bfs, work, n, name, top, depth, feats):
    ref = os.path.join(work, f"{name}.ref")
    ours = os.path.join(work, f"{name}.ours")
    bad = 0
    subprocess.run(["qemu-img", "convert", "-O", "raw", top, ref], check=True)
    size = os.path.getsize(ref)
    mode = n % 3
    if mode == 0:
        r = subprocess.run([bfs, "image", "cat", "-o", ours, top], capture_output=True, text=True)
    elif mode == 1:
        with open(ours, "wb") as f:
            r = subprocess.run([bfs, "image", "cat", top], stdout=f, stderr=subprocess.PIPE, text=True)
    else:
        with open(ours, "wb") as f:
            p = subprocess.Popen([bfs, "image", "cat", top], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = p.communicate()
            f.write(out)
            r = subprocess.CompletedProcess(p.args, p.returncode, None, err.decode())
    if r.returncode != 0 or not filecmp.cmp(ref, ours, shallow=False):
        print(f"FAIL {name} ({feats}): cat differs from qemu-img convert (rc={r.returncode}) {r.stderr.strip()}")
        bad += 1

    r = subprocess.run([bfs, "image", "map", top], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL {name}: map rc={r.returncode} {r.stderr.strip()}")
        return bad + 1
    pos = 0
    with open(ref, "rb") as f:
        for line in r.stdout.splitlines():
            off, ln, kind, layer = line.split()
            off, ln = int(off), int(ln)
            if off != pos or ln <= 0:
                print(f"FAIL {name}: map not contiguous at {off} (expected {pos})")
                bad += 1
                break
            if kind == "ZERO":
                f.seek(off)
                left = ln
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if chunk.count(0) != len(chunk):
                        print(f"FAIL {name}: map says ZERO at {off}+{ln} but data is not zero")
                        bad += 1
                        break
                    left -= len(chunk)
            elif kind != "DATA" or not 0 <= int(layer) < depth:
                print(f"FAIL {name}: bad map line '{line}'")
                bad += 1
            pos = off + ln
    if pos != size:
        print(f"FAIL {name}: map ends at {pos}, size {size}")
        bad += 1

    r = subprocess.run([bfs, "image", "info", top], capture_output=True, text=True)
    if r.returncode != 0 or f"depth: {depth}\n" not in r.stdout:
        print(f"FAIL {name}: info rc={r.returncode}, depth {depth} not reported {r.stderr.strip()}")
        bad += 1
    for p in (ref, ours):
        os.unlink(p)
    if not bad:
        print(f"ok {name} depth={depth} size={size} ({feats})")
    return bad


if __name__ == "__main__":
    sys.exit(main())
