#!/usr/bin/env python3
"""fusecheck.py — checks on a mounted backupfs that need syscalls.

  seek FILE MAP         SEEK_DATA/SEEK_HOLE of FILE against `backupfs image
                        map` output (offset length DATA|ZERO layer)
  threads N ORACLE MOUNTED [ORACLE MOUNTED ...]
                        N threads of random preads (fixed seed) of the mounted
                        images, each compared with its qemu-img oracle file
  holes FILE RAW [OFF ...]
                        no SEEK_HOLE range of FILE hides data: RAW (its
                        oracle) is zero there; each OFF is inside a data range
  erofs DIR FILE        every modifying call under DIR / on FILE fails EROFS
  eio FILE OFF LEN      pread fails with EIO
  openeio FILE          open fails with EIO
"""
import errno
import os
import random
import sys
import threading


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def coalesce(ranges):
    out = []
    for off, end in sorted(ranges):
        if out and off <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([off, end])
    return [tuple(r) for r in out]


def data_ranges(path, fd, size):
    """the (start, end) ranges SEEK_DATA/SEEK_HOLE report for fd"""
    got, pos = [], 0
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        if h <= d:
            die("%s: SEEK_HOLE(%d) = %d" % (path, d, h))
        got.append((d, h))
        pos = h
    return got


def holes(path, rawfile, offs):
    raw = open(rawfile, "rb").read()
    fd = os.open(path, os.O_RDONLY)
    ranges = data_ranges(path, fd, len(raw))
    data = bytearray(len(raw))
    for d, h in ranges:
        data[d:h] = raw[d:h]
    if bytes(data) != raw:
        die("%s: a hole hides data" % path)
    for off in offs:
        if not any(d <= off < h for d, h in ranges):
            die("%s: %d is not in a data range: %s" % (path, off, ranges))
    print("holes ok: %d data ranges" % len(ranges))


def seek(path, mapfile):
    want = []
    with open(mapfile) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "DATA":
                off, ln = int(parts[0]), int(parts[1])
                want.append((off, off + ln))
    want = coalesce(want)
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    got = data_ranges(path, fd, size)
    # past the end: ENXIO for both
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        try:
            os.lseek(fd, size, whence)
            die("%s: lseek at size did not fail" % path)
        except OSError as e:
            if e.errno != errno.ENXIO:
                die("%s: lseek at size: %s" % (path, e))
    # a hole's first byte reads as zero, a data range's bytes come back
    for d, h in got[:50]:
        if len(os.pread(fd, 1, d)) != 1:
            die("short read in data range")
    os.close(fd)
    if coalesce(got) != want:
        die("%s: data ranges %s != map %s" % (path, got[:10], want[:10]))
    print("seek ok: %d data ranges, %d bytes of data" %
          (len(got), sum(h - d for d, h in got)))


def threads(nthreads, pairs):
    files = []
    for oracle, mounted in pairs:
        size = os.path.getsize(oracle)
        if os.path.getsize(mounted) != size:
            die("%s: size %d != oracle %d" % (mounted, os.path.getsize(mounted), size))
        files.append((os.open(oracle, os.O_RDONLY), os.open(mounted, os.O_RDONLY), size, mounted))
    errors = []
    count = [0]
    lock = threading.Lock()

    def worker(seed):
        rnd = random.Random(seed)
        for _ in range(300):
            fo, fm, size, name = rnd.choice(files)
            ln = rnd.choice([1, 512, 4096, 65536, 131072, 1 << 20, rnd.randint(1, 300000)])
            off = rnd.randint(0, max(0, size - 1))
            if rnd.random() < 0.1:
                off = max(0, size - rnd.randint(1, 8192))
            a = os.pread(fo, ln, off)
            b = os.pread(fm, ln, off)
            if a != b:
                with lock:
                    errors.append("%s: %d bytes at %d differ (got %d bytes, want %d)" %
                                  (name, ln, off, len(b), len(a)))
                return
            with lock:
                count[0] += 1

    ts = [threading.Thread(target=worker, args=(1234 + i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        die(errors[0])
    print("threads ok: %d threads, %d reads over %d images" % (nthreads, count[0], len(files)))


def expect(err, fn, what):
    try:
        fn()
    except OSError as e:
        if e.errno != err:
            die("%s: %s, want %s" % (what, e, errno.errorcode[err]))
        return
    die("%s: succeeded, want %s" % (what, errno.errorcode[err]))


def erofs(d, f):
    E = errno.EROFS
    expect(E, lambda: os.open(os.path.join(d, "new"), os.O_WRONLY | os.O_CREAT, 0o644), "create")
    expect(E, lambda: os.open(f, os.O_WRONLY), "open for writing")
    expect(E, lambda: os.open(f, os.O_RDWR), "open read-write")
    expect(E, lambda: os.truncate(f, 0), "truncate")
    expect(E, lambda: os.mkdir(os.path.join(d, "newdir")), "mkdir")
    expect(E, lambda: os.unlink(f), "unlink")
    expect(E, lambda: os.rmdir(d), "rmdir")
    expect(E, lambda: os.rename(f, f + ".x"), "rename")
    expect(E, lambda: os.chmod(f, 0o600), "chmod")
    expect(E, lambda: os.utime(f, (0, 0)), "utime")
    expect(E, lambda: os.symlink("x", os.path.join(d, "lnk")), "symlink")
    print("erofs ok")


def eio(path, off, ln):
    fd = os.open(path, os.O_RDONLY)
    expect(errno.EIO, lambda: os.pread(fd, ln, off), "pread %s at %d" % (path, off))
    os.close(fd)
    print("eio ok")


def openeio(path):
    expect(errno.EIO, lambda: os.open(path, os.O_RDONLY), "open " + path)
    print("open eio ok")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "seek":
        seek(args[0], args[1])
    elif cmd == "threads":
        n = int(args[0])
        rest = args[1:]
        threads(n, list(zip(rest[0::2], rest[1::2])))
    elif cmd == "holes":
        holes(args[0], args[1], [int(a) for a in args[2:]])
    elif cmd == "erofs":
        erofs(args[0], args[1])
    elif cmd == "eio":
        eio(args[0], int(args[1]), int(args[2]))
    elif cmd == "openeio":
        openeio(args[0])
    else:
        die("unknown command " + cmd)


if __name__ == "__main__":
    main()
