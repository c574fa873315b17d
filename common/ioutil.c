/* ioutil.c — see ioutil.h.  The three calls share one loop (all()): the
 * retry on EINTR, the short transfer and the -EIO at end of file are the
 * same rule for each, so they are written once. */
#include "ioutil.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

enum op { OP_PREAD, OP_PWRITE, OP_WRITE };

static ssize_t
once(enum op op, int fd, const char *p, size_t len, uint64_t off)
{
  switch (op) {
  case OP_PREAD: return pread(fd, (char *)p, len, (off_t)off);
  case OP_PWRITE: return pwrite(fd, p, len, (off_t)off);
  default: return write(fd, p, len);
  }
}

static int
all(enum op op, int fd, const char *p, size_t len, uint64_t off)
{
  while (len > 0) {
    ssize_t r = once(op, fd, p, len, off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -EIO;
    p += r;
    len -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

int
bfs_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
  return all(OP_PREAD, fd, buf, len, off);
}

int
bfs_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
  return all(OP_PWRITE, fd, buf, len, off);
}

int
bfs_write_all(int fd, const void *buf, size_t len)
{
  return all(OP_WRITE, fd, buf, len, 0);
}
