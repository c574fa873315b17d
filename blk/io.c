/* io.c — struct blk_io: the bytes of one file under a driver.
 *
 * Two back ends: an open fd (pread, so any number of threads share it; the
 * caller opened it, beneath the repository, and checked what it is) and a
 * caller-owned memory buffer (tests, fuzzers).  Every read is range-checked
 * against the size first, so a driver's metadata past the end of its file
 * is -EIO naming the file, never zeros.  No path is opened here: the only
 * path-opening code of blk/ is pathchain.c, for `backupfs image`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/blk.h"
#include "common/checked.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/ioutil.h"

struct blk_io {
  int fd;                        /* -1: memory */
  const unsigned char *mem;
  uint64_t size;
  char *name;
};

static int
io_new(const char *name, struct blk_io **out)
{
  struct blk_io *io = calloc(1, sizeof *io);

  if (!io || !(io->name = strdup(name ? name : "(image)"))) {
    free(io);
    return bfs_error(-ENOMEM, "%s: out of memory", name ? name : "(image)");
  }
  io->fd = -1;
  *out = io;
  return 0;
}

int
blk_io_fd(int fd, const char *name, struct blk_io **out)
{
  struct stat st;
  struct blk_io *io;
  int r;

  *out = NULL;
  if ((r = io_new(name, &io)) < 0) {
    close(fd);
    return r;
  }
  io->fd = fd;
  if (fstat(fd, &st) < 0) {
    r = bfs_error(-errno, "%s: stat: %s", io->name, strerror(errno));
    goto fail;
  }
  if (S_ISDIR(st.st_mode)) {
    r = bfs_error(-EISDIR, "%s: is a directory", io->name);
    goto fail;
  }
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
      r = bfs_error(-errno, "%s: seek: %s", io->name, strerror(errno));
      goto fail;
    }
    io->size = (uint64_t)end;
  }
  else
    io->size = (uint64_t)st.st_size;
  *out = io;
  return 0;
fail:
  blk_io_close(io);
  return r;
}

int
blk_io_memory(const void *buf, size_t len, const char *name,
              struct blk_io **out)
{
  int r = io_new(name, out);
  if (r < 0)
    return r;
  (*out)->mem = buf;
  (*out)->size = len;
  return 0;
}

uint64_t blk_io_size(const struct blk_io *io) { return io->size; }
const char *blk_io_name(const struct blk_io *io) { return io->name; }
int blk_io_fd_of(const struct blk_io *io) { return io->fd; }

int
blk_io_read(struct blk_io *io, void *buf, size_t len, uint64_t off,
            const char *what)
{
  int r;

  if (!ck_range_ok(off, len, io->size))
    return bfs_error(-EIO, "%s: %s at offset %#" PRIx64 " (+%zu) lies past "
                     "the end of the file (%" PRIu64 " bytes): image is "
                     "truncated or corrupt", io->name, what, off, len,
                     io->size);
  if (io->fd < 0) {
    memcpy(buf, io->mem + off, len);
    return 0;
  }
  r = bfs_pread_all(io->fd, buf, len, off);
  if (r < 0)
    return bfs_error(r == -EIO ? -EIO : r, "%s: reading %s at offset %#"
                     PRIx64 ": %s", io->name, what, off,
                     r == -EIO ? "file ended early" : strerror(-r));
  return 0;
}

int
blk_io_status(struct blk_io *io, uint64_t off, uint64_t max, bool *data,
              uint64_t *len)
{
  off_t d, h;

  *data = true;
  *len = max;
  if (io->fd < 0)
    return 0;
  d = lseek(io->fd, (off_t)off, SEEK_DATA);
  if (d < 0 && errno == ENXIO)        /* a hole up to the end of the file */
    d = (off_t)io->size;
  if (d < 0)
    return errno == EINVAL ? 0 : -errno;     /* no SEEK_DATA: all data */
  if ((uint64_t)d > off) {
    *data = false;
    *len = (uint64_t)d - off;
  }
  else {
    h = lseek(io->fd, (off_t)off, SEEK_HOLE);
    if (h < 0)
      return -errno;
    *len = (uint64_t)h > off ? (uint64_t)h - off : max;
  }
  if (*len > max)
    *len = max;
  return 0;
}

void
blk_io_prefetch(struct blk_io *io, uint64_t off, uint64_t len)
{
  if (io->fd >= 0)
    posix_fadvise(io->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
}

void
blk_io_close(struct blk_io *io)
{
  if (!io)
    return;
  if (io->fd >= 0)
    close(io->fd);
  free(io->name);
  free(io);
}
