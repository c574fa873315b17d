/* archive.c — `restore file --format tar|zip`: a guest tree as an archive.
 *
 * The source is walked as file.c walks it (openat/fstatat on directory
 * descriptors, O_NOFOLLOW, never through a guest symlink) and each entry
 * goes to libarchive: tar is POSIX pax (long names, sub-second mtimes,
 * numeric owners as the guest has them — the host's user names mean nothing
 * for a guest's uid), zip is PKZIP with its Unix extra fields (mode, mtime,
 * owner, symlinks as links).  A file's header carries its size, so a file
 * that reads short or fails is never padded with zeros: the whole run fails,
 * and an archive written to a file is removed (an archive on stdout cannot
 * be: the exit status says it, and the stream ends without its trailer).
 * Hard links become tar hard links (zip has none: the data is stored
 * again); FIFOs and devices go into tar only; sockets are skipped.
 * DEST is created O_EXCL (--force replaces a file, never a directory); a
 * DEST that is a directory gets NAME.tar / NAME.zip inside; "-" is stdout
 * and refused when stdout is a terminal.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json-str.h"
#include "restore/restore-int.h"

#define ABUF (1u << 20)

struct alink { dev_t dev; ino_t ino; char *path; };

struct actx {
  struct archive *a;
  bool zip;
  const char *src;           /* for messages */
  void *links;               /* tsearch of struct alink (tar) */
  char *buf;
  unsigned errors;
  bool fatal;                /* the archive stream is broken: stop */
  struct progress *pr;
};

static int
afail(struct actx *c, const char *rel, int err, const char *what)
{
  fprintf(stderr, "%sbackupfs: restore file: %s/%s: %s%s%s\n",
          c->pr->tty ? "\r\033[K" : "", c->src, rel, what ? what : "",
          what && err ? ": " : "", err ? strerror(err) : "");
  c->errors++;
  return err ? -err : -EIO;
}

static int
alink_cmp(const void *a, const void *b)
{
  const struct alink *x = a, *y = b;
  if (x->dev != y->dev)
    return x->dev < y->dev ? -1 : 1;
  return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void
alink_free(void *p)
{
  struct alink *l = p;
  free(l->path);
  free(l);
}

static int
header(struct actx *c, struct archive_entry *e, const char *rel)
{
  if (archive_write_header(c->a, e) >= ARCHIVE_WARN)
    return 0;
  fprintf(stderr, "%sbackupfs: restore file: %s/%s: archive: %s\n",
          c->pr->tty ? "\r\033[K" : "", c->src, rel,
          archive_error_string(c->a));
  c->errors++;
  c->fatal = true;
  return -EIO;
}

/* the data of a regular file: exactly st_size bytes, or a fatal error */
static int
data(struct actx *c, int fd, const struct stat *st, const char *rel)
{
  uint64_t left = (uint64_t)st->st_size;
  while (left > 0) {
    ssize_t n = read(fd, c->buf, left < ABUF ? left : ABUF);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      c->fatal = true;         /* the header promised st_size bytes */
      return afail(c, rel, n < 0 ? errno : 0, n < 0 ? "read" :
                   "file shorter than its size; archive abandoned");
    }
    if (archive_write_data(c->a, c->buf, n) != n) {
      c->fatal = true;
      return afail(c, rel, 0, archive_error_string(c->a));
    }
    left -= n;
    restore_progress_add(c->pr, n);
  }
  return 0;
}

static int put(struct actx *c, int sdir, const char *name, const char *rel);

static int
put_dir(struct actx *c, int sdir, const char *name, const char *rel)
{
  int fd = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return afail(c, rel, errno, "open");
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return afail(c, rel, errno, "opendir");
  }
  struct dirent *de;
  for (errno = 0; !c->fatal && (de = readdir(d)); errno = 0) {
    CLEANUP_FREE char *sub = NULL;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (asprintf(&sub, "%s/%s", rel, de->d_name) < 0) {
      closedir(d);
      return afail(c, rel, ENOMEM, NULL);
    }
    put(c, dirfd(d), de->d_name, sub);
  }
  if (errno && !c->fatal)
    afail(c, rel, errno, "readdir");
  closedir(d);
  return 0;
}

static int
put(struct actx *c, int sdir, const char *name, const char *rel)
{
  struct stat st;
  char target[PATH_MAX];
  CLEANUP_CLOSE int fd = -1;
  int r = 0;

  if (restore_repo_interrupted()) {
    c->fatal = true;
    return afail(c, rel, EINTR, NULL);
  }
  if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return afail(c, rel, errno, "stat");
  if (S_ISSOCK(st.st_mode) || (c->zip && (S_ISFIFO(st.st_mode) ||
                               S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))) {
    fprintf(stderr, "%sbackupfs: restore file: %s/%s: %s skipped\n",
            c->pr->tty ? "\r\033[K" : "", c->src, rel,
            S_ISSOCK(st.st_mode) ? "socket" : "special file (zip has none)");
    return 0;
  }
  if (S_ISREG(st.st_mode)) {
    fd = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
      return afail(c, rel, errno, "open");
  }
  struct archive_entry *e = archive_entry_new();
  if (!e)
    return afail(c, rel, ENOMEM, NULL);
  archive_entry_copy_pathname(e, rel);
  archive_entry_copy_stat(e, &st);
  archive_entry_set_nlink(e, 1);
  struct alink key = { st.st_dev, st.st_ino, NULL }, **found = NULL;
  if (S_ISLNK(st.st_mode)) {
    ssize_t n = readlinkat(sdir, name, target, sizeof target - 1);
    if (n < 0) {
      archive_entry_free(e);
      return afail(c, rel, errno, "readlink");
    }
    target[n] = '\0';
    archive_entry_copy_symlink(e, target);
  }
  else if (S_ISREG(st.st_mode) && st.st_nlink > 1 && !c->zip &&
           (found = tfind(&key, &c->links, alink_cmp))) {
    archive_entry_copy_hardlink(e, (*found)->path);
    archive_entry_set_size(e, 0);
  }
  if (!S_ISREG(st.st_mode) || found)
    archive_entry_set_size(e, 0);
  r = header(c, e, rel);
  archive_entry_free(e);
  c->pr->files++;
  restore_progress_add(c->pr, 0);
  if (r < 0)
    return r;
  if (S_ISDIR(st.st_mode))
    return put_dir(c, sdir, name, rel);
  if (!S_ISREG(st.st_mode) || found)
    return 0;
  if ((r = data(c, fd, &st, rel)) < 0)
    return r;
  if (st.st_nlink > 1 && !c->zip) {
    struct alink *l = malloc(sizeof *l);
    if (l) {
      *l = key;
      if (!(l->path = strdup(rel)) || !tsearch(l, &c->links, alink_cmp))
        alink_free(l);
    }
  }
  return 0;
}

/* the output: fd of dest (created), or 1; *made is the file to remove on
 * failure */
static int
open_dest(const char *dest, const char *sname, bool zip, bool force,
          char **made)
{
  struct stat st;
  *made = NULL;
  if (!strcmp(dest, "-")) {
    if (isatty(STDOUT_FILENO))
      return bfs_error(-EINVAL, "not writing an archive to a terminal "
                       "(redirect stdout, or give a file name)");
    return STDOUT_FILENO;
  }
  if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (asprintf(made, "%s%s%s.%s", dest,
                 dest[strlen(dest) - 1] == '/' ? "" : "/", sname,
                 zip ? "zip" : "tar") < 0)
      return bfs_error(-ENOMEM, "out of memory");
  }
  else if (!(*made = strdup(dest)))
    return bfs_error(-ENOMEM, "out of memory");
  int fd = open(*made, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0644);
  if (fd < 0 && errno == EEXIST && force &&
      lstat(*made, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(*made) == 0)
    fd = open(*made, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0644);
  if (fd < 0) {
    int e = errno;
    bfs_error(-e, "%s: %s%s", *made, strerror(e), e == EEXIST ?
              " (use --force to replace it)" : "");
    free(*made);
    *made = NULL;
    return -e;
  }
  return fd;
}

int
restore_archive(int sdir, const char *sname, const char *src,
                const char *dest, const char *format, bool force, bool json,
                struct progress *pr)
{
  struct actx c = { .src = src, .pr = pr, .zip = !strcmp(format, "zip") };
  CLEANUP_FREE char *made = NULL;
  int fd, r;

  if (strcmp(format, "tar") && !c.zip)
    return bfs_error(-EINVAL, "--format: want tar or zip, got '%s'", format);
  if ((fd = open_dest(dest, sname, c.zip, force, &made)) < 0)
    return fd;
  if (!(c.buf = malloc(ABUF)) || !(c.a = archive_write_new())) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  if ((c.zip ? archive_write_set_format_zip(c.a)
             : archive_write_set_format_pax_restricted(c.a)) != ARCHIVE_OK ||
      (!c.zip && archive_write_set_bytes_in_last_block(c.a, 1) != ARCHIVE_OK) ||
      archive_write_open_fd(c.a, fd) != ARCHIVE_OK) {
    r = bfs_error(-EIO, "%s: archive: %s", made ? made : "stdout",
                  archive_error_string(c.a));
    goto out;
  }
  /* the entries are named as restore file names the copy: from the
   * source's last component (app/, app/conf, ...) */
  put(&c, sdir, sname, sname);
  if (!c.fatal && archive_write_close(c.a) != ARCHIVE_OK) {
    fprintf(stderr, "backupfs: restore file: %s: archive: %s\n",
            made ? made : "stdout", archive_error_string(c.a));
    c.errors++;
  }
  r = (int)c.errors;
out:
  if (c.a && c.fatal)
    archive_write_fail(c.a);   /* no zero padding, no trailer after it */
  if (c.a)
    archive_write_free(c.a);
  if (fd != STDOUT_FILENO && close(fd) < 0 && r == 0) {
    fprintf(stderr, "backupfs: restore file: %s: %s\n", made, strerror(errno));
    r = 1;
  }
  if (r != 0 && made) {
    unlink(made);
    fprintf(stderr, "backupfs: restore file: %s removed: the archive would "
            "be incomplete\n", made);
  }
  if (json) {                 /* as restore file --json, dest the archive */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "source", bfs_json_string(src));
    json_object_object_add(o, "dest", bfs_json_string(made ? made : "-"));
    json_object_object_add(o, "entries", json_object_new_uint64(pr->files));
    json_object_object_add(o, "bytes", json_object_new_uint64(pr->done));
    json_object_object_add(o, "errors", json_object_new_int64(r > 0 ? r :
                                                              r < 0));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
  else if (r == 0 && made)
    printf("wrote %s\n", made);
  tdestroy(c.links, alink_free);
  free(c.buf);
  return r;
}
