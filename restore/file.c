/* file.c — `backupfs restore file`: guest files and trees out of a backup.
 *
 * The copy walks the source with openat/fstatat on directory descriptors and
 * never follows a symlink: a guest symlink (even to /etc/passwd) is copied
 * as a symlink with readlinkat + symlinkat, and the part of the source path
 * below the mount's files/ directory is resolved one component at a time
 * with O_NOFOLLOW, so an absolute guest link in a parent directory cannot
 * lead onto the host.  The destination is written the same way (mkdirat,
 * openat O_CREAT|O_EXCL|O_NOFOLLOW on directory descriptors), so nothing is
 * ever written through a link either, and nothing is overwritten without
 * --force (which replaces files and links and merges into directories, but
 * never removes a directory).
 *
 * Kept: contents (sparse: all-zero blocks become holes), mode, owner and
 * group (when run as root), extended attributes where both sides have them
 * (best effort), access and modification times (directories
 * after their contents), hard links (a (dev, ino) map of the files copied
 * so far: later names become links to the first copy), FIFOs and, as root,
 * device nodes.  Sockets are skipped.  Errors are reported per file and the
 * copy goes on; the exit status is non-zero when anything failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include <json-c/json.h>

#include "common/json-str.h"
#include "common/opts.h"
#include "restore/restore-int.h"

#define BUFSZ (1u << 20)

struct link { dev_t dev; ino_t ino; char *path; };

struct fctx {
  bool force, root;
  int top_fd;            /* the directory the copy is made in */
  void *links;           /* tsearch tree of struct link */
  char *buf;
  unsigned errors;
  struct progress pr;
  bool json;             /* --json: the summary as JSON */
};

static const struct bfs_opt file_opts[] = {
  { "force", 'f', NULL,
    "replace existing files and merge into existing directories" },
  { 0 },
};

static const struct bfs_cmd file_cmd = {
  .name = "restore file",
  .usage = "restore file [OPTIONS] BACKUP_DIR/files/PATH DEST",
  .about = "Copy a guest file or a whole directory out of a backup, keeping mode,\n"
    "owner (when run as root), times, symlinks (as symlinks, never followed)\n"
    "and hard links.  When DEST is a directory the copy goes inside it.",
  .opts = file_opts, .shared = BFS_OPTS_JSON,
  .json_help = "the summary as {source, dest, entries, bytes,\nerrors}",
  .need = "BACKUP_DIR/files/PATH DEST", .min_args = 2, .max_args = 2,
};

static int
fail(struct fctx *c, const char *rel, int err, const char *what)
{
  fprintf(stderr, "%sbackupfs: restore file: %s: %s%s%s\n",
          c->pr.tty ? "\r\033[K" : "", rel, what ? what : "",
          what ? ": " : "", strerror(err));
  c->errors++;
  return -err;
}

static int
link_cmp(const void *a, const void *b)
{
  const struct link *x = a, *y = b;
  if (x->dev != y->dev)
    return x->dev < y->dev ? -1 : 1;
  return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void
link_free(void *p)
{
  struct link *l = p;
  free(l->path);
  free(l);
}

/* extended attributes (SELinux labels, capabilities, ACLs, user.*), best
 * effort: a source or destination that has none or refuses some is fine */
static void
copy_xattrs(int sfd, int dfd, const char *rel)
{
  char list[65536], *val = NULL;
  ssize_t n = flistxattr(sfd, list, sizeof list);

  for (char *k = list; n > 0 && k < list + n; k += strlen(k) + 1) {
    ssize_t len = fgetxattr(sfd, k, NULL, 0);
    if (len < 0 || !(val = realloc(val, len + 1)))
      continue;
    len = fgetxattr(sfd, k, val, len);
    if (len >= 0 && fsetxattr(dfd, k, val, len, 0) < 0 &&
        errno != ENOTSUP && errno != EPERM && errno != EACCES)
      bfs_log(BFS_LOG_WARN, "%s: xattr %s: %s", rel, k, strerror(errno));
  }
  free(val);
}

static void
set_attrs(struct fctx *c, int sfd, int fd, int dirfd, const char *name,
          const struct stat *st, const char *rel)
{
  struct timespec ts[2] = { st->st_atim, st->st_mtim };

  if (S_ISLNK(st->st_mode)) {
    if (c->root && fchownat(dirfd, name, st->st_uid, st->st_gid,
                            AT_SYMLINK_NOFOLLOW) < 0)
      fail(c, rel, errno, "chown");
    if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
      fail(c, rel, errno, "set times");
    return;
  }
  /* chown first: it clears set-id bits that fchmod then restores */
  if (c->root && fchown(fd, st->st_uid, st->st_gid) < 0)
    fail(c, rel, errno, "chown");
  if (sfd >= 0)             /* after chown, which drops capabilities */
    copy_xattrs(sfd, fd, rel);
  if (fchmod(fd, st->st_mode & 07777) < 0)
    fail(c, rel, errno, "chmod");
  if (futimens(fd, ts) < 0)
    fail(c, rel, errno, "set times");
}

/* make room for name in dirfd: 0 to create, 1 to merge into a directory */
static int
prepare(struct fctx *c, int dirfd, const char *name, mode_t src_mode,
        const char *rel)
{
  struct stat st;

  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : fail(c, rel, errno, "destination");
  if (!c->force) {
    fprintf(stderr, "%sbackupfs: restore file: %s: exists (use --force to "
            "replace it)\n", c->pr.tty ? "\r\033[K" : "", rel);
    c->errors++;
    return -EEXIST;
  }
  if (S_ISDIR(st.st_mode))
    return S_ISDIR(src_mode) ? 1 : fail(c, rel, EISDIR, "destination");
  if (unlinkat(dirfd, name, 0) < 0)
    return fail(c, rel, errno, "replace");
  return 0;
}

static int copy_entry(struct fctx *c, int sdir, const char *sname, int ddir,
                      const char *dname, const char *rel);

static int
copy_file(struct fctx *c, int sdir, const char *sname, int ddir,
          const char *dname, const struct stat *st, const char *rel)
{
  CLEANUP_CLOSE int in = -1, out = -1;
  struct stat st2;
  uint64_t off = 0;

  in = openat(sdir, sname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (in < 0)
    return fail(c, rel, errno, "open");
  if (fstat(in, &st2) < 0 || !S_ISREG(st2.st_mode))
    return fail(c, rel, EAGAIN, "changed while being copied");
  out = openat(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
               O_CLOEXEC, 0600);
  if (out < 0)
    return fail(c, rel, errno, "create");
  for (;;) {
    ssize_t n = read(in, c->buf, BUFSZ);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(c, rel, errno, "read");
    if (n == 0)
      break;
    if (restore_write_sparse(out, rel, c->buf, n, off) < 0) {
      fprintf(stderr, "backupfs: restore file: %s\n", bfs_last_error());
      c->errors++;
      return -EIO;
    }
    off += n;
    restore_progress_add(&c->pr, n);
  }
  if (ftruncate(out, off) < 0)
    return fail(c, rel, errno, "truncate");
  set_attrs(c, in, out, ddir, dname, st, rel);
  if (close(TAKE_FD(out)) < 0)
    return fail(c, rel, errno, "close");
  return 0;
}

static int
copy_dir(struct fctx *c, int sdir, const char *sname, int ddir,
         const char *dname, const struct stat *st, bool merge,
         const char *rel)
{
  CLEANUP_CLOSE int in = -1, out = -1;
  DIR *d;
  struct dirent *e;

  in = openat(sdir, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0)
    return fail(c, rel, errno, "open");
  if (!merge && mkdirat(ddir, dname, 0700) < 0)
    return fail(c, rel, errno, "mkdir");
  out = openat(ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (out < 0)
    return fail(c, rel, errno, "open destination");
  int dup_in = dup(in);
  if (dup_in < 0 || !(d = fdopendir(dup_in))) {
    if (dup_in >= 0)
      close(dup_in);
    return fail(c, rel, errno, "opendir");
  }
  if (merge)          /* writable while it is filled */
    fchmod(out, (st->st_mode & 07777) | S_IRWXU);
  for (errno = 0; (e = readdir(d)); errno = 0) {
    CLEANUP_FREE char *sub = NULL;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (asprintf(&sub, "%s/%s", rel, e->d_name) < 0) {
      closedir(d);
      return fail(c, rel, ENOMEM, NULL);
    }
    copy_entry(c, in, e->d_name, out, e->d_name, sub);
  }
  if (errno)
    fail(c, rel, errno, "readdir");
  closedir(d);
  set_attrs(c, in, out, ddir, dname, st, rel);
  return 0;
}

static int
copy_special(struct fctx *c, int sdir, const char *sname, int ddir,
             const char *dname, const struct stat *st, const char *rel)
{
  char target[PATH_MAX];
  ssize_t n;

  if (S_ISLNK(st->st_mode)) {
    n = readlinkat(sdir, sname, target, sizeof target - 1);
    if (n < 0)
      return fail(c, rel, errno, "readlink");
    target[n] = '\0';
    if (symlinkat(target, ddir, dname) < 0)
      return fail(c, rel, errno, "symlink");
  }
  else if (S_ISFIFO(st->st_mode)) {
    if (mkfifoat(ddir, dname, 0600) < 0)
      return fail(c, rel, errno, "mkfifo");
  }
  else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
    if (!c->root) {
      fprintf(stderr, "backupfs: restore file: %s: device node skipped (not "
              "root)\n", rel);
      return 0;
    }
    if (mknodat(ddir, dname, st->st_mode & (S_IFMT | 0600), st->st_rdev) < 0)
      return fail(c, rel, errno, "mknod");
  }
  else {
    fprintf(stderr, "backupfs: restore file: %s: socket skipped\n", rel);
    return 0;
  }
  if (S_ISLNK(st->st_mode))
    set_attrs(c, -1, -1, ddir, dname, st, rel);
  else {
    struct timespec ts[2] = { st->st_atim, st->st_mtim };
    if (c->root && fchownat(ddir, dname, st->st_uid, st->st_gid,
                            AT_SYMLINK_NOFOLLOW) < 0)
      fail(c, rel, errno, "chown");
    if (fchmodat(ddir, dname, st->st_mode & 07777, 0) < 0)
      fail(c, rel, errno, "chmod");
    if (utimensat(ddir, dname, ts, AT_SYMLINK_NOFOLLOW) < 0)
      fail(c, rel, errno, "set times");
  }
  return 0;
}

static int
copy_entry(struct fctx *c, int sdir, const char *sname, int ddir,
           const char *dname, const char *rel)
{
  struct stat st;
  int m;

  if (fstatat(sdir, sname, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return fail(c, rel, errno, "stat");
  m = prepare(c, ddir, dname, st.st_mode, rel);
  if (m < 0)
    return m;
  c->pr.files++;
  restore_progress_add(&c->pr, 0);
  if (S_ISDIR(st.st_mode))
    return copy_dir(c, sdir, sname, ddir, dname, &st, m == 1, rel);
  if (!S_ISREG(st.st_mode))
    return copy_special(c, sdir, sname, ddir, dname, &st, rel);

  /* a hard link to a file copied before */
  struct link key = { st.st_dev, st.st_ino, NULL }, **found;
  if (st.st_nlink > 1 && (found = tfind(&key, &c->links, link_cmp))) {
    if (linkat(c->top_fd, (*found)->path, ddir, dname, 0) == 0)
      return 0;
    fail(c, rel, errno, "link (copying instead)");
  }
  int r = copy_file(c, sdir, sname, ddir, dname, &st, rel);
  if (r == 0 && st.st_nlink > 1) {
    struct link *l = malloc(sizeof *l);
    if (l) {
      *l = key;
      l->path = strdup(rel);
      if (!l->path || !tsearch(l, &c->links, link_cmp))
        link_free(l);
    }
  }
  return r;
}

/* Open the directory holding the source's last component.  Below a mount's
 * files/ directory (recognised by BACKUP_DIR/backup.json) every component is
 * opened with O_NOFOLLOW: guest symlinks are never followed. */
static int
open_src_parent(const char *src, char **base)
{
  CLEANUP_FREE char *copy = strdup(src);
  char *p, *files = NULL;
  int fd;

  if (!copy)
    return -ENOMEM;
  /* strip trailing slashes */
  for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
    copy[n - 1] = '\0';
  p = strrchr(copy, '/');
  *base = strdup(p ? p + 1 : copy);
  if (!*base)
    return -ENOMEM;
  if (!p)
    return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (p == copy)
    return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *p = '\0';

  /* the last "/files" whose parent has a backup.json */
  for (char *q = copy; (q = strstr(q, "/files")); q++) {
    if (q[6] != '/' && q[6] != '\0')
      continue;
    CLEANUP_FREE char *bj = strndup(copy, q - copy + 1);
    CLEANUP_FREE char *bjp = NULL;
    if (bj && asprintf(&bjp, "%sbackup.json", bj) >= 0 &&
        access(bjp, F_OK) == 0)
      files = q + 6;          /* "" or "/rest" */
  }
  if (!files)
    return open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  char save = *files;
  *files = '\0';
  fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);   /* .../files */
  *files = save;
  char *saveptr = NULL;
  for (char *comp = strtok_r(files, "/", &saveptr); comp && fd >= 0;
       comp = strtok_r(NULL, "/", &saveptr)) {
    if (!strcmp(comp, "."))
      continue;
    int next = strcmp(comp, "..") ? openat(fd, comp, O_RDONLY | O_DIRECTORY |
                                           O_NOFOLLOW | O_CLOEXEC) : -1;
    if (!strcmp(comp, ".."))
      errno = EPERM;
    else if (next < 0 && errno == ENOTDIR)
      errno = ELOOP;        /* a symlink, or not a directory */
    int e = errno;
    close(fd);
    fd = next;
    errno = e;
  }
  if (!strcmp(*base, "..")) {
    close(fd);
    errno = EPERM;
    return -1;
  }
  return fd;
}

int
restore_file_cmd(int argc, char **argv)
{
  struct fctx c = { .top_fd = -1 };
  CLEANUP_FREE char *sbase = NULL, *dcopy = NULL;
  CLEANUP_CLOSE int sdir = -1, ddir = -1;
  const char *src, *dest, *dname;
  struct stat st;
  struct rlimit rl;
  struct bfs_args g;
  int opt;

  bfs_opts_init(&g, &file_cmd, argc, argv);
  while ((opt = bfs_opts_next(&g)) > 0)
    if (opt == 'f')
      c.force = true;
  if (opt < 0)
    return g.status;
  c.json = g.json;
  src = g.pos[0];
  dest = g.pos[1];
  c.root = geteuid() == 0;
  /* one descriptor pair per directory level */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  sdir = open_src_parent(src, &sbase);
  if (sdir < 0) {
    fprintf(stderr, "backupfs: restore file: %s: %s\n", src,
            errno == ELOOP ? "a parent is a guest symlink (give the path "
            "the link points to inside files/)" : strerror(errno));
    return 1;
  }
  if (fstatat(sdir, sbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    fprintf(stderr, "backupfs: restore file: %s: %s\n", src, strerror(errno));
    return 1;
  }
  /* DEST an existing directory: copy into it; else DEST is the new name */
  if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
    ddir = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dname = sbase;
  }
  else {
    dcopy = strdup(dest);
    if (!dcopy)
      return 1;
    for (size_t n = strlen(dcopy); n > 1 && dcopy[n - 1] == '/'; n--)
      dcopy[n - 1] = '\0';
    char *slash = strrchr(dcopy, '/');
    if (slash) {
      *slash = '\0';
      dname = slash + 1;
      ddir = open(slash == dcopy ? "/" : dcopy,
                  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    else {
      dname = dcopy;
      ddir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
  }
  if (ddir < 0) {
    fprintf(stderr, "backupfs: restore file: %s: %s\n", dest, strerror(errno));
    return 1;
  }
  if (posix_memalign((void **) &c.buf, 4096, BUFSZ)) {
    fprintf(stderr, "backupfs: restore file: out of memory\n");
    return 1;
  }
  c.top_fd = ddir;
  restore_progress_init(&c.pr, "restoring", 0, true);
  copy_entry(&c, sdir, sbase, ddir, dname, dname);
  restore_progress_done(&c.pr);
  char h[32];
  if (c.json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "source", bfs_json_string(src));
    json_object_object_add(o, "dest", bfs_json_string(dest));
    json_object_object_add(o, "entries", json_object_new_uint64(c.pr.files));
    json_object_object_add(o, "bytes", json_object_new_uint64(c.pr.done));
    json_object_object_add(o, "errors", json_object_new_int64(c.errors));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
  else
    printf("restored %s: %" PRIu64 " entr%s, %s read%s\n", src, c.pr.files,
           c.pr.files == 1 ? "y" : "ies", restore_human(c.pr.done, h, sizeof h),
           c.errors ? " (with errors)" : "");
  tdestroy(c.links, link_free);
  free(c.buf);
  if (c.errors) {
    fprintf(stderr, "backupfs: restore file: %u error%s\n", c.errors,
            c.errors == 1 ? "" : "s");
    return 1;
  }
  return 0;
}
