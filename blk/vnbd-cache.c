/* vnbd-cache.c — the index cache: stream and archive indexes kept across
 * mounts and rescans, keyed by the indexed file's identity.
 *
 * virtnbdbackup streams (vnbd) and VMA archives are indexed in one pass
 * over the whole file; doing that on every open of a multi-GiB stream is
 * what this avoids.  The scan builds an index when it first meets a file
 * (it needs its metadata anyway) and stores the blob here; the disk
 * service loads it on open and rebuilds (and stores) only on a miss.
 *
 * Where: a directory next to the catalog's SQLite file, <catalog>.idx/
 * (outside the repository, mode 0700), one file per indexed file named
 * <kind>-<dev>-<ino>-<size>-<mtime_ns> (kind "vnbd", "vma"), written to a
 * temporary name and renamed, so a reader sees a whole blob or none.  The
 * name is the identity, so a changed file is a miss and never a stale hit;
 * every blob is still checked again by its decoder (vnbd_index_decode,
 * vma_index_load: sizes, every record against the file), so a corrupt
 * cache file is an error that falls back to a rebuild, never a wild read.
 * Entries of files that are gone are not collected: they are small (tens
 * of bytes per extent) and die with the catalog directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/vnbd.h"
#include "common/error.h"
#include "common/ioutil.h"

#define IDXCACHE_MAX (1u << 30)

int
blk_idxcache_open(const char *catalog_path)
{
  if (!catalog_path || !*catalog_path)
    return -ENOENT;
  size_t n = strlen(catalog_path) + 5;
  char *dir = malloc(n);
  if (!dir)
    return -ENOMEM;
  snprintf(dir, n, "%s.idx", catalog_path);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    int e = errno;
    free(dir);
    return -e;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int e = errno;
  free(dir);
  return fd < 0 ? -e : fd;
}

static void
entry_name(char buf[static 128], const char *kind, const struct stat *st)
{
  snprintf(buf, 128, "%s-%" PRIu64 "-%" PRIu64 "-%" PRIu64 "-%" PRId64,
           kind, (uint64_t)st->st_dev, (uint64_t)st->st_ino,
           (uint64_t)st->st_size,
           (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec);
}

int
blk_idxcache_load(int dirfd, const char *kind, const struct stat *st,
                  void **blob, size_t *len)
{
  char name[128];
  struct stat cs;

  *blob = NULL;
  *len = 0;
  if (dirfd < 0)
    return -ENOENT;
  entry_name(name, kind, st);
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &cs) < 0 || !S_ISREG(cs.st_mode) || cs.st_size <= 0 ||
      (uint64_t)cs.st_size > IDXCACHE_MAX) {
    close(fd);
    return -EINVAL;
  }
  void *p = malloc((size_t)cs.st_size);
  int r = p ? bfs_pread_all(fd, p, (size_t)cs.st_size, 0) : -ENOMEM;
  close(fd);
  if (r < 0) {
    free(p);
    return r;
  }
  *blob = p;
  *len = (size_t)cs.st_size;
  return 0;
}

int
blk_idxcache_store(int dirfd, const char *kind, const struct stat *st,
                   const void *blob, size_t len)
{
  char name[128], tmp[160];

  if (dirfd < 0)
    return -ENOENT;
  entry_name(name, kind, st);
  snprintf(tmp, sizeof tmp, ".%s.%ld", name, (long)getpid());
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
                  O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  int r = bfs_write_all(fd, blob, len);
  if (close(fd) < 0 && r == 0)
    r = -errno;
  if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
    r = -errno;
  if (r < 0)
    unlinkat(dirfd, tmp, 0);
  return r;
}
