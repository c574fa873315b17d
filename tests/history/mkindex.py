#!/usr/bin/env python3
"""mkindex.py — write a point in time's listing into a guest file index
database, in the stored format (guest/index.c, catalog/index-db.c), so the
history suite can test find/history/diff without an appliance.

Usage: mkindex.py DB VM TIME ENTRY...
ENTRY: PATH:MODE:UID:GID:SIZE:MTIME[:TARGET]   (MODE octal with type bits,
e.g. 100644 for a file, 40755 for a directory, 120777 for a symlink)
Directories must come before their contents.  Needs the zstd program.
"""
import sqlite3
import subprocess
import sys
import tempfile
import time

db, vm, when = sys.argv[1:4]
recs = b""
for i, ent in enumerate(sys.argv[4:]):
    f = ent.split(":")
    path, mode, uid, gid, size, mtime = f[:6]
    link = f[6] if len(f) > 6 else ""
    fields = [path, mode, uid, gid, size, mtime, "0", mtime, mtime,
              str(100 + i), "1", "", link]
    recs += b"".join(x.encode() + b"\0" for x in fields)
with tempfile.NamedTemporaryFile() as f:   # a file: the frame names its size
    f.write(recs)
    f.flush()
    blob = subprocess.run(["zstd", "-q", "-c", f.name], capture_output=True,
                          check=True).stdout
c = sqlite3.connect(db)
c.executescript("CREATE TABLE IF NOT EXISTS guest_index ("
                " vm TEXT NOT NULL, time TEXT NOT NULL,"
                " created INTEGER NOT NULL, nfiles INTEGER NOT NULL,"
                " data BLOB NOT NULL, PRIMARY KEY (vm, time));"
                "PRAGMA user_version = 1;")
c.execute("INSERT OR REPLACE INTO guest_index VALUES (?, ?, ?, ?, ?)",
          (vm, when, int(time.time()), len(sys.argv) - 4, blob))
c.commit()
