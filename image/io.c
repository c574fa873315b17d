/* io.c — the two struct img_io back ends: a read-only file (pread, so any
 * number of threads can share one descriptor) and a caller-owned memory
 * buffer (tests and fuzzers).  Repository files are opened beneath the
 * repository's directory descriptor (common/beneath.h): no symlink is
 * followed, only regular files pass. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/beneath.h"
#include "common/checked.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "image/internal.h"

static int
file_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
  int fd = (int)(intptr_t)opaque;
  char *p = buf;

  while (len > 0) {
    ssize_t r = pread(fd, p, len, (off_t)off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -EIO;               /* short read: the file ended early */
    p += r;
    len -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static void
file_close(void *opaque)
{
  close((int)(intptr_t)opaque);
}

int
img_io_file(const char *path, struct img_io *io)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;

  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  if (fstat(fd, &st) < 0)
    return bfs_error(-errno, "%s: stat: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return bfs_error(-EISDIR, "%s: is a directory", path);
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0)
      return bfs_error(-errno, "%s: seek: %s", path, strerror(errno));
    io->size = (uint64_t)end;
  }
  else
    io->size = (uint64_t)st.st_size;
  io->pread = file_pread;
  io->close = file_close;
  io->opaque = (void *)(intptr_t)TAKE_FD(fd);
  return 0;
}

int
img_io_file_beneath(int dirfd, const char *root, const char *rel,
                    struct img_io *io)
{
  CLEANUP_CLOSE int fd = bfs_open_beneath(dirfd, root, rel);
  struct stat st;

  if (fd < 0)
    return fd;
  if (fstat(fd, &st) < 0)
    return bfs_error(-errno, "%s: stat: %s", rel, strerror(errno));
  io->size = (uint64_t)st.st_size;
  io->pread = file_pread;
  io->close = file_close;
  io->opaque = (void *)(intptr_t)TAKE_FD(fd);
  return 0;
}

int
img_io_file_stat(const struct img_io *io, struct stat *st)
{
  if (io->pread != file_pread)
    return -ENOTSUP;
  return fstat((int)(intptr_t)io->opaque, st) < 0 ? -errno : 0;
}

struct mem_io {
  const unsigned char *buf;
  size_t len;
};

static int
mem_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
  const struct mem_io *m = opaque;
  if (!ck_range_ok(off, len, m->len))
    return -EIO;
  memcpy(buf, m->buf + off, len);
  return 0;
}

static void
mem_close(void *opaque)
{
  free(opaque);
}

void
img_io_memory(const void *buf, size_t len, struct img_io *io)
{
  struct mem_io *m = malloc(sizeof *m);
  if (!m)
    abort();                      /* a few bytes: out of memory is fatal */
  m->buf = buf;
  m->len = len;
  io->pread = mem_pread;
  io->close = mem_close;
  io->opaque = m;
  io->size = len;
}

void
img_io_hint_sequential(const struct img_io *io)
{
  if (io->pread == file_pread)
    posix_fadvise((int)(intptr_t)io->opaque, 0, 0, POSIX_FADV_SEQUENTIAL);
}

void
img_io_prefetch(const struct img_io *io, uint64_t off, uint64_t len)
{
  if (io->pread == file_pread)
    posix_fadvise((int)(intptr_t)io->opaque, (off_t)off, (off_t)len,
                  POSIX_FADV_WILLNEED);
}

int
img_io_file_status(const struct img_io *io, uint64_t off, uint64_t max,
                   bool *data, uint64_t *len)
{
  int fd;
  off_t d, h;

  if (io->pread != file_pread)
    return -ENOTSUP;
  fd = (int)(intptr_t)io->opaque;
  d = lseek(fd, (off_t)off, SEEK_DATA);
  if (d < 0 && errno == ENXIO)        /* a hole up to the end of the file */
    d = (off_t)io->size;
  if (d < 0)
    return -errno;
  if ((uint64_t)d > off) {
    *data = false;
    *len = (uint64_t)d - off;
  }
  else {
    h = lseek(fd, (off_t)off, SEEK_HOLE);
    if (h < 0)
      return -errno;
    *data = true;
    *len = (uint64_t)h > off ? (uint64_t)h - off : max;
  }
  if (*len > max)
    *len = max;
  return 0;
}
