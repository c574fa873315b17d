/* vma-blk.c — one device of a VMA archive as a struct bfs_blk (vma.h).
 *
 * Everything is answered from the index: a 4 KiB block is in a cluster
 * the archive never wrote (HOLE), masked out of a written cluster (ZERO),
 * or stored in the file at the cluster's offset plus 4 KiB per stored
 * block before it (DATA, plain bytes: the fd and offset are given, so the
 * cache above reads them directly).  Runs of blocks contiguous in the file
 * are read with one pread.  The index is read-only after it is built, so
 * the blk is thread-safe without a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/vma.h"
#include "blk/vnbd.h"            /* the index cache */
#include "common/error.h"
#include "common/ioutil.h"

struct vma_blk {
  struct bfs_blk b;
  struct blk_io *io;
  const struct vma_index *x;
  struct vma_index *own;           /* built here, freed at close */
  const struct vma_dev *d;
  char *name;
};

enum { B_HOLE, B_ZERO, B_DATA };

/* kind of the 4 KiB block holding off; for DATA its file offset */
static int
block_at(const struct vma_dev *d, uint64_t off, uint64_t *foff)
{
  uint64_t e = d->map[off / VMA_CLUSTER_SIZE];
  unsigned bi = (unsigned)(off % VMA_CLUSTER_SIZE / VMA_BLOCK_SIZE);
  unsigned mask = e & 0xffff;

  if (!e)
    return B_HOLE;
  if (!(mask >> bi & 1))
    return B_ZERO;
  *foff = (e >> 16) * 512 +
          VMA_BLOCK_SIZE * (uint64_t)__builtin_popcount(mask & ((1u << bi) - 1)) +
          off % VMA_BLOCK_SIZE;
  return B_DATA;
}

static int
vblk_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct vma_blk *v = (struct vma_blk *)b;
  unsigned char *p = buf;
  uint64_t run_f = 0, run_n = 0;
  unsigned char *run_p = NULL;
  int r;

  while (len) {
    uint64_t f = 0;
    size_t n = VMA_BLOCK_SIZE - off % VMA_BLOCK_SIZE;
    int k = block_at(v->d, off, &f);

    if (n > len)
      n = len;
    if (k == B_DATA && run_n && run_f + run_n == f) {
      run_n += n;
    }
    else {
      if (run_n && (r = blk_io_read(v->io, run_p, run_n, run_f,
                                    "VMA cluster data")) < 0)
        return r;
      run_n = 0;
      if (k == B_DATA) {
        run_f = f;
        run_n = n;
        run_p = p;
      }
      else
        memset(p, 0, n);
    }
    p += n;
    off += n;
    len -= n;
  }
  if (run_n && (r = blk_io_read(v->io, run_p, run_n, run_f,
                                "VMA cluster data")) < 0)
    return r;
  return 0;
}

static int
vblk_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                  struct bfs_blk_status *st)
{
  struct vma_blk *v = (struct vma_blk *)b;
  uint64_t f0 = 0, f, len = 0;
  int k0 = block_at(v->d, off, &f0), k;

  while (len < max) {
    uint64_t n = VMA_BLOCK_SIZE - (off + len) % VMA_BLOCK_SIZE;
    f = 0;
    if (off + len >= v->b.size)
      break;
    k = block_at(v->d, off + len, &f);
    if (k != k0 || (k == B_DATA && f != f0 + len))
      break;
    len += n;
  }
  if (len > max)
    len = max;
  st->len = len;
  st->kind = k0 == B_HOLE ? BFS_BLK_HOLE : k0 == B_ZERO ? BFS_BLK_ZERO
                                                       : BFS_BLK_DATA;
  st->layer = k0 == B_HOLE ? -1 : 0;
  if (k0 == B_DATA) {
    st->fd = blk_io_fd_of(v->io);
    st->fd_off = f0;
  }
  return 0;
}

static void
vblk_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  struct vma_blk *v = (struct vma_blk *)b;
  uint64_t f0 = 0, f1 = 0, last = off + len - 1;

  if (block_at(v->d, off, &f0) == B_DATA &&
      block_at(v->d, last, &f1) == B_DATA && f1 > f0)
    blk_io_prefetch(v->io, f0, f1 - f0 + 1);
}

static void
vblk_close(struct bfs_blk *b)
{
  struct vma_blk *v = (struct vma_blk *)b;
  blk_io_close(v->io);
  vma_index_free(v->own);
  free(v->name);
  free(v);
}

static const struct bfs_blk_ops vma_ops = {
  .name = "vma",
  .pread = vblk_pread,
  .block_status = vblk_block_status,
  .prefetch = vblk_prefetch,
  .close = vblk_close,
};

static const struct vma_dev *
pick_dev(const struct vma_index *x, const char *options, const char *nm)
{
  const struct vma_dev *d = NULL;

  if (options && !strncmp(options, "dev=", 4) && options[4])
    d = vma_index_dev(x, options + 4);
  else if (options && !strncmp(options, "devid=", 6) && options[6]) {
    char *end;
    unsigned long id = strtoul(options + 6, &end, 10);
    for (size_t i = 0; !*end && i < x->ndev; i++)
      if (x->devs[i].id == id)
        d = &x->devs[i];
  }
  else {
    bfs_error(-EINVAL, "%s: vma driver needs the option dev=NAME or devid=N"
              " (got '%s')", nm, options ? options : "");
    return NULL;
  }
  if (!d)
    bfs_error(-ENOENT, "%s: the archive has no device '%s'", nm,
              strchr(options, '=') + 1);
  return d;
}

int
blk_vma_open_index(struct blk_io *io, const char *options,
                   const struct vma_index *x, struct bfs_blk **out)
{
  const char *nm = blk_io_name(io);
  struct vma_blk *v;
  struct vma_index *own = NULL;
  const struct vma_dev *d;
  int r = 0;

  *out = NULL;
  if (!x) {
    if ((r = vma_index_build(io, &own)) < 0) {
      blk_io_close(io);
      return r;
    }
    x = own;
  }
  else if (x->archive_size != blk_io_size(io)) {
    blk_io_close(io);
    return bfs_error(-ESTALE, "%s: the VMA index is for an archive of %"
                     PRIu64 " bytes, the file has %" PRIu64, nm,
                     x->archive_size, blk_io_size(io));
  }
  v = NULL;
  if (!(d = pick_dev(x, options, nm)))
    r = options && strchr(options, '=') ? -ENOENT : -EINVAL;
  else if ((r = vma_dev_check(x, d, nm)) < 0)
    ;
  else if (!(v = calloc(1, sizeof *v)) ||
           !(v->name = malloc(strlen(nm) + strlen(d->name) + 2)))
    r = bfs_error(-ENOMEM, "%s: out of memory", nm);
  if (r < 0) {
    free(v);
    vma_index_free(own);
    blk_io_close(io);
    return r;
  }
  sprintf(v->name, "%s:%s", nm, d->name);
  v->io = io;
  v->x = x;
  v->own = own;
  v->d = d;
  v->b.ops = &vma_ops;
  v->b.name = v->name;
  v->b.size = d->size;
  v->b.info.format = "vma";
  v->b.info.version = 1;
  v->b.info.virtual_size = d->size;
  v->b.info.file_size = blk_io_size(io);
  v->b.info.cluster_bits = 16;
  *out = &v->b;
  return 0;
}

int
blk_vma_open(struct blk_io *io, const char *options, struct bfs_blk *backing,
             struct bfs_blk **out)
{
  return blk_vma_open_ctx(io, options, NULL, backing, out);
}

int
blk_vma_open_ctx(struct blk_io *io, const char *options, void *ctx,
                 struct bfs_blk *backing, struct bfs_blk **out)
{
  const struct vma_source *src = ctx;
  int r;

  *out = NULL;
  if (backing) {
    bfs_blk_close(backing);
    r = bfs_error(-EINVAL, "%s: a VMA device has no backing file",
                  blk_io_name(io));
    blk_io_close(io);
    return r;
  }
  if (src && src->fd >= 0) {          /* read the unpacked copy */
    struct blk_io *copy;
    int fd = fcntl(src->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      r = bfs_error(-errno, "%s: dup: %s", blk_io_name(io), strerror(errno));
      blk_io_close(io);
      return r;
    }
    r = blk_io_fd(fd, blk_io_name(io), &copy);
    blk_io_close(io);
    if (r < 0)
      return r;
    io = copy;
  }
  return blk_vma_open_index(io, options, src ? src->index : NULL, out);
}

int
vma_source_open(int in_fd, const char *name, int cache_dirfd,
                int unpack_dirfd, struct vma_source **out, bool *hit)
{
  struct vma_source *s = calloc(1, sizeof *s);
  struct blk_io *io = NULL;
  struct stat st;
  unsigned char magic[4] = { 0 };
  int r, fd;

  *out = NULL;
  *hit = false;
  if (!s)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  s->fd = -1;
  if (fstat(in_fd, &st) < 0) {
    r = bfs_error(-errno, "%s: fstat: %s", name, strerror(errno));
    free(s);
    return r;
  }
  if ((r = bfs_pread_all(in_fd, magic, 4, 0)) < 0 || memcmp(magic, "VMA", 4)) {
    /* not a plain archive: zstd or lzop, unpacked (vma_unpack says which) */
    if (unpack_dirfd < 0) {
      free(s);
      return bfs_error(-ENOENT, "%s: a compressed archive needs an unpack "
                       "directory", name);
    }
    if ((r = vma_unpack(in_fd, name, unpack_dirfd, &s->fd)) < 0) {
      free(s);
      return r;
    }
  }
  fd = fcntl(s->fd >= 0 ? s->fd : in_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    r = bfs_error(-errno, "%s: dup: %s", name, strerror(errno));
    vma_source_free(s);
    return r;
  }
  if ((r = blk_io_fd(fd, name, &io)) < 0) {
    vma_source_free(s);
    return r;
  }
  unsigned char *blob = NULL;
  size_t len = 0;
  if (blk_idxcache_load(cache_dirfd, "vma", &st, (void **)&blob, &len) == 0) {
    r = vma_index_load(blob, len, blk_io_size(io), name, &s->index);
    free(blob);
    *hit = r == 0;
  }
  if (!s->index) {
    if ((r = vma_index_build(io, &s->index)) < 0) {
      blk_io_close(io);
      vma_source_free(s);
      return r;
    }
    if (vma_index_save(s->index, &blob, &len) == 0) {
      blk_idxcache_store(cache_dirfd, "vma", &st, blob, len);
      free(blob);
    }
  }
  blk_io_close(io);
  *out = s;
  return 0;
}

void
vma_source_free(struct vma_source *s)
{
  if (!s)
    return;
  vma_index_free(s->index);
  if (s->fd >= 0)
    close(s->fd);
  free(s);
}
