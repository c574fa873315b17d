#!/usr/bin/env python3
"""gen-vnbd.py — virtnbdbackup folders for the layout tests, without a VM.

Writes uncompressed sparse streams (stream version 2, the frame format of
virtnbdbackup 1.9's libvirtnbdbackup/sparsestream: 40-byte headers
"KIND START(16 hex) LENGTH(16 hex)\\r\\n", meta JSON first, stop last) and
the files around them the way virtnbdbackup names them:

  gen-vnbd.py full DIR DOMAIN DISK=RAW... [--time EPOCH]
  gen-vnbd.py inc  DIR DOMAIN N DISK=OLD:NEW... [--time EPOCH]
  gen-vnbd.py diff DIR DOMAIN EPOCH PARENT_N DISK=OLD:NEW...

A full stores every 64 KiB block that is not all zero as data and the rest
as zero frames; an incremental / differential stores the blocks that
differ between OLD and NEW (what the dirty bitmap would hold).  Each
checkpoint gets checkpoints/virtnbdbackup.N.xml with its creationTime,
vmconfig.virtnbdbackup.N.xml and a line in DOMAIN.cpt.
"""
import json
import os
import sys

BLK = 65536


def hdr(kind, start, length):
    return b"%s %016x %016x\r\n" % (kind.encode(), start, length)


def stream(path, size, extents, cpt, parent, inc, name):
    data_size = sum(len(d) for _, d in extents if d is not None)
    meta = json.dumps({
        "virtualSize": size, "dataSize": data_size, "date": "2026-10-01T03:00:00",
        "diskName": name, "diskFormat": "qcow2", "checkpointName": cpt,
        "parentCheckpoint": parent, "incremental": inc, "compressed": False,
        "compressionMethod": "lz4", "streamVersion": 2}).encode()
    with open(path, "wb") as f:
        f.write(hdr("meta", 0, len(meta)) + meta + b"\r\n")
        for off, d in extents:
            if d is None:
                f.write(hdr("zero", off[0], off[1]))
            else:
                f.write(hdr("data", off, len(d)) + d + b"\r\n")
        f.write(hdr("stop", 0, 0))


def blocks(path):
    with open(path, "rb") as f:
        i = 0
        while True:
            b = f.read(BLK)
            if not b:
                return
            yield i * BLK, b
            i += 1


def merge(ext):
    """adjacent data blocks into one frame (as NBD extents come)"""
    out = []
    for off, d in ext:
        if out and out[-1][1] is not None and d is not None and \
                out[-1][0] + len(out[-1][1]) == off:
            out[-1] = (out[-1][0], out[-1][1] + d)
        else:
            out.append((off, d))
    return out


def full_extents(raw):
    ext = []
    for off, b in blocks(raw):
        if b.count(0) == len(b):
            if ext and ext[-1][1] is None and sum(ext[-1][0]) == off:
                ext[-1] = ((ext[-1][0][0], ext[-1][0][1] + len(b)), None)
            else:
                ext.append(((off, len(b)), None))
        else:
            ext.append((off, b))
    return merge(ext)


def delta_extents(old, new):
    o = dict(blocks(old))
    return merge([(off, b) for off, b in blocks(new) if o.get(off) != b])


def domain_xml(dom, disks):
    d = "".join("<disk type='file' device='disk'><source file='/var/lib/%s.qcow2'/>"
                "<target dev='%s' bus='virtio'/></disk>" % (t, t) for t in disks)
    return "<domain type='kvm'><name>%s</name><devices>%s</devices></domain>\n" % (dom, d)


def checkpoint(out, dom, n, t, disks):
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
    name = "virtnbdbackup.%d" % n
    with open(os.path.join(out, "checkpoints", name + ".xml"), "w") as f:
        f.write("<domaincheckpoint><name>%s</name><creationTime>%d</creationTime>"
                "</domaincheckpoint>\n" % (name, t))
    with open(os.path.join(out, "vmconfig.%s.xml" % name), "w") as f:
        f.write(domain_xml(dom, disks))
    cpt = os.path.join(out, dom + ".cpt")
    names = json.load(open(cpt)) if os.path.exists(cpt) else []
    names.append(name)
    json.dump(names, open(cpt, "w"))


def main():
    a = sys.argv[1:]
    kind, out, dom = a[0], a[1], a[2]
    t = 1790000000
    if "--time" in a:
        i = a.index("--time")
        t = int(a[i + 1])
        del a[i:i + 2]
    os.makedirs(out, exist_ok=True)
    if kind == "full":
        specs = a[3:]
        for s in specs:
            disk, raw = s.split("=", 1)
            stream(os.path.join(out, "%s.full.data" % disk), os.path.getsize(raw),
                   full_extents(raw), "virtnbdbackup.0", "", False, disk)
        checkpoint(out, dom, 0, t, [s.split("=")[0] for s in specs])
    elif kind in ("inc", "diff"):
        n = int(a[3])
        specs = a[4:] if kind == "inc" else a[5:]
        parent = "virtnbdbackup.%d" % (n - 1 if kind == "inc" else int(a[4]))
        for s in specs:
            disk, pair = s.split("=", 1)
            old, new = pair.split(":")
            name = "%s.inc.virtnbdbackup.%d.data" % (disk, n) if kind == "inc" \
                else "%s.diff.%d.data" % (disk, n)
            stream(os.path.join(out, name), os.path.getsize(new), delta_extents(old, new),
                   "virtnbdbackup.%d" % n if kind == "inc" else parent, parent, True, disk)
        if kind == "inc":
            checkpoint(out, dom, n, t, [s.split("=")[0] for s in specs])
        else:
            with open(os.path.join(out, "vmconfig.%d.xml" % n), "w") as f:
                f.write(domain_xml(dom, [s.split("=")[0] for s in specs]))


main()
