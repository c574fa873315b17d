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

#include "blk/vma-int.h"
#include "common/error.h"
#include "common/ioutil.h"

struct vma_blk {
  struct bfs_blk b;
  struct blk_io *io;
  const struct vma_index *x;
  struct vma_index *own;           /* built here, freed at close */
  struct vma_gen *gen;             /* NULL, or the source's copy it reads */
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

/* a read of a copy dropped under it (vma-source.c): say why */
static int
vblk_pread_checked(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct vma_blk *v = (struct vma_blk *)b;
  int r = vblk_pread(b, buf, len, off);

  if (r < 0 && v->gen && vma_gen_stale(v->gen))
    r = bfs_error(-EIO, "%s: the archive was replaced: its unpacked copy "
                  "for this open disk is dropped (reopen to read the new "
                  "archive)", v->name);
  return r;
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
  vma_gen_unref(v->gen);
  free(v->name);
  free(v);
}

static const struct bfs_blk_ops vma_ops = {
  .name = "vma",
  .pread = vblk_pread_checked,
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
  return vma_blk_open_gen(io, options, x, NULL, out);
}

int
vma_blk_open_gen(struct blk_io *io, const char *options,
                 const struct vma_index *x, struct vma_gen *gen,
                 struct bfs_blk **out)
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
    vma_gen_unref(gen);
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
    vma_gen_unref(gen);
    blk_io_close(io);
    return r;
  }
  sprintf(v->name, "%s:%s", nm, d->name);
  v->io = io;
  v->x = x;
  v->own = own;
  v->gen = gen;
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

