/* restic-blk.c — the block-layer driver over a restic file (restic-blk.h).
 *
 * A thin adapter: the restic reader is already thread-safe, bounded and
 * exact (a range it cannot read correctly is -EIO naming pack and blob),
 * so each op maps onto one restic_file call (prefetch: the blobs decode
 * into the repository's LRU on the caller's thread, a read-ahead worker).  The blob extent is given as
 * the unit a cache above keeps whole (unit_off, unit_len).
 */
#include "blk/restic-blk.h"

#include "common/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct restic_blk {
  struct bfs_blk b;
  struct restic_file *f;
  char *name;
};

static int
rblk_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  return restic_file_pread(((struct restic_blk *)b)->f, buf, len, off);
}

static int
rblk_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                  struct bfs_blk_status *st)
{
  struct restic_blk *r = (struct restic_blk *)b;
  uint64_t start, len;
  bool zero;
  int ret = restic_file_extent(r->f, off, &start, &len, &zero);
  if (ret < 0)
    return ret;
  st->len = start + len - off;
  if (st->len > max)
    st->len = max;
  st->kind = zero ? BFS_BLK_ZERO : BFS_BLK_DATA;
  st->layer = 0;
  st->fd = -1;
  st->unit_off = start;
  st->unit_len = len;
  return 0;
}

static void
rblk_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  restic_file_prefetch(((struct restic_blk *)b)->f, off, len);
}

static void
rblk_close(struct bfs_blk *b)
{
  struct restic_blk *r = (struct restic_blk *)b;
  restic_file_close(r->f);
  free(r->name);
  free(r);
}

static const struct bfs_blk_ops restic_blk_ops = {
  .name = "restic",
  .pread = rblk_pread,
  .block_status = rblk_block_status,
  .prefetch = rblk_prefetch,
  .close = rblk_close,
};

int
blk_restic_open(struct restic_file *f, const char *name, struct bfs_blk **out)
{
  struct restic_blk *r = NULL;
  int ret = 0;

  *out = NULL;
  if (restic_file_size(f) == 0)
    ret = bfs_error(-EIO, "%s: empty file, not a disk image", name);
  else if (!(r = calloc(1, sizeof *r)) || !(r->name = strdup(name)))
    ret = bfs_error(-ENOMEM, "%s: out of memory", name);
  if (ret < 0) {
    if (r)
      free(r);
    restic_file_close(f);
    return ret;
  }
  r->f = f;
  r->b.ops = &restic_blk_ops;
  r->b.name = r->name;
  r->b.size = restic_file_size(f);
  r->b.info.format = "restic";
  r->b.info.virtual_size = r->b.size;
  r->b.info.file_size = r->b.size;
  *out = &r->b;
  return 0;
}
