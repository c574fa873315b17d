/* mount-cmd.c — `backupfs mount [-f] [-o OPTS] REPO MOUNTPOINT` and the
 * mount.fuse3 form `backupfs REPO MOUNTPOINT -o OPTS`.
 *
 * run() allocates the mount's state (struct mnt, mount.h) and goes through
 * named phases, in this order: run_check (the mount point: a stale FUSE
 * mount is reported with the fusermount3 hint; one inside the repository,
 * a repository inside it, a non-empty or already mounted one are refused
 * unless -o nonempty; logging, -o writable's scratch directory), run_scan
 * (open and scan the catalog, progress on a terminal; a repository where
 * no layout finds anything is refused unless --allow-empty), run_state
 * (locks, disk service, the first tree), run_session (the FUSE session,
 * with the state as its userdata, mounted; the daemon forked), run_daemon
 * (its log, the catalog again, the threads), run_serve (the loop), and
 * always run_teardown, which undoes whatever the phases did.  The catalog
 * is closed across the fork and reopened in the daemon; threads (watcher,
 * guest pool, FUSE workers, the signal thread) start only after it.
 *
 * Options the mount owns (catalog=, keyfile=, cloudstack_backups=, the
 * catalog's source options, max_threads=, readahead_kb=, guest_*=,
 * writable, scratch=, log=, loglevel=, noinotify, show_removed,
 * allow_empty, nonempty) are taken out of -o; fstab-only words (noauto,
 * _netdev, x-systemd.*, ...) are dropped; the rest go to libfuse together
 * with nosuid,nodev,auto_unmount,subtype=backupfs (and ro unless -o
 * writable), max_read=1048576 unless given, fsname=REPO unless given, and
 * default_permissions when allow_other is given.
 */
#include "fs/mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/vfs.h>
#include <unistd.h>

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/cleanup.h"
#include "common/kvopt.h"
#include "blk/luks.h"
#include "common/error.h"
#include "common/ioutil.h"
#include "common/opts.h"
#include "fs/fs.h"
#include "fs/holders.h"

#define DEFAULT_MAX_THREADS 64
#define DEFAULT_READAHEAD_KB 16384          /* measured: 16 MiB > 4 MiB, 64 MiB */

struct opts {
  bool foreground, debug, single;
  bool allow_other, no_inotify;
  char *catalog, *cloudstack_backups, *scratch;
  char *key_file;                   /* -o keyfile=FILE (LUKS passphrase) */
  char *source_options;             /* -o NAME=VALUE of catalog_source_option_names */
  bool writable;
  bool allow_empty, nonempty;
  char *log_file;                   /* -o log=FILE */
  int log_level;                    /* -o loglevel=, or -1 */
  unsigned max_threads;
  unsigned readahead_kb;
  unsigned guest_timeout, guest_call_timeout, guest_idle, guest_list_wait;
  char fuse_o[4096];                /* options passed to libfuse */
  const char *repo, *mountpoint;
  char *extra_repos[16];            /* more stores (realpaths in run) */
  size_t nextra;
  bool show_removed;                /* -o show_removed */
};

/* the -o keys, after the options in --help */
static void
o_keys(FILE *f)
{
  fprintf(f, "mount options (-o OPTS, comma-separated):\n"
"     catalog=FILE             catalog database (default: per-repository file\n"
"                              under $XDG_CACHE_HOME/backupfs or /var/cache/backupfs)\n"
"     cloudstack_backups=FILE  CloudStack listBackups JSON (names KBOSS backups)\n"
"     show_removed             show backups the export marks Removed, Expunged,\n"
"                              Error or Failed (flagged in backup.json)\n"
"     keyfile=FILE             passphrase of LUKS-encrypted qcow2 images (one\n"
"                              trailing newline ignored; read once, never stored)\n"
"     nas_tz=ZONE              zone of CloudStack NAS stamps (America/New_York,\n"
"                              UTC; default: $TZ, else /etc/localtime)\n"
"     ceph_conf=FILE           REPO rbd:POOL[/NS]: the ceph.conf (names the keyring;\n"
"                              also --ceph-conf FILE)\n"
"     ceph_id=NAME             its Ceph client name (default admin; --ceph-id)\n"
"     rbd_group=RULE           RBD images as VMs: image (each image), prefix (by\n"
"                              name prefix), xml:DIR (libvirt domain XML files),\n"
"                              cloudstack:FILE (`cmk list volumes` JSON)\n"
"     allow_other              let other users in (implies default_permissions)\n"
"     writable                 disks/<disk>.img take writes, kept in sparse\n"
"                              scratch files (the backup never changes)\n"
"     scratch=DIR              where (also --scratch DIR; outside REPO);\n"
"                              found again at the next mount\n"
"     max_threads=N            FUSE worker threads (default %d)\n"
"     readahead_kb=N           kernel readahead of the mount (root only;\n"
"                              default %d, 0 leaves the kernel's 128)\n"
"     noinotify                do not watch the repository; rescan when a\n"
"                              directory is listed (at most every 2 s)\n"
"     log=FILE                 the daemon's log (default: the journal under\n"
"                              systemd, else syslog, else backupfs.log next\n"
"                              to the catalog); -f also logs to stderr\n"
"     loglevel=LEVEL           error, warn, info (default) or debug;\n"
"                              -v is info, -vv debug\n"
"     allow_empty              see --allow-empty\n"
"     nonempty                 mount over a non-empty directory or an\n"
"                              existing mount (refused otherwise)\n"
"     guest_timeout=SECONDS    files/: an appliance not up (inspected and\n"
"                              mounted) after this is killed (default 300)\n"
"     guest_call_timeout=SECONDS  ... and one that takes longer to answer a\n"
"                              call (default 60)\n"
"     guest_idle=SECONDS       close an appliance idle this long (default 300)\n"
"     guest_list_wait=SECONDS  a listing of files/ gives up waiting for a\n"
"                              starting appliance after this and shows only\n"
"                              .backupfs-status (default: it waits, up to\n"
"                              guest_timeout, so tools never see a partial tree)\n"
"     fsname=, subtype=, default_permissions, allow_root, noexec, ... (FUSE)\n"
"     fstab words (noauto, nofail, _netdev, user, x-systemd.*) are ignored\n",
          DEFAULT_MAX_THREADS, DEFAULT_READAHEAD_KB);
}

enum { OPT_ALLOW_EMPTY = 256, OPT_SCRATCH, OPT_CEPH_CONF, OPT_CEPH_ID };

static const struct bfs_opt mount_opts[] = {
  { NULL, 'f', NULL, "stay in the foreground" },
  { NULL, 'd', NULL, "FUSE debug output (implies -f)" },
  { NULL, 's', NULL, "single-threaded (debugging)" },
  { "allow-empty", OPT_ALLOW_EMPTY, NULL, "mount a repository in which no "
    "layout\nrecognises anything yet (also -o allow_empty)" },
  { "scratch", OPT_SCRATCH, "DIR", "where writes of -o writable go (also\n"
    "-o scratch=DIR)" },
  { "ceph-conf", OPT_CEPH_CONF, "FILE", "as -o ceph_conf=FILE" },
  { "ceph-id", OPT_CEPH_ID, "NAME", "as -o ceph_id=NAME" },
  { NULL, 'o', "OPTS", "comma-separated mount options (below)" },
  { 0 },
};

static const struct bfs_cmd mount_cmd = {
  .name = "mount",
  .usage = "mount [-f] [-d] [-s] [--scratch DIR] [--catalog FILE] [-o OPTS]\n"
    "                      [--ceph-conf FILE] [--ceph-id NAME]\n"
    "                      REPO [REPO...] MOUNTPOINT\n"
    "       backupfs REPO MOUNTPOINT [-o OPTS]          (mount.fuse3 / fstab form)",
  .about = "Scan REPO (updating its catalog) and mount every VM's backups read-only at\n"
    "MOUNTPOINT as <vm>/<time>/{backup.json,domain.xml,disks/<disk>.img,files/}.\n"
    "More REPOs are more stores of the same repository (KBOSS secondary storage:\n"
    "backing files are found across all of them), remembered by the first's catalog.\n"
    "Unmount with: fusermount3 -u MOUNTPOINT",
  .opts = mount_opts, .shared = BFS_OPTS_CATALOG,
  .catalog_help = "catalog database (also -o catalog=FILE)",
  .need = "REPO and MOUNTPOINT", .min_args = 2, .max_args = 18,
  .more = o_keys,
};

static bool
is_ignored(const char *o)
{
  static const char *const words[] = {
    "rw", "ro", "defaults", "auto", "noauto", "user", "nouser", "users",
    "owner", "group", "_netdev", "nofail", "suid", "nosuid", "dev", "nodev",
    "atime", "noatime", "relatime", "strictatime", "nodiratime", "async",
    "sync", "dirsync", "auto_unmount",
  };
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (!strcmp(o, words[i]))
      return true;
  return !strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8);
}

static int
add_fuse_opt(struct opts *o, const char *opt)
{
  size_t len = strlen(o->fuse_o);
  if (snprintf(o->fuse_o + len, sizeof o->fuse_o - len, "%s%s",
               len ? "," : "", opt) >= (int)(sizeof o->fuse_o - len))
    return bfs_error(-E2BIG, "mount options too long");
  return 0;
}

/* the -o keys the mount owns that set one field of struct opts: a flag,
 * a string (NAME=VALUE) or a number in a range (NAME=N) */
enum okind { OK_FLAG, OK_STR, OK_UINT };

struct okey {
  const char *name;
  enum okind kind;
  size_t off;                       /* of the bool, char * or unsigned */
  unsigned long min, max;           /* OK_UINT */
  const char *unit;                 /* OK_UINT, for the error */
};

#define OFLAG(n, f) { n, OK_FLAG, offsetof(struct opts, f), 0, 0, NULL }
#define OSTR(n, f) { n, OK_STR, offsetof(struct opts, f), 0, 0, NULL }
#define OUINT(n, f, lo, hi, u) { n, OK_UINT, offsetof(struct opts, f), lo, hi, u }

static const struct okey okeys[] = {
  OSTR("catalog", catalog),
  OSTR("keyfile", key_file),
  OSTR("cloudstack_backups", cloudstack_backups),
  OSTR("scratch", scratch),
  OSTR("log", log_file),
  OUINT("max_threads", max_threads, 2, 1024, ""),
  OUINT("readahead_kb", readahead_kb, 0, 1048576, ""),
  OUINT("guest_timeout", guest_timeout, 1, 86400, " seconds"),
  OUINT("guest_call_timeout", guest_call_timeout, 1, 86400, " seconds"),
  OUINT("guest_idle", guest_idle, 1, 86400, " seconds"),
  OUINT("guest_list_wait", guest_list_wait, 1, 86400, " seconds"),
  OFLAG("noinotify", no_inotify),
  OFLAG("show_removed", show_removed),
  OFLAG("allow_other", allow_other),
  OFLAG("writable", writable),
  OFLAG("allow_empty", allow_empty),
  OFLAG("nonempty", nonempty),      /* ours: libfuse 3 mounts over anything */
};

/* the key tok sets, with its value in *val (NULL for a flag), or NULL */
static const struct okey *
find_okey(const char *tok, const char **val)
{
  for (size_t i = 0; i < sizeof okeys / sizeof okeys[0]; i++) {
    const struct okey *k = &okeys[i];
    size_t len = strlen(k->name);
    if (strncmp(tok, k->name, len))
      continue;
    if (k->kind == OK_FLAG && !tok[len]) {
      *val = NULL;
      return k;
    }
    if (k->kind != OK_FLAG && tok[len] == '=') {
      *val = tok + len + 1;
      return k;
    }
  }
  return NULL;
}

static int
set_okey(struct opts *o, const struct okey *k, const char *val)
{
  void *field = (char *)o + k->off;
  char *s, *end;
  unsigned long n;

  switch (k->kind) {
  case OK_FLAG:
    *(bool *)field = true;
    return 0;
  case OK_STR:
    if (!(s = strdup(val)))
      return -ENOMEM;
    free(*(char **)field);
    *(char **)field = s;
    return 0;
  case OK_UINT:
    n = strtoul(val, &end, 10);
    if (!*val || *end || *val == '-' || n < k->min || n > k->max)
      return bfs_error(-EINVAL, "%s: want %lu..%lu%s, got '%s'", k->name,
                       k->min, k->max, k->unit, val);
    *(unsigned *)field = n;
    return 0;
  }
  return -EINVAL;
}

/* NAME=VALUE of catalog_source_option_names, kept for the catalog */
static int
set_source_option(struct opts *o, const char *name, const char *val)
{
  char *next = bfs_kvopt_set(o->source_options, name, val);
  if (!next)
    return bfs_error(-ENOMEM, "out of memory");
  free(o->source_options);
  o->source_options = next;
  return 0;
}

static int
parse_o_token(struct opts *o, const char *tok)
{
  const struct okey *k;
  const char *val;
  int l;

  if ((k = find_okey(tok, &val)))
    return set_okey(o, k, val);
  if (!strcmp(tok, "debug")) {
    o->debug = o->foreground = true;
    return 0;
  }
  if (!strncmp(tok, "loglevel=", 9)) {
    if ((l = bfs_log_parse_level(tok + 9)) < 0)
      return l;
    o->log_level = l;
    return 0;
  }
  if (catalog_is_source_option(tok)) {
    CLEANUP_FREE char *name = strndup(tok, strcspn(tok, "="));
    return name ? set_source_option(o, name, tok + strlen(name) + 1)
                : -ENOMEM;
  }
  if (!strcmp(tok, "default_permissions") || is_ignored(tok))
    return 0;                 /* default_permissions: added when it matters */
  return add_fuse_opt(o, tok);
}

static int
parse_o(struct opts *o, const char *arg)
{
  CLEANUP_FREE char *s = strdup(arg);
  char *save, *tok;
  int r;

  if (!s)
    return -ENOMEM;
  for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
    if ((r = parse_o_token(o, tok)) < 0)
      return r;
  return 0;
}

/* 0, or -1: return g->status (help, version, usage error) */
static int
parse_args(struct bfs_args *g, struct opts *o)
{
  int c, r;
  while ((c = bfs_opts_next(g)) > 0)
    switch (c) {
    case 'f': o->foreground = true; break;
    case 'd': o->debug = o->foreground = true; break;
    case 's': o->single = true; break;
    case OPT_ALLOW_EMPTY: o->allow_empty = true; break;
    case OPT_SCRATCH:
      free(o->scratch);
      o->scratch = strdup(g->optarg);
      break;
    case OPT_CEPH_CONF:
    case OPT_CEPH_ID:
      if (set_source_option(o, c == OPT_CEPH_CONF ? "ceph_conf" : "ceph_id",
                            g->optarg) < 0) {
        g->status = bfs_opts_bad(g, "%s", bfs_last_error());
        return -1;
      }
      break;
    case 'o':
      if ((r = parse_o(o, g->optarg)) < 0) {
        g->status = bfs_opts_bad(g, "%s", bfs_last_error());
        return -1;
      }
      break;
    }
  if (c < 0)
    return -1;
  if (g->catalog) {                 /* --catalog beside -o catalog= */
    free(o->catalog);
    o->catalog = strdup(g->catalog);
  }
  o->repo = g->pos[0];
  o->mountpoint = g->pos[g->npos - 1];
  for (int i = 1; i + 1 < g->npos; i++)     /* REPO [REPO...] MOUNTPOINT */
    if (!(o->extra_repos[o->nextra++] = strdup(g->pos[i]))) {
      g->status = bfs_opts_bad(g, "out of memory");
      return -1;
    }
  return 0;
}

/* A stale FUSE mount (daemon gone) answers ENOTCONN.  statfs() always
 * reaches the file system; stat() may be answered from cached attributes. */
static int
check_mountpoint(const char *mp)
{
  struct stat st;
  struct statfs sfs;
  if (statfs(mp, &sfs) < 0 && errno == ENOTCONN)
    errno = ENOTCONN;
  else if (stat(mp, &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return bfs_error(-ENOTDIR, "%s: mount point is not a directory", mp);
    return 0;
  }
  if (errno == ENOTCONN)
    return bfs_error(-ENOTCONN, "%s: stale FUSE mount (transport endpoint is "
                     "not connected: its daemon died); clean it up with: "
                     "fusermount3 -u %s", mp, mp);
  return bfs_error(-errno, "%s: %m", mp);
}

static void
escape_opt(char *dst, size_t size, const char *s)
{
  size_t j = 0;
  for (; *s && j + 2 < size; s++) {
    if (*s == ',' || *s == '\\')
      dst[j++] = '\\';
    dst[j++] = *s;
  }
  dst[j] = '\0';
}

/* The mount table entry whose mount point is MP (the last one: the top of
 * a stack), from /proc/self/mountinfo: its device (maj:min), file system
 * type and source.  Octal escapes (\040) are undone. */
static void
unescape_mountinfo(char *s)
{
  char *p = s, *q = s;
  while (*p) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] && p[3]) {
      *q++ = (char)strtol((char[]){ p[1], p[2], p[3], 0 }, NULL, 8);
      p += 4;
    }
    else
      *q++ = *p++;
  }
  *q = '\0';
}

struct mount_entry {
  char dev[64], fstype[256], source[PATH_MAX];
};

static bool
find_mount(const char *mp, struct mount_entry *out)
{
  CLEANUP_FCLOSE FILE *f = fopen("/proc/self/mountinfo", "re");
  char line[3 * PATH_MAX], dev[64], escaped[PATH_MAX * 4 + 1];
  bool found = false;

  if (!f)
    return false;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%*s %*s %63s %*s %4096s", dev, escaped) != 2)
      continue;
    unescape_mountinfo(escaped);
    if (strcmp(escaped, mp))
      continue;
    found = true;
    snprintf(out->dev, sizeof out->dev, "%s", dev);
    out->fstype[0] = out->source[0] = '\0';
    const char *sep = strstr(line, " - ");
    if (sep && sscanf(sep + 3, "%255s %4095s", out->fstype, out->source) >= 1)
      unescape_mountinfo(out->source);
  }
  return found;
}

/* Kernel readahead on a FUSE mount is capped at the bdi's default 128 KiB
 * whatever max_readahead says; a larger window keeps several 1 MiB reads
 * in flight across our worker threads.  Root only; best effort. */
static void
set_readahead(const char *mp, unsigned kb)
{
  struct mount_entry me;
  char path[PATH_MAX + 64];

  if (!kb || !find_mount(mp, &me))
    return;
  snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", me.dev);
  CLEANUP_FCLOSE FILE *ra = fopen(path, "we");
  if (!ra || fprintf(ra, "%u\n", kb) < 0)
    bfs_log(BFS_LOG_DEBUG, "%s: cannot set readahead", path);
}

/* Is the directory DIR (real path) PATH itself or one of PATH's ancestors?
 * Compared by path and by device and inode, so a bind mount or a second
 * name of the same directory is caught too. */
static bool
is_within(const char *path, const char *dir)
{
  struct stat d, st;
  size_t n = strlen(dir);

  if (!strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0' ||
                                 !strcmp(dir, "/")))
    return true;
  if (stat(dir, &d) < 0)
    return false;
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (;;) {
    if (stat(buf, &st) == 0 && st.st_dev == d.st_dev && st.st_ino == d.st_ino)
      return true;
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
      return false;
    *slash = '\0';
  }
}

/* Mount-time honesty (issue 10/17): the mount point and the repository are
 * disjoint (a mount inside the repository deadlocks its own scans); the
 * mount point is an empty directory that is not already a mount point,
 * unless -o nonempty. */
static int
check_placement(const struct opts *o, const char *repo, const char *mp)
{
  if (is_within(mp, repo))
    return bfs_error(-EINVAL, "%s: the mount point is inside the repository "
                     "%s (its own scans would walk into the mount); choose a "
                     "mount point outside it", mp, repo);
  if (is_within(repo, mp))
    return bfs_error(-EINVAL, "%s: the repository is inside the mount point "
                     "%s (the mount would hide it); choose a mount point "
                     "outside it", repo, mp);
  if (o->nonempty)
    return 0;
  struct mount_entry me;
  if (find_mount(mp, &me))
    return bfs_error(-EBUSY, "%s: already a mount point (%s%s%s); unmount it "
                     "first (fusermount3 -u %s / umount), or mount over it "
                     "with -o nonempty", mp, me.fstype,
                     me.source[0] ? " of " : "", me.source, mp);
  DIR *d = opendir(mp);
  if (!d)
    return bfs_error(-errno, "%s: %m", mp);
  struct dirent *e;
  int r = 0;
  while (r == 0 && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      r = bfs_error(-ENOTEMPTY, "%s: the mount point is not empty (it "
                    "holds '%s'); the mount would hide its files: use an "
                    "empty directory, or -o nonempty to mount over them",
                    mp, e->d_name);
  closedir(d);
  return r;
}

/* -o log=FILE: absolute (the daemon runs in /), and writable now, so a
 * typo is reported on the terminal rather than lost */
static int
check_log_file(char **path)
{
  if ((*path)[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
      return bfs_error(-errno, "log=%s: current directory: %m", *path);
    char *abs;
    if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
      return -ENOMEM;
    free(*path);
    *path = abs;
  }
  int fd = open(*path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
                0640);
  if (fd < 0)
    return bfs_error(-errno, "log=%s: %m", *path);
  close(fd);
  return 0;
}

static int
open_catalog(struct mnt *m, const struct opts *o, bool progress)
{
  struct catalog_opts copts = {
    .catalog_path = o->catalog,
    .cloudstack_backups = o->cloudstack_backups,
    .source_options = o->source_options,
    .extra_repos = (const char *const *)o->extra_repos,
    .nextra_repos = o->nextra,
    .show_removed = o->show_removed,
    .progress = progress,
    .luks_key = o->key_file != NULL,
  };
  return catalog_open(m->repo, &copts, &m->cat);
}

/* The first scan of a repository that is no directory (rbd:POOL) runs in
 * a child process: its client library (librados) is not safe across the
 * fork() that daemonises, so the mounting process never loads a cluster
 * connection; the daemon makes its own.  0 or the child's -errno and
 * message. */
static int
scan_in_child(struct mnt *m, struct catalog_scan_stats *st)
{
  struct { int r; struct catalog_scan_stats st; char msg[2048]; } res;
  int pfd[2];

  if (pipe2(pfd, O_CLOEXEC) < 0)
    return bfs_error(-errno, "pipe: %m");
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return bfs_error(-errno, "fork: %m");
  }
  if (pid == 0) {
    close(pfd[0]);
    memset(&res, 0, sizeof res);
    res.r = catalog_scan(m->cat, &res.st);
    snprintf(res.msg, sizeof res.msg, "%s", res.r < 0 ? bfs_last_error() : "");
    _exit(bfs_write_all(pfd[1], &res, sizeof res) < 0);
  }
  close(pfd[1]);
  size_t n = 0;
  while (n < sizeof res) {
    ssize_t k = read(pfd[0], (char *)&res + n, sizeof res - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  close(pfd[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (n != sizeof res)
    return bfs_error(-EIO, "scanning %s: the scan process died", m->repo);
  if (res.r < 0)
    return bfs_error(res.r, "%s", res.msg);
  *st = res.st;
  return 0;
}

/* Phase 1: the paths, their placement, logging and -o writable. */
static int
run_check(struct mnt *m, struct opts *o)
{
  int r;

  r = check_mountpoint(o->mountpoint);
  if (r < 0)
    return r;
  /* a layout's store that is no directory (rbd:POOL) stays as given */
  m->repo = catalog_repo_not_dir(o->repo) ? strdup(o->repo)
                                          : realpath(o->repo, NULL);
  if (!m->repo)
    return bfs_error(-errno, "%s: %m", o->repo);
  m->mountpoint = realpath(o->mountpoint, NULL);
  if (!m->mountpoint)
    return bfs_error(-errno, "%s: %m", o->mountpoint);
  if (!strcmp(m->repo, m->mountpoint))
    return bfs_error(-EINVAL, "%s: the mount point is the repository itself",
                     m->repo);
  r = check_placement(o, m->repo, m->mountpoint);
  if (r < 0)
    return r;
  for (size_t i = 0; i < o->nextra; i++) {  /* the daemon runs in / */
    char *real = realpath(o->extra_repos[i], NULL);
    if (!real)
      return bfs_error(-errno, "%s: %m", o->extra_repos[i]);
    free(o->extra_repos[i]);
    o->extra_repos[i] = real;
    if ((r = check_placement(o, real, m->mountpoint)) < 0)
      return r;
  }
  if (o->log_level >= 0)
    bfs_log_level = o->log_level;
  else if (bfs_log_level < BFS_LOG_INFO)
    bfs_log_level = BFS_LOG_INFO;   /* a daemon says what it does */
  if (o->log_file) {
    r = check_log_file(&o->log_file);
    if (r < 0)
      return r;
  }
  if (o->scratch && !o->writable)
    return bfs_error(-EINVAL, "scratch=%s without -o writable", o->scratch);
  if (o->writable) {
    if (!o->scratch)
      return bfs_error(-EINVAL, "-o writable needs a scratch directory "
                       "outside the repository (scratch=DIR or --scratch DIR)");
    r = scratch_init(m, o->scratch);
    if (r < 0)
      return r;
    m->writable = true;
  }

  return 0;
}

/* Phase 2: descriptors, the catalog opened and brought up to date. */
static int
run_scan(struct mnt *m, struct opts *o, struct catalog_scan_stats *stats)
{
  int r;

  /* every open chain holds a descriptor per layer */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  /* read before the fork: the daemon may not see the file (relative path,
   * chdir) and the disk service keeps the key for its whole life */
  if (o->key_file && (r = blk_key_from_file(o->key_file, &m->key)) < 0)
    return bfs_error_prefix(r, "keyfile=%s: ", o->key_file);
  r = open_catalog(m, o, isatty(2));
  if (r < 0)
    return r;
  r = catalog_repo_not_dir(m->repo) ? scan_in_child(m, stats)
                                    : catalog_scan(m->cat, stats);
  if (r < 0)
    return bfs_error_prefix(r, "scanning %s: ", m->repo);
  if (isatty(2))
    fprintf(stderr, "backupfs: %s: %u VMs, %u backups (%u broken)\n",
            m->repo, stats->vms, stats->backups, stats->broken);
  if (stats->vms == 0 && stats->backups == 0 && !o->allow_empty) {
    CLEANUP_FREE char *known = catalog_known_layouts();
    return bfs_error(-ENOENT, "%s: no backups here: no known layout "
                     "recognises anything in it (known layouts: %s); to "
                     "mount a repository that will fill later, add "
                     "--allow-empty (-o allow_empty)", m->repo, known);
  }

  return 0;
}

/* Phase 3: the mount's state, locks, disk service and first tree. */
static int
run_state(struct mnt *m, const struct opts *o)
{
  int r;

  m->uid = getuid();
  m->repo_perms = o->allow_other || geteuid() == 0;   /* fs/inode.c */
  m->gid = getgid();
  m->start = time(NULL);
  m->entry_timeout = 3600;
  m->max_threads = o->max_threads ? o->max_threads : DEFAULT_MAX_THREADS;
  m->no_inotify = o->no_inotify;
  m->guest_timeout = o->guest_timeout;
  m->guest_call_timeout = o->guest_call_timeout;
  m->guest_idle = o->guest_idle;
  m->guest_list_wait = o->guest_list_wait;
  pthread_mutex_init(&m->scan_lock, NULL);
  pthread_rwlock_init(&m->tree_lock, NULL);
  pthread_mutex_init(&m->q_lock, NULL);
  m->q_tail = &m->q_head;
  if ((r = ops_init(m)) < 0 || (r = holders_init(m)) < 0 ||
      (r = nodes_init(m)) < 0 || (r = disks_init(m)) < 0)
    return r;
  return tree_refresh(m, false);
}

/* the options given to libfuse: the user's, ours, and fsname= the
 * repository unless the user named it */
static int
fuse_options(struct mnt *m, struct opts *o)
{
  char buf[2 * PATH_MAX + 16], esc[2 * PATH_MAX];
  int r;

  r = add_fuse_opt(o, o->writable ? "nosuid,nodev,auto_unmount,subtype=backupfs"
                                  : "ro,nosuid,nodev,auto_unmount,subtype=backupfs");
  if (r == 0 && !strstr(o->fuse_o, "max_read="))
    r = add_fuse_opt(o, "max_read=1048576");
  if (r == 0 && o->allow_other)
    r = add_fuse_opt(o, "allow_other,default_permissions");
  if (r == 0 && !strstr(o->fuse_o, "fsname=")) {
    escape_opt(esc, sizeof esc, m->repo);
    snprintf(buf, sizeof buf, "fsname=%s", esc);
    r = add_fuse_opt(o, buf);
  }
  return r;
}

/* Phase 4: the FUSE session (the mount its userdata) mounted and the
 * daemon forked.  The catalog is closed across the fork (no SQLite handle
 * crosses fork()); state_dir gets where the daemon's fallback log goes. */
static int
run_session(struct mnt *m, struct opts *o, char *state_dir, size_t size)
{
  int r;

  if ((r = fuse_options(m, o)) < 0)
    return r;
  char *fargv[] = { (char *)"backupfs", (char *)"-o", o->fuse_o,
                    (char *)"-d", NULL };
  struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, fargv);
  m->se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, m);
  fuse_opt_free_args(&args);
  if (!m->se)
    return bfs_error(-EINVAL, "cannot start FUSE session (options: %s)",
                     o->fuse_o);
  /* SIGTERM & co. do not drop disks others hold (fs/holders.c) */
  r = holders_signals_install(m);
  if (r < 0)
    return r;
  /* the daemon's fallback log goes next to the catalog */
  snprintf(state_dir, size, "%s", catalog_path(m->cat));
  char *slash = strrchr(state_dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(state_dir, size, ".");
  /* the daemon reopens the catalog: no SQLite handle across fork() */
  catalog_close(m->cat);
  m->cat = NULL;
  if (fuse_session_mount(m->se, m->mountpoint) < 0) {
    if (o->allow_other && getuid() != 0)
      return bfs_error(-EPERM, "%s: mount failed (see above); a mount with "
                       "allow_other by a user other than root needs "
                       "'user_allow_other' in /etc/fuse.conf", m->mountpoint);
    return bfs_error(-EIO, "%s: mount failed (see above)", m->mountpoint);
  }
  set_readahead(m->mountpoint, o->readahead_kb);
  if (fuse_daemonize(o->foreground) < 0)
    return bfs_error(-EIO, "cannot daemonise");
  return 0;
}

/* Phase 5, in the daemon: its log, the catalog opened again, then the
 * threads (guest pool, watcher). */
static int
run_daemon(struct mnt *m, const struct opts *o,
           const struct catalog_scan_stats *stats, const char *state_dir)
{
  int r;

  r = bfs_log_start(&(struct bfs_log_target){
    .file = o->log_file, .state_dir = state_dir, .foreground = o->foreground });
  if (r < 0)
    bfs_log(BFS_LOG_ERROR, "%s (logging to stderr)", bfs_last_error());
  r = open_catalog(m, o, false);
  if (r < 0) {
    bfs_log(BFS_LOG_ERROR, "%s", bfs_last_error());
    return r;                       /* run_teardown unmounts */
  }
  bfs_disk_ctx_set_catalog(m->disks, m->cat);
  bfs_log(BFS_LOG_INFO, "mounted %s at %s: %u VMs, %u backups (%u broken); "
          "catalog %s; log: %s", m->repo, m->mountpoint, stats->vms,
          stats->backups, stats->broken, catalog_path(m->cat), bfs_log_where());
  bfs_log(BFS_LOG_DEBUG, "FUSE options: %s; %u worker threads%s", o->fuse_o,
          m->max_threads, o->single ? " (single-threaded)" : "");
  files_init(m);
  r = tree_watch_start(m);
  if (r < 0)
    bfs_log(BFS_LOG_WARN, "%s (new backups show on listing)",
            bfs_last_error());
#if HAVE_LIBSYSTEMD
  /* Type=notify units: the mount is up and its catalog open */
  sd_notifyf(0, "READY=1\nSTATUS=serving %s at %s", m->repo,
             m->mountpoint);
#endif

  return 0;
}

/* Phase 6: serve until unmounted or signalled. */
static int
run_serve(struct mnt *m, const struct opts *o)
{
  int r;

  r = holders_signals_start(m);
  if (r < 0)
    bfs_log(BFS_LOG_ERROR, "%s: SIGTERM will not unmount", bfs_last_error());
  if (o->single)
    r = fuse_session_loop(m->se);
  else {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, m->max_threads);
    fuse_loop_cfg_set_idle_threads(cfg, m->max_threads / 4);
    r = fuse_session_loop_mt(m->se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  holders_signals_stop(m);
#if HAVE_LIBSYSTEMD
  sd_notify(0, "STOPPING=1");
#endif
  return r;
}

/* Last phase, after the loop or after any phase failed: take down what
 * was set up, in reverse order (each step does nothing when its phase did
 * not run). */
static void
run_teardown(struct mnt *m)
{
  struct fuse_session *se = m->se;

  if (m->wake_fd >= 0)
    tree_watch_stop(m);
  if (se) {
    /* the guest pool's stop poll reads it (mount-files.c) */
    __atomic_store_n(&m->se, NULL, __ATOMIC_RELEASE);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
  }
  ops_release_all(m);
  files_shutdown(m);
  disk_idle_flush(m);
  nodes_free_all(m);
  disks_shutdown(m);
  holders_free(m);
  catalog_close(m->cat);
  m->cat = NULL;
}

static int
run(struct opts *o)
{
  struct catalog_scan_stats stats;
  char state_dir[PATH_MAX];
  struct mnt *m = calloc(1, sizeof *m);
  int r;

  if (!m)
    return bfs_error(-ENOMEM, "out of memory");
  m->repo_fd = m->wake_fd = m->ino_fd = -1;
  bool served = false;
  if ((r = run_check(m, o)) == 0 && (r = run_scan(m, o, &stats)) == 0 &&
      (r = run_state(m, o)) == 0 &&
      (r = run_session(m, o, state_dir, sizeof state_dir)) == 0 &&
      (r = run_daemon(m, o, &stats, state_dir)) == 0) {
    r = run_serve(m, o);
    served = true;
  }
  run_teardown(m);
  /* "unmounted" once all is down: whoever waits for it may mount again */
  if (served && r < 0)
    r = bfs_error(r, "FUSE loop: %s", strerror(-r));
  else if (served)
    bfs_log(BFS_LOG_INFO, "unmounted %s", m->mountpoint);
  free(m->scratch);
  free(m->mountpoint);
  free(m->repo);
  free(m);
  return r;
}

int
fs_mount_cmd(int argc, char **argv)
{
  struct opts o = { .readahead_kb = DEFAULT_READAHEAD_KB, .log_level = -1 };
  struct bfs_args g;
  int r;

  bfs_opts_init(&g, &mount_cmd, argc, argv);
  if (parse_args(&g, &o) < 0)
    r = g.status;
  else
    r = run(&o) < 0 ? 1 : 0;
  free(o.catalog);
  free(o.cloudstack_backups);
  free(o.source_options);
  for (size_t i = 0; i < o.nextra; i++)
    free(o.extra_repos[i]);
  free(o.scratch);
  free(o.key_file);
  free(o.log_file);
  if (r == 1)
    bfs_log(BFS_LOG_ERROR, "mount: %s", bfs_last_error());
  bfs_log_close();
  return r;
}
