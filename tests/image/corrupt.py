#!/usr/bin/env python3
"""corrupt.py — hostile and broken images must fail cleanly.

Each case builds an image with qemu-img/qemu-io, breaks it (patching header
fields or tables with struct), then runs `backupfs image cat` to stdout and
with -o FILE.  Every run must exit 1 (not a signal, not 0), print a message
naming the broken file and the reason, write nothing to stdout and leave no
output file behind.
"""
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

BFS = os.environ.get("BACKUPFS")
W = None
failures = 0


def sh(*a):
    subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def qcow2(name, size="1M", opts="", backing=None, bfmt="qcow2", writes=()):
    p = os.path.join(W, name)
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        args += ["-o", opts]
    if backing:
        args += ["-u", "-b", backing, "-F", bfmt]
    sh(*args, p, size)
    if writes:
        io = ["qemu-io", "-f", "qcow2"]
        for w in writes:
            io += ["-c", w]
        sh(*io, p)
    return p


def hdr(p):
    with open(p, "rb") as f:
        h = f.read(112)
    (magic, ver, boff, blen, cbits, size, crypt, l1n, l1off) = struct.unpack(">IIQIIQIIQ", h[:48])
    return dict(ver=ver, cbits=cbits, l1n=l1n, l1off=l1off, size=size)


def patch(p, off, fmt, *vals):
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, *vals))


def read_u64(p, off):
    with open(p, "rb") as f:
        f.seek(off)
        return struct.unpack(">Q", f.read(8))[0]


def l2_entry_off(p, guest=0, entry_bytes=8):
    h = hdr(p)
    cs = 1 << h["cbits"]
    l2 = read_u64(p, h["l1off"]) & 0x00fffffffffffe00
    return l2 + (guest // cs) * entry_bytes


def expect_fail(case, img, named, words):
    """Run cat both ways; named must appear in the message with one of words."""
    global failures
    out = os.path.join(W, "out.raw")
    for args in (["image", "cat", img], ["image", "cat", "-o", out, img]):
        r = subprocess.run([BFS] + args, capture_output=True)
        err = r.stderr.decode(errors="replace").strip()
        problems = []
        if r.returncode != 1:
            problems.append(f"exit {r.returncode}")
        if r.stdout:
            problems.append(f"{len(r.stdout)} bytes on stdout")
        if os.path.exists(out):
            problems.append("output file left behind")
            os.unlink(out)
        if os.path.basename(named) not in err:
            problems.append("message does not name " + os.path.basename(named))
        if not any(w in err for w in words):
            problems.append(f"message lacks any of {words}")
        if problems:
            print(f"FAIL {case} ({' '.join(args[:2])}{' -o' if '-o' in args else ''}): {'; '.join(problems)}: {err}")
            failures += 1
        else:
            print(f"ok {case}: {err}")


def expect_same(case, img):
    """image cat must succeed and equal qemu-img convert -O raw."""
    global failures
    out, ref = os.path.join(W, "same.raw"), os.path.join(W, "ref.raw")
    sh("qemu-img", "convert", "-O", "raw", img, ref)
    r = subprocess.run([BFS, "image", "cat", "-o", out, img], capture_output=True)
    same = r.returncode == 0 and open(out, "rb").read() == open(ref, "rb").read()
    if same:
        print(f"ok {case}: {os.path.getsize(ref)} bytes as qemu-img")
    else:
        size = os.path.getsize(out) if os.path.exists(out) else None
        print(f"FAIL {case}: exit {r.returncode}, {size} bytes, qemu-img "
              f"{os.path.getsize(ref)}: {r.stderr.decode(errors='replace').strip()}")
        failures += 1
    for f in (out, ref):
        if os.path.exists(f):
            os.unlink(f)


def zstd_rle(total, byte=0x5A):
    """A zstd frame of RLE blocks decoding to total bytes (window 128 KiB,
    no content size), built by hand: no zstd module needed."""
    out = bytearray(struct.pack("<I", 0xFD2FB528)) + bytes([0x00, 0x38])
    rem = total
    while rem:
        n = min(128 * 1024, rem)
        rem -= n
        out += ((n << 3) | (1 << 1) | (rem == 0)).to_bytes(3, "little")
        out.append(byte)
    return bytes(out)


def deflate(total, byte=0x5A):
    import zlib
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(bytes([byte]) * total) + c.flush()


def with_payload(name, ctype, payload):
    """A 64 KiB-cluster image whose cluster 0 is compressed as payload
    (appended at the end of the file, sector aligned)."""
    p = qcow2(name, opts=f"compression_type={ctype}",
              writes=["write -c -P 3 0 64k", "write -P 4 64k 64k"])
    end = (os.path.getsize(p) + 511) & ~511
    nsec = (len(payload) + 511) // 512
    with open(p, "r+b") as f:
        f.seek(end)
        f.write(payload + b"\0" * (nsec * 512 - len(payload)))
    patch(p, l2_entry_off(p), ">Q", (1 << 62) | ((nsec - 1) << 54) | end)
    return p


def verify_faults(images):
    """verify must report every image as a fault, with its reason."""
    global failures
    repo = os.path.join(W, "repo")
    for i, (case, img, words) in enumerate(images):
        d = os.path.join(repo, "vm", f"2026-10-{i + 1:02d}T030000Z")
        os.makedirs(d)
        shutil.copy(img, os.path.join(d, "vda.qcow2"))
    r = subprocess.run([BFS, "verify", "--json", "--no-checksum", "--catalog",
                        os.path.join(W, "verify.db"), repo], capture_output=True)
    import json
    try:
        rows = json.loads(r.stdout)["results"]
    except ValueError:
        rows = []
    for i, (case, img, words) in enumerate(images):
        row = [x for x in rows if x["time"].startswith(f"2026-10-{i + 1:02d}")]
        msg = row[0]["result"] if row else ""
        if r.returncode == 1 and row and not row[0]["ok"] and any(w in msg for w in words):
            print(f"ok verify reports {case}: {msg}")
        else:
            print(f"FAIL verify {case}: exit {r.returncode}: {row} {r.stderr.decode(errors='replace')}")
            failures += 1
    shutil.rmtree(repo)


def main():
    global W
    if not BFS or not shutil.which("qemu-img"):
        print("SKIP: needs $BACKUPFS and qemu-img")
        return 77
    W = tempfile.mkdtemp(prefix="bfs-corrupt-")
    try:
        cases()
    finally:
        shutil.rmtree(W, ignore_errors=True)
    print(f"{failures} failures")
    return 1 if failures else 0


def cases():
    data = ["write -P 1 0 512k", "write -P 2 600k 64k"]

    p = qcow2("truncated.qcow2", writes=data)
    os.truncate(p, os.path.getsize(p) // 2)
    expect_fail("truncated file", p, p, ["past the end", "truncated"])

    p = qcow2("l1eof.qcow2", writes=data)
    patch(p, 40, ">Q", 1 << 40)
    expect_fail("L1 past EOF", p, p, ["L1 table"])

    p = qcow2("l1huge.qcow2", writes=data)
    patch(p, 36, ">I", 0x7fffffff)
    expect_fail("absurd L1 size", p, p, ["L1 table"])

    for cb in (8, 22, 63):
        p = qcow2(f"cbits{cb}.qcow2", writes=data)
        patch(p, 20, ">I", cb)
        expect_fail(f"cluster bits {cb}", p, p, ["cluster bits"])

    p = qcow2("l2eof.qcow2", writes=data)
    patch(p, hdr(p)["l1off"], ">Q", (1 << 63) | (1 << 40))
    expect_fail("L2 table past EOF", p, p, ["L2 table"])

    p = qcow2("l2unaligned.qcow2", writes=data)
    l1 = read_u64(p, hdr(p)["l1off"])
    patch(p, hdr(p)["l1off"], ">Q", l1 + 512)
    expect_fail("L2 table unaligned", p, p, ["not aligned"])

    p = qcow2("dataeof.qcow2", writes=data)
    patch(p, l2_entry_off(p), ">Q", (1 << 63) | (1 << 40))
    expect_fail("data cluster past EOF", p, p, ["past the end"])

    a = qcow2("loop-a.qcow2")
    b = qcow2("loop-b.qcow2", backing="loop-a.qcow2")
    sh("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "loop-b.qcow2", "-F", "qcow2", a)
    expect_fail("backing loop", b, "loop-", ["loop"])
    s = qcow2("self.qcow2")
    sh("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "self.qcow2", "-F", "qcow2", s)
    expect_fail("backing loop (self)", s, s, ["loop"])

    base = qcow2("gone-base.qcow2")
    top = qcow2("gone-top.qcow2", backing="gone-base.qcow2")
    os.unlink(base)
    expect_fail("missing backing file", top, "gone-base.qcow2", ["No such file"])

    prev = qcow2("deep0.qcow2", size="64k")
    for i in range(1, 66):
        prev = qcow2(f"deep{i}.qcow2", size="64k", backing=os.path.basename(prev))
    expect_fail("chain deeper than the cap", prev, prev, ["deeper than"])

    rng = random.Random(7)
    p = os.path.join(W, "garbage.qcow2")
    with open(p, "wb") as f:
        f.write(b"QFI\xfb" + bytes(rng.randrange(256) for _ in range(65532)))
    expect_fail("garbage with qcow2 magic", p, p,
                ["version", "cluster bits", "L1", "header", "past the end", "backing"])

    for v in (2, 3):
        p = os.path.join(W, f"garbage-v{v}.qcow2")
        with open(p, "wb") as f:
            f.write(b"QFI\xfb" + struct.pack(">I", v) +
                    bytes(rng.randrange(256) for _ in range(65528)))
        expect_fail(f"garbage with qcow2 v{v} header", p, p,
                    ["cluster bits", "L1", "header", "past the end", "backing",
                     "incompatible", "refcount", "encryption", "compression"])

    p = qcow2("datafile.qcow2", opts="data_file=" + os.path.join(W, "datafile.raw"))
    expect_fail("external data file refused", p, p, ["external data file"])

    for ctype in ("zlib", "zstd"):
        p = qcow2(f"badcomp-{ctype}.qcow2", opts=f"compression_type={ctype}",
                  writes=["write -c -P 3 0 64k", "write -P 4 64k 64k"])
        e = read_u64(p, l2_entry_off(p))
        coff = e & ((1 << 54) - 1)          # 64 KiB clusters: 54 offset bits
        patch(p, coff, "64s", b"\xff" * 64)
        expect_fail(f"corrupted compressed payload ({ctype})", p, p, ["decompress"])

    p = os.path.join(W, "empty.qcow2")
    open(p, "wb").close()
    expect_fail("empty file", p, p, ["empty"])

    p = qcow2("incompat.qcow2", writes=data)
    patch(p, 72, ">Q", 1 << 17)
    expect_fail("unknown incompatible feature", p, p, ["incompatible"])

    p = qcow2("extbad.qcow2", opts="extended_l2=on", writes=["write -P 1 0 64k"])
    off = l2_entry_off(p, 0, 16)
    patch(p, off + 8, ">Q", 0x0000000100000001)
    expect_fail("subcluster allocated and zero", p, p, ["both allocated and zero"])

    p = qcow2("longname.qcow2", backing="x", bfmt="raw")
    patch(p, 16, ">I", 1100)
    expect_fail("backing name too long", p, p, ["backing file name length"])

    p = os.path.join(W, "luks.qcow2")
    sh(os.path.join(os.environ["SRCDIR"], "tests/lib/qemu-img-retry"),
       "create", "-q", "-f", "qcow2", "--object", "secret,id=s,data=x",
       "-o", "encrypt.format=luks,encrypt.key-secret=s", p, "1M")
    expect_fail("LUKS refused", p, p, ["encrypted"])

    # issue 10 item 5: corrupt but plausible images are EIO, not data
    p = qcow2("v2zero.qcow2", opts="compat=0.10", writes=["write -P 1 0 128k"])
    patch(p, l2_entry_off(p), ">Q", read_u64(p, l2_entry_off(p)) | 1)
    expect_fail("zero flag in a v2 image", p, p, ["zero flag"])
    faults = [("v2 zero flag", p, ["zero flag"])]

    p = with_payload("zstd-exact.qcow2", "zstd", zstd_rle(65536))
    expect_same("zstd frame of exactly one cluster (control)", p)
    p = with_payload("zlib-exact.qcow2", "zlib", deflate(65536))
    expect_same("deflate stream of exactly one cluster (control)", p)
    for ctype, make in (("zstd", zstd_rle), ("zlib", deflate)):
        for what, n in (("more", 65536 + 4096), ("less", 32768),
                        ("64 MiB bomb", 64 << 20)):
            p = with_payload(f"{ctype}-{n}.qcow2", ctype, make(n))
            expect_fail(f"{ctype} cluster decoding to {what} than one cluster"
                        if "bomb" not in what else f"{ctype} {what}",
                        p, p, ["exactly one cluster", "than one cluster"])
            faults.append((f"{ctype} {what}", p, ["exactly one cluster", "than one cluster"]))

    # issue 10 item 6: QEMU refuses a backing name outside the header cluster
    qcow2("base.qcow2")
    p = qcow2("farname.qcow2", backing="base.qcow2", writes=data)
    name = b"base.qcow2"
    far = os.path.getsize(p) + 512
    with open(p, "r+b") as f:
        f.seek(far)
        f.write(name)
    patch(p, 8, ">Q", far)
    expect_fail("backing name beyond the first cluster", p, p,
                ["beyond the first cluster", "outside the first cluster"])

    # sizes that are not whole sectors: what qemu-img says, byte for byte
    raw = os.path.join(W, "odd.raw")
    with open(raw, "wb") as f:
        f.write(bytes(range(256)) * 3 + b"tail")
    expect_same("raw file of 772 bytes", raw)
    p = qcow2("odd.qcow2", writes=["write -P 9 0 64k"])
    patch(p, 24, ">Q", 1000 * 1000 + 123)
    expect_same("qcow2 virtual size 1000123", p)

    verify_faults(faults)

    raw = os.path.join(W, "fake.raw")
    with open(raw, "wb") as f:
        f.write(b"\0" * 65536)
    p = qcow2("wrongfmt.qcow2", backing="fake.raw", bfmt="qcow2")
    expect_fail("backing recorded as qcow2 but raw", p, "fake.raw", ["no qcow2 magic"])


if __name__ == "__main__":
    sys.exit(main())
