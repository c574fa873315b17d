/* source.c — a disk to restore from, read by extents.
 *
 * A source says where its data is (extent: data or hole) and reads bytes.
 * This file has the mounted kind, BACKUP_DIR/disks/<disk>.img of a backupfs
 * mount, whose holes the mount reports through lseek(SEEK_DATA/SEEK_HOLE);
 * source-repo.c has the VM@TIME kind read straight from a repository.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "restore/restore-int.h"

struct mounted {
  int fd;
  char *path;
};

static int
m_extent(struct rsrc *s, uint64_t off, uint64_t *len, bool *data)
{
  struct mounted *m = s->priv;
  off_t d, h;

  d = lseek(m->fd, off, SEEK_DATA);
  if (d < 0 && errno == ENXIO) {          /* only a hole up to the end */
    *data = false;
    *len = s->size - off;
    return 0;
  }
  if (d < 0 && errno == EINVAL) {         /* no SEEK_DATA: all data */
    *data = true;
    *len = s->size - off;
    return 0;
  }
  if (d < 0)
    return bfs_error(-errno, "%s: SEEK_DATA: %s", m->path, strerror(errno));
  if ((uint64_t) d > off) {
    *data = false;
    *len = ((uint64_t) d < s->size ? (uint64_t) d : s->size) - off;
    return 0;
  }
  h = lseek(m->fd, off, SEEK_HOLE);
  if (h < 0)
    return bfs_error(-errno, "%s: SEEK_HOLE: %s", m->path, strerror(errno));
  if ((uint64_t) h <= off || (uint64_t) h > s->size)
    h = s->size;
  *data = true;
  *len = h - off;
  return 0;
}

static int
m_pread(struct rsrc *s, void *buf, size_t len, uint64_t off)
{
  struct mounted *m = s->priv;
  char *p = buf;

  while (len) {
    ssize_t r = pread(m->fd, p, len, off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return bfs_error(-errno, "%s: read at %llu: %s", m->path,
                       (unsigned long long) off, strerror(errno));
    if (r == 0)
      return bfs_error(-EIO, "%s: unexpected end of file at %llu", m->path,
                       (unsigned long long) off);
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}

static int
m_qemu_spec(struct rsrc *s, char **spec, const char **fmt)
{
  struct mounted *m = s->priv;

  *spec = strdup(m->path);
  *fmt = "raw";
  return *spec ? 0 : bfs_error(-ENOMEM, "out of memory");
}

static void
m_close(struct rsrc *s)
{
  struct mounted *m = s->priv;

  if (m->fd >= 0)
    close(m->fd);
  free(m->path);
  free(m);
}

static void
m_prefetch(struct rsrc *s, uint64_t off, uint64_t len)
{
  struct mounted *m = s->priv;
  posix_fadvise(m->fd, (off_t) off, (off_t) len, POSIX_FADV_WILLNEED);
}

static const struct rsrc_ops mounted_ops = {
  m_extent, m_pread, m_qemu_spec, m_close, m_prefetch,
};

int
restore_src_mounted(const char *backup_dir, const char *disk,
                    struct rsrc **out)
{
  CLEANUP_FREE char *rel = NULL;
  struct rsrc *s;
  struct mounted *m;
  struct stat st;
  char real[PATH_MAX];

  if (strchr(disk, '/') || !strcmp(disk, "..") || !strcmp(disk, "."))
    return bfs_error(-EINVAL, "%s: not a disk name", disk);
  if (asprintf(&rel, "%s/disks/%s.img", backup_dir, disk) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  /* resolve latest -> <time> so the source never moves under us */
  if (!realpath(rel, real))
    return bfs_error(-errno, "%s: %s", rel, strerror(errno));

  s = calloc(1, sizeof *s);
  m = calloc(1, sizeof *m);
  if (!s || !m || !(m->path = strdup(real))) {
    free(s);
    free(m);
    return bfs_error(-ENOMEM, "out of memory");
  }
  s->ops = &mounted_ops;
  s->priv = m;
  s->name = m->path;
  m->fd = open(real, O_RDONLY | O_CLOEXEC);
  if (m->fd < 0 || fstat(m->fd, &st) < 0) {
    int e = errno;
    m_close(s);
    free(s);
    return bfs_error(-e, "%s: %s%s", real, strerror(e),
                     e == EIO ? " (the backup is broken: see backup.json "
                                "status)" : "");
  }
  if (!S_ISREG(st.st_mode)) {
    m_close(s);
    free(s);
    return bfs_error(-EINVAL, "%s: not a regular file", real);
  }
  s->size = st.st_size;
  *out = s;
  return 0;
}

void
restore_src_close(struct rsrc *s)
{
  if (!s)
    return;
  s->ops->close(s);
  free(s);
}

uint64_t
restore_src_size(const struct rsrc *s)
{
  return s->size;
}

const char *
restore_src_name(const struct rsrc *s)
{
  return s->name;
}

int
restore_src_extent(struct rsrc *s, uint64_t off, uint64_t *len, bool *data)
{
  int r = s->ops->extent(s, off, len, data);

  if (r == 0 && (*len == 0 || *len > s->size - off))
    return bfs_error(-EIO, "%s: bad extent at %llu", s->name,
                     (unsigned long long) off);
  return r;
}

int
restore_src_pread(struct rsrc *s, void *buf, size_t len, uint64_t off)
{
  return s->ops->pread(s, buf, len, off);
}

void
restore_src_prefetch(struct rsrc *s, uint64_t off, uint64_t len)
{
  if (s->ops->prefetch && off < s->size)
    s->ops->prefetch(s, off, len < s->size - off ? len : s->size - off);
}

int
restore_src_qemu_spec(struct rsrc *s, char **spec, const char **fmt)
{
  return s->ops->qemu_spec(s, spec, fmt);
}

int
restore_src_allocated(struct rsrc *s, uint64_t *bytes)
{
  uint64_t off = 0, sum = 0, len;
  bool data;

  while (off < s->size) {
    int r = restore_src_extent(s, off, &len, &data);
    if (r < 0)
      return r;
    if (data)
      sum += len;
    off += len;
  }
  *bytes = sum;
  return 0;
}
