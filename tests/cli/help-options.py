#!/usr/bin/env python3
"""help-options.py — every option of every command's --help is documented.

Runs `backupfs --help`, takes the commands it lists (and the subcommands
`restore` and `image` list), runs each one's --help and collects its
options: -x / --long words of its usage and option lines, and for mount the
-o keys (indented `key=VALUE` or `key  description` lines).  Each must
appear in doc/backupfs.1 (roff escapes undone) and in
contrib/backupfs.bash-completion, in the completion's case branch for that
command (for a subcommand, its branch inside the command's).  Prints what it checked; exits 1 listing what is missing.
Usage: help-options.py [--list]   (--list: print COMMAND OPTION pairs)
"""
import os
import re
import subprocess
import sys

BFS = os.environ["BACKUPFS"]
SRC = os.environ["SRCDIR"]


def helptext(args):
    p = subprocess.run([BFS] + args + ["--help"], capture_output=True,
                       text=True, timeout=30)
    return p.stdout + p.stderr


def commands():
    cmds = []
    for line in helptext([]).splitlines():
        m = re.match(r"\s+backupfs ([a-z][a-z-]*)\b", line)
        if m and m.group(1) not in cmds:
            cmds.append(m.group(1))
    out = []
    for c in cmds:
        out.append([c])
        subs = []
        for m in re.finditer(r"backupfs %s ([a-z]+(?:\|[a-z]+)*)" % c,
                             helptext([c])):
            subs += [s for s in m.group(1).split("|") if s not in subs]
        # only words that are subcommands: their --help is their own
        generic = helptext([c, "--definitely-not-an-option"])
        for s in subs:
            if helptext([c, s]) != generic:
                out.append([c, s])
    return out


OPT = re.compile(r"(?:^|(?<=[\s\[|(,]))(--?[A-Za-z][\w-]*)")


def options(args):
    text = helptext(args)
    opts = set()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("usage:") or s.startswith("backupfs ") or \
                s.startswith("-") or s.startswith("["):
            for m in OPT.finditer(line):
                opts.add(m.group(1))
        if args == ["mount"]:
            m = re.match(r"^ {5}([a-z_]+)(=[A-Z]|\s{2,})", line)
            if m:
                opts.add(m.group(1) + ("=" if m.group(2).startswith("=") else ""))
    return opts


def man_text():
    t = open(os.path.join(SRC, "doc", "backupfs.1")).read()
    t = re.sub(r"\\f[BIRP]", "", t).replace("\\-", "-").replace("\\&", "")
    return t


def completion_branches():
    """the completion's text for one (sub)command: the body of its case
    branch (`    name)` at four spaces, a subcommand's at eight inside it);
    mount's -o keys live in _backupfs_mount_opts, added to mount's"""
    t = open(os.path.join(SRC, "contrib", "backupfs.bash-completion")).read()

    def branch(text, name, indent):
        m = re.search(r"^ {%d}%s\)(.*?)(?=^ {%d}[a-z*][\w|*-]*\)|\Z)"
                      % (indent, re.escape(name), indent), text, re.M | re.S)
        return m.group(1) if m else ""

    def get(args):
        if not args:
            return t
        b = branch(t, args[0], 4)
        if len(args) > 1:       # or the default branch of the subcommands
            b = branch(b, args[1], 8) or branch(b, "*", 8)
        if args == ["mount"]:
            m = re.search(r"^_backupfs_mount_opts\(\).*?^}", t, re.M | re.S)
            b += m.group(0) if m else ""
        m = re.search(r'local common="([^"]*)"', t)   # the shared options
        if m:
            b = b.replace("$common", m.group(1))
        return b
    return get


def present(opt, text):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text) or \
        (opt.endswith("=") and re.search(r"(?<![\w-])%s" % re.escape(opt), text))


def main():
    man = man_text()
    comp = completion_branches()
    missing = []
    n = 0
    for args in commands():
        for o in sorted(options(args)):
            if "--list" in sys.argv:
                print(" ".join(args), o)
            n += 1
            where = []
            if not present(o, man):
                where.append("doc/backupfs.1")
            if not present(o, comp(args)):
                where.append("contrib/backupfs.bash-completion")
            if where:
                missing.append("%s %s: not in %s" % (" ".join(args), o,
                                                     ", ".join(where)))
    for o in sorted(options([])):
        n += 1
        if not present(o, man) or not present(o, comp([])):
            missing.append("backupfs %s: not in the man page or completion" % o)
    if missing:
        print("FAIL: options missing from the documentation:", file=sys.stderr)
        for m in missing:
            print("  " + m, file=sys.stderr)
        sys.exit(1)
    print("ok: %d options of %d commands in the man page and the completion"
          % (n, len(commands())))


main()
