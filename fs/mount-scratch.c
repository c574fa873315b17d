/* mount-scratch.c — `-o writable`: writes to disks/<disk>.img land in a
 * sparse per-disk scratch file outside the repository; the backup never
 * changes.
 *
 * The scratch file SCRATCH/<vm>/<time>/<disk>.img has the disk's virtual
 * size and is written in whole blocks (the scratch file system's block
 * size, at least 4 KiB), so "allocated in the scratch file" means "written
 * since the backup": reads take allocated ranges (SEEK_DATA/SEEK_HOLE on
 * the scratch file) from it and the holes from the chain.  A write that
 * covers a block only partly reads the block first (read-modify-write)
 * under the disk's write lock held exclusively; whole-block writes hold it
 * shared.  Scratch files are found again at the next mount.
 */
#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

static size_t blk = 4096;

/* real (a resolved path) is the repository or lies inside it: by name, or
 * through another path to the same directory (a bind mount) */
static bool
inside_repo(const char *real)
{
  CLEANUP_FREE char *p = strdup(real);
  struct stat rs, st;
  size_t rl = strlen(mnt.repo);

  if (!strncmp(real, mnt.repo, rl) && (real[rl] == '/' || real[rl] == '\0'))
    return true;
  if (!p || stat(mnt.repo, &rs) < 0)
    return true;                    /* cannot tell: refuse */
  for (;;) {
    if (stat(p[0] ? p : "/", &st) == 0 && st.st_dev == rs.st_dev &&
        st.st_ino == rs.st_ino)
      return true;
    char *slash = strrchr(p, '/');
    if (!slash || !p[0])
      return false;
    *slash = '\0';
  }
}

/* Resolve and check before creating anything: the directory's parent is
 * opened and checked, and the directory made beneath that descriptor, so
 * a symlink into the repository can never have us create a file there. */
int
scratch_init(const char *dir)
{
  CLEANUP_FREE char *c1 = strdup(dir), *c2 = strdup(dir), *preal = NULL;
  CLEANUP_CLOSE int pfd = -1;
  char fdpath[64];
  struct statvfs sv;

  if (!c1 || !c2)
    return bfs_error(-ENOMEM, "out of memory");
  if ((mnt.scratch = realpath(dir, NULL))) {      /* it exists */
    if (inside_repo(mnt.scratch))
      return bfs_error(-EINVAL, "scratch %s: inside the repository %s; "
                       "backups are never written", mnt.scratch, mnt.repo);
  }
  else if (errno != ENOENT)
    return bfs_error(-errno, "scratch %s: %m", dir);
  else {
    const char *parent = dirname(c1), *base = basename(c2);
    pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
      return bfs_error(-errno, "scratch %s: %s: %m", dir, parent);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", pfd);
    if (!(preal = realpath(fdpath, NULL)))
      return bfs_error(-errno, "scratch %s: %s: %m", dir, parent);
    if (inside_repo(preal))
      return bfs_error(-EINVAL, "scratch %s: inside the repository %s (in "
                       "%s); backups are never written: nothing created",
                       dir, mnt.repo, preal);
    if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/"))
      return bfs_error(-EINVAL, "scratch %s: not a directory name", dir);
    if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
      return bfs_error(-errno, "scratch %s: %m", dir);
    mnt.scratch = realpath(dir, NULL);
    if (!mnt.scratch)
      return bfs_error(-errno, "scratch %s: %m", dir);
    if (inside_repo(mnt.scratch))       /* raced: a symlink put in place */
      return bfs_error(-EINVAL, "scratch %s: inside the repository %s; "
                       "backups are never written", mnt.scratch, mnt.repo);
  }
  struct stat st;
  if (stat(mnt.scratch, &st) < 0 || !S_ISDIR(st.st_mode))
    return bfs_error(-ENOTDIR, "scratch %s: not a directory", mnt.scratch);
  if (statvfs(mnt.scratch, &sv) == 0 && sv.f_bsize > blk &&
      sv.f_bsize <= 1024 * 1024)
    blk = sv.f_bsize;
  return 0;
}

static int
mkdirs(char *path)                  /* mkdir -p of path's directory */
{
  for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = '\0';
    int r = mkdir(path, 0700);
    *p = '/';
    if (r < 0 && errno != EEXIST)
      return -errno;
  }
  return 0;
}

/* The disk's scratch file: opened if it exists, created if create. */
int
scratch_fd(struct disk *d, bool create)
{
  int fd;

  pthread_mutex_lock(&d->lock);
  fd = d->scratch_fd;
  if (fd < 0 && d->scratch_path) {
    fd = open(d->scratch_path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      int r = mkdirs(d->scratch_path);
      fd = r < 0 ? -1 : open(d->scratch_path,
                             O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd >= 0 && ftruncate(fd, d->size) < 0) {
        close(fd);
        unlink(d->scratch_path);
        fd = -1;
      }
    }
    if (fd < 0 && (errno != ENOENT || create))
      bfs_log(BFS_LOG_WARN, "%s: %m", d->scratch_path);
    d->scratch_fd = fd;
  }
  pthread_mutex_unlock(&d->lock);
  return fd;
}

/* Read [off, off+len) of the disk: scratch data over the chain. */
int
scratch_pread(struct disk *d, chain_t *c, void *buf, size_t len, uint64_t off)
{
  int fd = scratch_fd(d, false);
  uint64_t end = off + len;

  if (fd < 0)
    return chain_pread(c, buf, len, off);
  while (off < end) {
    off_t data = lseek(fd, off, SEEK_DATA);
    if (data < 0 && errno != ENXIO)
      return bfs_error(-EIO, "%s: SEEK_DATA: %m", d->scratch_path);
    uint64_t next = data < 0 || (uint64_t)data > end ? end : (uint64_t)data;
    if (next > off) {                         /* a hole: the backup */
      int r = chain_pread(c, (char *)buf + (len - (end - off)), next - off,
                          off);
      if (r < 0)
        return r;
      off = next;
      continue;
    }
    off_t hole = lseek(fd, off, SEEK_HOLE);
    if (hole < 0)
      return bfs_error(-EIO, "%s: SEEK_HOLE: %m", d->scratch_path);
    uint64_t stop = (uint64_t)hole > end ? end : (uint64_t)hole;
    ssize_t n = pread(fd, (char *)buf + (len - (end - off)), stop - off, off);
    if (n <= 0)
      return bfs_error(-EIO, "%s: read: %m", d->scratch_path);
    off += n;
  }
  return 0;
}

int
scratch_pwrite(struct disk *d, chain_t *c, const void *buf, size_t len,
               uint64_t off)
{
  int fd = scratch_fd(d, true);
  uint64_t end = off + len;
  bool partial = off % blk || end % blk;
  int r = 0;

  if (fd < 0)
    return -EIO;
  if (!partial) {
    pthread_rwlock_rdlock(&d->wlock);
    if (pwrite(fd, buf, len, off) != (ssize_t)len)
      r = bfs_error(-EIO, "%s: write: %m", d->scratch_path);
    pthread_rwlock_unlock(&d->wlock);
    return r;
  }
  /* widen to whole blocks: read the edges, lay the new bytes over them */
  uint64_t wstart = off / blk * blk;
  uint64_t wend = (end + blk - 1) / blk * blk;
  if (wend > d->size)
    wend = d->size;
  CLEANUP_FREE char *tmp = malloc(wend - wstart);
  if (!tmp)
    return -ENOMEM;
  pthread_rwlock_wrlock(&d->wlock);
  if (wstart < off)
    r = scratch_pread(d, c, tmp, blk, wstart);
  if (r == 0 && end < wend) {
    uint64_t last = (wend - 1) / blk * blk;
    r = scratch_pread(d, c, tmp + (last - wstart), wend - last, last);
  }
  if (r == 0) {
    memcpy(tmp + (off - wstart), buf, len);
    if (pwrite(fd, tmp, wend - wstart, wstart) != (ssize_t)(wend - wstart))
      r = bfs_error(-EIO, "%s: write: %m", d->scratch_path);
  }
  pthread_rwlock_unlock(&d->wlock);
  return r;
}

/* Where data or a hole starts at or after pos in the scratch file alone
 * (size when none). */
static uint64_t
scratch_seek(int fd, uint64_t pos, int whence, uint64_t size)
{
  off_t r = lseek(fd, pos, whence);
  return r < 0 || (uint64_t)r > size ? size : (uint64_t)r;
}

/* SEEK_DATA/SEEK_HOLE over the union of the chain's and the scratch
 * file's data.  chain_seek is the chain-only answer function. */
int
scratch_lseek(struct disk *d, uint64_t size, uint64_t pos, int whence,
              int (*chain_seek)(void *, uint64_t, int, uint64_t *),
              void *opaque, uint64_t *out)
{
  int fd = scratch_fd(d, false);
  uint64_t a, b;
  int r;

  if (fd < 0)
    return chain_seek(opaque, pos, whence, out);
  if (whence == SEEK_DATA) {
    if ((r = chain_seek(opaque, pos, SEEK_DATA, &a)) < 0)
      return r;
    b = scratch_seek(fd, pos, SEEK_DATA, size);
    *out = a < b ? a : b;
    return 0;
  }
  /* a hole only where both are holes */
  while (pos < size) {
    if ((r = chain_seek(opaque, pos, SEEK_HOLE, &a)) < 0)
      return r;
    b = scratch_seek(fd, pos, SEEK_HOLE, size);
    if (a == pos && b == pos)
      break;
    pos = a > b ? a : b;
  }
  *out = pos < size ? pos : size;
  return 0;
}
