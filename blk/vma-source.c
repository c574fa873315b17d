/* vma-source.c — what the devices of one archive share (vma.h: struct
 * vma_source): the index, and for .vma.zst / .vma.lzo the unpacked copy,
 * both of the file as it is now.
 *
 * The archive's state is a generation (struct vma_gen): the index, the
 * copy's fd and the identity (dev, ino, size, mtime) of the file they
 * were made from.  The source holds the current one; every device blk
 * opened over it holds a reference too.  A device opened over a file
 * whose identity is not the current generation's (the archive was
 * replaced: a rescan saw it, the disk service checked the new identity)
 * makes a new generation from that file, under the source's lock, and
 * drops the old one: its copy is truncated to nothing at once (the disk
 * space comes back now, not at unmount), so a device still open over it
 * reads EIO saying the archive was replaced, never the new file's bytes
 * through the old index nor zeros; the old index and fd go with the last
 * such device.  A failed rebuild (a corrupt new archive) keeps the
 * current generation and is that open's error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/vma-int.h"
#include "blk/vnbd.h"            /* the index cache */
#include "common/error.h"
#include "common/ioutil.h"
#include "common/lock.h"

struct vma_gen {
  unsigned refs;                   /* atomic */
  bool stale;                      /* atomic: replaced, copy dropped */
  struct vma_index *index;
  int fd;                          /* the unpacked copy, -1: a plain .vma */
  uint64_t dev, ino, size;
  int64_t mtime_ns;
};

struct vma_source {
  pthread_mutex_t lock;            /* cur */
  struct vma_gen *cur;
  int cache_dirfd, unpack_dirfd;   /* owned, -1: none */
};

static int64_t
mtime_ns(const struct stat *st)
{
  return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static bool
gen_is(const struct vma_gen *g, const struct stat *st)
{
  return g->dev == (uint64_t)st->st_dev && g->ino == (uint64_t)st->st_ino &&
         g->size == (uint64_t)st->st_size && g->mtime_ns == mtime_ns(st);
}

void
vma_gen_unref(struct vma_gen *g)
{
  if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL))
    return;
  vma_index_free(g->index);
  if (g->fd >= 0)
    close(g->fd);
  free(g);
}

bool
vma_gen_stale(const struct vma_gen *g)
{
  return __atomic_load_n(&g->stale, __ATOMIC_ACQUIRE);
}

/* the index of the archive in io: from the cache when an entry for st
 * loads (*hit), else built and stored */
static int
gen_index(struct blk_io *io, const char *name, int cache_dirfd,
          const struct stat *st, struct vma_index **out, bool *hit)
{
  unsigned char *blob = NULL;
  size_t len = 0;
  int r;

  *out = NULL;
  if (blk_idxcache_load(cache_dirfd, "vma", st, (void **)&blob, &len) == 0) {
    r = vma_index_load(blob, len, blk_io_size(io), name, out);
    free(blob);
    *hit = r == 0;
  }
  if (*out)
    return 0;
  if ((r = vma_index_build(io, out)) < 0)
    return r;
  if (vma_index_save(*out, &blob, &len) == 0) {
    blk_idxcache_store(cache_dirfd, "vma", st, blob, len);
    free(blob);
  }
  return 0;
}

/* a generation of the archive in in_fd (not closed) */
static int
gen_open(int in_fd, const char *name, int cache_dirfd, int unpack_dirfd,
         struct vma_gen **out, bool *hit)
{
  struct vma_gen *g = calloc(1, sizeof *g);
  struct blk_io *io = NULL;
  struct stat st;
  unsigned char magic[4] = { 0 };
  int r, fd;

  *out = NULL;
  *hit = false;
  if (!g)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  g->refs = 1;
  g->fd = -1;
  if (fstat(in_fd, &st) < 0) {
    r = bfs_error(-errno, "%s: fstat: %s", name, strerror(errno));
    free(g);
    return r;
  }
  g->dev = (uint64_t)st.st_dev;
  g->ino = (uint64_t)st.st_ino;
  g->size = (uint64_t)st.st_size;
  g->mtime_ns = mtime_ns(&st);
  if (bfs_pread_all(in_fd, magic, 4, 0) < 0 || memcmp(magic, "VMA", 4)) {
    /* not a plain archive: zstd or lzop, unpacked (vma_unpack says which) */
    if (unpack_dirfd < 0)
      r = bfs_error(-ENOENT, "%s: a compressed archive needs an unpack "
                    "directory", name);
    else
      r = vma_unpack(in_fd, name, unpack_dirfd, &g->fd);
    if (r < 0) {
      free(g);
      return r;
    }
  }
  fd = fcntl(g->fd >= 0 ? g->fd : in_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    r = bfs_error(-errno, "%s: dup: %s", name, strerror(errno));
  else if ((r = blk_io_fd(fd, name, &io)) == 0) {
    r = gen_index(io, name, cache_dirfd, &st, &g->index, hit);
    blk_io_close(io);
  }
  if (r < 0) {
    vma_gen_unref(g);
    return r;
  }
  *out = g;
  return 0;
}

static int
dup_or_none(int fd)
{
  return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int
vma_source_open(int in_fd, const char *name, int cache_dirfd,
                int unpack_dirfd, struct vma_source **out, bool *hit)
{
  struct vma_source *s = calloc(1, sizeof *s);
  int r;

  *out = NULL;
  *hit = false;
  if (!s)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  s->cache_dirfd = dup_or_none(cache_dirfd);
  s->unpack_dirfd = dup_or_none(unpack_dirfd);
  pthread_mutex_init(&s->lock, NULL);
  if ((r = gen_open(in_fd, name, s->cache_dirfd, s->unpack_dirfd, &s->cur,
                    hit)) < 0) {
    vma_source_free(s);
    return r;
  }
  *out = s;
  return 0;
}

const struct vma_index *
vma_source_index(const struct vma_source *s)
{
  return s->cur->index;
}

void
vma_source_free(struct vma_source *s)
{
  if (!s)
    return;
  vma_gen_unref(s->cur);
  if (s->cache_dirfd >= 0)
    close(s->cache_dirfd);
  if (s->unpack_dirfd >= 0)
    close(s->unpack_dirfd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* a reference to the generation of the file in io (lfd, -1: a memory io,
 * taken as the current one), made now if the file was replaced */
static int
source_gen(struct vma_source *s, struct blk_io *io, struct vma_gen **out)
{
  struct stat st;
  struct vma_gen *g = NULL;
  bool hit;
  int lfd = blk_io_fd_of(io), r;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&s->lock);
  if (lfd >= 0 && fstat(lfd, &st) < 0)
    return bfs_error(-errno, "%s: fstat: %s", blk_io_name(io),
                     strerror(errno));
  if (lfd >= 0 && !gen_is(s->cur, &st)) {
    if ((r = gen_open(lfd, blk_io_name(io), s->cache_dirfd, s->unpack_dirfd,
                      &g, &hit)) < 0)
      return r;
    bfs_log(BFS_LOG_INFO, "%s: the archive was replaced: %s", blk_io_name(io),
            g->fd >= 0 ? "unpacked again, the old copy dropped"
                       : "indexed again");
    __atomic_store_n(&s->cur->stale, true, __ATOMIC_RELEASE);
    if (s->cur->fd >= 0 && ftruncate(s->cur->fd, 0) < 0)
      bfs_log(BFS_LOG_WARN, "%s: dropping the old unpacked copy: %s",
              blk_io_name(io), strerror(errno));
    vma_gen_unref(s->cur);
    s->cur = g;
  }
  g = s->cur;
  __atomic_add_fetch(&g->refs, 1, __ATOMIC_ACQ_REL);
  *out = g;
  return 0;
}

int
blk_vma_open_ctx(struct blk_io *io, const char *options, void *ctx,
                 struct bfs_blk *backing, struct bfs_blk **out)
{
  struct vma_gen *g = NULL;
  int r;

  *out = NULL;
  if (backing) {
    bfs_blk_close(backing);
    r = bfs_error(-EINVAL, "%s: a VMA device has no backing file",
                  blk_io_name(io));
    blk_io_close(io);
    return r;
  }
  if (!ctx)
    return blk_vma_open_index(io, options, NULL, out);
  if ((r = source_gen(ctx, io, &g)) < 0) {
    blk_io_close(io);
    return r;
  }
  if (g->fd >= 0) {                   /* read the unpacked copy */
    struct blk_io *copy;
    int fd = fcntl(g->fd, F_DUPFD_CLOEXEC, 0);
    r = fd < 0 ? bfs_error(-errno, "%s: dup: %s", blk_io_name(io),
                           strerror(errno))
               : blk_io_fd(fd, blk_io_name(io), &copy);
    blk_io_close(io);
    if (r < 0) {
      vma_gen_unref(g);
      return r;
    }
    io = copy;
  }
  return vma_blk_open_gen(io, options, g->index, g, out);
}
