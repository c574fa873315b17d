#!/usr/bin/env python3
"""gen-pve.py — Proxmox backup writers for the tests, from the format specs.

No Debian package writes VMA archives or PBS datastores, so these do, from
pve-qemu's vma_spec.txt (VMA version 1) and proxmox-backup's
pbs-datastore file_formats.rs / fixed_index.rs / data_blob.rs (blob and
fixed index v1.0).  stdlib only; zstd through the `zstd` command; AES-256-GCM
through the small C helper tests/pve/aesgcm (no stdlib binding).

  gen-pve.py vma OUT --dev NAME=RAW... [--config NAME=FILE...]
  gen-pve.py pbs ROOT --vm ID --time T --drive DEV=RAW... [--ns NS]
             [--chunk-size N] [--compress] [--key HEX --aesgcm PATH]
             [--conf FILE] [--unfinished]
  gen-pve.py keyfile OUT --key HEX [--kdf none|pbkdf2 --passphrase P]

VMA: all-zero clusters alternate between "never written" (even cluster
numbers: a HOLE) and "written with mask 0" (odd: ZERO), so a reader meets
both; the last cluster of a device is always written, as vzdump writes it; devices are interleaved cluster by cluster, as vzdump's parallel
backup jobs interleave them.
"""
import argparse
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import uuid
import zlib

CLUSTER = 65536
BLOCK = 4096

# ---- VMA ----


def vma_write(out, devs, configs):
    blob = bytearray(b"\0")           # offset 0 means "none"

    def add_blob(data):
        off = len(blob)
        blob.extend(struct.pack("<H", len(data)))
        blob.extend(data)
        return off

    cfg = [(add_blob(n.encode() + b"\0"), add_blob(d)) for n, d in configs]
    devinfo = []
    for i, (name, path) in enumerate(devs):
        devinfo.append((i + 1, add_blob(name.encode() + b"\0"),
                        os.path.getsize(path), path))
    bbsize = (len(blob) + 511) // 512 * 512
    hsize = 12288 + bbsize
    u = uuid.uuid4().bytes
    h = bytearray(hsize)
    h[0:4] = b"VMA\0"
    struct.pack_into(">I16sQ", h, 4, 1, u, 1767225600)
    struct.pack_into(">III", h, 48, 12288, bbsize, hsize)
    for i, (no, do) in enumerate(cfg):
        struct.pack_into(">I", h, 2044 + 4 * i, no)
        struct.pack_into(">I", h, 3068 + 4 * i, do)
    for dev_id, no, size, _ in devinfo:
        struct.pack_into(">IIQ", h, 4096 + 32 * dev_id, no, 0, size)
    h[12288:12288 + len(blob)] = blob
    h[32:48] = hashlib.md5(bytes(h)).digest()

    # clusters, interleaved across devices
    files = {d[0]: open(d[3], "rb") for d in devinfo}
    ncl = {d[0]: (d[2] + CLUSTER - 1) // CLUSTER for d in devinfo}
    order = []
    for c in range(max(ncl.values())):
        for dev_id, _, _, _ in devinfo:
            if c < ncl[dev_id]:
                order.append((dev_id, c))
    with open(out, "wb") as f:
        f.write(h)
        pending = []

        def flush():
            if not pending:
                return
            e = bytearray(512)
            e[0:4] = b"VMAE"
            nblocks = sum(bin(m).count("1") for _, _, m, _ in pending)
            struct.pack_into(">H16s", e, 6, nblocks, u)
            data = bytearray()
            for i, (dev_id, c, mask, blocks) in enumerate(pending):
                struct.pack_into(">HBBI", e, 40 + 8 * i, mask, 0, dev_id, c)
                data.extend(blocks)
            e[24:40] = hashlib.md5(bytes(e)).digest()
            f.write(e)
            f.write(data)
            pending.clear()

        for dev_id, c in order:
            src = files[dev_id]
            src.seek(c * CLUSTER)
            buf = src.read(CLUSTER).ljust(CLUSTER, b"\0")
            mask, blocks = 0, bytearray()
            for b in range(16):
                blk = buf[b * BLOCK:(b + 1) * BLOCK]
                if blk.count(0) != BLOCK:
                    mask |= 1 << b
                    blocks.extend(blk)
            if mask == 0 and c % 2 == 0 and c != ncl[dev_id] - 1:
                continue                  # never written: a HOLE
            pending.append((dev_id, c, mask, blocks))
            if len(pending) == 59:
                flush()
        flush()
    for fh in files.values():
        fh.close()

# ---- PBS ----


MAGIC = {
    "plain": hashlib.sha256(b"Proxmox Backup uncompressed blob v1.0").digest()[:8],
    "zstd": hashlib.sha256(b"Proxmox Backup zstd compressed blob v1.0").digest()[:8],
    "enc": hashlib.sha256(b"Proxmox Backup encrypted blob v1.0").digest()[:8],
    "enczstd": hashlib.sha256(
        b"Proxmox Backup zstd compressed encrypted blob v1.0").digest()[:8],
    "fidx": hashlib.sha256(
        b"Proxmox Backup fixed sized chunk index v1.0").digest()[:8],
}


def zstd(data):
    return subprocess.run(["zstd", "-q", "-1", "-c", "--no-check"],
                          input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def aesgcm(helper, key, data):
    iv = os.urandom(16)
    out = subprocess.run([helper, key.hex(), iv.hex()], input=data,
                         stdout=subprocess.PIPE, check=True).stdout
    return iv, out[:-16], out[-16:]


def blob_encode(data, compress, key=None, helper=None):
    if key is not None:
        kind, payload = "enc", data
        if compress:
            c = zstd(data)
            if len(c) < len(data):
                kind, payload = "enczstd", c
        iv, ct, tag = aesgcm(helper, key, payload)
        return (MAGIC[kind] + struct.pack("<I", zlib.crc32(ct)) + iv + tag
                + ct)
    kind, payload = "plain", data
    if compress:
        c = zstd(data)
        if len(c) < len(data):
            kind, payload = "zstd", c
    return MAGIC[kind] + struct.pack("<I", zlib.crc32(payload)) + payload


def id_key(key):
    return hashlib.pbkdf2_hmac("sha256", key, b"_id_key", 10, 32)


def pbs_write(a):
    key = bytes.fromhex(a.key) if a.key else None
    snap = a.root
    if a.ns:
        for part in a.ns.split("/"):
            snap = os.path.join(snap, "ns", part)
    snap = os.path.join(snap, "vm", str(a.vm), a.time)
    os.makedirs(snap, exist_ok=True)
    files = []
    for spec in a.drive:
        dev, path = spec.split("=", 1)
        size = os.path.getsize(path)
        cs = a.chunk_size
        digests = []
        with open(path, "rb") as src:
            for i in range((size + cs - 1) // cs):
                data = src.read(cs)
                d = hashlib.sha256(data + (id_key(key) if key else b""))
                d = d.digest()
                digests.append(d)
                cdir = os.path.join(a.root, ".chunks", d.hex()[:4])
                cpath = os.path.join(cdir, d.hex())
                if not os.path.exists(cpath):
                    os.makedirs(cdir, exist_ok=True)
                    with open(cpath, "wb") as c:
                        c.write(blob_encode(data, a.compress, key, a.aesgcm))
        idx = b"".join(digests)
        hdr = bytearray(4096)
        struct.pack_into("<8s16sq32sQQ", hdr, 0, MAGIC["fidx"],
                         uuid.uuid4().bytes, 1767225600,
                         hashlib.sha256(idx).digest(), size, cs)
        name = "drive-%s.img.fidx" % dev
        with open(os.path.join(snap, name), "wb") as f:
            f.write(hdr + idx)
        files.append({"filename": name, "size": size,
                      "crypt-mode": "encrypt" if key else "none",
                      "csum": hashlib.sha256(hdr + idx).hexdigest()})
    conf = open(a.conf, "rb").read() if a.conf else b"name: test\n"
    with open(os.path.join(snap, "qemu-server.conf.blob"), "wb") as f:
        f.write(blob_encode(conf, False, key, a.aesgcm))  # as PBS: encrypted too
    if not a.unfinished:
        man = {"backup-type": "vm", "backup-id": str(a.vm),
               "backup-time": 1767225600, "files": files, "unprotected": {}}
        with open(os.path.join(snap, "index.json.blob"), "wb") as f:
            f.write(blob_encode(json.dumps(man).encode(), False))


def keyfile_write(a):
    key = bytes.fromhex(a.key)
    fp = hashlib.sha256(
        hashlib.sha256(b"Proxmox Backup Encryption Key Fingerprint").digest()
        + id_key(key)).hexdigest()
    fp = ":".join(fp[i:i + 2] for i in range(0, 64, 2))
    doc = {"kdf": None, "created": "2026-01-01T00:00:00Z",
           "modified": "2026-01-01T00:00:00Z",
           "data": base64.b64encode(key).decode(), "fingerprint": fp}
    if a.kdf == "pbkdf2":
        salt = os.urandom(32)
        dk = hashlib.pbkdf2_hmac("sha256", a.passphrase.encode(), salt, 65535,
                                 32)
        iv, ct, tag = aesgcm(a.aesgcm, dk, key)
        doc["kdf"] = {"PBKDF2": {"iter": 65535,
                                 "salt": base64.b64encode(salt).decode()}}
        doc["data"] = base64.b64encode(iv + tag + ct).decode()
    with open(a.out, "w") as f:
        json.dump(doc, f)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vma")
    v.add_argument("out")
    v.add_argument("--dev", action="append", required=True)
    v.add_argument("--config", action="append", default=[])
    b = sub.add_parser("pbs")
    b.add_argument("root")
    b.add_argument("--vm", type=int, required=True)
    b.add_argument("--time", required=True)
    b.add_argument("--ns")
    b.add_argument("--drive", action="append", required=True)
    b.add_argument("--chunk-size", type=int, default=4 << 20)
    b.add_argument("--compress", action="store_true")
    b.add_argument("--key")
    b.add_argument("--aesgcm")
    b.add_argument("--conf")
    b.add_argument("--unfinished", action="store_true")
    k = sub.add_parser("keyfile")
    k.add_argument("out")
    k.add_argument("--key", required=True)
    k.add_argument("--kdf", default="none")
    k.add_argument("--passphrase")
    k.add_argument("--aesgcm")
    a = p.parse_args()
    if a.cmd == "vma":
        devs = [tuple(d.split("=", 1)) for d in a.dev]
        configs = []
        for c in a.config:
            n, path = c.split("=", 1)
            configs.append((n, open(path, "rb").read()))
        vma_write(a.out, devs, configs)
    elif a.cmd == "pbs":
        pbs_write(a)
    else:
        keyfile_write(a)


if __name__ == "__main__":
    sys.exit(main())
