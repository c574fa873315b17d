/* mount-cmd.c — `backupfs mount [-f] [-o OPTS] REPO MOUNTPOINT` and the
 * mount.fuse3 form `backupfs REPO MOUNTPOINT -o OPTS`.
 *
 * Order matters: check the mount point (a stale FUSE mount is reported with
 * the fusermount3 hint), open and scan the catalog (progress on a
 * terminal), build the tree, mount, then daemonise.  The catalog is closed
 * across the fork and reopened in the daemon; threads (watcher, guest pool,
 * FUSE workers) start only after it.  Options the mount owns (catalog=,
 * cloudstack_backups=, max_threads=) are taken out of -o; fstab-only words
 * (noauto, _netdev, x-systemd.*, ...) are dropped; the rest go to libfuse
 * together with ro,nosuid,nodev,auto_unmount (and default_permissions when
 * allow_other is given).
 */
#include "fs/mount.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "fs/fs.h"
#include "fs/holders.h"

#define DEFAULT_MAX_THREADS 64
#define DEFAULT_READAHEAD_KB 4096

struct opts {
  bool foreground, debug, single;
  bool allow_other, no_inotify;
  char *catalog, *cloudstack_backups, *scratch;
  bool writable;
  unsigned max_threads;
  unsigned readahead_kb;
  char fuse_o[4096];                /* options passed to libfuse */
  const char *repo, *mountpoint;
};

static void
usage(FILE *f)
{
  fprintf(f,
"usage: backupfs mount [-f] [-d] [-s] [--scratch DIR] [-o OPTS] REPO MOUNTPOINT\n"
"       backupfs REPO MOUNTPOINT [-o OPTS]          (mount.fuse3 / fstab form)\n"
"\n"
"Scan REPO (updating its catalog) and mount every VM's backups read-only at\n"
"MOUNTPOINT as <vm>/<time>/{backup.json,domain.xml,disks/<disk>.img,files/}.\n"
"Unmount with: fusermount3 -u MOUNTPOINT\n"
"\n"
"  -f                 stay in the foreground\n"
"  -d                 FUSE debug output (implies -f)\n"
"  -s                 single-threaded (debugging)\n"
"  -o OPTS            comma-separated mount options:\n"
"     catalog=FILE             catalog database (default: per-repository file\n"
"                              under $XDG_CACHE_HOME/backupfs or /var/cache/backupfs)\n"
"     cloudstack_backups=FILE  CloudStack listBackups JSON (names KBOSS backups)\n"
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
"     fsname=, subtype=, default_permissions, allow_root, noexec, ... (FUSE)\n"
"     fstab words (noauto, nofail, _netdev, user, x-systemd.*) are ignored\n",
          DEFAULT_MAX_THREADS, DEFAULT_READAHEAD_KB);
}

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

static int
parse_o(struct opts *o, const char *arg)
{
  CLEANUP_FREE char *s = strdup(arg);
  char *save, *tok;

  if (!s)
    return -ENOMEM;
  for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (!strncmp(tok, "catalog=", 8)) {
      free(o->catalog);
      o->catalog = strdup(tok + 8);
    }
    else if (!strncmp(tok, "cloudstack_backups=", 19)) {
      free(o->cloudstack_backups);
      o->cloudstack_backups = strdup(tok + 19);
    }
    else if (!strncmp(tok, "max_threads=", 12)) {
      char *end;
      unsigned long n = strtoul(tok + 12, &end, 10);
      if (*end || n < 2 || n > 1024)
        return bfs_error(-EINVAL, "max_threads: want 2..1024, got '%s'",
                         tok + 12);
      o->max_threads = n;
    }
    else if (!strncmp(tok, "readahead_kb=", 13)) {
      char *end;
      unsigned long n = strtoul(tok + 13, &end, 10);
      if (*end || n > 1048576)
        return bfs_error(-EINVAL, "readahead_kb: want 0..1048576, got '%s'",
                         tok + 13);
      o->readahead_kb = n;
    }
    else if (!strcmp(tok, "noinotify"))
      o->no_inotify = true;
    else if (!strcmp(tok, "debug"))
      o->debug = o->foreground = true;
    else if (!strcmp(tok, "allow_other"))
      o->allow_other = true;
    else if (!strcmp(tok, "default_permissions"))
      ;                               /* added below when it matters */
    else if (!strncmp(tok, "scratch=", 8)) {
      free(o->scratch);
      o->scratch = strdup(tok + 8);
    }
    else if (!strcmp(tok, "writable"))
      o->writable = true;
    else if (is_ignored(tok))
      ;
    else {
      int r = add_fuse_opt(o, tok);
      if (r < 0)
        return r;
    }
  }
  return 0;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
  const char *pos[2];
  int npos = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    }
    else if (!strcmp(a, "-f"))
      o->foreground = true;
    else if (!strcmp(a, "-d"))
      o->debug = o->foreground = true;
    else if (!strcmp(a, "-s"))
      o->single = true;
    else if (!strcmp(a, "--scratch") || !strncmp(a, "--scratch=", 10)) {
      const char *v = a[9] ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v)
        return bfs_error(-EINVAL, "--scratch needs a directory");
      free(o->scratch);
      o->scratch = strdup(v);
    }
    else if (!strcmp(a, "-o") || !strncmp(a, "-o", 2)) {
      const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v)
        return bfs_error(-EINVAL, "-o needs an argument");
      int r = parse_o(o, v);
      if (r < 0)
        return r;
    }
    else if (a[0] == '-' && a[1])
      return bfs_error(-EINVAL, "unknown option '%s'", a);
    else if (npos < 2)
      pos[npos++] = a;
    else
      return bfs_error(-EINVAL, "too many arguments ('%s')", a);
  }
  if (npos != 2)
    return bfs_error(-EINVAL, "need REPO and MOUNTPOINT");
  o->repo = pos[0];
  o->mountpoint = pos[1];
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

/* Kernel readahead on a FUSE mount is capped at the bdi's default 128 KiB
 * whatever max_readahead says; a larger window keeps several 1 MiB reads
 * in flight across our worker threads.  Root only; best effort. */
static void
set_readahead(const char *mp, unsigned kb)
{
  CLEANUP_FCLOSE FILE *f = fopen("/proc/self/mountinfo", "re");
  char line[8192], dev[64], path[PATH_MAX + 64];
  bool found = false;

  if (!f || !kb)
    return;
  while (!found && fgets(line, sizeof line, f)) {
    char escaped[PATH_MAX * 4 + 1], *p;
    if (sscanf(line, "%*s %*s %63s %*s %4096s", dev, escaped) != 2)
      continue;
    /* unescape \040 and friends */
    char *q = p = escaped;
    while (*p) {
      if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] && p[3]) {
        *q++ = (char)strtol((char[]){ p[1], p[2], p[3], 0 }, NULL, 8);
        p += 4;
      }
      else
        *q++ = *p++;
    }
    *q = '\0';
    found = !strcmp(escaped, mp);
  }
  if (!found)
    return;
  snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
  CLEANUP_FCLOSE FILE *ra = fopen(path, "we");
  if (!ra || fprintf(ra, "%u\n", kb) < 0)
    bfs_log(BFS_LOG_DEBUG, "%s: cannot set readahead", path);
}

static int
open_catalog(const struct opts *o, bool progress)
{
  struct catalog_opts copts = {
    .catalog_path = o->catalog,
    .cloudstack_backups = o->cloudstack_backups,
    .progress = progress,
  };
  return catalog_open(mnt.repo, &copts, &mnt.cat);
}

static int
run(struct opts *o)
{
  char buf[2 * PATH_MAX + 16], esc[2 * PATH_MAX];
  struct catalog_scan_stats stats;
  int r;

  r = check_mountpoint(o->mountpoint);
  if (r < 0)
    return r;
  mnt.repo = realpath(o->repo, NULL);
  if (!mnt.repo)
    return bfs_error(-errno, "%s: %m", o->repo);
  mnt.mountpoint = realpath(o->mountpoint, NULL);
  if (!mnt.mountpoint)
    return bfs_error(-errno, "%s: %m", o->mountpoint);
  if (!strcmp(mnt.repo, mnt.mountpoint))
    return bfs_error(-EINVAL, "%s: the mount point is the repository itself",
                     mnt.repo);
  if (o->scratch && !o->writable)
    return bfs_error(-EINVAL, "scratch=%s without -o writable", o->scratch);
  if (o->writable) {
    if (!o->scratch)
      return bfs_error(-EINVAL, "-o writable needs a scratch directory "
                       "outside the repository (scratch=DIR or --scratch DIR)");
    r = scratch_init(o->scratch);
    if (r < 0)
      return r;
    mnt.writable = true;
  }

  /* every open chain holds a descriptor per layer */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  r = open_catalog(o, isatty(2));
  if (r < 0)
    return r;
  r = catalog_scan(mnt.cat, &stats);
  if (r < 0)
    return bfs_error_prefix(r, "scanning %s: ", mnt.repo);
  if (isatty(2))
    fprintf(stderr, "backupfs: %s: %u VMs, %u backups (%u broken)\n",
            mnt.repo, stats.vms, stats.backups, stats.broken);

  mnt.uid = getuid();
  mnt.repo_perms = o->allow_other || geteuid() == 0;   /* fs/inode.c */
  mnt.gid = getgid();
  mnt.start = time(NULL);
  mnt.entry_timeout = 3600;
  mnt.max_threads = o->max_threads ? o->max_threads : DEFAULT_MAX_THREADS;
  mnt.wake_fd = mnt.ino_fd = -1;
  mnt.no_inotify = o->no_inotify;
  pthread_mutex_init(&mnt.scan_lock, NULL);
  pthread_rwlock_init(&mnt.tree_lock, NULL);
  pthread_mutex_init(&mnt.q_lock, NULL);
  mnt.q_tail = &mnt.q_head;
  r = nodes_init();
  if (r < 0)
    return r;
  r = tree_refresh(false);
  if (r < 0)
    return r;

  /* libfuse options */
  r = add_fuse_opt(o, o->writable ? "nosuid,nodev,auto_unmount,subtype=backupfs"
                                  : "ro,nosuid,nodev,auto_unmount,subtype=backupfs");
  if (r == 0 && !strstr(o->fuse_o, "max_read="))
    r = add_fuse_opt(o, "max_read=1048576");
  if (r == 0 && o->allow_other)
    r = add_fuse_opt(o, "allow_other,default_permissions");
  if (r == 0 && !strstr(o->fuse_o, "fsname=")) {
    escape_opt(esc, sizeof esc, mnt.repo);
    snprintf(buf, sizeof buf, "fsname=%s", esc);
    r = add_fuse_opt(o, buf);
  }
  if (r < 0)
    return r;
  char *fargv[] = { (char *)"backupfs", (char *)"-o", o->fuse_o,
                    (char *)"-d", NULL };
  struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, fargv);
  mnt.se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, NULL);
  fuse_opt_free_args(&args);
  if (!mnt.se)
    return bfs_error(-EINVAL, "cannot start FUSE session (options: %s)",
                     o->fuse_o);
  /* SIGTERM & co. do not drop disks others hold (fs/holders.c) */
  r = holders_signals_install();
  if (r < 0)
    return r;
  /* the daemon reopens the catalog: no SQLite handle across fork() */
  catalog_close(mnt.cat);
  mnt.cat = NULL;
  if (fuse_session_mount(mnt.se, mnt.mountpoint) < 0)
    return bfs_error(-EIO, "%s: mount failed (see above)", mnt.mountpoint);
  set_readahead(mnt.mountpoint, o->readahead_kb);
  if (fuse_daemonize(o->foreground) < 0)
    return bfs_error(-EIO, "cannot daemonise");
  if (!o->foreground)
    bfs_log_use_syslog();
  r = open_catalog(o, false);
  if (r < 0) {
    bfs_log(BFS_LOG_ERROR, "%s", bfs_last_error());
    fuse_session_unmount(mnt.se);
    return r;
  }
  files_init();
  r = tree_watch_start();
  if (r < 0)
    bfs_log(BFS_LOG_WARN, "%s (new backups show on listing)",
            bfs_last_error());

  r = holders_signals_start(mnt.se);
  if (r < 0)
    bfs_log(BFS_LOG_ERROR, "%s: SIGTERM will not unmount", bfs_last_error());
  if (o->single)
    r = fuse_session_loop(mnt.se);
  else {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, mnt.max_threads);
    fuse_loop_cfg_set_idle_threads(cfg, mnt.max_threads / 4);
    r = fuse_session_loop_mt(mnt.se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  holders_signals_stop();
  struct fuse_session *se = mnt.se;
  if (mnt.wake_fd >= 0)
    tree_watch_stop();
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  mnt.se = NULL;
  files_shutdown();
  disk_idle_flush();
  nodes_free_all();
  catalog_close(mnt.cat);
  return r < 0 ? bfs_error(r, "FUSE loop: %s", strerror(-r)) : 0;
}

int
fs_mount_cmd(int argc, char **argv)
{
  struct opts o = { .readahead_kb = DEFAULT_READAHEAD_KB };
  int r = parse_args(argc, argv, &o);

  if (r < 0) {
    fprintf(stderr, "backupfs: mount: %s\n", bfs_last_error());
    usage(stderr);
    return 2;
  }
  r = run(&o);
  free(o.catalog);
  free(o.cloudstack_backups);
  free(o.scratch);
  if (r < 0) {
    bfs_log(BFS_LOG_ERROR, "mount: %s", bfs_last_error());
    return 1;
  }
  return 0;
}
