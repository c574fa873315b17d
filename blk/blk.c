/* blk.c — the checked entry points every caller of a bfs_blk goes through.
 *
 * Range checks live here once (a request past the size is -EINVAL naming
 * the disk), and the answers of block_status are checked against the
 * contract, so a buggy or hostile layer cannot make a caller loop or run
 * past a buffer.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blk/blk.h"
#include "common/checked.h"
#include "common/error.h"

int
bfs_blk_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  if (!ck_range_ok(off, len, b->size))
    return bfs_error(-EINVAL, "%s: read of %zu bytes at %" PRIu64 " past the "
                     "virtual size %" PRIu64, b->name, len, off, b->size);
  if (len == 0)
    return 0;
  return b->ops->pread(b, buf, len, off);
}

int
bfs_blk_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                     struct bfs_blk_status *st)
{
  int r;

  if (off >= b->size || max == 0)
    return bfs_error(-EINVAL, "%s: block status at %" PRIu64 " outside the "
                     "virtual size %" PRIu64, b->name, off, b->size);
  if (max > b->size - off)
    max = b->size - off;
  memset(st, 0, sizeof *st);
  st->fd = -1;
  r = b->ops->block_status(b, off, max, st);
  if (r < 0)
    return r;
  if (st->len == 0 || st->len > max)
    return bfs_error(-EIO, "%s: block status at %" PRIu64 " returned %"
                     PRIu64 " bytes (max %" PRIu64 ")", b->name, off, st->len,
                     max);
  if (st->kind == BFS_BLK_HOLE)
    st->layer = -1;
  return 0;
}

void
bfs_blk_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  if (off >= b->size || !b->ops->prefetch)
    return;
  if (len > b->size - off)
    len = b->size - off;
  b->ops->prefetch(b, off, len);
}

int
bfs_blk_pwrite(struct bfs_blk *b, const void *buf, size_t len, uint64_t off)
{
  if (!b->ops->pwrite)
    return bfs_error(-EROFS, "%s: read-only disk", b->name);
  if (!ck_range_ok(off, len, b->size))
    return bfs_error(-EINVAL, "%s: write of %zu bytes at %" PRIu64 " past "
                     "the virtual size %" PRIu64, b->name, len, off, b->size);
  if (len == 0)
    return 0;
  return b->ops->pwrite(b, buf, len, off);
}

int
bfs_blk_flush(struct bfs_blk *b)
{
  return b->ops->flush ? b->ops->flush(b) : 0;
}

const struct bfs_blk_info *
bfs_blk_info(const struct bfs_blk *b)
{
  return &b->info;
}

struct bfs_blk *
bfs_blk_layer(struct bfs_blk *b, size_t i)
{
  for (; b; b = b->below) {
    if (b->info.is_filter)
      continue;
    if (i-- == 0)
      return b;
  }
  return NULL;
}

size_t
bfs_blk_depth(struct bfs_blk *b)
{
  size_t n = 0;
  for (; b; b = b->below)
    n += !b->info.is_filter;
  return n;
}

void
bfs_blk_close(struct bfs_blk *b)
{
  while (b) {
    struct bfs_blk *below = b->below;
    b->ops->close(b);
    b = below;
  }
}
