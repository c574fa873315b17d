/* ioutil.c — see ioutil.h. */
#include "ioutil.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

int
bfs_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = pread(fd, p, len, (off_t)off);
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
bfs_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite(fd, p, len, (off_t)off);
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
bfs_write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = write(fd, p, len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -EIO;
    p += r;
    len -= (size_t)r;
  }
  return 0;
}
