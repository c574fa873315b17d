#!/usr/bin/env python3
"""stress.py SECONDS NTHREADS ORACLE MOUNTED [ORACLE MOUNTED ...]

NTHREADS threads read random ranges of the mounted images for SECONDS and
compare every byte with the qemu-img oracle file of the same image.  Fails
on the first difference or error; prints how many reads and bytes passed.
"""
import os
import random
import sys
import threading
import time


def main():
    secs, n = float(sys.argv[1]), int(sys.argv[2])
    rest = sys.argv[3:]
    files = []
    for oracle, mounted in zip(rest[0::2], rest[1::2]):
        size = os.path.getsize(oracle)
        if os.path.getsize(mounted) != size:
            sys.exit("FAIL: %s: size differs from its oracle" % mounted)
        files.append((os.open(oracle, os.O_RDONLY), os.open(mounted, os.O_RDONLY), size, mounted))
    stop = time.monotonic() + secs
    lock = threading.Lock()
    stats = {"reads": 0, "bytes": 0}
    errors = []

    def worker(seed):
        rnd = random.Random(seed)
        reads = nbytes = 0
        while time.monotonic() < stop and not errors:
            fo, fm, size, name = rnd.choice(files)
            ln = rnd.choice([512, 4096, 65536, 1 << 20, rnd.randint(1, 200000)])
            off = rnd.randint(0, max(0, size - 1))
            try:
                b = os.pread(fm, ln, off)
            except OSError as e:
                with lock:
                    errors.append("%s: pread %d at %d: %s" % (name, ln, off, e))
                return
            if b != os.pread(fo, ln, off):
                with lock:
                    errors.append("%s: %d bytes at %d differ from the oracle" % (name, ln, off))
                return
            reads += 1
            nbytes += len(b)
        with lock:
            stats["reads"] += reads
            stats["bytes"] += nbytes

    ts = [threading.Thread(target=worker, args=(7 + i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit("FAIL: " + errors[0])
    print("stress ok: %d threads, %d images, %.0f s, %d reads, %d MiB compared"
          % (n, len(files), secs, stats["reads"], stats["bytes"] >> 20))


if __name__ == "__main__":
    main()
