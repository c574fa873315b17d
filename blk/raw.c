/* raw.c — the raw file driver: the file's bytes are the disk.
 *
 * The virtual size is the file size rounded up to 512 bytes, as QEMU
 * reports it; the tail past the end of the file reads as zeros.  Holes of a
 * sparse file (SEEK_DATA/SEEK_HOLE) are HOLE; everything else is plain
 * DATA with the file's fd and offset, so a cache above reads it directly.
 * A raw layer's contents never decide anything: no probing here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "common/error.h"

struct raw {
  struct bfs_blk b;
  struct blk_io *io;
  uint64_t fsize;
};

static int
raw_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct raw *r = (struct raw *)b;
  size_t n = len;

  if (off >= r->fsize)
    n = 0;
  else if (len > r->fsize - off)
    n = (size_t)(r->fsize - off);
  memset((char *)buf + n, 0, len - n);          /* the tail to 512 bytes */
  return n ? blk_io_read(r->io, buf, n, off, "data") : 0;
}

static int
raw_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                 struct bfs_blk_status *st)
{
  struct raw *r = (struct raw *)b;
  bool data;
  uint64_t len;
  int e;

  if (off >= r->fsize) {
    st->kind = BFS_BLK_HOLE;
    st->len = max;
    return 0;
  }
  if (max > r->fsize - off)
    max = r->fsize - off;
  e = blk_io_status(r->io, off, max, &data, &len);
  if (e < 0 || len == 0) {
    data = true;                  /* cannot tell: say data */
    len = max;
  }
  st->len = len;
  st->kind = data ? BFS_BLK_DATA : BFS_BLK_HOLE;
  st->layer = 0;
  if (data) {
    st->fd = blk_io_fd_of(r->io);
    st->fd_off = off;
  }
  return 0;
}

static void
raw_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  blk_io_prefetch(((struct raw *)b)->io, off, len);
}

static void
raw_close(struct bfs_blk *b)
{
  struct raw *r = (struct raw *)b;
  blk_io_close(r->io);
  free(r);
}

static const struct bfs_blk_ops raw_ops = {
  .name = "raw",
  .pread = raw_pread,
  .block_status = raw_block_status,
  .prefetch = raw_prefetch,
  .close = raw_close,
};

int
blk_raw_open(struct blk_io *io, const char *options, struct bfs_blk *backing,
             struct bfs_blk **out)
{
  struct raw *r;
  int e = 0;

  *out = NULL;
  if (backing)
    e = bfs_error(-EINVAL, "%s: a raw image has no backing file",
                  blk_io_name(io));
  else if (options && *options)
    e = bfs_error(-EINVAL, "%s: raw driver: unknown options '%s'",
                  blk_io_name(io), options);
  else if (blk_io_size(io) == 0)
    e = bfs_error(-EIO, "%s: empty file, not a disk image", blk_io_name(io));
  if (e < 0 || !(r = calloc(1, sizeof *r))) {
    if (e == 0)
      e = bfs_error(-ENOMEM, "%s: out of memory", blk_io_name(io));
    bfs_blk_close(backing);
    blk_io_close(io);
    return e;
  }
  r->io = io;
  r->fsize = blk_io_size(io);
  r->b.ops = &raw_ops;
  r->b.name = blk_io_name(io);
  r->b.size = (r->fsize + 511) & ~511ull;
  r->b.info.format = "raw";
  r->b.info.virtual_size = r->b.size;
  r->b.info.file_size = r->fsize;
  *out = &r->b;
  return 0;
}
