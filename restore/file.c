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

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json-str.h"
#include "common/opts.h"
#include "common/waitline.h"
#include "restore/restore-int.h"

#define BUFSZ (1u << 20)

struct link { dev_t dev; ino_t ino; char *path; };

struct fctx {
  bool force, root;
  int top_fd;            /* the directory the copy is made in */
  char *top_path;        /* ... its absolute path, for messages */
  void *links;           /* tsearch tree of struct link */
  char *buf;
  unsigned errors;
  struct progress pr;
  bool json;             /* --json: the summary as JSON */
};

enum { OPT_FORMAT = 256, OPT_REPO };

static const struct bfs_opt file_opts[] = {
  { "force", 'f', NULL,
    "replace existing files and merge into existing\n"
    "directories (an existing archive file with --format)" },
  { "format", OPT_FORMAT, "FMT", "write a tar (POSIX pax) or zip archive to\n"
    "DEST instead (DEST - is stdout; a directory\ngets NAME.tar/.zip)" },
  { "repo", OPT_REPO, "REPO", "read VM@TIME PATH of repository REPO, no\n"
    "mount needed" },
  { 0 },
};

static const struct bfs_cmd file_cmd = {
  .name = "restore file",
  .usage = "restore file [OPTIONS] BACKUP_DIR/files/PATH DEST\n"
           "       backupfs restore file [OPTIONS] --repo REPO VM@TIME PATH DEST",
  .about = "Copy a guest file or a whole directory out of a backup, keeping mode,\n"
    "owner (when run as root), times, symlinks (as symlinks, never followed)\n"
    "and hard links.  When DEST is a directory the copy goes inside it.\n"
    "With --repo no mount is needed: PATH is a guest path (/etc/hostname) of\n"
    "VM@TIME (TIME a backup name or latest), read through a private mount.",
  .opts = file_opts, .shared = BFS_OPTS_JSON | BFS_OPTS_CATALOG,
  .catalog_help = "with --repo: the catalog database (default: per\nrepository)",
  .json_help = "the summary as {source, dest, entries, bytes,\nerrors}",
  .need = "BACKUP_DIR/files/PATH DEST", .min_args = 2, .max_args = 3,
};

/* the whole destination path of rel, for messages */
static const char *
where(const struct fctx *c, const char *rel, char buf[static PATH_MAX])
{
  if (!c->top_path)
    return rel;
  snprintf(buf, PATH_MAX, "%s%s%s", c->top_path,
           strcmp(c->top_path, "/") ? "/" : "", rel);
  return buf;
}

static int
fail(struct fctx *c, const char *rel, int err, const char *what)
{
  char w[PATH_MAX];
  fprintf(stderr, "%sbackupfs: restore file: %s: %s%s%s\n",
          c->pr.tty ? "\r\033[K" : "", where(c, rel, w), what ? what : "",
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
    char w[PATH_MAX];
    fprintf(stderr, "%sbackupfs: restore file: %s: exists (use --force to "
            "replace it)\n", c->pr.tty ? "\r\033[K" : "", where(c, rel, w));
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
      char w[PATH_MAX];
      fprintf(stderr, "backupfs: restore file: %s: device node skipped (not "
              "root)\n", where(c, rel, w));
      return 0;
    }
    if (mknodat(ddir, dname, st->st_mode & (S_IFMT | 0600), st->st_rdev) < 0)
      return fail(c, rel, errno, "mknod");
  }
  else {
    char w[PATH_MAX];
    fprintf(stderr, "backupfs: restore file: %s: socket skipped\n",
            where(c, rel, w));
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

  if (restore_repo_interrupted())
    return fail(c, rel, EINTR, NULL);
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

/* in path, what follows the last "/files" whose parent has a backup.json
 * ("" or "/rest"), or NULL: not below a mount's files/ */
static char *
files_part(char *path)
{
  char *files = NULL;
  for (char *q = path; (q = strstr(q, "/files")); q++) {
    if (q[6] != '/' && q[6] != '\0')
      continue;
    CLEANUP_FREE char *bj = strndup(path, q - path + 1);
    CLEANUP_FREE char *bjp = NULL;
    if (bj && asprintf(&bjp, "%sbackup.json", bj) >= 0 &&
        access(bjp, F_OK) == 0)
      files = q + 6;
  }
  return files;
}

/* A source below files/ that fails with EIO: the mount says why in
 * files/.backupfs-error (an appliance that did not start, a broken chain);
 * print that instead of a bare "Input/output error".  true if printed. */
static bool
explain_eio(const char *src, const char *shown)
{
  CLEANUP_FREE char *copy = strdup(src), *text = NULL, *ep = NULL;
  char *rest = copy ? files_part(copy) : NULL;
  size_t len = 0;

  if (!rest)
    return false;
  *rest = '\0';
  if (asprintf(&ep, "%s/.backupfs-error", copy) < 0)
    return false;
  CLEANUP_FCLOSE FILE *f = fopen(ep, "re");
  if (!f || getdelim(&text, &len, '\0', f) <= 0)
    return false;
  fprintf(stderr, "backupfs: restore file: %s: the guest's files cannot be "
          "read:\n%s", shown, text);
  return true;
}

/* ---- what the copy waits for, on a terminal (common/waitline.h) ---- */

struct watch {
  char *status;              /* MNT/.backupfs-status */
  char *prefix;              /* "VM/": the appliances of this VM */
};

static char *
watch_poll(void *arg)
{
  struct watch *w = arg;
  struct json_object *st = json_object_from_file(w->status), *as;
  char *text = NULL;
  if (st && json_object_object_get_ex(st, "appliances", &as))
    text = bfs_waitline_appliance_text(as, w->prefix);
  json_object_put(st);
  return text;
}

/* src below MNT/VM/TIME/files: watch MNT's status for VM's appliances */
static struct bfs_waitline *
watch_start(const char *src, struct watch *w)
{
  CLEANUP_FREE char *copy = strdup(src);
  char *rest = copy ? files_part(copy) : NULL, *vm, *time;

  memset(w, 0, sizeof *w);
  if (!rest || !isatty(STDERR_FILENO))
    return NULL;
  rest[-6] = '\0';                        /* MNT/VM/TIME */
  if (!(time = strrchr(copy, '/')) || time == copy)
    return NULL;
  *time = '\0';
  if (!(vm = strrchr(copy, '/')))
    return NULL;
  *vm++ = '\0';
  if (asprintf(&w->status, "%s/.backupfs-status", *copy ? copy : "/") < 0 ||
      asprintf(&w->prefix, "%s/", vm) < 0) {
    free(w->status);
    w->status = NULL;
    return NULL;
  }
  return bfs_waitline_start(watch_poll, w);
}

static void
watch_stop(struct bfs_waitline *l, struct watch *w)
{
  bfs_waitline_stop(l);
  free(w->status);
  free(w->prefix);
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

  files = files_part(copy);
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

/* the copy of src to dest (a tree walk, or an archive with format) */
static int
copy_out(const char *src, const char *shown, const char *dest,
         const char *format, bool force, bool json)
{
  struct fctx c = { .top_fd = -1, .force = force, .json = json };
  CLEANUP_FREE char *sbase = NULL, *dcopy = NULL;
  CLEANUP_CLOSE int sdir = -1, ddir = -1;
  const char *dname, *dpath;
  struct stat st;
  struct rlimit rl;

  c.root = geteuid() == 0;
  /* one descriptor pair per directory level */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  /* the first access below files/ may wait for an appliance to boot: say
   * so on a terminal until the source is found */
  struct watch wt;
  struct bfs_waitline *wl = watch_start(src, &wt);
  sdir = open_src_parent(src, &sbase);
  int e = errno, sr = sdir < 0 ? -1 :
    fstatat(sdir, sbase, &st, AT_SYMLINK_NOFOLLOW);
  if (sr < 0)
    e = errno;
  watch_stop(wl, &wt);
  errno = e;
  if (sdir < 0 && errno == EIO && explain_eio(src, shown))
    return 1;
  if (sdir < 0) {
    fprintf(stderr, "backupfs: restore file: %s: %s\n", shown,
            errno == ELOOP ? "a parent is a guest symlink (give the path "
            "the link points to inside files/)" : strerror(errno));
    return 1;
  }
  if (sr < 0) {
    if (errno == EIO && explain_eio(src, shown))
      return 1;
    fprintf(stderr, "backupfs: restore file: %s: %s\n", shown,
            strerror(errno));
    return 1;
  }
  if (format) {
    restore_progress_init(&c.pr, "archiving", 0, true);
    int r = restore_archive(sdir, sbase, shown, dest, format, force, json,
                            &c.pr);
    restore_progress_done(&c.pr);
    if (r < 0)
      fprintf(stderr, "backupfs: restore file: %s\n", bfs_last_error());
    return r ? 1 : 0;
  }
  /* DEST an existing directory: copy into it; else DEST is the new name */
  if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
    ddir = open(dpath = dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
      ddir = open(dpath = slash == dcopy ? "/" : dcopy,
                  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    else {
      dname = dcopy;
      ddir = open(dpath = ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
  c.top_path = realpath(dpath, NULL);
  restore_progress_init(&c.pr, "restoring", 0, true);
  copy_entry(&c, sdir, sbase, ddir, dname, dname);
  restore_progress_done(&c.pr);
  char h[BFS_HUMAN_SIZE_MAX], w[PATH_MAX];
  bfs_human_size(c.pr.done, h, sizeof h);
  if (c.json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "source", bfs_json_string(shown));
    json_object_object_add(o, "dest", bfs_json_string(where(&c, dname, w)));
    json_object_object_add(o, "entries", json_object_new_uint64(c.pr.files));
    json_object_object_add(o, "bytes", json_object_new_uint64(c.pr.done));
    json_object_object_add(o, "errors", json_object_new_int64(c.errors));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
  if (!c.errors && !c.json)
    printf("restored %s to %s: %" PRIu64 " entr%s, %s read\n", shown,
           where(&c, dname, w), c.pr.files, c.pr.files == 1 ? "y" : "ies", h);
  else if (!c.errors)
    ;                                   /* the JSON said it */
  else if (!c.pr.files)
    fprintf(stderr, "backupfs: restore file: nothing restored\n");
  else
    fprintf(stderr, "backupfs: restore file: %u error%s: %s is incomplete "
            "(%" PRIu64 " entr%s, %s copied)\n", c.errors,
            c.errors == 1 ? "" : "s", where(&c, dname, w), c.pr.files,
            c.pr.files == 1 ? "y" : "ies", h);
  tdestroy(c.links, link_free);
  free(c.buf);
  free(c.top_path);
  return c.errors ? 1 : 0;
}

int
restore_file_cmd(int argc, char **argv)
{
  const char *format = NULL, *repo = NULL;
  bool force = false;
  struct bfs_args g;
  int opt;

  bfs_opts_init(&g, &file_cmd, argc, argv);
  while ((opt = bfs_opts_next(&g)) > 0)
    switch (opt) {
    case 'f': force = true; break;
    case OPT_FORMAT: format = g.optarg; break;
    case OPT_REPO: repo = g.optarg; break;
    }
  if (opt < 0)
    return g.status;
  if (g.npos != (repo ? 3 : 2) || (g.catalog && !repo)) {
    fprintf(stderr, "backupfs: restore file: %s\n", g.catalog && !repo ?
            "--catalog goes with --repo" : repo ? "--repo: need VM@TIME PATH "
            "DEST" : "need BACKUP_DIR/files/PATH DEST");
    return 2;
  }
  if (format && strcmp(format, "tar") && strcmp(format, "zip")) {
    fprintf(stderr, "backupfs: restore file: --format: want tar or zip, got "
            "'%s'\n", format);
    return 2;
  }
  const char *dest = g.pos[g.npos - 1];
  if (!format && !strcmp(dest, "-")) {
    fprintf(stderr, "backupfs: restore file: DEST - (stdout) needs --format "
            "tar or zip\n");
    return 2;
  }
  if (!repo)
    return copy_out(g.pos[0], g.pos[0], dest, format, force, g.json);

  struct repo_mount m;
  CLEANUP_FREE char *shown = NULL;
  int rc = 1;
  if (asprintf(&shown, "%s:%s", g.pos[0], g.pos[1]) < 0)
    shown = NULL;
  if (restore_repo_mount(&m, repo, g.catalog, g.pos[0], g.pos[1]) < 0)
    fprintf(stderr, "backupfs: restore file: %s\n", bfs_last_error());
  else
    rc = copy_out(m.src, shown ? shown : m.src, dest, format, force, g.json);
  restore_repo_umount(&m);
  return rc;
}
