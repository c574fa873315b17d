/* beneath.c — opening repository files beneath a directory descriptor, and
 * checking that they are the files the catalog recorded.  See beneath.h.
 *
 * openat2 is called through syscall(2): glibc may lack the wrapper.  Where
 * the kernel (or a seccomp filter) has no openat2 (ENOSYS, or EPERM that
 * O_NOATIME does not explain), the walk does the same job with openat():
 * every directory component O_PATH|O_DIRECTORY|O_NOFOLLOW (a symlink is
 * ENOTDIR there, reported as ELOOP), the last O_NOFOLLOW, ".." refused.
 */
#include "common/beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how { uint64_t flags, mode, resolve; };
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)

static const char *
nz(const char *root)
{
  return root ? root : ".";
}

int
bfs_dir_open(const char *path)
{
  int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  return fd;
}

const char *
bfs_path_beneath(const char *root, const char *path)
{
  size_t n = strlen(root);
  if (strncmp(path, root, n) || path[n] != '/' || !path[n + 1])
    return NULL;
  return path + n + 1;
}

static int
open_error(int e, const char *root, const char *rel)
{
  switch (e) {
  case ELOOP:
    return bfs_error(-ELOOP, "%s/%s: is a symbolic link or lies beyond one "
                     "(repository files are never opened through links)",
                     nz(root), rel);
  case EXDEV:
    return bfs_error(-EXDEV, "%s/%s: leads outside the repository",
                     nz(root), rel);
  default:
    return bfs_error(-e, "%s/%s: %s", nz(root), rel, strerror(e));
  }
}

/* fd is open: only a regular file passes; clear O_NONBLOCK */
static int
finish(int fd, const char *root, const char *rel)
{
  struct stat st;
  int fl;

  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return bfs_error(-e, "%s/%s: stat: %s", nz(root), rel, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return bfs_error(-EINVAL, "%s/%s: not a regular file", nz(root), rel);
  }
  if ((fl = fcntl(fd, F_GETFL)) >= 0)
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

static bool
rel_ok(const char *rel)
{
  return rel && rel[0] && rel[0] != '/';
}

int
bfs_open_beneath_walk(int dirfd, const char *root, const char *rel)
{
  CLEANUP_FREE char *copy = NULL;
  char *save = NULL, *comp, *next;
  int cur = dirfd, fd;

  if (!rel_ok(rel))
    return bfs_error(-EXDEV, "%s/%s: not a repository-relative path",
                     nz(root), rel ? rel : "");
  if (!(copy = strdup(rel)))
    return bfs_error(-ENOMEM, "out of memory");
  comp = strtok_r(copy, "/", &save);
  while (comp) {
    next = strtok_r(NULL, "/", &save);
    if (!strcmp(comp, "..")) {
      if (cur != dirfd)
        close(cur);
      return open_error(EXDEV, root, rel);
    }
    if (!strcmp(comp, ".") && next) {
      comp = next;
      continue;
    }
    if (next) {
      fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        fd = errno == ENOTDIR ? -ELOOP : -errno;  /* symlink or a file */
    }
    else {
      fd = openat(cur, comp, OPEN_FLAGS | O_NOATIME);
      if (fd < 0 && errno == EPERM)
        fd = openat(cur, comp, OPEN_FLAGS);
      if (fd < 0)
        fd = -errno;
    }
    if (cur != dirfd)
      close(cur);
    cur = fd;
    if (fd < 0 || !next)
      break;
    comp = next;
  }
  if (cur < 0 || cur == dirfd)
    return open_error(cur < 0 ? -cur : EINVAL, root, rel);
  return finish(cur, root, rel);
}

static int
openat2_try(int dirfd, const char *rel, uint64_t flags)
{
  struct open_how how = {
    .flags = flags,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  long fd;
  do
    fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);   /* a rename raced the lookup */
  return fd < 0 ? -errno : (int)fd;
}

int
bfs_open_beneath(int dirfd, const char *root, const char *rel)
{
  int fd;

  if (!rel_ok(rel))
    return bfs_error(-EXDEV, "%s/%s: not a repository-relative path",
                     nz(root), rel ? rel : "");
  fd = openat2_try(dirfd, rel, OPEN_FLAGS | O_NOATIME);
  if (fd == -EPERM)                     /* not our file: no O_NOATIME */
    fd = openat2_try(dirfd, rel, OPEN_FLAGS);
  if (fd == -ENOSYS || fd == -EPERM)    /* no openat2 here (or seccomp) */
    return bfs_open_beneath_walk(dirfd, root, rel);
  if (fd < 0)
    return open_error(-fd, root, rel);
  return finish(fd, root, rel);
}

/* ---- identity ---- */

void
bfs_file_id_of(const struct stat *st, struct bfs_file_id *id)
{
  id->dev = (uint64_t)st->st_dev;
  id->ino = (uint64_t)st->st_ino;
  id->size = (uint64_t)st->st_size;
  id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int
bfs_file_id_check(const char *name, const struct bfs_file_id *want,
                  const struct stat *st)
{
  struct bfs_file_id got;
  const char *what = NULL;

  bfs_file_id_of(st, &got);
  if (want->ino == 0)
    what = "the catalog has no record of it";
  else if (got.dev != want->dev || got.ino != want->ino)
    what = "it is another file (device/inode)";
  else if (got.size != want->size)
    what = "its size differs";
  else if (got.mtime_ns != want->mtime_ns)
    what = "its modification time differs";
  if (!what)
    return 0;
  return bfs_error(-EIO, "%s: changed since the catalog was built (%s): not "
                   "served until a rescan", name, what);
}

int
bfs_chain_ids_check(void *opaque, size_t depth, const char *rel,
                    const struct stat *st)
{
  const struct bfs_chain_ids *c = opaque;

  if (!rel) {
    if (depth == c->n)
      return 0;
    return bfs_error(-EIO, "%s: the chain has %zu layers, the catalog %zu: "
                     "changed since the catalog was built; not served until "
                     "a rescan", c->n ? c->rel[0] : "?", depth, c->n);
  }
  if (depth >= c->n || strcmp(rel, c->rel[depth]))
    return bfs_error(-EIO, "%s: layer %zu is not the catalog's (%s): changed "
                     "since the catalog was built; not served until a rescan",
                     rel, depth, depth < c->n ? c->rel[depth] : "none");
  return bfs_file_id_check(rel, &c->id[depth], st);
}
