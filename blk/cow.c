/* cow.c — the copy-on-write filter: a writable disk over any read-only one.
 *
 * Written bytes go to a scratch file at their guest offset, in whole blocks
 * of COW_BLOCK bytes; a bitmap (chunks allocated on first write) says which
 * blocks the scratch holds.  Reads take written blocks from the scratch and
 * the rest from the disk below, so the backup itself is never written.
 * Block status reports written blocks as DATA of layer 0 (plain bytes of
 * the scratch file) and the layers below shifted by one.
 *
 * THREAD MODEL (the logic of the mount's scratch overlay): wlock is an
 * rwlock.  Whole-block writes take it shared (they touch only their own
 * blocks and can run in parallel); a write with a partial block takes it
 * exclusive, reads the block's old bytes, lays the new bytes over them and
 * writes whole blocks.  Bits are set with atomics after the data is
 * written, so a reader sees either the old bytes or the new ones.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/ioutil.h"
#include "common/lock.h"

#define COW_BLOCK 4096u
#define COW_CHUNK_BITS 26             /* guest bytes per bitmap chunk */
#define COW_CHUNK_WORDS ((1u << COW_CHUNK_BITS) / COW_BLOCK / 64)

struct cow {
  struct bfs_blk b;
  char *name;
  int fd;
  pthread_rwlock_t wlock;
  size_t nchunks;
  uint64_t **chunks;                  /* NULL until a block in it is written */
};

static bool
written(struct cow *c, uint64_t blk)
{
  uint64_t bit = blk * COW_BLOCK >> COW_CHUNK_BITS;
  uint64_t *ch = __atomic_load_n(&c->chunks[bit], __ATOMIC_ACQUIRE);
  uint64_t w = blk % ((uint64_t)COW_CHUNK_WORDS * 64);
  return ch && (__atomic_load_n(&ch[w / 64], __ATOMIC_ACQUIRE) >> (w % 64) & 1);
}

static int
mark(struct cow *c, uint64_t blk)
{
  uint64_t **slot = &c->chunks[blk * COW_BLOCK >> COW_CHUNK_BITS];
  uint64_t *ch = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  uint64_t w = blk % ((uint64_t)COW_CHUNK_WORDS * 64);

  if (!ch) {
    uint64_t *fresh = calloc(COW_CHUNK_WORDS, sizeof *fresh), *none = NULL;
    if (!fresh)
      return bfs_error(-ENOMEM, "%s: out of memory", c->name);
    if (__atomic_compare_exchange_n(slot, &none, fresh, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      ch = fresh;
    else {
      free(fresh);
      ch = none;
    }
  }
  __atomic_fetch_or(&ch[w / 64], 1ull << (w % 64), __ATOMIC_RELEASE);
  return 0;
}

/* Blocks from blk with the same written state, up to the block holding
 * end - 1. */
static uint64_t
run_end(struct cow *c, uint64_t off, uint64_t end, bool *is_written)
{
  uint64_t blk = off / COW_BLOCK;
  *is_written = written(c, blk);
  for (blk++; blk * COW_BLOCK < end && written(c, blk) == *is_written; blk++)
    ;
  return blk * COW_BLOCK < end ? blk * COW_BLOCK : end;
}

static int
cow_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct cow *c = (struct cow *)b;
  unsigned char *p = buf;
  const uint64_t end = off + len;
  int r;

  while (off < end) {
    bool w;
    uint64_t stop = run_end(c, off, end, &w);
    size_t n = (size_t)(stop - off);
    if (w) {
      if ((r = bfs_pread_all(c->fd, p, n, off)) < 0)
        return bfs_error(-EIO, "%s: reading the scratch file at %" PRIu64
                         ": %s", c->name, off, strerror(-r));
    }
    else if ((r = bfs_blk_pread(b->below, p, n, off)) < 0)
      return r;
    p += n;
    off = stop;
  }
  return 0;
}

static int
write_blocks(struct cow *c, const void *buf, size_t len, uint64_t off)
{
  int r = bfs_pwrite_all(c->fd, buf, len, off);

  if (r < 0)
    return bfs_error(-EIO, "%s: write: %s", c->name, strerror(-r));
  for (uint64_t blk = off / COW_BLOCK; blk * COW_BLOCK < off + len; blk++)
    if ((r = mark(c, blk)) < 0)
      return r;
  return 0;
}

static int
cow_pwrite(struct bfs_blk *b, const void *buf, size_t len, uint64_t off)
{
  struct cow *c = (struct cow *)b;
  const uint64_t end = off + len;
  uint64_t wstart, wend;
  CLEANUP_FREE unsigned char *tmp = NULL;
  int r = 0;

  if (off % COW_BLOCK == 0 && (end % COW_BLOCK == 0 || end == b->size)) {
    ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(&c->wlock);
    return write_blocks(c, buf, len, off);
  }
  /* widen to whole blocks: read the edges, lay the new bytes over them */
  wstart = off / COW_BLOCK * COW_BLOCK;
  wend = (end + COW_BLOCK - 1) / COW_BLOCK * COW_BLOCK;
  if (wend > b->size)
    wend = b->size;
  if (!(tmp = malloc(wend - wstart)))
    return bfs_error(-ENOMEM, "%s: out of memory", c->name);
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(&c->wlock);
  if (wstart < off)
    r = cow_pread(b, tmp, (size_t)(off - wstart), wstart);
  if (r == 0 && end < wend)
    r = cow_pread(b, tmp + (end - wstart), (size_t)(wend - end), end);
  if (r < 0)
    return r;
  memcpy(tmp + (off - wstart), buf, len);
  return write_blocks(c, tmp, (size_t)(wend - wstart), wstart);
}

static int
cow_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                 struct bfs_blk_status *st)
{
  struct cow *c = (struct cow *)b;
  bool w;
  uint64_t stop = run_end(c, off, off + max, &w);
  int r;

  if (w) {
    st->len = stop - off;
    st->kind = BFS_BLK_DATA;
    st->layer = 0;
    st->fd = c->fd;
    st->fd_off = off;
    return 0;
  }
  if ((r = bfs_blk_block_status(b->below, off, stop - off, st)) < 0)
    return r;
  if (st->kind != BFS_BLK_HOLE)
    st->layer++;
  return 0;
}

static void
cow_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  bfs_blk_prefetch(b->below, off, len);
}

static int
cow_flush(struct bfs_blk *b)
{
  struct cow *c = (struct cow *)b;
  if (fdatasync(c->fd) < 0)
    return bfs_error(-errno, "%s: fdatasync: %s", c->name, strerror(errno));
  return 0;
}

static void
cow_close(struct bfs_blk *b)
{
  struct cow *c = (struct cow *)b;
  for (size_t i = 0; i < c->nchunks; i++)
    free(c->chunks[i]);
  free(c->chunks);
  if (c->fd >= 0)
    close(c->fd);
  pthread_rwlock_destroy(&c->wlock);
  free(c->name);
  free(c);
}

static const struct bfs_blk_ops cow_ops = {
  .name = "cow",
  .pread = cow_pread,
  .block_status = cow_block_status,
  .prefetch = cow_prefetch,
  .pwrite = cow_pwrite,
  .flush = cow_flush,
  .close = cow_close,
};

int
blk_cow_open(struct bfs_blk *inner, int scratch_fd, const char *name,
             struct bfs_blk **out)
{
  struct cow *c = calloc(1, sizeof *c);

  *out = NULL;
  if (c) {
    c->fd = scratch_fd;
    c->nchunks = (size_t)((inner->size + (1ull << COW_CHUNK_BITS) - 1)
                          >> COW_CHUNK_BITS);
    c->chunks = calloc(c->nchunks ? c->nchunks : 1, sizeof *c->chunks);
    c->name = strdup(name ? name : "(scratch)");
  }
  if (!c || !c->chunks || !c->name) {
    if (c) {
      free(c->chunks);
      free(c->name);
      free(c);
    }
    close(scratch_fd);
    bfs_blk_close(inner);
    return bfs_error(-ENOMEM, "out of memory");
  }
  pthread_rwlock_init(&c->wlock, NULL);
  c->b.ops = &cow_ops;
  c->b.size = inner->size;
  c->b.name = c->name;
  c->b.below = inner;
  c->b.info = (struct bfs_blk_info){ .format = "cow",
                                     .virtual_size = inner->size };
  *out = &c->b;
  return 0;
}
